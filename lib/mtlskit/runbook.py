"""What every notebook does around its one step: load params, build clients, gate changes, and turn
results into tables and check values. One helper serves every notebook, so they stay thin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from google.api_core import exceptions as gexc
from tqdm.std import tqdm  # text bar: no widget library needed, no warning in headless runs

from mtlskit import frontend, k8s, paths, plan
from mtlskit import params as params_mod
from mtlskit.backend import BackendNotFound
from mtlskit.checks import MIME, Check
from mtlskit.checks import verdict as verdict  # notebooks call runbook.verdict
from mtlskit.clients import (
    CALL_FAILURES,
    ApiCallFailed,
    Clients,
    OperationError,
    build_clients,
    describe_call_failure,
)
from mtlskit.k8s import IngressNotReady
from mtlskit.plan import MissingPrerequisite


class StepFailed(RuntimeError):
    pass


# Errors that mean "an earlier notebook has not run yet", as opposed to a fault.
PREREQUISITE_ERRORS: tuple[type[Exception], ...] = (IngressNotReady, BackendNotFound, MissingPrerequisite)


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
        except PREREQUISITE_ERRORS as err:
            self.blocked = str(err)
            return None

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call into the library; an API that still fails after the retries becomes one message that
        names the failing call and says a re-run is safe (plans are re-read, inserts carry request ids)."""
        try:
            return fn(self.clients, self.params, *args)
        except (*CALL_FAILURES, OperationError) as err:
            raise ApiCallFailed(
                f"{fn.__name__} stopped: {describe_call_failure(err, self.clients.retry_seconds)}. "
                "Changes before this call are in place and nothing after it was attempted; "
                "re-run this notebook once the API answers: it continues where it stopped."
            ) from err

    def run(
        self, planner: Callable[..., list[plan.Change]], applier: Callable[..., Any], *args: Any
    ) -> pd.DataFrame:
        """Plan; apply only when asked; then plan again, so the table shows what is true now."""
        changes = self.need(planner, *args)
        if changes is None:
            return pd.DataFrame([{"skipped": self.blocked}])
        if not self.apply:
            self.outcome = changes
            return pd.DataFrame(plan.table(changes)).assign(applied="no (apply=False)")
        self.call(applier, changes, *args)
        self.outcome = self.call(planner, *args)
        after = {(c.kind, c.name): c.action for c in self.outcome}
        now = [after.get((c.kind, c.name), "gone") for c in changes]
        return pd.DataFrame(plan.table(changes)).assign(applied="yes", **{"after apply": now})

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
    """Load params (errors name the field), refuse unconfirmed changes to a real project, build clients."""
    params = params_mod.load(params_file or paths.default_params_file())
    if apply and params.target == "gcp" and params.confirm_project != params.project:
        raise PermissionError(
            f"apply against project {params.project!r} needs confirm_project: {params.project} "
            "in the params file"
        )
    pd.set_option("display.max_colwidth", None)  # equivalent commands and evidence are read whole
    return Step(params, build_clients(params), apply)


def publish(checks: list[Check]) -> None:
    """Show the checks as a table and attach them as data, so `mtlskit run` reads the very checks the
    reader saw (from the executed notebook) into summary.json and the exit code."""
    from IPython.display import display

    frame = checks_frame(checks)
    bundle = {
        MIME: [c.row() for c in checks],
        "text/html": frame.to_html(index=False),
        "text/plain": frame.to_string(index=False),
    }
    display(bundle, raw=True)


def checks_frame(checks: list[Check]) -> pd.DataFrame:
    return pd.DataFrame([c.row() for c in checks], columns=["name", "status", "evidence", "fix"])


# ---- tables and checks the notebooks show ------------------------------------------------------------


def findings_frame(findings: list[Any]) -> pd.DataFrame:
    cols = ["severity", "role", "file", "rule", "outcome", "detail", "fix"]
    return pd.DataFrame([f.row() for f in findings])[cols]


def rows_frame(obj: Any) -> pd.DataFrame:
    if obj is None:
        return pd.DataFrame([{"skipped": "prerequisite missing (see the checks below)"}])
    return pd.DataFrame(obj.rows())


def wait_for_backends(step: Step, timeout: float = 900.0) -> dict[str, str]:
    """The controller's backends annotation, with a progress bar while it is not there yet."""
    if step.need(k8s.read_anchor) is None:
        return {}
    with tqdm(total=None, desc="waiting for the GKE Ingress controller", bar_format="{desc}{postfix}") as bar:

        def progress(elapsed: float) -> None:
            bar.set_postfix(elapsed=f"{elapsed:.0f}s")

        return dict(step.need(k8s.wait_for_backends, timeout, progress) or {})


def events_frame(step: Step) -> pd.DataFrame:
    return pd.DataFrame(
        k8s.ingress_events(step.clients, step.params), columns=["time", "type", "reason", "message"]
    )


def ingress_checks(step: Step, backends: dict[str, str]) -> list[Check]:
    if step.blocked:
        return []
    checks = [
        Check(
            "backend service created",
            "pass" if backends else "fail",
            ", ".join(f"{k} ({v})" for k, v in backends.items()) or "no backends annotation",
            "see the Ingress events above",
        )
    ]
    rules, _ips = k8s.anchor_exposure(k8s.read_anchor(step.clients, step.params))
    checks.append(
        Check(
            "anchor exposes nothing",
            "fail" if rules else "pass",
            f"anchor has its own frontend: {', '.join(rules)}" if rules else "no forwarding rule of its own",
            k8s.ANCHOR_FIX if rules else "",
        )
    )
    return checks


def backend_checks(step: Step, bs: Any) -> list[Check]:
    if bs is None:
        return []
    p = step.params
    return [
        Check(
            "scheme matches frontend",
            "pass" if bs.scheme == p.frontend.load_balancing_scheme else "fail",
            f"backend {bs.scheme}, params {p.frontend.load_balancing_scheme}",
            f"set frontend.load_balancing_scheme: {bs.scheme}",
        ),
        Check(
            "logging as BackendConfig asks",
            "pass" if (bs.log_enable == p.logging.enable) else "fail",
            f"enable={bs.log_enable} sampleRate={bs.log_sample_rate}",
            "re-run 10_ingress with apply=True",
        ),
        Check(
            "mTLS headers as BackendConfig asks",
            "pass" if bs.custom_request_headers == list(p.mtls.custom_headers) else "fail",
            f"{len(bs.custom_request_headers)} custom request headers",
            "re-run 10_ingress with apply=True",
        ),
    ]


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


def dns_frame(step: Step) -> pd.DataFrame:
    try:
        status = frontend.frontend_status(step.clients, step.params)
    except gexc.NotFound:
        return pd.DataFrame([{"skipped": "the frontend is not built yet (apply=True)"}])
    return pd.DataFrame(status.dns_records()).assign(certificate=status.certificate_status)
