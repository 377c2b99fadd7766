"""The one import a runbook notebook needs: `from mtlskit import runbook`.

Nothing is defined here. Each name lives in the module of its concern, which is where to read it:

- `mtlskit.step` — the step harness: `start`, `Step` (need, call, run, finish), `outcome_checks`,
  `publish`, and `StepFailed`, the failure `mtlskit run` counts as a failed check;
- `mtlskit.tables` — every table a notebook shows (`checks_frame`, `findings_frame`, `rows_frame`,
  `events_frame`, `dns_frame`, `backends_frame`, `recent_entries`);
- `mtlskit.stepchecks` — the checks of 10_ingress and 20_backend_service;
- `mtlskit.progress` — the Ingress and managed-certificate waits with their progress bars;
- `mtlskit.checks` — the check value and its one-line `verdict`;
- `mtlskit.diagram` — `design_diagram`, the picture of 00_design drawn from the params.

`mtlskit run` imports this module while its kernel starts, so every notebook finds the kit loaded.
"""

from __future__ import annotations

from mtlskit.checks import verdict
from mtlskit.diagram import design_diagram
from mtlskit.progress import wait_for_backends, wait_for_certificate
from mtlskit.step import Step, StepFailed, outcome_checks, publish, start
from mtlskit.stepchecks import backend_checks, ingress_checks
from mtlskit.tables import (
    backends_frame,
    checks_frame,
    dns_frame,
    events_frame,
    findings_frame,
    recent_entries,
    rows_frame,
)

__all__ = [
    "Step",
    "StepFailed",
    "backend_checks",
    "backends_frame",
    "checks_frame",
    "design_diagram",
    "dns_frame",
    "events_frame",
    "findings_frame",
    "ingress_checks",
    "outcome_checks",
    "publish",
    "recent_entries",
    "rows_frame",
    "start",
    "verdict",
    "wait_for_backends",
    "wait_for_certificate",
]
