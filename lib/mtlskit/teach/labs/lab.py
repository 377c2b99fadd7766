"""What every lab shares: starting on the sandbox only, the verdict a check cell shows, the sandbox's
fault switch, and putting the sandbox back as the params describe it.

A lab breaks things on purpose (deletes the anchor Ingress, switches the validation mode, trusts a
broken chain, turns on API faults). That is only ever done to the local sandbox: a lab started with
params for a real project stops before it builds a client.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mtlskit.build import k8s, lbnames, stack, trust
from mtlskit.build.trust import SERVER_TLS_POLICY
from mtlskit.config.params import Params
from mtlskit.core.errors import KitError
from mtlskit.core.poll import poll
from mtlskit.runner.step import Step, start
from mtlskit.verify import probe

# The sandbox's data plane re-reads the control plane every 0.2 s; an answer read sooner after a change
# could still show the old configuration.
DATA_PLANE_REFRESH_SECONDS = 0.5  # pause between polls, and between a lab's own handshakes and its requests
DATA_PLANE_WAIT_SECONDS = 30.0
BUILD_TIMEOUT_SECONDS = 120.0
# The request logs a day-2 lab's reports read start this long before the lab's own first request
# (the sandbox's clock and ours are the same; the margin only covers rounding).
WINDOW_MARGIN_SECONDS = 2.0


class LabRefused(KitError, RuntimeError):
    """A lab was pointed at something it cannot run on: anything but the local sandbox, or (lab 06) a
    params file that does not name a Gateway to move to."""


class LabTimedOut(KitError, TimeoutError):
    """The sandbox did not reach the state a lab waits for (the frontend answering, the data plane
    refreshed) in time; the message says what did not happen and what to look at."""


@dataclass
class Verdict:
    """What a check cell shows: one row per thing checked, and one line that says right or not yet."""

    rows: pd.DataFrame
    right: bool
    line: str

    def _repr_html_(self) -> str:
        return f"{self.rows.to_html(index=False)}<p><b>{self.line}</b></p>"

    def __repr__(self) -> str:
        return f"{self.rows.to_string(index=False)}\n{self.line}"


@dataclass
class Lab:
    """One lab's session: the runbook step it works through, what it observed, and its verdicts (the
    last cell of a lab and the tests read them)."""

    name: str
    step: Step
    built_by_lab: bool = False
    seen: dict[str, Any] = field(default_factory=dict)
    verdicts: list[Verdict] = field(default_factory=list)
    # What this lab changes beyond the split stack (lab 06's Gateway and DNS records), undone by
    # `put_back` once the split stack is built again.
    undo: Callable[[Lab], object] | None = None

    @property
    def params(self) -> Params:
        return self.step.params

    def since_start(self) -> float:
        """Seconds since the lab started (its setup done): the window a day-2 lab's reports read, so
        an earlier lab's requests (lab 03's in ALLOW mode) are not taken for this lab's clients."""
        started = self.seen.setdefault("started", dt.datetime.now(dt.UTC))
        return (dt.datetime.now(dt.UTC) - started).total_seconds() + WINDOW_MARGIN_SECONDS

    def judged(self, rows: list[dict[str, Any]], right: bool, good: str, hint: str) -> Verdict:
        """Record a check's verdict: `good` when right, else `hint` (what to do next)."""
        verdict = Verdict(pd.DataFrame(rows), right, f"right: {good}" if right else f"not yet: {hint}")
        self.verdicts.append(verdict)
        return verdict


def start_lab(name: str, params_file: str | None = None, undo: Callable[[Lab], object] | None = None) -> Lab:
    """Load the params, refuse anything but the sandbox, and build the stack the params describe
    (every step is idempotent, so an already built stack costs only its plans); `undo` puts back
    what the lab changes beyond that stack."""
    from mtlskit.config import params as params_mod

    source = params_mod.params_file(params_file)  # the file actually read (MTLSKIT_PARAMS included)
    params = params_mod.load(params_file)
    if params.target != "sandbox":
        raise LabRefused(
            f"the labs break things on purpose and run only on the local sandbox, but {source} has "
            f"target: {params.target} (project {params.project}). Use params/sandbox.yaml, or a copy of it "
            "with target: sandbox."
        )
    step = start(params_file, apply=True)
    built = step.clients.find(
        step.clients.compute.forwarding_rules.get,
        project=params.project,
        forwarding_rule=params.frontend.forwarding_rule,
    )
    lab = Lab(name, step, built_by_lab=built is None, undo=undo)
    put_back(lab)
    return lab


