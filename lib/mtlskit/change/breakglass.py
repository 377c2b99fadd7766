"""Break-glass: in an emergency (a client CA expired, a fleet of clients refused after a change), one
step lets every client through again, verified and recorded; and the way back to exactly the state
before it.

The step is the smallest change that stops refusals: the server TLS policy's mode set to
ALLOW_INVALID_OR_MISSING_CLIENT_CERT (`changes.break_glass: allow`, the default: the backend still
gets the mTLS headers and can refuse by itself), or the policy detached from the target HTTPS proxy
(`detach`: no client certificate is asked for at all). There is no gate, since the point is to stop
an outage, but there is proof: a client without a certificate must reach the backend on a new
connection once the load balancer has applied the step. The record keeps the state before it, and
the way back applies exactly that state (`change.rollback`, proven the same way), refusing when the live state is no
longer what break-glass left (someone changed it since, and going back would undo that too).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from mtlskit.change.phases import SWITCH, Phase
from mtlskit.change.proof import MISSING
from mtlskit.change.rollback import rollback
from mtlskit.change.run import Next, PhaseRun, Progress, run_phase
from mtlskit.change.state import ALLOW, TrustState, live_state, require_split
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core.checks import Check, Status
from mtlskit.core.errors import ChangeRefused
from mtlskit.verify import changerecords

KIND: changerecords.Kind = "break-glass"
THROUGH = "no certificate reaches the backend"
REFUSED_AGAIN = "no certificate refused again"
NO_GATE = "break-glass gate"


def relaxed(params: Params, live: TrustState) -> TrustState | None:
    """The state break-glass moves to from `live`, or None when clients already get through."""
    require_split(params)
    if params.changes.break_glass == "detach":
        return TrustState(live.certs, live.mode, attached=False) if live.attached else None
    if not live.attached or live.mode == ALLOW:
        return None
    return TrustState(live.certs, ALLOW, attached=True)


def describe(state: TrustState) -> str:
    return f"mode {state.mode}" if state.attached else "no server TLS policy on the proxy"


@dataclass(frozen=True)
class NoGate:
    """Break-glass stops an outage: its gate always passes, and says so in the record."""

    reason: str = "break-glass has no gate: it lets every client through"
    passed: bool = True

    def gate(self) -> NoGate:
        return self

    def check(self, name: str) -> Check:
        return dataclasses.replace(Check(NO_GATE, "pass", self.reason), name=name)

    def to_dict(self) -> dict[str, Any]:
        return {"gate": self.reason}


def no_certificate_check(run: PhaseRun, through: bool = True) -> Check:
    """From the proof: did the client without a certificate, on a new connection, reach the backend
    (`through`), or was it refused?"""
    missing = [p.result for p in run.proven if p.category == MISSING]
    if missing:
        r = missing[0]
        reached = r.http_status is not None and r.http_status < 500
        status: Status = "pass" if reached == through else "fail"
        evidence = f"a request without a certificate on a new connection: {r.outcome}"
    else:
        status, evidence = "fail", "the proof sent no request without a certificate"
    if through:
        return Check(
            THROUGH,
            status,
            evidence,
            "something else refuses the client: check the proxy's policy (gcloud compute "
            "target-https-proxies describe) and the backend; changes.break_glass: detach asks for no "
            "certificate at all",
        )
    return Check(
        REFUSED_AGAIN,
        status,
        evidence,
        "the way back did not restore enforcement: compare the live policy and proxy with the record",
    )


@dataclass
class BreakGlass:
    before: TrustState
    after: TrustState | None  # None: nothing to do, clients already get through
    run: PhaseRun | None = None

    def checks(self) -> list[Check]:
        if self.run is None:
            return [
                Check(
                    "break-glass",
                    "pass",
                    f"clients already get through ({describe(self.before)}): nothing changed",
                )
            ]
        out = self.run.checks()
        if self.run.record is not None:
            out.append(
                Check(
                    "way back",
                    "pass",
                    f"{describe(self.before)} is saved in change record {self.run.record.file_name()}: "
                    "c30_break_glass with way_back=True restores it",
                )
            )
        return out


def break_glass(clients: Clients, params: Params, on_progress: Progress | None = None) -> BreakGlass:
    """One step to ALLOW mode (or the policy detached), proven (a client without a certificate reaches
    the backend) and recorded with the state before it."""
    require_split(params)
    live = live_state(clients, params)
    after = relaxed(params, live)
    if after is None:
        return BreakGlass(live, None)
    nxt = Next(Phase(SWITCH, 1, 1, live, after), KIND, changerecords.new_change_id(), 1, 1)
    run = run_phase(
        clients,
        params,
        nxt,
        lambda *_: NoGate(),
        on_progress,
        after_proof=lambda r: [no_certificate_check(r)],
    )
    return BreakGlass(live, after, run)


def open_break_glass(params: Params) -> changerecords.ChangeRecord | None:
    """The newest break-glass that changed something and is not yet taken back (no later rollback
    of its change)."""
    records = changerecords.read_records(params)
    glass = [r for r in records if r.kind == KIND and r.outcome in ("applied", "failed")]
    if not glass:
        return None
    last = glass[-1]
    back = [
        r
        for r in records
        if r.kind == "rollback" and r.change_id == last.change_id and r.outcome == "applied"
    ]
    return None if back else last


@dataclass
class Restored:
    """The way back from a break-glass: its record, and the rollback run that restored its state."""

    record: changerecords.ChangeRecord
    run: PhaseRun

    def checks(self) -> list[Check]:
        return self.run.checks()


def way_back(clients: Clients, params: Params, on_progress: Progress | None = None) -> Restored:
    """Apply exactly the state saved before the last break-glass, proven (a client without a
    certificate is refused again when that state enforced) and recorded by the rollback."""
    require_split(params)
    record = open_break_glass(params)
    if record is None:
        raise ChangeRefused(
            f"no break-glass of stack {changerecords.stack_of(params)} to take back in "
            f"{changerecords.records_location(params)}: nothing was changed; check changes.records names "
            "the folder or bucket break-glass wrote to"
        )
    live = live_state(clients, params)
    left = TrustState.from_dict(record.after)
    if live != left:
        raise ChangeRefused(
            f"the live state ({describe(live)}, trust config {live.fingerprint()}) is not what break-glass "
            f"{record.change_id} left ({describe(left)}, trust config {left.fingerprint()}): it changed "
            "since, and going back would undo that too; nothing was changed. Take the later change back "
            "first (c40_rollback), or restore the state in the record by hand"
        )
    run = rollback(clients, params, record, on_progress)
    before = TrustState.from_dict(record.before)
    restored = live_state(clients, params)
    run.after_proof.append(
        Check(
            "state before break-glass restored",
            "pass" if restored == before else "fail",
            f"{describe(restored)}, trust config {restored.fingerprint()}"
            + (
                " as recorded"
                if restored == before
                else f"; the record says {describe(before)}, {before.fingerprint()}"
            ),
            "compare the live policy and proxy with the record, then run c30_break_glass with way_back=True again",
        )
    )
    if before.enforcing:
        run.after_proof.append(no_certificate_check(run, through=False))
    return Restored(record, run)
