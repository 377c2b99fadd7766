"""The one import a runbook notebook needs: `from mtlskit import runbook`.

Nothing is defined here. Each name lives in the module of its concern, which is where to read it:

- `mtlskit.runner.step` — the step harness: `start`, `Step` (need, call, run, finish), `outcome_checks`,
  `publish`, and `StepFailed`, the failure `mtlskit run` counts as a failed check;
- `mtlskit.runner.tables` — the tables a notebook shows (`checks_frame`, `findings_frame`, `rows_frame`,
  `backends_frame`, `recent_entries`, `entries_view`: a long table bounded, the rest a click away);
- `mtlskit.runner.stepviews` — tables read from the live target through the step (`events_frame`, `dns_frame`,
  `gateway_conditions_frame`);
- `mtlskit.runner.stepchecks` — the checks of 10_ingress and 20_backend_service, and of the Gateway
  topology's gw10/gw20 (`conflict_checks`, `load_balancer_check`, `gateway_checks`);
- `mtlskit.runner.progress` — the Ingress, Gateway, managed-certificate and request-log waits with their
  progress bars;
- `mtlskit.core.checks` — the check value and its one-line `verdict`;
- `mtlskit.teach.design` — `design_diagram` and `other_topology_diagram`, the pictures of 00_design
  drawn from the params;
- `mtlskit.teach.byhand` — `by_hand`, each page's "how to check by hand" commands, with the params' names;
- `mtlskit.migrate.page` — `migration`, the split frontend's move to the Gateway, phase by phase;
- `mtlskit.change.enforce_page` — `enforcement` (c20: the readiness gate and the flip to REJECT_INVALID)
  and `break_glass` (c30: one step to ALLOW or detached, and its way back);
- `mtlskit.change.trust_page` — `trust_change` (c10: the next phase of a rotation or partner change,
  gated by its impact report) and `rollback_change` (c40: the state recorded before the last phase).

`mtlskit run` imports this module while its kernel starts, so every notebook finds the kit loaded.
"""

from __future__ import annotations

from mtlskit.change.enforce_page import break_glass, enforcement
from mtlskit.change.trust_page import rollback_change, trust_change
from mtlskit.core.checks import verdict
from mtlskit.migrate.page import migration
from mtlskit.runner.progress import wait_for_backends, wait_for_certificate, wait_for_gateway, wait_for_probes
from mtlskit.runner.step import Step, StepFailed, outcome_checks, publish, start
from mtlskit.runner.stepchecks import (
    backend_checks,
    conflict_checks,
    gateway_checks,
    ingress_checks,
    load_balancer_check,
)
from mtlskit.runner.stepviews import dns_frame, events_frame, gateway_conditions_frame
from mtlskit.runner.tables import (
    backends_frame,
    checks_frame,
    entries_view,
    findings_frame,
    recent_entries,
    rows_frame,
)
from mtlskit.teach.byhand import by_hand
from mtlskit.teach.design import design_diagram, other_topology_diagram

__all__ = [
    "Step",
    "StepFailed",
    "backend_checks",
    "backends_frame",
    "break_glass",
    "conflict_checks",
    "by_hand",
    "checks_frame",
    "design_diagram",
    "enforcement",
    "rollback_change",
    "trust_change",
    "entries_view",
    "other_topology_diagram",
    "dns_frame",
    "events_frame",
    "findings_frame",
    "gateway_checks",
    "gateway_conditions_frame",
    "ingress_checks",
    "load_balancer_check",
    "migration",
    "outcome_checks",
    "publish",
    "recent_entries",
    "rows_frame",
    "start",
    "verdict",
    "wait_for_backends",
    "wait_for_certificate",
    "wait_for_gateway",
    "wait_for_probes",
]
