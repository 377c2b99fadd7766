"""The Gateway as the migration sees it: does it exist, is it programmed, on which IP and behind which
forwarding rule, and the calls that build and remove it.

Reading goes through verification's own resolver (`build.lbnames`: the Gateway's conditions,
status.addresses and the controller's annotations), so the migration calls the Gateway ready exactly
when 50_verify could find its load balancer, whoever built it. Building and removing are the Gateway topology's own build and teardown,
handed in as `GatewayOps` so a test can count the calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mtlskit.build import gateway, gateway_teardown, lbnames
from mtlskit.build import gateway_kube as kube
from mtlskit.build.plan import Change
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core.errors import PrerequisiteMissing


@dataclass(frozen=True)
class GatewayView:
    """What the cluster says about the params' Gateway."""

    exists: bool
    programmed: bool = False  # Programmed, and annotated with its load balancer
    ip: str | None = None
    forwarding_rule: str | None = None  # the controller's rule, for its request logs
    reason: str = ""  # why it is not ready: the Gateway's conditions as `kubectl describe` shows them

    @property
    def ready(self) -> bool:
        return self.exists and self.programmed and bool(self.ip)


def view_of(params: Params, obj: dict[str, Any] | None) -> GatewayView:
    """A Gateway object (a plain dict, as the API returns it) as the migration reads it: ready once
    verification could name its load balancer (`lbnames.readiness_problem`) and it has an address."""
    if obj is None:
        return GatewayView(False, reason=lbnames.readiness_problem(params, None))
    problem = lbnames.readiness_problem(params, obj)
    rules = lbnames.annotation_paths(obj, "forwarding_rules")
    ip = lbnames.gateway_ip(obj) or None
    shown = "; ".join(lbnames.conditions_summary(obj)) or "no conditions yet (no controller has seen it)"
    return GatewayView(True, not problem, ip, rules[0].name if rules else None, shown if problem else "")


def read_gateway(clients: Clients, params: Params) -> GatewayView:
    """The params' Gateway as the cluster has it now."""
    return view_of(params, lbnames.read_gateway(clients, params))


@dataclass(frozen=True)
class GatewayOps:
    """How the migration builds, reads and removes the Gateway side. Each call is idempotent."""

    build: Callable[[Clients, Params], Any]  # plan and apply the Gateway topology's objects
    delete: Callable[[Clients, Params], Any]  # remove what the kit applied for the Gateway
    read: Callable[[Clients, Params], GatewayView] = read_gateway


def build_gateway(clients: Clients, params: Params) -> list[Change]:
    """The Gateway topology's build beside the split frontend: gw10's prerequisites (the Service it
    shares, the CA ConfigMap; the SSL policy and certificate already exist), then gw20's objects.
    Returns the changes made; a server-side-apply conflict is refused, naming the object."""
    done = gateway.apply_prerequisites(clients, params, gateway.plan_prerequisites(clients, params))
    done += gateway.apply_gateway(clients, params, gateway.plan_gateway(clients, params))
    conflicts = [f"{c.kind} {c.name}: {'; '.join(kube.conflicted(c))}" for c in done if kube.conflicted(c)]
    if conflicts:
        raise PrerequisiteMissing(
            "the Gateway's objects were not all applied, another field manager owns fields the kit would "
            f"change: {', '.join(conflicts)}; resolve them as gw10/gw20 say, then run the migration again"
        )
    return [c for c in done if c.action not in ("no change", "keep")]


def delete_gateway(clients: Clients, params: Params) -> list[Change]:
    """The way back before retirement: the Gateway and the objects only it uses (HTTPRoute, policies,
    CA ConfigMap), never the Service or the Compute resources the split frontend shares."""
    rows = [
        c for c in gateway_teardown.plan_gateway_teardown(clients, params) if c.kind in gateway_teardown.ORDER
    ]
    return gateway_teardown.apply_gateway_teardown(clients, params, rows)


def gateway_ops() -> GatewayOps:
    return GatewayOps(build_gateway, delete_gateway)
