"""The build runbook end to end: notebooks run by papermill against a sandbox, checked through the
official clients; nbval over the committed notebooks as they stand (plan only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from google.api_core import exceptions as gexc

from mtlskit.build import backend
from mtlskit.cloud.clients import build_clients
from mtlskit.config import paths
from mtlskit.config.params import load, sandbox_default
from mtlskit.runner import execute
from mtlskit.sandbox import process
from tests.conftest import PROJECT, run_nbval, sandbox_call

pytestmark = pytest.mark.e2e  # runs the notebooks in kernels against a sandbox of its own

MUTATING = (
    "insert",
    "patch",
    "delete",
    "create",
    "update",
    "set",
    "kube.POST",
    "kube.PUT",
    "kube.PATCH",
    "kube.DELETE",
)


@pytest.fixture(scope="module")
def second_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second environment: other names, namespace and port, ALLOW mode."""
    d = tmp_path_factory.mktemp("second-env")
    state = d / "state"
    data = sandbox_default(state)  # every certificate path moved into this environment's own PKI
    data["stack"] = "second"
    data["kubernetes"].update(
        namespace="team-b", service="api", service_port=8443, backend_config="api-bc", ingress="api-anchor"
    )
    data["frontend"].update(
        address="b-ip",
        certificate="b-cert",
        ssl_policy="b-ssl",
        url_map="b-um",
        target_proxy="b-proxy",
        forwarding_rule="b-fr",
        domains=["b.mtlskit.test"],
    )
    data["mtls"].update(
        trust_config="b-trust",
        server_tls_policy="b-policy",
        validation_mode="ALLOW_INVALID_OR_MISSING_CLIENT_CERT",
        allowlisted=[str(state / "pki" / "allowlisted-client.pem")],
    )
    path = d / "second.yaml"
    path.write_text(yaml.safe_dump(data))
    yield path
    process.stop(state)


def mutating_calls(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if any(m in k for m in MUTATING) and "operations.wait" not in k}


def test_build_runbook_then_idempotent_rerun_then_teardown(second_env: Path, tmp_path: Path) -> None:
    params = load(second_env)
    run = execute.run_notebooks(str(second_env), execute.BUILD, apply=True, out_dir=tmp_path / "build")
    summary = json.loads((run.out_dir / "summary.json").read_text())
    assert [s["status"] for s in summary["notebooks"]] == ["ok"] * len(execute.BUILD), summary
    assert summary["exit_code"] == 0
    for nb in [*run.out_dir.glob("*.ipynb"), run.out_dir / "report.html"]:
        assert "PRIVATE KEY" not in nb.read_text(), nb.name
    # the design picture, drawn with this environment's names, in the executed page and the report
    design = json.loads((run.out_dir / "00_design.ipynb").read_text())
    svgs = [
        "".join(o["data"]["image/svg+xml"])
        for c in design["cells"]
        for o in c.get("outputs", [])
        if "image/svg+xml" in o.get("data", {})
    ]
    assert len(svgs) == 2 and "b-proxy" in svgs[0] and "team-b/api" in svgs[0]
    # and the same environment drawn as a Gateway: its own Gateway names, the controller's gkegw1 ones
    assert (
        "team-b/web-gateway" in svgs[1]
        and "b-ssl" in svgs[1]
        and "gkegw1-" in svgs[1]
        and "b-proxy" not in svgs[1]
    )
    report = (run.out_dir / "report.html").read_text()
    assert "<svg" in report and ">b-proxy</text>" in report

    clients = build_clients(params)
    bs = backend.locate_backend_service(clients, params)
    assert bs.service == "team-b/api" and bs.service_port == "8443"
    um = clients.compute.url_maps.get(project=PROJECT, url_map="b-um")
    assert um.default_service.endswith(f"/backendServices/{bs.name}")
    proxy = clients.compute.target_https_proxies.get(project=PROJECT, target_https_proxy="b-proxy")
    assert proxy.server_tls_policy.endswith("/serverTlsPolicies/b-policy")
    fr = clients.compute.forwarding_rules.get(project=PROJECT, forwarding_rule="b-fr")
    assert fr.load_balancing_scheme == "EXTERNAL" and fr.port_range.startswith("443")
    policy = clients.network_security.get_server_tls_policy(
        name=f"projects/{PROJECT}/locations/global/serverTlsPolicies/b-policy"
    )
    assert policy.mtls_policy.client_validation_mode.name == "ALLOW_INVALID_OR_MISSING_CLIENT_CERT"

    # A second apply of the same params changes nothing: zero mutating requests reach the APIs.
    sandbox_call(clients, "counters", "DELETE")
    steps = [n for n in execute.BUILD if not n.startswith("00_")]  # the pages that only read go
    execute.run_notebooks(str(second_env), steps, apply=True, out_dir=tmp_path / "again")
    counts = sandbox_call(clients, "counters")["counts"]
    assert mutating_calls(counts) == {}, mutating_calls(counts)
    assert counts  # the re-run did read

    execute.run_notebooks(str(second_env), [execute.TEARDOWN], apply=True, out_dir=tmp_path / "down")
    for getter, kw in [
        (clients.compute.forwarding_rules.get, {"forwarding_rule": "b-fr"}),
        (clients.compute.url_maps.get, {"url_map": "b-um"}),
        (clients.compute.addresses.get, {"address": "b-ip"}),
    ]:
        with pytest.raises(gexc.NotFound):
            getter(project=PROJECT, **kw)
    with pytest.raises(gexc.NotFound):
        clients.certificate_manager.get_trust_config(
            name=f"projects/{PROJECT}/locations/global/trustConfigs/b-trust"
        )
    # the Ingress-owned backend service and the anchor Ingress are left alone
    assert clients.compute.backend_services.get(project=PROJECT, backend_service=bs.name).name == bs.name
    assert (
        clients.kube.networking.read_namespaced_ingress("api-anchor", "team-b").metadata.name == "api-anchor"
    )


def test_committed_notebooks_run_top_to_bottom_under_nbval() -> None:
    """As stored (apply=False, default sandbox params): plan-only, so nothing changes."""
    root = paths.repo_root()
    state = root / ".sandbox"
    was_running = process.status(state) is not None
    try:
        result = run_nbval(
            [root / "notebooks" / f"{n}.ipynb" for n in [*execute.BUILD, execute.TEARDOWN]], root
        )
    finally:
        if not was_running:
            process.stop(state)
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout
