"""One phase of a trust change from start to record: impact report and gate, apply in place, wait
until the load balancer applied it, prove every case, write the record.

Every day-2 change runs its phases through here, so each one is gated, proven and recorded the same
way, and each record keeps the state before the phase: the way back `change.rollback` applies. What
kind of change it is and which phase follows from the live state, the params' target and, for the
name of a rotation's second phase only, the open rotation's record; what to do next never does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from mtlskit.change import apply, proof
from mtlskit.change.impact import report_for_change
from mtlskit.change.phases import REMOVE, Phase, trust_phases
from mtlskit.change.state import TrustState, live_state, require_split, target_state
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core.checks import Check
from mtlskit.verify import changerecords as records
from mtlskit.verify.changerecords import ChangeRecord


class GateLike(Protocol):
    passed: bool
    reason: str

    def check(self, name: str) -> Check: ...


class ReportLike(Protocol):
    def gate(self) -> GateLike: ...

    def to_dict(self) -> dict[str, Any]: ...


Reporter = Callable[[Clients, Params, TrustState, TrustState], ReportLike]
Progress = Callable[[str, float], None]
AfterProof = Callable[["PhaseRun"], list[Check]]


def default_reporter() -> Reporter:
    """The impact report of `change.impact` (who would be refused, from the request logs)."""
    return report_for_change  # type: ignore[return-value]


@dataclass
class PhaseRun:
    """What one phase did: its plan, the wait, the proof, the gate, and where its record went."""

    phase: Phase
    kind: records.Kind
    change_id: str
    phase_number: int
    phases: int
    plan: list[Any] = field(default_factory=list)  # build.plan.Change
    gate: Check | None = None
    impact: dict[str, Any] = field(default_factory=dict)
    applied: proof.Applied | None = None
    proven: list[proof.Proven] = field(default_factory=list)
    record: ChangeRecord | None = None
    written: list[str] = field(default_factory=list)
    # What a change checks once its proof passed (enforcement's watch, break-glass's client without a
    # certificate), recorded with the rest.
    after_proof: list[Check] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.kind} phase {self.phase_number} of {self.phases}"

    def checks(self) -> list[Check]:
        out = [self.gate] if self.gate else []
        if self.applied:
            out.append(self.applied.check())
        return out + [p.check() for p in self.proven] + self.after_proof

    @property
    def passed(self) -> bool:
        return all(c.status != "fail" for c in self.checks())

    def row(self) -> dict[str, Any]:
        return {
            "phase": self.label,
            "does": self.phase.describe(),
            "gate": self.gate.status if self.gate else "",
            "applied": self.applied.check().evidence if self.applied else "",
            "proof": f"{sum(p.result.verdict == 'pass' for p in self.proven)}/{len(self.proven)} pass",
            "outcome": self.record.outcome if self.record else "",
            "record": ", ".join(self.written),
        }


def change_kind(phase: Phase) -> records.Kind:
    """rotation: anchors or intermediates both added and removed (over its two phases); partner:
    certificates only added or only removed (a partner CA or an allowlisted certificate); trust: the
    mode or the proxy's policy only."""
    issuers = ("anchor", "intermediate")
    changed = (*phase.added, *phase.removed)
    if not changed:
        return "trust"
    if phase.of == 2 and any(c.role in issuers for c in changed):
        return "rotation"
    return "partner"


@dataclass(frozen=True)
class Next:
    """The phase to run now and how the record names it."""

    phase: Phase
    kind: records.Kind
    change_id: str
    number: int
    of: int


def next_phase(params: Params, live: TrustState, target: TrustState) -> Next | None:
    """The first phase left, named: a removal that ends a rotation whose phase 1 record left the
    trust config exactly as it is now is that rotation's phase 2 (same change id)."""
    left = trust_phases(live, target)
    if not left:
        return None
    first = left[0]
    if first.action == REMOVE and first.of == 1:
        opened = records.open_rotation(records.read_records(params))
        if opened is not None and opened.certificates("after") == records.certificate_set(
            c.to_dict() for c in live.certs
        ):
            return Next(first, "rotation", opened.change_id, 2, 2)
    kind = change_kind(first)
    return Next(first, kind, records.new_change_id(), first.number, first.of)


def run_phase(
    clients: Clients,
    params: Params,
    nxt: Next,
    reporter: Reporter | None = None,
    on_progress: Progress | None = None,
    run_dir: str | None = None,
    after_proof: AfterProof | None = None,
) -> PhaseRun:
    """Gate, apply, wait, prove and record one phase. A refused gate changes nothing and is recorded
    as refused; a wait that times out or a failed proof is recorded as failed (the way back is in it).
    `after_proof` adds the change's own checks once the proof passed (they decide the outcome too)."""
    require_split(params)
    started = dt.datetime.now(dt.UTC)
    phase = nxt.phase
    run = PhaseRun(phase, nxt.kind, nxt.change_id, nxt.number, nxt.of)
    report = (reporter or default_reporter())(clients, params, phase.before, phase.after)
    gate = report.gate()
    run.gate, run.impact = gate.check(f"gate {run.label}"), report.to_dict()
    if gate.passed:
        run.plan = apply.apply_state(clients, params, phase.after)
        run.applied = proof.wait_applied(clients, params, phase.before, phase.after, on_progress)
        run.proven = proof.proof_results(clients, params, phase.after, phase.before)
        if after_proof is not None and run.passed:
            run.after_proof = after_proof(run)
        outcome: records.Outcome = "applied" if run.passed else "failed"
    else:
        outcome = "refused"
    after = live_state(clients, params) if gate.passed else phase.before
    run.record = make_record(clients, params, run, started, phase.before, after, outcome, gate.reason)
    run.written = records.write_record(params, run.record, run_dir)
    return run


def make_record(
    clients: Clients,
    params: Params,
    run: PhaseRun,
    started: dt.datetime,
    before: TrustState,
    after: TrustState,
    outcome: records.Outcome,
    note: str = "",
) -> ChangeRecord:
    return ChangeRecord(
        stack=records.stack_of(params),
        change_id=run.change_id,
        kind=run.kind,
        phase=run.phase_number,
        phases=run.phases,
        who=records.who(clients),
        started=started,
        finished=dt.datetime.now(dt.UTC),
        before=before.to_dict(),
        after=after.to_dict(),
        before_fingerprint=before.fingerprint(),
        after_fingerprint=after.fingerprint(),
        mode_before=before.mode,
        mode_after=after.mode,
        impact=run.impact,
        checks=records.checks_as_rows(run.checks()),
        outcome=outcome,
        exit_code=0 if outcome == "applied" else 1,
        note=note,
    )


def trust_change(
    clients: Clients,
    params: Params,
    reporter: Reporter | None = None,
    on_progress: Progress | None = None,
    run_dir: str | None = None,
) -> PhaseRun | None:
    """The next phase of moving the live trust to the params' target, run to its record; None when
    the live trust already is the target. One phase per call: a rotation's phase 2 is another run,
    possibly days later, once the clients moved."""
    require_split(params)
    nxt = next_phase(params, live_state(clients, params), target_state(params))
    if nxt is None:
        return None
    return run_phase(clients, params, nxt, reporter, on_progress, run_dir)
