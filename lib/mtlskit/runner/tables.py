"""Every table a runbook notebook shows, as a pandas DataFrame.

The library returns data (checks, plans, findings, resources with `rows()`); this module is where
that data becomes what the reader sees, so column names and orders are chosen once and every notebook
shows the same kind of result the same way.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import pandas as pd

from mtlskit.build import plan
from mtlskit.core.checks import Check

CHECK_COLUMNS = ["name", "status", "evidence", "fix"]
FINDING_COLUMNS = ["severity", "role", "file", "rule", "outcome", "detail", "fix"]
EVENT_COLUMNS = ["time", "type", "reason", "message"]


def checks_frame(checks: list[Check]) -> pd.DataFrame:
    """One row per check, in the order the step decided them."""
    return pd.DataFrame([c.row() for c in checks], columns=CHECK_COLUMNS)


def findings_frame(findings: list[Any]) -> pd.DataFrame:
    """The certificate lint's findings, severity first so a failing rule is read before its detail."""
    return pd.DataFrame([f.row() for f in findings], columns=FINDING_COLUMNS)


def skipped_frame(reason: str | None) -> pd.DataFrame:
    """What a cell shows instead of its result when an earlier step is missing."""
    return pd.DataFrame([{"skipped": reason or "prerequisite missing (see the checks below)"}])


def rows_frame(obj: Any) -> pd.DataFrame:
    """A resource the library described (anything with `rows()`), or why it could not be read."""
    if obj is None:
        return skipped_frame(None)
    return pd.DataFrame(obj.rows())


def backends_frame(backends: dict[str, str]) -> pd.DataFrame:
    """The backend services the controller named on the anchor Ingress, with their health."""
    if not backends:
        return skipped_frame(None)
    return pd.DataFrame([{"backend service": k, "health": v} for k, v in backends.items()])


def recent_entries(frame: pd.DataFrame, n: int = 20) -> pd.DataFrame:
    """The last `n` request-log rows, blanks for what an entry does not carry (a refused handshake has
    no URL or backend), and a caption-worthy index: the row's position in the whole pull."""
    recent = frame.tail(n).astype(object)  # typed columns (booleans) cannot hold a blank
    return recent.where(recent.notna(), "").rename_axis(f"entry (last {min(n, len(frame))} of {len(frame)})")


# Rows the folded full table shows in the notebook; beyond that the page would grow by megabytes and the
# variable is the way to the rest.
FOLDED_ROWS = 2000


@dataclass(frozen=True, eq=False)
class BoundedTable:
    """A long table shown bounded: its last rows, the whole table one click away (a folded section
    under them) and one variable away (`variable`, named in the caption). A first-time reader sees a
    screenful instead of thousands of rows, and loses nothing."""

    shown: pd.DataFrame
    full: pd.DataFrame
    variable: str

    def caption(self) -> str:
        return (
            f"{len(self.shown)} of {len(self.full)} rows shown; all of them: the variable "
            f"`{self.variable}` (a pandas DataFrame)"
        )

    def _repr_html_(self) -> str:
        folded = self.full.tail(FOLDED_ROWS).astype(object)  # the newest, as the rows shown above
        folded = folded.where(folded.notna(), "")
        more = f" (the last {FOLDED_ROWS})" if len(self.full) > FOLDED_ROWS else ""
        return (
            f"{self.shown.to_html()}"
            f"<p>{html.escape(self.caption())}</p>"
            f"<details><summary>show all {len(self.full)} rows{more}</summary>"
            f'<div style="max-height: 32em; overflow: auto">{folded.to_html()}</div></details>'
        )

    def __repr__(self) -> str:
        return f"{self.shown.to_string()}\n{self.caption()}"


def entries_view(frame: pd.DataFrame, variable: str = "frame", n: int = 20) -> BoundedTable:
    """The request-log table as a notebook shows it: the last `n` entries, all of them folded below
    and in `variable` (the name the notebook keeps the whole table under)."""
    return BoundedTable(recent_entries(frame, n), frame, variable)


def plan_frame(changes: list[plan.Change], after: list[plan.Change] | None = None) -> pd.DataFrame:
    """A plan with its equivalent commands. `after` is the re-plan once applied: each row then says
    what is left of it ("no change" when the apply did its job, "gone" for a deleted resource)."""
    if not changes:
        return pd.DataFrame([{"plan": "nothing to change: no resource of this step needs a call"}])
    frame = pd.DataFrame(plan.table(changes))
    if after is None:
        return frame.assign(applied="no (apply=False)")
    now = {(c.kind, c.name): c.action for c in after}
    return frame.assign(
        applied="yes", **{"after apply": [now.get((c.kind, c.name), "gone") for c in changes]}
    )
