"""Long waits a reader watches: a progress bar around the library's own wait.

The library's waits take a progress callback and know nothing of bars; this module is the one place
that draws them for a notebook, through `bars.bar` (a widget in JupyterLab, a text line headless).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mtlskit.build import frontend, gateway_status, k8s
from mtlskit.build.lbnames import LoadBalancerNames
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core.bars import bar, set_count
from mtlskit.verify import logs
from mtlskit.verify.probe import ProbeResult

if TYPE_CHECKING:
    from mtlskit.runner.step import Step

# On GKE the controller needs minutes (NEGs, health checks) before it names the backend service.
INGRESS_TIMEOUT_SECONDS = 900.0


def wait_for_backends(step: Step, timeout: float = INGRESS_TIMEOUT_SECONDS) -> dict[str, str]:
    """The controller's backends annotation on the anchor Ingress, with the seconds waited so far."""
    if step.need(k8s.read_anchor) is None:
        return {}
    with bar("waiting for the GKE Ingress controller", unit="s") as shown:

        def progress(elapsed: float) -> None:
            shown.set_postfix(elapsed=f"{elapsed:.0f}s")

        return dict(step.need(k8s.wait_for_backends, timeout, progress) or {})


def wait_for_gateway(step: Step, timeout: float | None = None) -> gateway_status.GatewayState:
    """The Gateway once Accepted, Programmed and addressed (or the last read when time ran out), with
    its conditions shown while waiting."""
    timeout = gateway_status.gateway_timeout(step.params) if timeout is None else timeout
    with bar(f"waiting for the Gateway controller ({step.params.gateway.name})", unit="s") as shown:

        def progress(state: gateway_status.GatewayState, elapsed: float) -> None:
            shown.set_postfix({"state": state.summary(), "elapsed": f"{elapsed:.0f}s"})

        state = step.need(gateway_status.wait_for_gateway, timeout, progress)
    return state if state is not None else gateway_status.GatewayState(False)


def wait_for_certificate(step: Step, timeout: float | None = None) -> str:
    """The managed certificate's status after waiting out PROVISIONING (bounded): the data plane serves
    no certificate before ACTIVE, so probing earlier would only measure the wait."""
    timeout = frontend.certificate_timeout(step.params) if timeout is None else timeout
    name = step.params.frontend.certificate
    with bar(f"waiting for managed certificate {name}", unit="s") as shown:

        def progress(status: str, elapsed: float) -> None:
            shown.set_postfix({"status": status, "elapsed": f"{elapsed:.0f}s"})  # in this order

        status: str = step.call(frontend.wait_for_certificate, timeout, progress)
    return status


def wait_for_probes(
    step: Step, probes: list[ProbeResult], timeout: float = 120.0, names: LoadBalancerNames | None = None
) -> logs.Pull:
    """`wait_for_probe_entries` with a progress bar, through the step's API-error handling. With a
    sampled log the bar may stop short of its total: the wait then ends once ingestion caught up.
    `names` is the load balancer the step resolved; when it could not (a Gateway not Programmed: the
    step is blocked and says why), nothing is read."""
    if step.blocked:
        return logs.Pull([], logs.default_since(step.params, probes), names=names)
    with bar(
        "probes found in the request logs",
        total=len(probes),
        unit="probe",
        bar_format=f"{{desc}}: {{n}}/{{total}} |{{bar:20}}| waited {{elapsed}} of at most {timeout:.0f}s",
    ) as shown:

        def progress(found: int, total: int, elapsed: float) -> None:
            set_count(shown, found, total)

        def wait_for_probe_entries(clients: Clients, params: Params) -> logs.Pull:
            return logs.wait_for_probe_entries(
                clients, params, probes, timeout, on_progress=progress, names=names
            )

        pull: logs.Pull = step.call(wait_for_probe_entries)
    return pull
