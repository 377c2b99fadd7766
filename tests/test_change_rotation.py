"""A client-CA rotation end to end on a sandbox of its own whose load balancer applies trust changes
after a propagation delay: steady clients on fresh connections (old-CA certificates, then new-CA ones
from the end of phase 1's proof) see no valid request refused, and old-CA certificates are refused
after phase 2. The reverse rotation (params/sandbox.yaml) rolls back from each phase and the probes
show the previous verdicts again; a re-run after phase 1 goes on to phase 2."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from mtlskit.build import frontend, stack, trust
from mtlskit.change import proof, rollback, run, trust_page
from mtlskit.change.state import live_state, target_state
from mtlskit.cloud.clients import Clients, build_clients
from mtlskit.config.params import Params
from mtlskit.migrate import rehearsal
from mtlskit.migrate.traffic import SteadyClient, fixed_address
from mtlskit.pki import certs
from mtlskit.runner.step import Step, StepFailed
from mtlskit.sandbox import process
from mtlskit.verify import changerecords, probe
from tests.conftest import wait_serving

pytestmark = pytest.mark.e2e

FAST = {
    "sandbox": {"operation_delay_seconds": 0.05, "propagation_delay_seconds": 1.0},
}


@dataclass
class Stack:
    clients: Clients
    old: Params  # params/sandbox.yaml: the stack as built, trusting the demo root
    new: Params  # params/sandbox-rotation.yaml: the same stack trusting the next root
    ip: str
    pki: certs.DemoPki


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    d = tmp_path_factory.mktemp("rotation-state")
    changes = {"poll_seconds": 0.2, "propagation_timeout_seconds": 20, "records": str(d / "records")}
    try:
        old = rehearsal.moved("sandbox.yaml", d, {**FAST, "changes": changes})
        new = rehearsal.moved("sandbox-rotation.yaml", d, {**FAST, "changes": changes})
        clients = build_clients(old)
        stack.build(clients, old)
        frontend.wait_for_certificate(clients, old, 30, poll_seconds=0.2)
        ip = probe.locate_frontend(clients, old).ip
        wait_serving(clients, ip)  # the steady clients start at once
        yield Stack(clients, old, new, ip, certs.DemoPki.in_state_dir(d))
    finally:
        process.stop(d)


def _reporter() -> run.Reporter:
    pytest.importorskip("mtlskit.change.impact")  # the impact report's gate
    return run.default_reporter()


def _steady(s: Stack, name: str) -> SteadyClient:
    return SteadyClient.for_params(
        s.clients,
        s.new,
        pause=0.02,
        cert=str(s.pki.cert(name)),
        key=str(s.pki.key(name)),
        lookup=fixed_address(s.ip),
    )


def _trust_config(s: Stack) -> Any:
    return trust.TRUST_CONFIG.get(s.clients, trust.trust_config_name(s.clients, s.new))


def _failed(r: run.PhaseRun) -> list[object]:
    return [c for c in r.checks() if c.status == "fail"]


def _verdicts(r: run.PhaseRun) -> dict[str, str]:
    """case -> what the load balancer did with it ("ok" or the refusal), as proven."""
    return {p.result.case: p.result.expected for p in r.proven}


def test_rotation_refuses_no_valid_client_and_refuses_the_old_ca_after_phase_2(built: Stack) -> None:
    s = built
    made = _trust_config(s).create_time
    old_client = _steady(s, "client").start()
    try:
        first = run.trust_change(s.clients, s.new, _reporter())
        assert first is not None and first.label == "rotation phase 1 of 2", first
        assert first.record and first.record.outcome == "applied", _failed(first)
        new_client = _steady(s, certs.NEXT_CLIENT).start()  # clients move once phase 1 is proven
        try:
            # A re-run after phase 1 goes on to phase 2 of the same change, never phase 1 again.
            nxt = run.next_phase(s.new, live_state(s.clients, s.new), target_state(s.new))
            assert nxt is not None and (nxt.kind, nxt.number, nxt.change_id) == (
                "rotation",
                2,
                first.change_id,
            )
            old_tally = old_client.stop()  # every old-CA client has moved before the old CA goes
            second = run.trust_change(s.clients, s.new, _reporter())
        finally:
            new_tally = new_client.stop()
    finally:
        old_client.stop()  # (again, when phase 1 failed: stopping twice is harmless)
    assert second is not None and second.label == "rotation phase 2 of 2", second
    assert second.record and second.record.outcome == "applied", _failed(second)
    # The load balancer applies a change after its propagation delay: a new connection right after
    # the update still got the old verdict, and the proof waited for the new one.
    assert first.applied and second.applied and first.applied.tries > 1 and second.applied.tries > 1
    assert old_tally.sent > 0 and (old_tally.refused, old_tally.failed) == (0, 0), old_tally.problems
    assert new_tally.sent > 0 and (new_tally.refused, new_tally.failed) == (0, 0), new_tally.problems
    # Old-CA certificates are refused now, on new connections; the new CA's are accepted.
    late = _steady(s, "client")
    assert [late.send_one() for _ in range(3)] == ["refused"] * 3
    assert _verdicts(second)["old-ca-client"] == "client_cert_validation_failed"
    assert _verdicts(second)[probe.PROBE_CERTIFICATE] == "ok"
    categories = {p.result.case: p.category for p in second.proven}
    assert categories == {
        probe.PROBE_CERTIFICATE: proof.NEW,
        "old-ca-client": proof.OLD,
        proof.FOREIGN_CASE: proof.FOREIGN,
        probe.NO_CERTIFICATE: proof.MISSING,
    }
    assert live_state(s.clients, s.new) == target_state(s.new)
    assert _trust_config(s).create_time == made  # patched in place, never deleted and created again
    assert run.trust_change(s.clients, s.new, _reporter()) is None  # done: nothing repeats
    kept = changerecords.read_records(s.new)
    assert [(r.kind, r.phase, r.outcome) for r in kept] == [
        ("rotation", 1, "applied"),
        ("rotation", 2, "applied"),
    ]
    assert kept[0].before_fingerprint != kept[1].after_fingerprint and kept[1].change_id == first.change_id


def test_rollback_from_each_phase_restores_the_previous_verdicts(built: Stack) -> None:
    """The reverse rotation, back to params/sandbox.yaml's root, rolled back from each phase."""
    s, params = built, built.old
    start = live_state(s.clients, params)
    first = run.trust_change(s.clients, params, _reporter())
    assert first is not None and first.label == "rotation phase 1 of 2" and not _failed(first)
    assert _verdicts(first)[probe.PROBE_CERTIFICATE] == "ok"  # the demo root's client, beside the next CA
    back = rollback.rollback(s.clients, params)
    assert not _failed(back) and back.record and back.record.kind == "rollback"
    assert live_state(s.clients, params) == start
    assert _verdicts(back)[probe.PROBE_CERTIFICATE] == "client_cert_validation_failed"  # refused again
    assert _verdicts(back)["next-ca-client"] == "ok"

    again = run.trust_change(s.clients, params, _reporter())  # phase 1 again: the rollback undid it
    assert again is not None and again.phase_number == 1 and not _failed(again)
    second = run.trust_change(s.clients, params, _reporter())
    assert second is not None and second.label == "rotation phase 2 of 2" and not _failed(second)
    assert _verdicts(second)["next-ca-client"] == "client_cert_validation_failed"
    back2 = rollback.rollback(s.clients, params)
    assert not _failed(back2) and live_state(s.clients, params) == again.phase.after
    assert _verdicts(back2)["next-ca-client"] == "ok"  # phase 1's verdicts: both CAs accepted
    assert _verdicts(back2)[probe.PROBE_CERTIFICATE] == "ok"
    # After the rollback of phase 2 the rotation is open again: a re-run is its phase 2.
    nxt = run.next_phase(params, live_state(s.clients, params), target_state(params))
    assert nxt is not None and (nxt.kind, nxt.number, nxt.change_id) == ("rotation", 2, again.change_id)


