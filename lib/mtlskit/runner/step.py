"""The step harness: what every runbook notebook does around its one step.

A notebook starts a `Step` (params loaded, changes gated, clients built), makes its calls through
it, and ends with `Step.finish`, which publishes the checks and fails a headless run when one did not
pass. The harness turns the two ways a call can stop into what a reader can act on: an earlier step
that has not run yet (`errors.PrerequisiteMissing`: the notebook still runs to its checks, which
name the notebook to run first) and an API that kept failing (`errors.ApiCallFailed`: the call, the
answer, and that a re-run is safe).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from mtlskit.build import plan
from mtlskit.cloud.clients import Clients, build_clients
from mtlskit.cloud.ownership import may_apply
from mtlskit.config import params as params_mod
from mtlskit.config import paths
from mtlskit.core.checks import MIME, Check
from mtlskit.core.errors import (
    LIBRARY_FAILURES,
    ApiCallFailed,
    ApiError,
    KitError,
    PrerequisiteMissing,
    from_exception,
)
from mtlskit.runner import tables


class StepFailed(KitError, RuntimeError):
    """A check of the step did not pass. `mtlskit run` tells this failure (exit code 1) from a crash
    by this class's name (`results.CHECK_FAILURE`), so the name is part of the contract."""

    def _render_traceback_(self) -> list[str]:
        """IPython shows this instead of a traceback: the checks table above says it all, and a
        stack into the harness would read like a crash."""
        return [f"StepFailed: {self}", "(the failing checks are in the table above, each with its fix)"]


@dataclass
class Step:
    params: params_mod.Params
    clients: Clients
    apply: bool
    blocked: str | None = None
    # What is still to do after this step ran: the plan itself when only planning, the re-plan after
    # applying. The step's checks read it instead of asking the APIs again.
    outcome: list[plan.Change] | None = None

    def need(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a prerequisite lookup; when an earlier step is missing, remember why instead of failing,
        so the notebook still runs top to bottom and ends by saying which notebook to run first."""
        if self.blocked:
            return None
        try:
            return self.call(fn, *args)
        except PrerequisiteMissing as err:
            self.blocked = str(err)
            return None

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call into the library; an API that still fails after the retries becomes one message that
        names the failing call and says a re-run is safe (plans are re-read, inserts carry request ids)."""
        try:
            return fn(self.clients, self.params, *args)
        except (ApiError, *LIBRARY_FAILURES) as err:
            failure = from_exception(err, self.clients.retry_seconds)  # the call, its answer, the cause
            raise ApiCallFailed(
                f"{fn.__name__} stopped: {failure.describe()}. "
                "Changes before this call are in place and nothing after it was attempted; "
                "re-run this notebook once the API answers: it continues where it stopped."
            ) from failure

    def run(
        self, planner: Callable[..., list[plan.Change]], applier: Callable[..., Any], *args: Any
    ) -> pd.DataFrame:
        """Plan; apply only when asked; then plan again, so the table shows what is true now."""
        changes = self.need(planner, *args)
        if changes is None:
            return tables.skipped_frame(self.blocked)
        if not self.apply:
            self.outcome = changes
            return tables.plan_frame(changes)
        self.call(applier, changes, *args)
        self.outcome = self.call(planner, *args)
        return tables.plan_frame(changes, after=self.outcome)

    def finish(self, checks: list[Check]) -> None:
        """The step's checks as a table; a failed check (or a blocked apply) fails a headless run."""
        if self.blocked:
            checks = [
                *checks,
                Check(
                    "prerequisites",
                    "fail" if self.apply else "warn",
                    self.blocked,
                    "run the earlier notebook named above",
                ),
            ]
        publish(checks)
        bad = [c for c in checks if c.status == "fail"]
        if bad:
            raise StepFailed("; ".join(f"{c.name}: {c.evidence}" for c in bad))


def start(params_file: str | None = None, apply: bool = False) -> Step:
    """Load params (errors name the field), refuse unconfirmed changes to a real project (`ApplyRefused`
    before anything is called), build clients."""
    params = params_mod.load(params_file or paths.default_params_file())
    may_apply(params, apply)  # the kit's one apply gate, before any client exists
    pd.set_option("display.max_colwidth", None)  # equivalent commands and evidence are read whole
    return Step(params, build_clients(params), apply)


def outcome_checks(step: Step, what: str) -> list[Check]:
    """Does the target now match the params? Read from the step's own final plan, not asked again."""
    if step.outcome is None:
        return []
    pending = [
        f"{c.kind} {c.name}: {c.action}" for c in step.outcome if c.action not in ("no change", "keep")
    ]
    kept = [f"{c.kind} {c.name}" for c in step.outcome if c.action == "keep"]
    status = "pass" if not pending else ("fail" if step.apply else "warn")
    evidence = "; ".join(pending) or "nothing left to do"
    if kept:
        evidence += f" (left alone, not ours: {', '.join(kept)})"
    return [Check(what, status, evidence, "run with apply=True" if pending else "")]


def publish(checks: list[Check]) -> None:
    """Show the checks as a table and attach them as data, so `mtlskit run` reads the very checks the
    reader saw (from the executed notebook) into summary.json and the exit code."""
    from IPython.display import display

    frame = tables.checks_frame(checks)
    bundle = {
        MIME: [c.row() for c in checks],
        "text/html": frame.to_html(index=False),
        "text/plain": frame.to_string(index=False),
    }
    display(bundle, raw=True)
