"""The migration notebook's calls: the plan, the phases run with a progress line, one gate verdict
per phase, and the checks that decide a headless run's exit code.

A gate that refuses is a failed check, so `mtlskit run` exits 1 and names it on stderr; the notebook
stays at the phase it stopped in, and a re-run continues there (the phases read the world).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pandas as pd

from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core.bars import bar
from mtlskit.core.checks import Check, verdict
from mtlskit.migrate.run import Context, MigrationRefused, PhaseResult, migrate, plan, roll_back
from mtlskit.migrate.state import Ops, kit_ops
from mtlskit.runner.step import Step


def phases(_clients: Clients, _params: Params, ctx: Context, until: str | None) -> list[PhaseResult]:
    """`run.migrate` in the step harness's calling shape (an API that keeps failing is named)."""
    return migrate(ctx, until)


def way_back_from_here(_clients: Clients, _params: Params, ctx: Context) -> list[str]:
    """`run.roll_back` in the step harness's calling shape."""
    return roll_back(ctx)


@dataclass
class Migration:
    step: Step
    ops: Ops
    results: list[PhaseResult] = field(default_factory=list)
    went_back: list[str] | None = None
    refused: str = ""  # why the migration would not take its next step

    def context(self, progress: object = None) -> Context:
        ctx = Context(self.step.clients, self.step.params, self.ops)
        if callable(progress):
            ctx.progress = progress
        return ctx

    def plan(self) -> pd.DataFrame:
        """Every phase: done, next or to do; what it does, its gate, its way back."""
        return pd.DataFrame(self.step.call(plan, self.ops))

    def run(self, until: str | None = None, way_back: bool = False) -> pd.DataFrame:
        """Plan only: nothing. Applying: the phases from where the world is, or the way back."""
        if not self.step.apply:
            return pd.DataFrame(
                [{"skipped": "plan only: apply=True runs the phases from the one marked next"}]
            )
        with bar("migration", unit="s") as shown:
            ctx = self.context(lambda line: shown.set_postfix_str(line, refresh=True))
            try:
                if way_back:
                    self.went_back = self.step.call(way_back_from_here, ctx)
                    return pd.DataFrame(
                        [{"way back": line} for line in self.went_back or ["nothing to undo"]]
                    )
                self.results = self.step.call(phases, ctx, until)
            except MigrationRefused as err:  # a refusal is a verdict (exit 1), not a crash
                self.refused = str(err)
        return pd.DataFrame([r.row() for r in self.results])

    def gates(self) -> str:
        """One line per phase run: its gate verdict."""
        return "\n".join(f"{r.phase}: {verdict(r.checks)}" for r in self.results) or "no phase ran"

    def checks(self) -> list[Check]:
        """Every phase's checks named after their phase, then one gate check per phase."""
        out: list[Check] = []
        for r in self.results:
            out += [replace(c, name=f"{r.phase}: {c.name}") for c in r.checks]
            failed = [c.name for c in r.checks if c.status == "fail"]
            out.append(
                Check(
                    f"gate {r.phase}",
                    "fail" if failed else "pass",
                    f"refused: {', '.join(failed)}" if failed else f"passed in {r.seconds:.1f}s",
                    f"fix what the failed checks say, then run again: the migration continues at {r.phase}; "
                    f"or go back: {r.way_back}",
                )
            )
        if not self.step.apply:
            out.append(Check("migration", "warn", "plan only: no phase ran", "run with apply=True"))
        if self.refused:
            out.append(Check("migration", "fail", self.refused, "see MigrationRefused in TROUBLESHOOTING.md"))
        return out


def migration(step: Step, ops: Ops | None = None) -> Migration:
    """The migration of the step's params: the kit's Gateway build and DNS cut-over unless given."""
    return Migration(step, ops or kit_ops())