def put_back(lab: Lab) -> pd.DataFrame:
    """Undo what a lab changes: faults off, the anchor Ingress, trust config and validation mode as
    the params say, and the whole stack built (a retired split frontend too); then the lab's own
    `undo` (lab 06: the Gateway deleted, the records back). Safe to run any time, as often as wanted."""
    set_faults(lab, error_rate=0.0, operation_error_rate=0.0)
    delay = lab.params.sandbox.propagation_delay_seconds
    set_propagation_delay(lab, delay)  # lab 07 lengthens it to show the wait
    stack.build(lab.step.clients, lab.params, BUILD_TIMEOUT_SECONDS)
    if lab.undo is not None:
        lab.undo(lab)
    if delay:
        wait_for_data_plane(lab, DATA_PLANE_WAIT_SECONDS + delay)
    lab.seen["frontend"] = wait_until_answering(lab)
    # The handshakes just made are logged too (a refused one as status 0, like a refused request):
    # let them fall out of the time window the lab's own requests are matched in.
    time.sleep(DATA_PLANE_REFRESH_SECONDS)
    return state_frame(lab)


def wait_until_answering(lab: Lab, timeout: float = BUILD_TIMEOUT_SECONDS) -> probe.Frontend:
    """A new frontend serves once its managed certificate is ACTIVE: wait for a handshake, so the lab's
    first request is judged by the server TLS policy, not refused for want of a certificate. The
    split frontend, also when the params name a Gateway to move to (lab 06)."""
    clients, params = lab.step.clients, lab.params
    waited = poll(
        lambda: probe.locate_frontend(
            clients, params, lbnames.load_balancer_names(clients, params, topology="split")
        ),
        lambda target: target.answering,
        timeout,
        every=DATA_PLANE_REFRESH_SECONDS,
    )
    if not waited.done:
        raise LabTimedOut(
            f"the frontend did not answer within {timeout:.0f}s: run notebooks/50_verify.ipynb to see why"
        )
    return waited.value


def state_frame(lab: Lab) -> pd.DataFrame:
    """Where the sandbox stands on what the labs change."""
    clients, params = lab.step.clients, lab.params
    anchor = k8s.read(clients, "Ingress", params)
    policy = SERVER_TLS_POLICY.get(clients, trust.policy_name(clients, params))
    faults = faults_now(lab)
    rows = [
        {"what": "anchor Ingress", "now": "present" if anchor else "missing"},
        {
            "what": "validation mode",
            "now": policy.mtls_policy.client_validation_mode.name if policy else "no server TLS policy",
        },
        {"what": "API fault switch", "now": f"error_rate={faults.get('error_rate')}"},
    ]
    return pd.DataFrame(rows)


# ---- the sandbox's fault switch, through its own control endpoint ----------------------------------------


def control_url(lab: Lab, what: str) -> str:
    endpoint = lab.step.clients.endpoint
    if not endpoint:
        raise LabRefused("the fault switch exists only on the local sandbox")
    return f"{endpoint}/_sandbox/{what}"


def _control(lab: Lab, what: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    request = urllib.request.Request(
        control_url(lab, what),
        data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.loads(response.read() or b"{}"))


def faults_now(lab: Lab) -> dict[str, Any]:
    return _control(lab, "faults")


def wait_for_data_plane(lab: Lab, timeout: float = DATA_PLANE_WAIT_SECONDS) -> None:
    """Return once the sandbox's data plane serves what the control plane holds now. It re-reads the
    state in a loop; the second refresh completed after this call began started after the caller's
    change (the first may have read the state before it), and a trust or policy change it saw is
    applied only after `sandbox.propagation_delay_seconds` (listed as pending until then), so the
    next request is judged by the change once nothing is pending."""
    start = int(_control(lab, "dataplane")["refreshes"])

    def settled(status: dict[str, Any]) -> bool:
        pending = any(listener.get("pending") for listener in status.get("listeners", []))
        return int(status["refreshes"]) >= start + 2 and not pending

    waited = poll(lambda: _control(lab, "dataplane"), settled, timeout, every=0.05)
    if not waited.done:
        raise LabTimedOut(
            f"the sandbox's data plane did not apply the change within {timeout:.0f}s: is it running? "
            "`mtlskit sandbox status` lists the changes still propagating"
        )


def set_propagation_delay(lab: Lab, seconds: float) -> dict[str, Any]:
    """How long the sandbox's data plane takes to apply a trust config or policy change (Google's
    takes minutes); `put_back` sets the params' value again."""
    return _control(lab, "dataplane", {"propagation_delay_seconds": seconds})


def set_faults(lab: Lab, error_rate: float = 1.0, operation_error_rate: float = 0.0) -> dict[str, Any]:
    """Make that share of Google API requests answer 429/503 (and of operations end in an error)."""
    return _control(lab, "faults", {"error_rate": error_rate, "operation_error_rate": operation_error_rate})


def faults_command(lab: Lab, error_rate: float) -> str:
    """The same switch by hand, from a shell."""
    body = json.dumps({"error_rate": error_rate})
    return f"curl -s -X POST -H 'Content-Type: application/json' -d '{body}' {control_url(lab, 'faults')}"
