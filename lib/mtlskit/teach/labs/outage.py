"""Lab 05: an API outage.

Every API call the kit makes retries 429/5xx answers with backoff for `api_retry_seconds`; when the
API still fails, the step stops with one message that names the call and says a re-run is safe. The
trainee turns on the sandbox's fault switch, runs a runbook step's call (30_trust's plan) and reads
the message, clears the switch, and runs the same call again.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd

from mtlskit.build import trust
from mtlskit.core.errors import ApiCallFailed
from mtlskit.runner.step import Step
from mtlskit.teach.labs.lab import Lab, faults_now

NAME = "05_api_outage"
# How long the lab's call retries before it gives up: long enough to see a few retries, short enough
# to wait for (the params' api_retry_seconds, 90 s by default, is meant for real outages).
LAB_RETRY_SECONDS = 3.0


def run_step(lab: Lab) -> pd.DataFrame:
    """30_trust's plan, called the way the notebook calls it (`Step.call`), with a short retry."""
    step = lab.step
    short = Step(step.params, dataclasses.replace(step.clients, retry_seconds=LAB_RETRY_SECONDS), apply=False)
    error_rate = float(faults_now(lab).get("error_rate") or 0.0)
    try:
        changes = short.call(trust.plan_trust)
    except ApiCallFailed as err:
        outcome = {"stopped": True, "message": str(err), "error_rate": error_rate}
    else:
        outcome = {
            "stopped": False,
            "message": "; ".join(f"{c.kind} {c.name}: {c.action}" for c in changes),
            "error_rate": error_rate,
        }
    lab.seen.setdefault("runs", []).append(outcome)
    return pd.DataFrame(
        [
            {
                "fault switch error_rate": error_rate,
                "the step": "stopped" if outcome["stopped"] else "ran",
                "message": outcome["message"],
            }
        ]
    )


def check_stopped(lab: Lab, safe_to_rerun: Any) -> Any:
    """The step stopped under the fault with a message naming the call, and the trainee read it."""
    runs = lab.seen.get("runs", [])
    stopped = next((r for r in runs if r["stopped"]), None)
    message = stopped["message"] if stopped else ""
    names_call = "plan_trust stopped" in message and ("GET" in message or "POST" in message)
    rows = [
        {"item": "the step stopped under the fault", "value": bool(stopped)},
        {"item": "its message names the call", "value": names_call},
        {
            "item": "your answer: a re-run is safe",
            "value": safe_to_rerun if safe_to_rerun is not None else "(none)",
        },
    ]
    right = bool(stopped) and names_call and safe_to_rerun is True
    if not stopped:
        hint = "turn the fault switch on (labs.set_faults(lab, error_rate=1.0) or the curl command), then run the step"
    elif safe_to_rerun is not True:
        hint = "read the message again: what does it say about running the notebook again?"
    else:
        hint = "the message should name the failing call; run the step cell again under the fault"
    return lab.judged(rows, right, "the runbook stopped with a message that names the call", hint)


def check_recovered(lab: Lab) -> Any:
    """After a stop: the switch is off and the same call ran."""
    runs = lab.seen.get("runs", [])
    stop_at = max((i for i, r in enumerate(runs) if r["stopped"]), default=None)
    after = runs[stop_at + 1 :] if stop_at is not None else []
    ran = next((r for r in after if not r["stopped"]), None)
    off = float(faults_now(lab).get("error_rate") or 0.0) == 0.0
    rows = [
        {"item": "stopped earlier", "value": stop_at is not None},
        {"item": "fault switch off now", "value": off},
        {"item": "the same call ran afterwards", "value": ran["message"] if ran else "(not yet)"},
    ]
    right = stop_at is not None and off and ran is not None
    hint = (
        "turn the switch off (labs.set_faults(lab, error_rate=0.0) or the curl command) and run the step again"
        if stop_at is not None
        else "make the step stop under the fault first (the task above)"
    )
    return lab.judged(rows, right, "once the API answered, the same call ran: nothing to clean up", hint)
