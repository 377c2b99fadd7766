"""Enforcing mTLS: the server TLS policy moves from ALLOW_INVALID_OR_MISSING_CLIENT_CERT to
REJECT_INVALID, and only when the request logs say it cuts off (almost) nobody.

In ALLOW mode the load balancer forwards every request and says in its log whether a certificate
came and whether its chain verified, so the logs name every client the flip would refuse. The flip
is taken in this order:
1. readiness: the logs over `changes.report_window_seconds`, by error, by client and by hour
   (`change.readiness`);
2. gate: the flip passes only when the share of requests it would refuse is at most
   `changes.max_refused_share` (default 0); a refusal names the clients and changes nothing;
3. the flip, in place (the policy's mode, nothing else), waited for until a new connection shows
   it, and proven case by case (`change.run`, as every phase of a trust change);
4. the watch: proof cases and logs for `changes.watch_seconds` (`change.watch`);
5. when the proof or the watch fails: the way back (the state before, from the record: c40_rollback)
   is named, or taken at once when `changes.rollback_on_failure` is set.
Every run that gets as far as the gate writes a record, a refused one included.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mtlskit.build.plan import Change
from mtlskit.change.apply import plan_state
from mtlskit.change.impact import Gate
from mtlskit.change.phases import SWITCH, Phase
from mtlskit.change.readiness import Readiness, readiness_for
from mtlskit.change.rollback import WayBack, way_back
from mtlskit.change.run import Next, PhaseRun, Progress, run_phase
from mtlskit.change.state import REJECT, TrustState, live_state, require_split
from mtlskit.change.watch import watch
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core.checks import Check
from mtlskit.core.errors import ChangeRefused, TopologyUnsupported
from mtlskit.verify import changerecords

KIND: changerecords.Kind = "enforcement"
GATE = "enforcement gate"


def target_of(params: Params, live: TrustState) -> TrustState:
    """The live state with the policy's mode REJECT_INVALID: the flip changes nothing else. Refused
    (ChangeRefused, before anything is called) when the params would undo it or there is no policy
    in front of the clients to flip."""
    if params.mtls.validation_mode != REJECT:
        raise ChangeRefused(
            f"mtls.validation_mode is {params.mtls.validation_mode} in the params file: the next 30_trust "
            f"would undo the flip; set mtls.validation_mode: {REJECT} there first, then run c20_enforce_mtls"
        )
    policy = params.mtls.server_tls_policy
    if live.mode is None:
        raise ChangeRefused(
            f"server TLS policy {policy} does not exist or has no mTLS mode: there is nothing to enforce; "
            "run 30_trust and 40_frontend with apply=True"
        )
    if not live.attached:
        raise ChangeRefused(
            f"target HTTPS proxy {params.frontend.target_proxy} does not name server TLS policy {policy} "
            "(detached by break-glass?): take break-glass's way back first (c30_break_glass with "
            "way_back=True), or attach it with 40_frontend"
        )
    return TrustState(live.certs, REJECT, attached=True)


@dataclass(frozen=True)
class ReadinessReport:
    """The readiness report in the shape a phase's gate reads (`change.run.ReportLike`): its gate is
    the refused share against `changes.max_refused_share`."""

    readiness: Readiness
    max_share: float

    def gate(self) -> Gate:
        return self.readiness.gate(self.max_share)

    def to_dict(self) -> dict[str, Any]:
        return self.readiness.to_dict()


@dataclass
class Prepared:
    """Everything known before the flip: the live state, the target, the readiness and its gate,
    and the plan. `refused` is why the flip will not start (then the rest may be empty)."""

    live: TrustState
    target: TrustState | None = None
    report: ReadinessReport | None = None
    plan: list[Change] = field(default_factory=list)
    refused: str = ""

    @property
    def enforcing(self) -> bool:
        return self.live.enforcing

    @property
    def readiness(self) -> Readiness | None:
        return self.report.readiness if self.report else None

    def gate_check(self) -> Check:
        if self.refused:
            return Check(
                GATE, "fail", self.refused, "see ChangeRefused and TopologyUnsupported in TROUBLESHOOTING.md"
            )
        if self.enforcing or self.report is None:
            return Check(GATE, "pass", f"the policy is already {REJECT} and attached: nothing to flip")
        return self.report.gate().check(GATE)


def prepare(clients: Clients, params: Params) -> Prepared:
    """Read the live state, the readiness over the window and its gate, and plan the flip."""
    try:
        require_split(params)
    except TopologyUnsupported as err:
        return Prepared(TrustState(), refused=str(err))
    live = live_state(clients, params)
    if live.enforcing:
        return Prepared(live)
    try:
        target = target_of(params, live)
    except ChangeRefused as err:
        return Prepared(live, refused=str(err))
    report = ReadinessReport(readiness_for(clients, params), params.changes.max_refused_share)
    return Prepared(live, target, report, plan_state(clients, params, target))


@dataclass
class Enforcement:
    prepared: Prepared
    run: PhaseRun | None = None  # None: nothing was flipped or recorded (refused early, already enforcing)
    way_back: str = ""
    went_back: PhaseRun | None = None

    def checks(self) -> list[Check]:
        if self.run is None:
            return [self.prepared.gate_check()]
        return self.run.checks() + WayBack(self.way_back, self.went_back).checks()


def flip(
    clients: Clients,
    params: Params,
    prepared: Prepared,
    on_progress: Progress | None = None,
    sleep: Callable[[float], None] | None = None,
) -> Enforcement:
    """Take the flip `prepared` describes, through `change.run` like every phase: recorded as refused
    when its gate did not pass, else applied, waited for, proven and watched, then recorded; when the
    proof or the watch failed, the way back is named, or taken (`changes.rollback_on_failure`)."""
    if not prepared.refused and live_state(clients, params) != prepared.live:
        prepared = prepare(clients, params)  # the live state moved since the report was read: read again
    result = Enforcement(prepared)
    if prepared.enforcing or prepared.refused or prepared.report is None or prepared.target is None:
        return result
    after = prepared.target
    nxt = Next(Phase(SWITCH, 1, 1, prepared.live, after), KIND, changerecords.new_change_id(), 1, 1)

    started = dt.datetime.now(dt.UTC)  # the watch reads the logs from here

    def watched(_run: PhaseRun) -> list[Check]:
        return watch(clients, params, after, started, on_progress, sleep).checks()

    report = prepared.report
    run = run_phase(clients, params, nxt, lambda *_: report, on_progress, after_proof=watched)
    result.run = run
    back = way_back(clients, params, run, "the flip", on_progress)
    result.way_back, result.went_back = back.text, back.went_back
    return result


def enforce(
    clients: Clients,
    params: Params,
    on_progress: Progress | None = None,
    sleep: Callable[[float], None] | None = None,
) -> Enforcement:
    """Prepare, then flip: what c20_enforce_mtls does with apply=True."""
    return flip(clients, params, prepare(clients, params), on_progress, sleep)
