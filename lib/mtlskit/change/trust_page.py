"""The calls of c10_trust_change and c40_rollback: the phase left, its impact report and gate, the
readable diff and the plan, the phase run with a progress line, the proof table, the record, and
the checks that decide a headless run's exit code.

The impact report is made once per page and is the one the phase's gate then reads, so what the
reader saw is what decided. A refused gate, or a change that will not start (a Gateway-topology
params file, a missing resource, nothing to roll back), is a failed check: `mtlskit run --apply
c10_trust_change` exits 1 with the reason on stderr, and nothing was changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mtlskit.change import apply, proof, rollback
from mtlskit.change.enforce_page import PLAN_ONLY, recorded, state_rows, with_bar
from mtlskit.change.impact import ChangeReportError
from mtlskit.change.phases import trust_phases
from mtlskit.change.run import Next, PhaseRun, Progress, default_reporter, next_phase, run_phase
from mtlskit.change.state import TrustState, live_state, require_split, target_state
from mtlskit.core.checks import Check
from mtlskit.core.errors import ChangeRefused, KitError, TopologyUnsupported
from mtlskit.runner import tables
from mtlskit.runner.step import Step
from mtlskit.verify.changerecords import ChangeRecord

NOTHING_LEFT = "the live trust config, mode and proxy already are the params' target"


@dataclass
class Prepared:
    """What the page read before anything changes."""

    live: TrustState
    nxt: Next | None = None
    report: Any = None  # change.impact.ImpactReport of the phase
    refused: str = ""


@dataclass
class TrustChangePage:
    step: Step
    prepared: Prepared | None = None
    result: PhaseRun | None = None
    way_back: rollback.WayBack | None = None

    def _prepared(self) -> Prepared:
        if self.prepared is None:
            self.prepared = self.step.call(_prepare)
        return self.prepared

    def phases(self) -> pd.DataFrame:
        """Every phase left from the live state to the params' target, the next one first."""
        p = self._prepared()
        if p.refused:
            return tables.skipped_frame(p.refused)
        left = trust_phases(p.live, target_state(self.step.params))
        if not left:
            return tables.skipped_frame(NOTHING_LEFT)
        rows = [ph.row() for ph in left]
        if p.nxt is not None:  # a rotation's removal is its phase 2, as the record names it
            rows[0]["phase"] = f"{p.nxt.kind} phase {p.nxt.number} of {p.nxt.of} (next)"
        return pd.DataFrame(rows)

    def state(self) -> pd.DataFrame:
        p = self._prepared()
        return state_rows(p.live, p.nxt.phase.after if p.nxt else None, "after this phase")

    def impact(self) -> pd.DataFrame:
        """Every client the logs saw (and every known certificate), its outcome now and after."""
        p = self._prepared()
        if p.report is None:
            return tables.skipped_frame(p.refused or NOTHING_LEFT)
        frame: pd.DataFrame = p.report.frame()
        return frame

    def gate(self) -> str:
        p = self._prepared()
        if p.report is None:
            return p.refused or NOTHING_LEFT
        check = p.report.gate().check()
        return f"{check.status.upper()}: {check.evidence}" + (f"\nfix: {check.fix}" if check.fix else "")

    def diff(self) -> pd.DataFrame:
        """The phase as a readable diff: each certificate added, removed or kept; the mode."""
        p = self._prepared()
        if p.nxt is None:
            return tables.skipped_frame(p.refused or NOTHING_LEFT)
        return pd.DataFrame(apply.diff_rows(p.nxt.phase.before, p.nxt.phase.after))

    def plan(self) -> pd.DataFrame:
        p = self._prepared()
        if p.nxt is None or p.refused:
            return tables.skipped_frame(p.refused or NOTHING_LEFT)
        return tables.plan_frame(self.step.call(apply.plan_state, p.nxt.phase.after))

    def run(self) -> pd.DataFrame:
        """Plan only: nothing. Applying: the phase gated by the report above, applied, waited for,
        proven and recorded."""
        p = self._prepared()
        if not self.step.apply:
            return tables.skipped_frame("plan only: apply=True runs the next phase when its gate passes")
        if p.nxt is None or p.refused:
            return tables.skipped_frame(p.refused or NOTHING_LEFT)
        self.result, self.way_back = with_bar(
            p.nxt.phase.label, lambda progress: self.step.call(_phase, p, progress)
        )
        return pd.DataFrame([self.result.row()])

    def proof(self) -> pd.DataFrame:
        """Each case on a new connection after the phase: expected by the verdict rules, seen."""
        if self.result is None or not self.result.proven:
            return tables.skipped_frame("no phase was applied in this run")
        return proof.proof_frame(self.result.proven)

    def record(self) -> str:
        if self.result is None:
            return "no record: nothing was changed"
        return "\n".join(self.result.written)

    def checks(self) -> list[Check]:
        p = self._prepared()
        if p.refused:
            return [
                Check(
                    "trust change",
                    "fail",
                    p.refused,
                    "see ChangeRefused and TopologyUnsupported in TROUBLESHOOTING.md",
                )
            ]
        if p.nxt is None:
            return [Check("trust change", "pass", NOTHING_LEFT)]
        if self.result is not None:
            back = self.way_back or rollback.WayBack()
            return self.result.checks() + recorded(self.result) + back.checks() + recorded(back.went_back)
        gate = p.report.gate().check(f"gate {p.nxt.kind} phase {p.nxt.number} of {p.nxt.of}")
        return [gate] if gate.status == "fail" else [gate, PLAN_ONLY]