def test_c10_page_refuses_a_gate_as_a_failed_check_and_c40_page_takes_back_the_last_phase(
    built: Stack,
) -> None:
    """The notebooks' calls, in process: after the reverse rotation's rollback of phase 2, c10 without
    the next CA's client named as an intended refusal shows phase 2 next and its gate refusing that
    client (accepted in the window): a failed check, the record says refused, nothing changed. c40
    then takes back the last phase not rolled back yet (phase 1), proven."""
    s = built
    strict = s.old.model_copy(update={"changes": s.old.changes.model_copy(update={"intended_refusals": []})})
    before = live_state(s.clients, strict)
    page = trust_page.trust_change(Step(strict, s.clients, apply=True))
    assert page.phases()["phase"][0] == "rotation phase 2 of 2 (next)"
    assert page.gate().startswith("FAIL: 1 client(s) accepted today would be refused")
    assert set(page.diff()["change"]) == {"keep", "remove"}
    page.run()
    (gate,) = [c for c in page.checks() if c.name == "gate rotation phase 2 of 2"]
    assert gate.status == "fail" and "next-ca-client" in gate.evidence
    with pytest.raises(StepFailed, match="gate rotation phase 2 of 2"):
        page.step.finish(page.checks())
    assert live_state(s.clients, strict) == before
    assert changerecords.last_record(strict).outcome == "refused"  # type: ignore[union-attr]

    back = trust_page.rollback_change(Step(strict, s.clients, apply=True))
    assert "rotation phase 1 of 2" in back.recorded_phase()["value"][0]
    back.run()
    assert [c.status for c in back.checks() if c.status == "fail"] == [], back.checks()
    assert set(back.proof()["verdict"]) == {"pass"}
    assert live_state(s.clients, strict) == target_state(s.new)  # back before the reverse rotation


def test_a_phase_the_load_balancer_has_not_applied_in_time_fails_and_its_way_back_is_taken(
    built: Stack,
) -> None:
    """A propagation timeout shorter than the sandbox's delay: the wait sees the old verdict to the
    end, the proof fails, the phase is recorded as failed and, as the params ask, the way back is
    taken at once and proven."""
    s = built
    impatient = s.old.model_copy(
        update={
            "changes": s.old.changes.model_copy(
                update={"propagation_timeout_seconds": 0.3, "poll_seconds": 0.1, "rollback_on_failure": True}
            )
        }
    )
    before = live_state(s.clients, impatient)
    page = trust_page.trust_change(Step(impatient, s.clients, apply=True))
    page.run()
    checks = {c.name: c for c in page.checks()}
    assert checks["load balancer applied the change"].status == "fail"
    assert page.result and page.result.record and page.result.record.outcome == "failed"
    assert checks["way back"].status == "pass" and checks["way back"].evidence.startswith("taken")
    assert checks["rollback: load balancer applied the change"].status == "pass"
    assert live_state(s.clients, impatient) == before
