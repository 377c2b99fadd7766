"""Probes against two real load balancers in one sandbox (REJECT_INVALID and, under other names,
ALLOW_INVALID_OR_MISSING_CLIENT_CERT), driven through the kit's own client libraries and TLS: every
demo certificate gets its documented outcome, a wrong expectation fails, the server side is checked,
and 50_verify runs headless without leaking a key."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from mtlskit import runbook
from mtlskit.build import stack
from mtlskit.cloud.clients import Clients, build_clients
from mtlskit.config import paths
from mtlskit.config.params import Params, ParamsError
from mtlskit.core.errors import PrerequisiteMissing as MissingPrerequisite
from mtlskit.pki import certs
from mtlskit.verify import probe
from tests.conftest import PROJECT, free_port, sandbox_params

pytestmark = pytest.mark.e2e  # starts a sandbox of its own and runs 50_verify in a kernel

REJECT, ALLOW = "REJECT_INVALID", "ALLOW_INVALID_OR_MISSING_CLIENT_CERT"
SPECS = {f"demo/{s.name}": s for s in certs.demo_pki_specs()}
RFC3339_MICRO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
CERT_DELAY = 3.0  # seconds a managed certificate stays PROVISIONING in this sandbox


@dataclass
class Env:
    state: Path
    reject: Params
    clients: Clients
    work: Path

    @property
    def pki(self) -> Path:
        return self.state / "pki"

    def variant(self, **sections: dict[str, Any]) -> Params:
        """The REJECT params with some sections changed, validated again like a params file."""
        data = self.reject.model_dump()
        for name, values in sections.items():
            data[name] = {**data[name], **values}
        return Params.model_validate(data)


def _params(state: Path, port: int, **overrides: Any) -> Params:
    pki = state / "pki"
    certs.ensure_demo_pki(pki)
    base: dict[str, Any] = {
        "stack": "probe-test",
        "sandbox": {
            "state_dir": str(state),
            "data_plane_port": port,
            "managed_cert_delay_seconds": CERT_DELAY,
            "operation_delay_seconds": 0.05,
        },
        "mtls": {
            "trust_anchors": [str(pki / "root.pem")],
            "intermediates": [str(pki / "intermediate.pem")],
            "allowlisted": [str(pki / "allowlisted-client.pem")],
        },
        "probe": {"client_cert": str(pki / "client.pem"), "client_key": str(pki / "client.key")},
        "frontend": {"domains": ["api.mtlskit.test"]},
    }
    for key, value in overrides.items():
        base[key] = {**base.get(key, {}), **value}
    return sandbox_params(state, **base)


def _until_answering(clients: Clients, params: Params, seconds: float = 15.0) -> probe.Frontend:
    deadline = time.monotonic() + seconds
    while True:
        target = probe.locate_frontend(clients, params)
        if target.answering or time.monotonic() > deadline:
            return target
        time.sleep(0.2)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    work = tmp_path_factory.mktemp("probe")
    state = work / "state"
    params = _params(state, free_port())
    clients = build_clients(params)
    stack.build(clients, params, 60)
    assert _until_answering(clients, params).answering
    yield Env(state, params, clients, work)
    probe.results_file(params).unlink(missing_ok=True)
    from mtlskit.sandbox import process

    process.stop(state)


@pytest.fixture(scope="module")
def reject_results(env: Env) -> list[probe.ProbeResult]:
    return probe.send_probes(env.clients, env.reject, probe.locate_frontend(env.clients, env.reject))


def _by_case(results: list[probe.ProbeResult]) -> dict[str, probe.ProbeResult]:
    return {r.case: r for r in results}


def test_reject_mode_every_demo_case_gets_its_documented_outcome(
    reject_results: list[probe.ProbeResult],
) -> None:
    got = _by_case(reject_results)
    assert set(SPECS) <= set(got) and {"probe certificate", "no certificate"} <= set(got)
    assert got["no certificate"].expected == "client_cert_not_provided"
    # the sandbox params allowlist only one of the two allowlist demo certificates
    assert got["demo/allowlisted-client"].expected == "ok"
    assert got["demo/allowlisted-expired-client"].expected == "client_cert_validation_failed"
    for r in reject_results:
        assert r.verdict == "pass", (r.case, r.outcome, r.detail)
        assert r.validation_mode == REJECT
        if r.expected == "ok":
            assert r.http_status == 200 and r.outcome == "HTTP 200", r.case
            assert r.expected_status_details == "response_sent_by_backend"
            assert r.backend_headers["X-Client-Cert-Chain-Verified"] == "true", r.case
        else:
            assert r.http_status is None and r.outcome.startswith("closed"), (r.case, r.outcome)
            assert r.expected_status_details == r.expected, r.case
            assert r.backend_headers == {}
    for name, spec in SPECS.items():
        if "allowlisted" not in name:
            assert got[name].expected == spec.expected, name


def test_every_probe_is_identified_timed_and_reaches_the_backend_by_its_id(
    env: Env, reject_results: list[probe.ProbeResult]
) -> None:
    ids = [r.probe_id for r in reject_results]
    assert len(set(ids)) == len(ids)
    for r in reject_results:
        assert RFC3339_MICRO.match(r.sent_at) and RFC3339_MICRO.match(r.finished_at), r
        assert r.sent_at <= r.finished_at
    accepted = [r for r in reject_results if r.http_status == 200]
    assert accepted
    for r in accepted:
        assert r.backend_path == probe.PROBE_PATH + r.probe_id
        assert r.backend_headers[probe.PROBE_HEADER] == r.probe_id
    # the expected statusDetails is what the load balancer logs for each of them
    flt = (
        f'logName="projects/{PROJECT}/logs/requests" '
        f'resource.labels.forwarding_rule_name="{env.reject.frontend.forwarding_rule}"'
    )
    entries = list(env.clients.logging.list_entries(filter_=flt))
    for r in accepted:
        logged = [e for e in entries if (e.http_request or {}).get("requestUrl", "").endswith(r.probe_id)]
        assert [e.payload["statusDetails"] for e in logged] == [r.expected_status_details], r.case
    refused = {e.payload["statusDetails"] for e in entries if (e.http_request or {}).get("status") == 0}
    assert {r.expected_status_details for r in reject_results if r.http_status is None} <= refused


def test_results_are_saved_for_the_log_step(
    reject_results: list[probe.ProbeResult], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: Env
) -> None:
    monkeypatch.setenv("MTLSKIT_ROOT", str(tmp_path))
    path = probe.save_results(env.reject, reject_results)
    assert path.is_relative_to(tmp_path)
    assert probe.load_results(env.reject) == reject_results
    assert "PRIVATE KEY" not in path.read_text()


def test_a_wrong_expectation_fails_the_probe(env: Env) -> None:
    pki = env.pki
    params = env.variant(
        probe={
            "demo_cases": False,
            "cases": [
                {
                    "name": "expired said ok",
                    "cert": str(pki / "expired-client.pem"),
                    "key": str(pki / "expired-client.key"),
                },
                {
                    "name": "valid said eku",
                    "cert": str(pki / "client.pem"),
                    "key": str(pki / "client.key"),
                    "expect": "client_cert_chain_invalid_eku",
                },
            ],
        }
    )
    got = _by_case(probe.send_probes(env.clients, params, probe.locate_frontend(env.clients, params)))
    assert set(got) == {"probe certificate", "no certificate", "expired said ok", "valid said eku"}
    assert got["probe certificate"].verdict == got["no certificate"].verdict == "pass"
    assert got["expired said ok"].verdict == "fail" and got["expired said ok"].outcome.startswith("closed")
    assert got["valid said eku"].verdict == "fail" and got["valid said eku"].http_status == 200
    assert got["expired said ok"].fix and got["valid said eku"].fix
    checks = {c.name: c for c in probe.probe_checks(list(got.values()))}
    assert checks["probe expired said ok"].status == checks["probe valid said eku"].status == "fail"
    assert checks["probe no certificate"].status == "pass"


def test_server_side_checks(env: Env) -> None:
    target = probe.locate_frontend(env.clients, env.reject)
    checks = {c.name: c for c in probe.server_checks(env.clients, env.reject, target)}
    assert checks["frontend answers"].status == "pass"
    assert checks["server certificate api.mtlskit.test"].status == "pass"
    assert "days left" in checks["server certificate api.mtlskit.test"].evidence
    older = checks["TLS older than 1.2 refused"]
    assert older.status in ("pass", "warn"), older  # warn only when the local OpenSSL cannot offer 1.1
    assert ("refused" if older.status == "pass" else "cannot offer") in older.evidence, older
    assert "70_drift" in target.certificate_status  # answered: no call spent on the certificate

    # the sandbox issues 90-day certificates: a one-year horizon must fail
    far = env.variant().model_copy(update={"expiry_horizon_days": 365})
    cert = {c.name: c for c in probe.server_checks(env.clients, far, target)}[
        "server certificate api.mtlskit.test"
    ]
    assert cert.status == "fail" and "expiry_horizon_days (365)" in cert.evidence

    # a domain the certificate does not cover
    other = env.variant(frontend={"domains": ["api.mtlskit.test", "other.mtlskit.test"]})
    target = probe.locate_frontend(env.clients, other)
    named = {c.name: c for c in probe.server_checks(env.clients, other, target)}
    assert named["server certificate api.mtlskit.test"].status == "pass"
    assert named["server certificate other.mtlskit.test"].status == "fail"
    assert "other.mtlskit.test" in named["server certificate other.mtlskit.test"].evidence


def test_a_frontend_that_is_not_built_names_the_notebook_to_run(env: Env) -> None:
    params = env.variant(frontend={"forwarding_rule": "not-built-fr"})
    with pytest.raises(MissingPrerequisite, match="40_frontend"):
        probe.locate_frontend(env.clients, params)
    step = runbook.Step(params, env.clients, apply=False)
    target = step.need(probe.locate_frontend)
    assert target is None and step.blocked and "40_frontend with apply=True" in step.blocked
    assert probe.send_probes(env.clients, params, target) == []
    assert probe.server_checks(env.clients, params, target) == []
    assert "skipped" in probe.results_frame([]).columns
    assert "skipped" in probe.target_frame(None).columns


def test_allow_mode_forwards_with_the_error_headers(env: Env) -> None:
    """A second load balancer under other names; probed first while its certificate provisions."""
    params = env.variant(
        kubernetes={
            "namespace": "team-b",
            "service": "api",
            "backend_config": "api-bc",
            "ingress": "api-anchor",
        },
        frontend={
            "address": "b-ip",
            "certificate": "b-cert",
            "ssl_policy": "b-ssl",
            "url_map": "b-um",
            "target_proxy": "b-proxy",
            "forwarding_rule": "b-fr",
            "domains": ["b.mtlskit.test"],
        },
        mtls={"trust_config": "b-trust", "server_tls_policy": "b-policy", "validation_mode": ALLOW},
    )
    stack.build(env.clients, params, 60)
    early = probe.locate_frontend(env.clients, params)
    assert early.certificate_status == "PROVISIONING" and not early.answering
    [answering] = probe.server_checks(env.clients, params, early)
    assert answering.status == "fail" and "ACTIVE" in answering.fix and "PROVISIONING" in answering.evidence
    assert probe.send_probes(env.clients, params, early) == []

    target = _until_answering(env.clients, params)
    assert target.answering, target.rows()
    results = probe.send_probes(env.clients, params, target)
    got = _by_case(results)
    assert set(SPECS) <= set(got)
    for r in results:
        assert r.verdict == "pass", (r.case, r.outcome, r.detail)
        assert r.http_status == 200 and r.expected_status_details == "response_sent_by_backend", r.case
        verified = r.backend_headers["X-Client-Cert-Chain-Verified"]
        error = r.backend_headers["X-Client-Cert-Error"]
        if r.expected == "ok":
            assert (verified, error) == ("true", ""), r.case
        else:
            assert verified == "false" and r.expected in error.split(","), (r.case, error)
    assert got["no certificate"].backend_headers["X-Client-Cert-Present"] == "false"
    assert "forwarded, error client_cert_not_provided" in probe.results_frame(results)["expected"].tolist()


def test_probe_cases_in_params_are_validated_with_their_field_path(env: Env) -> None:
    pki = env.pki
    valid = {"cert": str(pki / "client.pem"), "key": str(pki / "client.key")}

    def refused(case: dict[str, str]) -> ParamsError:
        with pytest.raises(ParamsError) as err:
            _params(env.state, env.reject.sandbox.data_plane_port, probe={"cases": [case]})
        return err.value

    err = refused({"name": "x", **valid, "expect": "client_cert_invalid"})
    assert [p.field for p in err.problems] == ["probe.cases[0].expect"]
    assert "client_cert_validation_failed" in str(err)
    err = refused({"name": "y", **valid, "cert": "nowhere/y.pem"})
    assert [p.field for p in err.problems] == ["probe.cases[0].cert"]
    assert str(paths.repo_root() / "nowhere" / "y.pem") in str(err)  # resolved like every cert path
    err = refused({"name": "no certificate", **valid})
    assert [p.field for p in err.problems] == ["probe.cases"]


def test_50_verify_runs_headless_without_showing_a_key(env: Env, tmp_path: Path) -> None:
    import nbformat
    import papermill as pm

    params_file = tmp_path / "probe.yaml"
    params_file.write_text(yaml.safe_dump(env.reject.model_dump()))
    src = paths.repo_root() / "notebooks" / "50_verify.ipynb"
    out = tmp_path / "50_verify.ipynb"
    pm.execute_notebook(
        str(src),
        str(out),
        parameters={"params_file": str(params_file), "apply": False},
        kernel_name="python3",
        cwd=str(src.parent),
        progress_bar=False,
    )
    text = out.read_text()
    assert "PRIVATE KEY" not in text
    assert "PASS (" in text and "demo/expired-client" in text
    saved = probe.load_results(env.reject)
    assert {r.case for r in saved} >= set(SPECS)
    assert all(r.verdict == "pass" for r in saved)
    # committed without outputs
    for cell in nbformat.read(str(src), as_version=4).cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
