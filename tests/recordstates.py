"""Trust states and change records for tests of the records and of 70_drift's reading of them: real
certificates (issued with the kit's own `pki.certs.issue`), states in the shape
`change.state.TrustState.to_dict()` writes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cryptography.hazmat.primitives import hashes

from mtlskit.pki import certs
from mtlskit.verify.changerecords import ChangeRecord, Kind, Outcome
from tests.conftest import PROJECT

NOW = dt.datetime(2026, 12, 4, 8, 0, tzinfo=dt.UTC)


def ca(name: str, days: int = 365, issuer: certs.Issued | None = None) -> certs.Issued:
    """A CA valid from a day before `NOW` for `days` after it."""
    return certs.issue(
        name,
        issuer=issuer,
        ca=True,
        not_before=NOW - dt.timedelta(days=1),
        not_after=NOW + dt.timedelta(days=days),
    )


def cert_entry(role: str, issued: certs.Issued) -> dict[str, Any]:
    c = issued.cert
    return {
        "role": role,
        "sha256": c.fingerprint(hashes.SHA256()).hex(),
        "subject": c.subject.rfc4514_string(),
        "issuer": c.issuer.rfc4514_string(),
        "not_after": c.not_valid_after_utc.isoformat(),
        "pem": certs.pem(c),
    }


def state(*entries: tuple[str, certs.Issued], mode: str | None = "REJECT_INVALID") -> dict[str, Any]:
    return {"certs": [cert_entry(r, i) for r, i in entries], "mode": mode, "attached": True}


def record(
    kind: Kind,
    phase: int,
    before: dict[str, Any],
    after: dict[str, Any],
    *,
    change_id: str = "20261101-rot1",
    finished: dt.datetime = NOW,
    outcome: Outcome = "applied",
    stack: str = f"{PROJECT}/mtlskit",
    phases: int = 2,
) -> ChangeRecord:
    return ChangeRecord(
        stack=stack,
        change_id=change_id,
        kind=kind,
        phase=phase,
        phases=phases,
        who="sandbox (anonymous credentials), local user tester",
        started=finished - dt.timedelta(minutes=5),
        finished=finished,
        before=before,
        after=after,
        before_fingerprint="b" * 64,
        after_fingerprint="a" * 64,
        mode_before=before.get("mode"),
        mode_after=after.get("mode"),
        outcome=outcome,
        exit_code=0 if outcome == "applied" else 1,
    )
