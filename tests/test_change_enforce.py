"""change.enforce, change.watch, change.breakglass and change.traffic without a sandbox: what the
flip and break-glass move to, when they refuse before any call, how the watch reads the logs, and
how a client population is laid out. The sandbox runs are in test_change_enforce_e2e."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mtlskit.change import breakglass, enforce, traffic, watch
from mtlskit.change.state import ALLOW, REJECT, TrustedCert, TrustState
from mtlskit.config import params as params_mod
from mtlskit.config import paths
from mtlskit.core.checks import Check
from mtlskit.core.errors import ChangeRefused
from mtlskit.pki import certs
from mtlskit.rules.logentry import FORWARDED, NOT_PROVIDED
from mtlskit.verify import logs
from tests.conftest import sandbox_params

ROOT = certs.issue("enforce test root", ca=True, eku=certs.CLIENT_AUTH)
ANCHOR = TrustedCert.from_pem("anchor", certs.pem(ROOT.cert))


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("enforce-pki")
    certs.ensure_demo_pki(d / "pki")
    return d


def _params(d: Path, **sections: Any) -> params_mod.Params:
    probe = {"client_cert": str(d / "pki" / "client.pem"), "client_key": str(d / "pki" / "client.key")}
    return sandbox_params(d, probe=probe, **sections)


def test_the_flip_moves_only_the_mode(pki_dir: Path) -> None:
    live = TrustState((ANCHOR,), ALLOW, True)
    assert enforce.target_of(_params(pki_dir), live) == TrustState((ANCHOR,), REJECT, True)


@pytest.mark.parametrize(
    ("mode", "live", "says"),
    [
        (ALLOW, TrustState((ANCHOR,), ALLOW, True), "set mtls.validation_mode: REJECT_INVALID"),
        (REJECT, TrustState((ANCHOR,), None, False), "has no mTLS mode"),
        (REJECT, TrustState((ANCHOR,), ALLOW, False), "way_back=True"),
    ],
)
def test_the_flip_refuses_what_it_cannot_hold(pki_dir: Path, mode: str, live: TrustState, says: str) -> None:
    with pytest.raises(ChangeRefused, match=says):
        enforce.target_of(_params(pki_dir, mtls={"validation_mode": mode}), live)


def test_a_gateway_params_file_is_refused_by_name_before_any_call(pki_dir: Path) -> None:
    data = params_mod.sandbox_default(pki_dir, paths.repo_root() / "params" / "sandbox-gateway.yaml")
    p = params_mod.parse(data, "gateway")
    prepared = enforce.prepare(None, p)  # type: ignore[arg-type]  # no client is needed to refuse
    gate = prepared.gate_check()
    assert gate.status == "fail" and "topology gateway" in gate.evidence
    assert enforce.flip(None, p, prepared).run is None  # type: ignore[arg-type]
    from mtlskit import runbook
    from mtlskit.runner.step import Step

    for way_back in (False, True):
        glass = runbook.break_glass(Step(p, None, apply=True), way_back)  # type: ignore[arg-type]
        glass.state()
        glass.run()
        assert [(c.status, "topology gateway" in c.evidence) for c in glass.checks()] == [("fail", True)]


@pytest.mark.parametrize(
    ("how", "live", "after"),
    [
        ("allow", TrustState((ANCHOR,), REJECT, True), TrustState((ANCHOR,), ALLOW, True)),
        ("detach", TrustState((ANCHOR,), REJECT, True), TrustState((ANCHOR,), REJECT, False)),
        ("allow", TrustState((ANCHOR,), ALLOW, True), None),  # clients already get through
        ("allow", TrustState((ANCHOR,), REJECT, False), None),
        ("detach", TrustState((ANCHOR,), REJECT, False), None),
    ],
)
def test_break_glass_moves_to_allow_or_detached(
    pki_dir: Path, how: str, live: TrustState, after: TrustState | None
) -> None:
    assert breakglass.relaxed(_params(pki_dir, changes={"break_glass": how}), live) == after


def test_break_glass_gate_always_passes_under_the_name_it_is_given() -> None:
    gate = breakglass.NoGate().gate()
    assert gate.passed and gate.check("gate break-glass phase 1 of 1") == Check(
        "gate break-glass phase 1 of 1", "pass", breakglass.NoGate.reason
    )


def _entry(
    ip: str, details: str, url: str = "https://api.test/", fingerprint: str | None = None
) -> dict[str, Any]:
    refused = details != FORWARDED
    mtls = {"clientCertPresent": fingerprint is not None, "clientCertChainVerified": not refused}
    if fingerprint:
        mtls["clientCertSha256Fingerprint"] = fingerprint
    return {
        "timestamp": "2026-12-04T07:00:00Z",
        "httpRequest": {
            "status": 0 if refused else 200,
            "remoteIp": ip,
            **({} if refused else {"requestUrl": url}),
        },
        "jsonPayload": {"statusDetails": details, "mtls": mtls},
    }


def test_a_look_fails_on_a_proof_case_or_refusals_above_the_share() -> None:
    ok = (Check("proof new CA: probe certificate", "pass", "accepted"),)
    assert not watch.Look(ok, 10).failed
    assert watch.Look(ok, 100, {"127.0.0.5": 1}, max_share=0.0).failed
    within = watch.Look(ok, 100, {"127.0.0.5": 1}, max_share=0.05)
    assert not within.failed
    assert [c.status for c in watch.Watch(3, 2.0, within).checks()] == ["pass", "warn"]
    broken = watch.Look((Check("proof missing: no certificate", "fail", "forwarded"),), 0)
    checks = watch.Watch(1, 0.0, broken).checks()
    assert broken.failed and checks[0].status == "fail" and "no certificate" in checks[0].evidence


def test_a_population_spreads_the_clients_without_a_certificate(pki_dir: Path) -> None:
    p = _params(pki_dir)
    clients = traffic.population(p, 100, 3)
    bare = [c for c in clients if c.cert is None]
    assert len(clients) == 100 and len({c.source_ip for c in clients}) == 100
    assert [c.source_ip for c in bare] == ["127.0.0.18", "127.0.0.52", "127.0.0.85"]
    assert all(c.cert == p.probe.client_cert and c.key == p.probe.client_key for c in clients if c.cert)
    assert clients[0].source_ip == traffic.FIRST_SOURCE and clients[-1].source_ip == "127.0.0.101"
    with pytest.raises(ValueError, match="between 0 and count"):
        traffic.population(p, 10, 11)
    with pytest.raises(ValueError, match="127.0.0.0/8"):
        traffic.population(p, 300, 0, first_source="127.255.255.0")


def test_readiness_leaves_out_the_kits_own_probes() -> None:
    """50_verify and every proof send requests without a certificate: in ALLOW mode they are logged
    with their probe id; refused in REJECT mode, from the same address, without a URL."""
    from mtlskit.change.readiness import readiness

    frame = logs.entries_frame(
        [
            _entry("127.0.0.1", FORWARDED, "https://api.test/.mtlskit/probe/abc", "aa"),
            {
                **_entry("127.0.0.1", FORWARDED, "https://api.test/.mtlskit/probe/abd"),
                "jsonPayload": {"statusDetails": FORWARDED, "mtls": {"clientCertPresent": False}},
            },
            _entry("127.0.0.1", NOT_PROVIDED),
            _entry("127.0.0.5", FORWARDED, fingerprint="cc"),
            {
                **_entry("127.0.0.6", FORWARDED),
                "jsonPayload": {"statusDetails": FORWARDED, "mtls": {"clientCertPresent": False}},
            },
        ]
    )
    report = readiness(frame)
    assert (report.requests, report.refused) == (2, 1)
    assert [str(c) for c in report.by_client["remote_ip"]] == ["127.0.0.6"]
