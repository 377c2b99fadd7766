"""A check is a value: name, status, evidence and the fix. The same objects feed the notebook's table,
the run's summary.json, the HTML report and `mtlskit run`'s exit code, so no layer re-derives a verdict
from text another layer printed."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Status = Literal["pass", "warn", "fail"]
STATUSES: tuple[Status, ...] = ("pass", "warn", "fail")

# The MIME type under which a notebook publishes its checks; `mtlskit run` reads them back from the
# executed notebook, so the notebook itself is the record and no side file can go stale.
MIME = "application/vnd.mtlskit.core.checks+json"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    evidence: str
    fix: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"check {self.name!r}: status must be one of {STATUSES}, got {self.status!r}")

    def row(self) -> dict[str, str]:
        """What every output shows; a passing check's fix is dropped, since nobody should act on it."""
        return {**asdict(self), "fix": "" if self.status == "pass" else self.fix}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Check:
        return cls(str(row["name"]), row["status"], str(row.get("evidence", "")), str(row.get("fix", "")))


def verdict(checks: list[Check]) -> str:
    """One line for the top of a notebook's checks table."""
    failed_ = [c.name for c in checks if c.status == "fail"]
    warned = [c.name for c in checks if c.status == "warn"]
    if failed_:
        return f"FAIL: {', '.join(failed_)}"
    return f"PASS ({len(checks)} checks{', warnings: ' + ', '.join(warned) if warned else ''})"
