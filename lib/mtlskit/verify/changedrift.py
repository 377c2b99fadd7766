"""What 70_drift says about day-2 changes, from the change records and the live trust config.

A client-CA rotation runs in two phases, often days apart: phase 1 trusts the new CA beside the old,
phase 2 removes the old. Between them the trust config differs from the params on purpose, so the
trust check must say "mid-rotation" rather than "drift"; and a rotation forgotten there keeps trusting
a CA the team meant to retire, so it is worth a warning after `changes.half_done_warning_days`. A CA
that expires with nothing to take over refuses every client on that day, so the scheduled run warns
while there is still time to rotate. All three are judged from state read once (the trust config,
the records): pure functions, like the other drift checks.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

from google.cloud import certificate_manager_v1 as cm

from mtlskit.config.params import Params
from mtlskit.core.checks import Check
from mtlskit.verify import changerecords
from mtlskit.verify.changerecords import BrokenRecord, ChangeRecord
from mtlskit.verify.driftcommon import CertificateEntry, trust_config_certificates

# Check names: stable, because summaries, reports and alerts key on them.
HALF_DONE = "no rotation left half done"
SUCCESSOR = "expiring CAs have a successor in place"

# The trust config's roles as drift reads them, in the records' words (`change.state.TrustedCert`).
RECORD_ROLE = {"trust anchor": "anchor", "intermediate": "intermediate", "allowlisted": "allowlisted"}
CA_ROLES = ("trust anchor", "intermediate")
ROTATION_FIX = (
    "finish it: once every client has a certificate from the new CA (the impact report shows who still "
    "uses the old one), run c10_trust_change with apply=True (phase 2); or go back with c40_rollback"
)


@dataclass
class ChangeHistory:
    """The records 70_drift read for the stack, those it could not, and why none could be read."""

    location: str = ""
    records: list[ChangeRecord] = field(default_factory=list)
    broken: list[BrokenRecord] = field(default_factory=list)
    error: str = ""  # the location itself could not be read (a bucket without access, ...)

    def summary(self) -> str:
        """One line for the table of what 70_drift read."""
        if self.error:
            return f"not read: {self.error}"
        broken = f", {len(self.broken)} broken" if self.broken else ""
        text = f"{len(self.records)} for this stack{broken}"
        if self.records:
            last = self.records[-1]
            text += f"; last: {last.kind} phase {last.phase} of {last.phases} on {_since(last)}"
        return text


def read_history(params: Params) -> ChangeHistory:
    """The stack's change records. A location that cannot be read is noted, not raised: the load
    balancer's own checks must still run, and the half-done check warns about it."""
    location = changerecords.records_location(params)
    try:
        found = changerecords.read_records(params)
    except Exception as err:  # any client or transport error: reported by the check, not fatal
        return ChangeHistory(location, error=f"{type(err).__name__}: {err}")
    return ChangeHistory(location, list(found), found.broken)


def live_certificates(tc: cm.TrustConfig) -> frozenset[tuple[str, str]]:
    """(role, sha256) of the trust config's certificates, roles in the records' words."""
    return frozenset((RECORD_ROLE.get(e.role, e.role), e.sha256) for e in trust_config_certificates(tc))


def rotation_in_place(history: ChangeHistory, tc: cm.TrustConfig | None) -> ChangeRecord | None:
    """The open rotation whose phase 1 is exactly what the trust config holds today, if any."""
    open_one = changerecords.open_rotation(history.records)
    if open_one is None or tc is None:
        return None
    return open_one if open_one.certificates("after") == live_certificates(tc) else None


def _since(record: ChangeRecord) -> str:
    return f"{record.finished:%Y-%m-%d %H:%M} UTC"


def mid_rotation_evidence(record: ChangeRecord) -> str:
    return (
        f"rotation phase {record.phase} of {record.phases} since {_since(record)} "
        f"(record {record.change_id}, by {record.who})"
    )


def trust_check_mid_rotation(check: Check, history: ChangeHistory, tc: cm.TrustConfig | None) -> Check:
    """The trust-config check, downgraded to a warning when the difference from the params is exactly
    what an open rotation's phase 1 applied: the params already name the rotation's end."""
    if check.status != "fail":
        return check
    record = rotation_in_place(history, tc)
    if record is None:
        return check
    return replace(
        check, status="warn", evidence=f"{mid_rotation_evidence(record)}; {check.evidence}", fix=ROTATION_FIX
    )


