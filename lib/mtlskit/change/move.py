"""One move of the live trust state, as enforcement and break-glass make it: applied in place, waited
for until the load balancer shows it on a new connection, proven case by case, and written down
with the state before it, which is the way back.

The load balancer takes minutes to apply a policy change, and an established connection keeps the
verdict it had: a proof sent right after the API answered would judge the old state. So the proof
waits for `change.proof.wait_applied` first, and a change whose wait runs out is a failure, not a
success the next connection would contradict.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mtlskit.change.apply import apply_state
from mtlskit.change.proof import prove, wait_applied
from mtlskit.change.state import TrustState
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core.checks import Check
from mtlskit.verify import changerecords

Progress = Callable[[str], None]


def _failed(checks: list[Check]) -> bool:
    return any(c.status == "fail" for c in checks)


def apply_and_prove(
    clients: Clients, params: Params, before: TrustState, after: TrustState, progress: Progress | None = None
) -> list[Check]:
    """Apply `after` in place, wait until a new connection shows it, then prove every case against it."""
    apply_state(clients, params, after)
    waited = wait_applied(clients, params, before, after, on_progress=progress)
    checks = list(waited) if isinstance(waited, list) else [waited]
    if _failed(checks):
        return checks
    return checks + list(prove(clients, params, after))


@dataclass
class Run:
    """What one run of a change did, for its notebook and its record."""

    kind: changerecords.Kind
    before: TrustState
    after: TrustState  # the state the run moved to (or would have)
    started: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    checks: list[Check] = field(default_factory=list)
    impact: dict[str, Any] = field(default_factory=dict)
    outcome: changerecords.Outcome = "applied"
    note: str = ""
    records: list[str] = field(default_factory=list)  # where the record was written
    change_id: str = field(default_factory=changerecords.new_change_id)

    @property
    def failed(self) -> bool:
        return _failed(self.checks)

    def record(self, clients: Clients, params: Params, live: TrustState) -> changerecords.ChangeRecord:
        """The record of this run, `live` being the state it left behind."""
        return changerecords.ChangeRecord(
            stack=changerecords.stack_of(params),
            change_id=self.change_id,
            kind=self.kind,
            phase=1,
            who=changerecords.who(clients),
            started=self.started,
            finished=dt.datetime.now(dt.UTC),
            before=self.before.to_dict(),
            after=live.to_dict(),
            outcome=self.outcome,
            exit_code=1 if self.failed else 0,
            before_fingerprint=self.before.fingerprint(),
            after_fingerprint=live.fingerprint(),
            mode_before=self.before.mode,
            mode_after=live.mode,
            impact=self.impact,
            checks=changerecords.checks_as_rows(self.checks),
            note=self.note,
        )

    def write(self, clients: Clients, params: Params, live: TrustState) -> changerecords.ChangeRecord:
        record = self.record(clients, params, live)
        self.records = changerecords.write_record(params, record)
        return record
