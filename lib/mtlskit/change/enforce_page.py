"""The calls of c20_enforce_mtls and c30_break_glass: the live state, the readiness report and its
gate, the plan, the step taken with a progress line, and the checks that decide a headless run's
exit code.

A refused gate (or a change that will not start) is a failed check, so `mtlskit run --apply
c20_enforce_mtls` exits 1 and quotes the reason on stderr, and nothing was changed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from mtlskit.change import breakglass, enforce
from mtlskit.change.run import PhaseRun, Progress
from mtlskit.change.state import TrustState, live_state, require_split
from mtlskit.core.bars import bar
from mtlskit.core.checks import Check
from mtlskit.core.errors import ChangeRefused, TopologyUnsupported
from mtlskit.runner import tables
from mtlskit.runner.step import Step

PLAN_ONLY = Check("change", "warn", "plan only: nothing was changed", "run with apply=True")


def state_rows(live: TrustState, after: TrustState | None, after_label: str) -> pd.DataFrame:
    """The live state beside the one the step moves to: mode, attached, trust config."""
    rows: list[dict[str, Any]] = []
    for item, now, then in (
        ("validation mode", live.mode, after.mode if after else None),
        ("policy on the proxy", live.attached, after.attached if after else None),
        ("trust config", live.fingerprint(), after.fingerprint() if after else None),
        ("certificates", len(live.certs), len(after.certs) if after else None),
    ):
        rows.append({"item": item, "live": now, after_label: "(unchanged)" if after is None else then})
    return pd.DataFrame(rows)


def with_bar(what: str, fn: Callable[[Progress], Any]) -> Any:
    """`fn(progress)` under a progress bar whose line is the change's latest (the trust change and
    rollback pages share it)."""
    with bar(what, unit="s") as shown:
        return fn(lambda line, _elapsed: shown.set_postfix_str(line, refresh=True))


def recorded(run: PhaseRun | None) -> list[Check]:
    """Where the run's record went, as a check (none: nothing was recorded)."""
    if run is None or not run.written:
        return []
    return [Check("change recorded", "pass", ", ".join(run.written))]


@dataclass
class EnforcementPage:
    step: Step
    prepared: enforce.Prepared | None = None
    result: enforce.Enforcement | None = None

    def _prepared(self) -> enforce.Prepared:
        if self.prepared is None:
            self.prepared = self.step.call(enforce.prepare)
        return self.prepared

    def state(self) -> pd.DataFrame:
        """The live policy and trust config beside the flip's target."""
        p = self._prepared()
        return state_rows(p.live, p.target, "after the flip")

    def readiness(self) -> pd.DataFrame:
        """The report in one table: window, requests, refused share, the gate's verdict and reason."""
        p = self._prepared()
        gate = p.gate_check()
        rows = [{"item": "gate", "value": f"{gate.status}: {gate.evidence}"}]
        if p.readiness is not None:
            r = p.readiness
            rows = [
                {
                    "item": "window",
                    "value": f"{self.step.params.changes.report_window_seconds:g}s of request logs",
                },
                {"item": "requests", "value": r.requests},
                {"item": "would be refused", "value": f"{r.refused_share:.2%}"},
                {"item": "allowed", "value": f"{self.step.params.changes.max_refused_share:.2%}"},
                *rows,
            ]
        return pd.DataFrame(rows)

    def _table(self, name: str) -> pd.DataFrame:
        """One of the readiness report's tables, or why there is no report."""
        p = self._prepared()
        if p.readiness is not None:
            frame: pd.DataFrame = getattr(p.readiness, name)
            return frame
        return tables.skipped_frame(p.refused or p.gate_check().evidence)

    def by_client(self) -> pd.DataFrame:
        """Clients that sent no certificate or one whose chain did not verify: who the flip refuses."""
        return self._table("by_client")

    def by_error(self) -> pd.DataFrame:
        return self._table("by_error")

    def by_hour(self) -> pd.DataFrame:
        return self._table("by_hour")

    def plan(self) -> pd.DataFrame:
        return tables.plan_frame(self._prepared().plan)

    def run(self) -> pd.DataFrame:
        """Plan only: nothing. Applying: the flip, its proof and watch, recorded."""
        if not self.step.apply:
            return tables.skipped_frame("plan only: apply=True flips when the gate passes")
        prepared = self._prepared()
        self.result = with_bar(
            "enforcement", lambda progress: self.step.call(enforce.flip, prepared, progress)
        )
        return tables.checks_frame(self.result.checks())

    def checks(self) -> list[Check]:
        """The run's checks and where it was recorded; plan only, the gate (and that nothing changed)."""
        if self.result is not None:
            return self.result.checks() + recorded(self.result.run) + recorded(self.result.went_back)
        gate = self._prepared().gate_check()
        return [gate] if gate.status == "fail" or self._prepared().enforcing else [gate, PLAN_ONLY]


@dataclass
class BreakGlassPage:
    step: Step
    way_back: bool = False
    broke: breakglass.BreakGlass | None = None
    went_back: breakglass.Restored | None = None
    refused: str = ""

    def state(self) -> pd.DataFrame:
        """The live state beside the one this run moves to (why not, for a Gateway params file)."""
        try:
            require_split(self.step.params)
        except TopologyUnsupported as err:
            self.refused = str(err)
            return tables.skipped_frame(self.refused)
        live = self.step.call(live_state)
        if self.way_back:
            record = breakglass.open_break_glass(self.step.params)
            before = TrustState.from_dict(record.before) if record else None
            return state_rows(live, before, "way back (recorded before break-glass)")
        return state_rows(live, breakglass.relaxed(self.step.params, live), "break-glass")

    def run(self) -> pd.DataFrame:
        if self.refused or not self.step.apply:
            return tables.skipped_frame(self.refused or "plan only: apply=True takes the step")
        try:
            if self.way_back:
                self.went_back = with_bar("way back", lambda pr: self.step.call(breakglass.way_back, pr))
            else:
                self.broke = with_bar("break-glass", lambda pr: self.step.call(breakglass.break_glass, pr))
        except (ChangeRefused, TopologyUnsupported) as err:  # a refusal is a verdict (exit 1), not a crash
            self.refused = str(err)
        return tables.checks_frame(self.checks())

    def checks(self) -> list[Check]:
        if self.refused:
            refusal = Check(
                "break-glass",
                "fail",
                self.refused,
                "see ChangeRefused and TopologyUnsupported in TROUBLESHOOTING.md",
            )
            return [dataclasses.replace(refusal, name="way back")] if self.way_back else [refusal]
        if self.went_back is not None:
            return self.went_back.checks() + recorded(self.went_back.run)
        if self.broke is not None:
            return self.broke.checks() + recorded(self.broke.run)
        return [PLAN_ONLY]


def enforcement(step: Step) -> EnforcementPage:
    """c20_enforce_mtls: the readiness report, the gate, and the flip to REJECT_INVALID."""
    return EnforcementPage(step)


def break_glass(step: Step, way_back: bool = False) -> BreakGlassPage:
    """c30_break_glass: one step to ALLOW (or detached), or with `way_back` the state before it."""
    return BreakGlassPage(step, way_back)
