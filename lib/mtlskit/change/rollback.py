"""The way back from a recorded phase: the trust state saved before it, applied in place and
proven the same way the phase was.

Every phase's record keeps the state before it, so the way back needs no memory of what the phase
did and works days later, from another machine (records can live in a bucket). A rollback is itself
recorded, under the change's id, so 70_drift knows a rotation rolled back from phase 2 is open again
and a re-run of the change continues from the state the rollback left.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from mtlskit.change import apply, proof
from mtlskit.change.phases import Phase
from mtlskit.change.run import PhaseRun, Progress, make_record
from mtlskit.change.state import TrustState, live_state, require_split
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core.checks import Check
from mtlskit.core.errors import ChangeRefused
from mtlskit.verify import changerecords as records
from mtlskit.verify.changerecords import ChangeRecord


def last_phase_record(params: Params) -> ChangeRecord:
    """The newest record of a phase that changed something (applied, or failed after applying) and
    was not rolled back since; a rollback's own record is not one (rolling back a rollback is a
    change to make with c10)."""
    kept = list(records.read_records(params))
    found = [
        r
        for i, r in enumerate(kept)
        if r.kind != "rollback"
        and r.outcome in ("applied", "failed")
        and not any(
            o.kind == "rollback" and o.change_id == r.change_id and o.phase == r.phase for o in kept[i + 1 :]
        )
    ]
    if not found:
        raise ChangeRefused(
            f"no change of stack {records.stack_of(params)} is recorded in {records.records_location(params)}: "
            "nothing to roll back; check changes.records names the folder or bucket the change wrote to"
        )
    return found[-1]


def rollback(
    clients: Clients,
    params: Params,
    record: ChangeRecord | None = None,
    on_progress: Progress | None = None,
    run_dir: str | None = None,
) -> PhaseRun:
    """Apply the state saved before `record`'s phase (default: the last recorded phase), wait until a
    new connection shows it, prove every case against it, and record the rollback."""
    require_split(params)
    record = record or last_phase_record(params)
    if not record.before.get("certs"):
        raise ChangeRefused(
            f"record {record.file_name()} holds no trust certificates before its phase: there is no "
            "state to go back to; restore the trust config with 30_trust"
        )
    started = dt.datetime.now(dt.UTC)
    live = live_state(clients, params)
    back = TrustState.from_dict(record.before)
    run = PhaseRun(
        Phase("roll back", 1, 1, live, back), "rollback", record.change_id, record.phase, record.phases
    )
    run.plan = apply.apply_state(clients, params, back)
    run.applied = proof.wait_applied(clients, params, live, back, on_progress)
    run.proven = proof.proof_results(clients, params, back, live)
    outcome: records.Outcome = "applied" if run.passed else "failed"
    note = f"back to the state before {record.kind} phase {record.phase} of {record.phases} ({record.file_name()})"
    run.record = make_record(clients, params, run, started, live, live_state(clients, params), outcome, note)
    run.written = records.write_record(params, run.record, run_dir)
    return run


@dataclass
class WayBack:
    """After a phase that did not hold: the way back named, or taken (`changes.rollback_on_failure`)."""

    text: str = ""
    went_back: PhaseRun | None = None

    def checks(self) -> list[Check]:
        if not self.text:
            return []
        back = self.went_back
        out = [
            Check(
                "way back",
                "pass" if back is not None and back.passed else "warn",
                self.text,
                "run c40_rollback with apply=True: it restores the state recorded before the phase",
            )
        ]
        if back is not None:
            out += [Check(f"rollback: {c.name}", c.status, c.evidence, c.fix) for c in back.checks()]
        return out


def way_back(
    clients: Clients, params: Params, run: PhaseRun, what: str, on_progress: Progress | None = None
) -> WayBack:
    """Nothing when the phase held (or changed nothing); else where the state before `what` is kept,
    and, when the params ask for it, that state applied and proven at once."""
    record = run.record
    if record is None or record.outcome != "failed":
        return WayBack()
    before = TrustState.from_dict(record.before)
    text = (
        f"the state before {what} (mode {before.mode}, trust config {before.fingerprint()}) is in change "
        f"record {record.file_name()}: c40_rollback with apply=True restores it"
    )
    if not params.changes.rollback_on_failure:
        return WayBack(text)
    if on_progress:
        on_progress(f"{what} did not hold: taking the way back (changes.rollback_on_failure)", 0.0)
    went_back = rollback(clients, params, record, on_progress)
    return WayBack(f"taken (changes.rollback_on_failure): {text}", went_back)
