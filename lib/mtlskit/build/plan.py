"""Plans: what a step would change, as data, before anything changes.

A plan is a list of `Change`s. Notebooks show it as a table; `apply` only ever executes a plan that
was computed from the current state, so a second apply of the same params plans "no change"
everywhere and sends no mutating call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Action = Literal["create", "update", "no change", "delete", "keep"]


@dataclass
class Change:
    kind: str
    name: str
    action: Action
    fields: list[str] = field(default_factory=list)
    gcloud: str = ""
    desired: Any = field(default=None, repr=False)
    current: Any = field(default=None, repr=False)

    def row(self) -> dict[str, str]:
        return {
            "resource": self.kind,
            "name": self.name,
            "action": self.action,
            "changed fields": ", ".join(self.fields),
            "equivalent command": self.gcloud,
        }


def decide(
    kind: str, name: str, desired: Any, current: Any, gcloud: str, diff: list[str] | None = None
) -> Change:
    """One planned resource: create when it is missing, update when a field differs, else no change.

    `diff` overrides the generic comparison for resources whose API shape differs from the desired one.
    """
    if current is None:
        return Change(kind, name, "create", gcloud=gcloud, desired=desired)
    fields = changed_fields(desired, current) if diff is None else diff
    return Change(
        kind, name, "update" if fields else "no change", fields, gcloud if fields else "", desired, current
    )


def changed_fields(desired: Any, current: Any, prefix: str = "") -> list[str]:
    """Paths where `current` does not already hold what `desired` asks for (extra keys are ignored)."""
    if isinstance(desired, dict) and isinstance(current, dict):
        out: list[str] = []
        for key, value in desired.items():
            out += changed_fields(value, current.get(key), f"{prefix}.{key}" if prefix else key)
        return out
    return [] if desired == current else [prefix or "(value)"]


def summary(changes: list[Change]) -> str:
    counts = {a: sum(1 for c in changes if c.action == a) for a in ("create", "update", "no change")}
    if counts["create"] == counts["update"] == 0:
        return f"no change: all {len(changes)} resources already match the params"
    return f"{counts['create']} to create, {counts['update']} to update, {counts['no change']} unchanged"


def table(changes: list[Change]) -> list[dict[str, str]]:
    return [c.row() for c in changes]
