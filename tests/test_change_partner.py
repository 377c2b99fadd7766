"""Partner certificates end to end on a sandbox of its own: adding a partner's CA is one phase whose
proof shows the partner's client accepted and the rest as before, and its rollback refuses that
client again; revoking an allowlisted certificate is refused by the gate (naming it) until the params
say the refusal is meant, then applied, proven and recorded, and rolled back to accept it again. The
gate counts the clients the request logs saw accepted, so the partner's client sends requests first."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mtlskit.build import frontend, stack
from mtlskit.change import rollback, run
from mtlskit.change.state import live_state, target_state
from mtlskit.cloud.clients import Clients, build_clients
from mtlskit.config.params import Params
from mtlskit.migrate import rehearsal
from mtlskit.migrate.traffic import SteadyClient, fixed_address
from mtlskit.pki import certs
from mtlskit.sandbox import process
from mtlskit.verify import changerecords, probe
from tests.conftest import wait_serving

pytestmark = pytest.mark.e2e

ALLOWLISTED = "allowlisted-client"
REFUSED = "client_cert_validation_failed"


@dataclass
class Stack:
    clients: Clients
    built: Params  # params/sandbox.yaml as built
    state_dir: Path
    pki: certs.DemoPki

    def params(self, mtls: dict[str, Any], changes: dict[str, Any]) -> Params:
        """The built stack's params with another trust target and other change settings."""
        return rehearsal.moved("sandbox.yaml", self.state_dir, _sections(self.state_dir, mtls, changes))

    def send(self, name: str, times: int) -> list[str]:
        """`times` requests on new connections with a demo PKI client, as a partner's client sends them."""
        one = SteadyClient.for_params(
            self.clients,
            self.built,
            cert=str(self.pki.cert(name)),
            key=str(self.pki.key(name)),
            lookup=fixed_address(probe.locate_frontend(self.clients, self.built).ip),
        )
        return [one.send_one() for _ in range(times)]

    def client(self, name: str) -> dict[str, Any]:
        return {"name": name, "cert": str(self.pki.cert(name)), "key": str(self.pki.key(name))}


def _sections(d: Path, mtls: dict[str, Any], changes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    base = {"poll_seconds": 0.2, "propagation_timeout_seconds": 20, "records": str(d / "records")}
    return {
        "sandbox": {"operation_delay_seconds": 0.05, "propagation_delay_seconds": 1.0},
        "mtls": mtls,
        "changes": {**base, **changes},
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    d = tmp_path_factory.mktemp("partner-state")
    try:
        params = rehearsal.moved("sandbox.yaml", d, _sections(d, {}, {}))
        clients = build_clients(params)
        stack.build(clients, params)
        frontend.wait_for_certificate(clients, params, 30, poll_seconds=0.2)
        wait_serving(clients, probe.locate_frontend(clients, params).ip)
        yield Stack(clients, params, d, certs.DemoPki.in_state_dir(d))
    finally:
        process.stop(d)


def _verdicts(r: run.PhaseRun) -> dict[str, str]:
    """case -> what the load balancer did with it, as proven on a new connection."""
    return {p.result.case: p.result.expected for p in r.proven}


def _failed(r: run.PhaseRun) -> list[object]:
    return [c for c in r.checks() if c.status == "fail"]


def test_adding_a_partner_ca_is_one_proven_phase_and_its_rollback_refuses_the_partner_again(
    built: Stack,
) -> None:
    s = built
    start = live_state(s.clients, s.built)
    anchors = [*s.built.mtls.trust_anchors, str(s.pki.cert(certs.PARTNER_ANCHOR))]
    params = s.params({"trust_anchors": anchors}, {"proof_clients": [s.client(certs.PARTNER_CLIENT)]})

    added = run.trust_change(s.clients, params)
    assert added is not None and added.label == "partner phase 1 of 1", added
    assert added.record and added.record.outcome == "applied", _failed(added)
    assert added.gate and added.gate.status in ("pass", "warn")  # warn: something to read, no refusal
    assert _verdicts(added)[certs.PARTNER_CLIENT] == "ok"
    assert _verdicts(added)[probe.PROBE_CERTIFICATE] == "ok"  # the demo root's client, as before
    assert live_state(s.clients, params) == target_state(params)
    assert run.trust_change(s.clients, params) is None  # nothing repeats

    back = rollback.rollback(s.clients, params)
    assert not _failed(back) and back.record and back.record.kind == "rollback"
    assert live_state(s.clients, params) == start
    assert _verdicts(back)[certs.PARTNER_CLIENT] == REFUSED
    assert _verdicts(back)[probe.PROBE_CERTIFICATE] == "ok"


def test_revoking_an_allowlisted_certificate_passes_the_gate_only_when_meant(built: Stack) -> None:
    s = built
    start = live_state(s.clients, s.built)
    proof_clients = {"proof_clients": [s.client(ALLOWLISTED)]}
    unmeant = s.params({"allowlisted": []}, {**proof_clients, "intended_refusals": []})

    # The partner's client is accepted today: the request logs saw it.
    assert s.send(ALLOWLISTED, 3) == ["answered"] * 3
    refused = run.trust_change(s.clients, unmeant)
    assert refused is not None and refused.kind == "partner"
    assert refused.gate and refused.gate.status == "fail"
    assert ALLOWLISTED in refused.gate.evidence, refused.gate.evidence  # the client it would refuse
    assert refused.record and refused.record.outcome == "refused" and refused.record.exit_code == 1
    assert not refused.applied and live_state(s.clients, unmeant) == start  # nothing changed

    meant = s.params(
        {"allowlisted": []}, {**proof_clients, "intended_refusals": [str(s.pki.cert(ALLOWLISTED))]}
    )
    revoked = run.trust_change(s.clients, meant)
    assert revoked is not None and revoked.record and revoked.record.outcome == "applied", _failed(revoked)
    assert _verdicts(revoked)[ALLOWLISTED] == REFUSED
    assert s.send(ALLOWLISTED, 2) == ["refused"] * 2
    assert _verdicts(revoked)[probe.PROBE_CERTIFICATE] == "ok"
    assert live_state(s.clients, meant) == target_state(meant)

    back = rollback.rollback(s.clients, meant)
    assert not _failed(back) and live_state(s.clients, meant) == start
    assert _verdicts(back)[ALLOWLISTED] == "ok"
    assert s.send(ALLOWLISTED, 2) == ["answered"] * 2
    kept = [(r.kind, r.outcome) for r in changerecords.read_records(meant)]
    assert kept[-3:] == [("partner", "refused"), ("partner", "applied"), ("rollback", "applied")]
