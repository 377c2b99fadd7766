"""Break-glass: in an emergency (a client CA expired, a fleet of clients refused after a change), one
step lets every client through again, verified and recorded; and the way back to exactly the state
before it.

The step is the smallest change that stops refusals: the server TLS policy's mode set to
ALLOW_INVALID_OR_MISSING_CLIENT_CERT (`changes.break_glass: allow`, the default: the backend still
gets the mTLS headers and can refuse by itself), or the policy detached from the target HTTPS proxy
(`detach`: no client certificate is asked for at all). There is no gate, since the point is to stop
an outage, but there is proof: a client without a certificate must reach the backend on a new
connection once the load balancer has applied the step. The record keeps the state before it, and
the way back applies exactly that state (`change.rollback`), refusing when the live state is no
longer what break-glass left (someone changed it since, and going back would undo that too).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from mtlskit.change.move import Progress, Run, apply_and_prove
from mtlskit.change.rollback import rollback
from mtlskit.change.state import ALLOW, TrustState, live_state, require_split
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core.checks import Check
from mtlskit.core.errors import ChangeRefused
from mtlskit.verify import changerecords, probe

KIND: changerecords.Kind = "break-glass"


def relaxed(params: Params, live: TrustState) -> TrustState | None:
    """The state break-glass moves to from `live`, or None when clients already get through."""
    require_split(params)
    if params.changes.break_glass == "detach":
        return TrustState(live.certs, live.mode, attached=False) if live.attached else None
    if not live.attached or live.mode == ALLOW:
        return None
    return TrustState(live.certs, ALLOW, attached=True)


def describe(state: TrustState) -> str:
    if not state.attached:
        return "no server TLS policy on the proxy"
    return f"mode {state.mode}"


def no_certificate_check(clients: Clients, params: Params, expect_through: bool = True) -> Check:
    """A request without a client certificate, on a new connection: does it reach the backend?"""
    name = "no certificate reaches the backend" if expect_through else "no certificate refused again"
    target = probe.locate_frontend(clients, params)
    case = probe.Case(probe.NO_CERTIFICATE, "ok", source="(none sent)")
    with tempfile.TemporaryDirectory(prefix="mtlskit-breakglass-") as work:
        result = probe.probe(target, case, probe.mtls_header_names(params), Path(work))
    through = result.http_status is not None and result.http_status < 500
    ok = through == expect_through
    return Check(
        name,
        "pass" if ok else "fail",
        f"a request without a certificate to {target.ip}: {result.outcome}",
        (
            "the load balancer has not applied the step yet, or something else refuses the client: "
            "run c30_break_glass again (it continues), or with changes.break_glass: detach"
            if expect_through
            else "the way back did not restore enforcement: compare the live policy with the record"
        ),
    )


@dataclass
class BreakGlass:
    before: TrustState
    after: TrustState | None  # None: nothing to do, clients already get through
    run: Run | None = None
    checks_: list[Check] = field(default_factory=list)

    def checks(self) -> list[Check]:
        if self.run is not None:
            return self.run.checks
        return self.checks_


def break_glass(clients: Clients, params: Params, progress: Progress | None = None) -> BreakGlass:
    """One step to ALLOW mode (or the policy detached), proven and recorded with the state before it."""
    live = live_state(clients, params)
    after = relaxed(params, live)
    if after is None:
        evidence = f"clients already get through ({describe(live)}): nothing changed"
        return BreakGlass(live, None, checks_=[Check("break-glass", "pass", evidence)])
    run = Run(KIND, live, after, note=f"changes.break_glass: {params.changes.break_glass}")
    run.checks += apply_and_prove(clients, params, live, after, progress)
    run.checks.append(no_certificate_check(clients, params))
    run.outcome = "failed" if run.failed else "applied"
    run.write(clients, params, live_state(clients, params))
    run.checks.append(
        Check(
            "way back",
            "pass",
            f"{describe(live)} is saved in change record {run.change_id}: c30_break_glass with "
            "way_back=True restores it",
        )
    )
    return BreakGlass(live, after, run)


def open_break_glass(params: Params) -> changerecords.ChangeRecord | None:
    """The newest break-glass record not yet taken back (no later applied rollback of its change)."""
    records = changerecords.read_records(params)
    glass = [r for r in records if r.kind == KIND]
    if not glass:
        return None
    last = glass[-1]
    back = [r for r in records if r.kind == "rollback" and r.change_id == last.change_id and r.outcome == "applied"]
    return None if back else last


@dataclass
class WayBack:
    record: changerecords.ChangeRecord
    restored: TrustState
    checks: list[Check]


def way_back(clients: Clients, params: Params, progress: Progress | None = None) -> WayBack:
    """Apply exactly the state saved before the last break-glass, proven (a client without a
    certificate is refused again when that state enforced), recorded by the rollback."""
    require_split(params)
    record = open_break_glass(params)
    if record is None:
        raise ChangeRefused(
            f"no break-glass of stack {params.stack} to take back in {changerecords.records_location(params)}: "
            "nothing was changed; check changes.records names the folder break-glass wrote to"
        )
    live = live_state(clients, params)
    left = TrustState.from_dict(record.after)
    if live != left:
        raise ChangeRefused(
            f"the live state ({describe(live)}, trust config {live.fingerprint()}) is not what break-glass "
            f"{record.change_id} left ({describe(left)}, trust config {left.fingerprint()}): it changed "
            "since, and going back would undo that too; nothing was changed. Take the later change back "
            "first (c40_rollback), or restore by hand from the record"
        )
    before = TrustState.from_dict(record.before)
    checks = list(rollback(clients, params, record))
    restored = live_state(clients, params)
    checks.append(
        Check(
            "state before break-glass restored",
            "pass" if restored == before else "fail",
            f"{describe(restored)}, trust config {restored.fingerprint()} "
            + ("as recorded" if restored == before else f"but the record says {describe(before)}, {before.fingerprint()}"),
            "compare the live policy and proxy with the record; run c30_break_glass with way_back=True again",
        )
    )
    if before.enforcing:
        checks.append(no_certificate_check(clients, params, expect_through=False))
    return WayBack(record, restored, checks)