def check_half_done(
    params: Params, history: ChangeHistory, tc: cm.TrustConfig | None, now: dt.datetime
) -> Check:
    """A rotation whose phase 1 is live longer than `changes.half_done_warning_days` warns; so do
    records that could not be read (one of them may be the rotation's)."""
    limit = params.changes.half_done_warning_days
    unread = _unread(history)
    record = rotation_in_place(history, tc)
    if record is not None:
        days = (now - record.finished).total_seconds() / 86400
        evidence = f"{mid_rotation_evidence(record)}: {days:.1f} days, warned after {limit:g}"
        if days > limit:
            return Check(
                HALF_DONE,
                "warn",
                f"{evidence}; the trust config still trusts the old CA beside the new one{unread}",
                ROTATION_FIX,
            )
        if not unread:
            return Check(HALF_DONE, "pass", evidence)
        return Check(HALF_DONE, "warn", evidence + unread, _UNREAD_FIX)
    if unread:
        return Check(
            HALF_DONE, "warn", f"no rotation in progress among the records read{unread}", _UNREAD_FIX
        )
    count = len(history.records)
    return Check(
        HALF_DONE,
        "pass",
        f"no rotation in progress ({count} change record{'' if count == 1 else 's'} in {history.location})",
    )


_UNREAD_FIX = (
    "make changes.records readable by the account the verification runs as; move a broken record "
    "aside after checking what it was (each record is JSON, one change phase per file)"
)


def _unread(history: ChangeHistory) -> str:
    if history.error:
        return f"; change records in {history.location} could not be read: {history.error}"
    if history.broken:
        listed = "; ".join(f"{b.where}: {b.reason}" for b in history.broken[:5])
        more = f" (and {len(history.broken) - 5} more)" if len(history.broken) > 5 else ""
        return f"; {len(history.broken)} broken change record(s): {listed}{more}"
    return ""


def check_successors(params: Params, tc: cm.TrustConfig | None, now: dt.datetime) -> Check:
    """Each trust anchor and intermediate that expires within `expiry_horizon_days` needs another of
    its role in the trust config, valid past the horizon, for clients to move to before that day."""
    if tc is None:
        return Check(SUCCESSOR, "pass", "no trust config to judge (see the trust config check)")
    horizon = params.expiry_horizon_days
    edge = now + dt.timedelta(days=horizon)
    cas = [e for e in trust_config_certificates(tc) if e.role in CA_ROLES and e.not_after is not None]
    expiring = [e for e in cas if e.not_after is not None and e.not_after < edge]
    if not expiring:
        return Check(
            SUCCESSOR,
            "pass",
            f"no trust anchor or intermediate in the trust config expires within {horizon} days",
        )
    alone: list[str] = []
    covered: list[str] = []
    for e in expiring:
        successor = _successor(e, cas, edge)
        if successor is None:
            alone.append(f"{_expiry(e, now)} and no other {e.role} is valid past {edge:%Y-%m-%d}")
        else:
            covered.append(
                f"{_expiry(e, now)}; successor {successor.subject} until {successor.not_after:%Y-%m-%d}"
            )
    if alone:
        return Check(
            SUCCESSOR,
            "warn",
            "; ".join(alone + covered),
            "rotate before that day: issue the new CA, name it in the params beside the old one, run "
            "c10_trust_change with apply=True (phase 1), move the clients, then phase 2",
        )
    return Check(SUCCESSOR, "pass", "; ".join(covered))


def _successor(
    expiring: CertificateEntry, cas: list[CertificateEntry], edge: dt.datetime
) -> CertificateEntry | None:
    return next(
        (
            c
            for c in cas
            if c.role == expiring.role
            and c.sha256 != expiring.sha256
            and c.not_after is not None
            and c.not_after >= edge
        ),
        None,
    )


def _expiry(e: CertificateEntry, now: dt.datetime) -> str:
    days = e.days_left(now)
    when = (
        f"expired on {e.not_after:%Y-%m-%d}"
        if days is not None and days < 0
        else (f"expires {e.not_after:%Y-%m-%d} ({days} days)")
    )
    return f"{e.role} {e.subject} (sha256 {e.sha256[:16]}) {when}"
