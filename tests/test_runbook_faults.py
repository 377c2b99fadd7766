"""The build runbook under API faults: a flaky API (20 % of requests answered 429/503) still ends in
the same state with no duplicates; a dead API stops the run with a message naming the call, and a
re-run after it recovers completes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mtlskit.build import backend, frontend, trust
from mtlskit.cloud.clients import Clients, build_clients
from mtlskit.config.params import Params, load, sandbox_default
from mtlskit.runner import execute, results
from mtlskit.sandbox import process
from tests.conftest import PROJECT, sandbox_call

pytestmark = pytest.mark.e2e  # runs the notebooks in kernels against a sandbox of its own

ALL_APIS = ["compute", "networksecurity", "certificatemanager", "logging"]


def _env(directory: Path, **top: object) -> Path:
    data = sandbox_default(directory / "state")  # its own sandbox and demo PKI
    data.update(top)
    path = directory / "env.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def flaky_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = _env(tmp_path_factory.mktemp("flaky"))
    yield path
    process.stop(load(path).state_dir)


def _names(clients: Clients) -> dict[str, list[str]]:
    c = clients.compute
    return {
        "addresses": sorted(a.name for a in c.addresses.list(project=PROJECT)),
        "sslCertificates": sorted(a.name for a in c.ssl_certificates.list(project=PROJECT)),
        "sslPolicies": sorted(a.name for a in c.ssl_policies.list(project=PROJECT)),
        "urlMaps": sorted(a.name for a in c.url_maps.list(project=PROJECT)),
        "targetHttpsProxies": sorted(a.name for a in c.target_https_proxies.list(project=PROJECT)),
        "forwardingRules": sorted(a.name for a in c.forwarding_rules.list(project=PROJECT)),
        "trustConfigs": sorted(
            t.name.rsplit("/", 1)[-1]
            for t in clients.certificate_manager.list_trust_configs(parent=clients.location)
        ),
        "serverTlsPolicies": sorted(
            t.name.rsplit("/", 1)[-1]
            for t in clients.network_security.list_server_tls_policies(parent=clients.location)
        ),
    }


def _expected(p: Params) -> dict[str, list[str]]:
    f = p.frontend
    return {
        "addresses": [f.address],
        "sslCertificates": [f.certificate],
        "sslPolicies": [f.ssl_policy],
        "urlMaps": [f.url_map],
        "targetHttpsProxies": [f.target_proxy],
        "forwardingRules": [f.forwarding_rule],
        "trustConfigs": [p.mtls.trust_config],
        "serverTlsPolicies": [p.mtls.server_tls_policy],
    }


def test_flaky_api_reaches_the_same_end_state_without_duplicates(flaky_env: Path, tmp_path: Path) -> None:
    params = load(flaky_env)
    clients = build_clients(params)
    sandbox_call(clients, "counters", "DELETE")
    sandbox_call(clients, "faults", "POST", {"error_rate": 0.2, "seed": 20261128})
    try:
        out = execute.run_notebooks(str(flaky_env), execute.BUILD, apply=True, out_dir=tmp_path / "run")
        counts = sandbox_call(clients, "counters")["counts"]
    finally:
        sandbox_call(clients, "faults", "POST", {"error_rate": 0.0})
    summary = json.loads((out.out_dir / "summary.json").read_text())
    assert [s["status"] for s in summary["notebooks"]] == ["ok"] * len(execute.BUILD), summary
    # the faults did fire: some calls were answered 429/503 and retried
    assert sum(v for k, v in counts.items() if k.startswith("fault.")) > 0, counts

    # exactly one of each kit resource (a retried insert never made a second one) ...
    assert _names(clients) == _expected(params)
    # ... and the whole chain is wired as params ask: a fresh plan finds nothing to do
    bs = backend.locate_backend_service(clients, params)
    assert {c.action for c in trust.plan_trust(clients, params)} == {"no change"}
    assert {c.action for c in frontend.plan_frontend(clients, params, bs)} == {"no change"}


def test_dead_api_names_the_failing_call_and_a_rerun_completes(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    path = _env(tmp_path_factory.mktemp("dead"), api_retry_seconds=2)
    params = load(path)
    clients = build_clients(params)
    try:
        before_frontend = execute.BUILD[: execute.BUILD.index("40_frontend")]
        execute.run_notebooks(str(path), before_frontend, apply=True, out_dir=tmp_path / "pre")
        sandbox_call(clients, "faults", "POST", {"error_rate": 1.0, "apis": ["compute"]})
        run = execute.run_notebooks(str(path), ["40_frontend"], apply=True, out_dir=tmp_path / "dead")
        assert run.exit_code == results.EXIT_CRASHED
        message = run.notebooks[-1].error
        assert message.startswith("ApiCallFailed: "), message
        # names the call (method and path of the compute request) and the answer
        assert "GET /compute/v1/projects/" in message, message
        assert "503" in message or "429" in message, message
        assert "re-run" in message
        summary = json.loads((tmp_path / "dead" / "summary.json").read_text())
        last = summary["notebooks"][-1]
        assert last["status"] == "crashed" and "ApiCallFailed" in last["error"]
        assert summary["exit_code"] == results.EXIT_CRASHED

        sandbox_call(clients, "faults", "POST", {"error_rate": 0.0})
        assert _names(clients)["forwardingRules"] == []  # nothing half-built reached the data path
        execute.run_notebooks(str(path), ["40_frontend"], apply=True, out_dir=tmp_path / "again")
        assert _names(clients) == _expected(params)
    finally:
        sandbox_call(clients, "faults", "POST", {"error_rate": 0.0, "apis": ALL_APIS})
        process.stop(params.state_dir)


def test_sandbox_gone_mid_run_names_the_call_and_says_rerun(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Connection failures read like API failures: which step, which call, and that a re-run is safe."""
    from mtlskit import runbook
    from mtlskit.build import k8s
    from mtlskit.core.errors import ApiCallFailed

    path = _env(tmp_path_factory.mktemp("gone"), api_retry_seconds=2)
    params = load(path)
    step = runbook.Step(params, build_clients(params), apply=True)
    process.stop(params.state_dir)
    for fn in (k8s.plan_ingress, trust.plan_trust):
        with pytest.raises(ApiCallFailed) as err:
            step.call(fn)
        message = str(err.value)
        assert message.startswith(f"{fn.__name__} stopped: the connection to the API failed"), message
        assert "re-run this notebook" in message


def test_kubernetes_errors_are_wrapped_with_the_status_message(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from kubernetes.client.exceptions import ApiException

    from mtlskit import runbook
    from mtlskit.core.errors import ApiCallFailed, ApiError

    path = _env(tmp_path_factory.mktemp("kube"))
    params = load(path)
    step = runbook.Step(params, build_clients(params), apply=True)

    def read_missing(clients: Clients, params: Params) -> None:
        clients.kube.core.read_namespaced_service("no-such-service", params.kubernetes.namespace)

    try:
        with pytest.raises(
            ApiCallFailed, match=r"read_missing stopped: the Kubernetes API answered 404"
        ) as err:
            step.call(read_missing)
        api_error = err.value.__cause__  # the kit's error, keeping the client library's as its cause
        assert isinstance(api_error, ApiError) and api_error.status == 404
        assert isinstance(api_error.cause, ApiException)
        assert "no-such-service" in str(err.value)
    finally:
        process.stop(params.state_dir)