def _phase(clients: Any, params: Any, p: Prepared, progress: Progress) -> tuple[PhaseRun, rollback.WayBack]:
    """The next phase, gated by the report the page showed; when it does not hold, its way back."""
    assert p.nxt is not None
    report = p.report
    done = run_phase(clients, params, p.nxt, lambda *_: report, progress)
    return done, rollback.way_back(clients, params, done, f"{p.nxt.kind} phase {p.nxt.number}", progress)


def _prepare(clients: Any, params: Any) -> Prepared:
    """The live state, the next phase and its impact report; a refusal is kept as its reason."""
    try:
        require_split(params)
        live = live_state(clients, params)
        nxt = next_phase(params, live, target_state(params))
    except (TopologyUnsupported, ChangeRefused) as err:
        return Prepared(TrustState(), refused=str(err))
    if nxt is None:
        return Prepared(live)
    try:
        apply.plan_state(clients, params, nxt.phase.after)  # refuses a missing or foreign resource
    except ChangeRefused as err:
        return Prepared(live, nxt, refused=str(err))
    try:
        report = default_reporter()(clients, params, nxt.phase.before, nxt.phase.after)
    except ChangeReportError as err:  # a params file the report cannot read: named, nothing changed
        return Prepared(live, nxt, refused=str(err))
    return Prepared(live, nxt, report)


@dataclass
class RollbackPage:
    step: Step
    last: ChangeRecord | None = None
    refused: str = ""
    result: PhaseRun | None = None
    live: TrustState | None = None
    _read: bool = field(default=False, repr=False)

    def _load(self) -> None:
        if self._read:
            return
        self._read = True
        try:
            require_split(self.step.params)
            self.last = rollback.last_phase_record(self.step.params)
            self.live = self.step.call(live_state)
        except KitError as err:
            self.refused = str(err)

    def recorded_phase(self) -> pd.DataFrame:
        """The phase to take back: the newest recorded phase that changed something."""
        self._load()
        if self.last is None:
            return tables.skipped_frame(self.refused)
        r = self.last
        return pd.DataFrame(
            [
                {"item": "change", "value": f"{r.kind} phase {r.phase} of {r.phases} ({r.change_id})"},
                {"item": "outcome", "value": r.outcome},
                {"item": "finished", "value": f"{r.finished:%Y-%m-%d %H:%M:%S} UTC by {r.who}"},
                {
                    "item": "trust before -> after",
                    "value": f"{r.before_fingerprint} -> {r.after_fingerprint}",
                },
                {"item": "mode before -> after", "value": f"{r.mode_before} -> {r.mode_after}"},
            ]
        )

    def _back(self) -> TrustState | None:
        return TrustState.from_dict(self.last.before) if self.last is not None else None

    def state(self) -> pd.DataFrame:
        self._load()
        if self.live is None:
            return tables.skipped_frame(self.refused)
        return state_rows(self.live, self._back(), "way back (recorded before the phase)")

    def diff(self) -> pd.DataFrame:
        self._load()
        back = self._back()
        if self.live is None or back is None:
            return tables.skipped_frame(self.refused)
        return (
            pd.DataFrame(apply.diff_rows(self.live, back))
            if self.live != back
            else tables.skipped_frame("the live state already is the one recorded before the phase")
        )

    def plan(self) -> pd.DataFrame:
        self._load()
        back = self._back()
        if back is None:
            return tables.skipped_frame(self.refused)
        try:
            return tables.plan_frame(self.step.call(apply.plan_state, back))
        except ChangeRefused as err:  # a resource the rollback patches is gone
            self.refused = str(err)
            return tables.skipped_frame(self.refused)

    def run(self) -> pd.DataFrame:
        self._load()
        if not self.step.apply:
            return tables.skipped_frame("plan only: apply=True applies the state recorded before the phase")
        if self.last is None:
            return tables.skipped_frame(self.refused)
        last = self.last
        try:
            self.result = with_bar(
                "rollback", lambda progress: self.step.call(rollback.rollback, last, progress)
            )
        except ChangeRefused as err:
            self.refused = str(err)
            return tables.skipped_frame(self.refused)
        return pd.DataFrame([self.result.row()])

    def proof(self) -> pd.DataFrame:
        if self.result is None or not self.result.proven:
            return tables.skipped_frame("nothing was rolled back in this run")
        return proof.proof_frame(self.result.proven)

    def record(self) -> str:
        return "\n".join(self.result.written) if self.result else "no record: nothing was changed"

    def checks(self) -> list[Check]:
        self._load()
        if self.refused:  # plan only, nothing to take back is worth a look, not a failure
            status = "fail" if self.step.apply else "warn"
            return [Check("rollback", status, self.refused, "see ChangeRefused in TROUBLESHOOTING.md")]
        if self.result is not None:
            return self.result.checks() + recorded(self.result)
        return [PLAN_ONLY]


def trust_change(step: Step) -> TrustChangePage:
    """c10_trust_change: the next phase of moving the live trust to the params' (a rotation, a
    partner CA or allowlisted certificate added or revoked)."""
    return TrustChangePage(step)


def rollback_change(step: Step) -> RollbackPage:
    """c40_rollback: the state recorded before the last phase, applied and proven."""
    return RollbackPage(step)
