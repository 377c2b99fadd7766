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
   it, and proven case by case (`change.move`);
4. the watch: proof cases and logs for `changes.watch_seconds` (`change.watch`);
5. when the proof or the watch fails: the way back (the state before, from the record: c40_rollback)
   is named, or taken at once when `changes.rollback_on_failure` is set.
Every run that gets as far as the gate writes a record, a refused one included.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from mtlskit.build.plan import Change
from mtlskit.change.apply import plan_state
from mtlskit.change.impact import Gate
from mtlskit.change.move import Progress, Run, apply_and_prove
from mtlskit.change.readiness import Readiness, readiness_for
from mtlskit.change.rollback import rollback
from mtlskit.change.state import REJECT, TrustState, live_state, require_split
from mtlskit.change.watch import Watch, watch
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core.checks import Check
from mtlskit.core.errors import ChangeRefused, TopologyUnsupported

KIND = "enforcement"


def target_of(params: Params, live: TrustState) -> TrustState:
    """The live state with the policy's mode REJECT_INVALID: the flip changes nothing else. Refused
    (ChangeRefused, before anything is called) when the params would undo it or there is no policy
    in front of the clients to flip."""
    require_split(params)
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


@dataclass
class Prepared:
    """Everything known before the flip: the live state, the target, the readiness and its gate,
    and the plan. `refused` is why the flip will not start (then the rest may be empty)."""

    live: TrustState
    target: TrustState | None = None
    readiness: Readiness | None = None
    gate: Gate | None = None
    plan: list[Change] = field(default_factory=list)
    refused: str = ""

    @property
    def enforcing(self) -> bool:
        return self.live.enforcing

    def gate_check(self) -> Check:
        if self.refused:
            return Check(
                "enforcement gate", "fail", self.refused, "see ChangeRefused and TopologyUnsupported in TROUBLESHOOTING.md"
            )
        if self.enforcing:
            return Check(
                "enforcement gate", "pass", f"the policy is already {REJECT} and attached: nothing to flip"
            )
        assert self.gate is not None
        return self.gate.check("enforcement gate")


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
    readiness = readiness_for(clients, params)
    gate = readiness.gate(params.changes.max_refused_share)
    return Prepared(live, target, readiness, gate, plan_state(clients, params, target))


@dataclass
class Enforcement:
    prepared: Prepared
    run: Run | None = None  # None: nothing was flipped or recorded (plan only, already enforcing)
    watched: Watch | None = None
    way_back: str = ""
    went_back: list[Check] = field(default_factory=list)

    def checks(self) -> list[Check]:
        out = [self.prepared.gate_check()]
        if self.run is not None:
            out += [c for c in self.run.checks if c.name != "enforcement gate"]
        if self.way_back:
            out.append(
                Check(
                    "way back",
                    "pass" if self.went_back and not any(c.status == "fail" for c in self.went_back) else "warn",
                    self.way_back,
                    "run c40_rollback with apply=True: it restores the recorded state before the flip",
                )
            )
        return out


def way_back_text(run: Run) -> str:
    return (
        f"the state before the flip (mode {run.before.mode}, trust config {run.before.fingerprint()}) is in "
        f"change record {run.change_id}: c40_rollback with apply=True restores it"
    )


def flip(
    clients: Clients,
    params: Params,
    prepared: Prepared,
    progress: Progress | None = None,
    sleep: Callable[[float], None] | None = None,
) -> Enforcement:
    """Take the flip `prepared` describes: recorded as refused when its gate did not pass, else
    applied, proven, watched and recorded, with the way back named or taken."""
    result = Enforcement(prepared)
    if prepared.enforcing or prepared.refused:
        return result
    assert prepared.target is not None and prepared.readiness is not None
    run = Run(KIND, prepared.live, prepared.target, impact=prepared.readiness.to_dict())
    result.run = run
    run.checks.append(prepared.gate_check())
    if run.failed:
        run.outcome = "refused"
        run.write(clients, params, prepared.live)
        return result
    flipped_at = dt.datetime.now(dt.UTC)
    run.checks += apply_and_prove(clients, params, prepared.live, prepared.target, progress)
    if not run.failed:
        result.watched = watch(clients, params, prepared.target, flipped_at, progress, sleep)
        run.checks += result.watched.checks()
    run.outcome = "failed" if run.failed else "applied"
    result.way_back = way_back_text(run)
    if run.failed and params.changes.rollback_on_failure:
        if progress:
            progress("the flip did not hold: taking the way back (changes.rollback_on_failure)")
        record = run.record(clients, params, live_state(clients, params))
        result.went_back = list(rollback(clients, params, record))  # writes its own record
        run.outcome = "rolled back"
        result.way_back = f"taken (changes.rollback_on_failure): {result.way_back}"
    run.write(clients, params, live_state(clients, params))
    return result


def enforce(
    clients: Clients,
    params: Params,
    progress: Progress | None = None,
    sleep: Callable[[float], None] | None = None,
) -> Enforcement:
    """Prepare, then flip: what c20_enforce_mtls does with apply=True."""
    return flip(clients, params, prepare(clients, params), progress, sleep)
