"""The Gateway as the migration sees it: does it exist, is it programmed, on which IP and behind which
forwarding rule, and the calls that build and remove it.

Reading is done here from the Gateway object itself (status.addresses, the Programmed condition, the
controller's `networking.gke.io/forwarding-rules` annotation), so the migration's state never depends
on how the Gateway was built. Building and removing are the Gateway topology's own build and teardown,
handed in as `GatewayOps` so a test can count the calls.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core.errors import NotFound
from mtlskit.rules import gateway as gw

PLURAL = "gateways"


@dataclass(frozen=True)
class GatewayView:
    """What the cluster says about the params' Gateway."""

    exists: bool
    programmed: bool = False
    ip: str | None = None
    forwarding_rule: str | None = None  # the controller's rule, for its request logs
    reason: str = ""  # why it is not programmed, in the controller's words

    @property
    def ready(self) -> bool:
        return self.exists and self.programmed and bool(self.ip)


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return dict(c)
    return None


def annotation_names(value: str | None) -> list[str]:
    """Resource names from one of the controller's annotations: a JSON list or a comma list of paths
    (`projects/p/global/forwardingRules/gkegw1-...`), last path segment each."""
    if not value:
        return []
    try:
        items = json.loads(value)
    except ValueError:
        items = value.split(",")
    if isinstance(items, str):
        items = [items]
    return [str(i).strip().rstrip("/").rsplit("/", 1)[-1] for i in items if str(i).strip()]


def view_of(obj: dict[str, Any] | None) -> GatewayView:
    """A Gateway object (a plain dict, as the API returns it) as the migration reads it."""
    if obj is None:
        return GatewayView(False)
    programmed = _condition(obj, "Programmed")
    addresses = [a.get("value") for a in (obj.get("status") or {}).get("addresses") or [] if a.get("value")]
    rules = annotation_names(
        (obj.get("metadata") or {}).get("annotations", {}).get(gw.ANNOTATIONS["forwarding_rules"])
    )
    is_programmed = bool(programmed and programmed.get("status") == "True")
    reason = ""
    if not is_programmed:
        reason = (
            f"{programmed.get('reason', '')}: {programmed.get('message', '')}".strip(": ")
            if programmed
            else "no Programmed condition yet"
        )
    return GatewayView(
        True, is_programmed, addresses[0] if addresses else None, rules[0] if rules else None, reason
    )


def read_gateway(clients: Clients, params: Params) -> GatewayView:
    """The params' Gateway as the cluster has it now."""
    api = clients.kube.custom
    try:
        obj = clients.call(
            api.get_namespaced_custom_object,
            gw.GROUP,
            gw.VERSION,
            params.gateway_namespace,
            PLURAL,
            params.gateway.name,
        )
    except NotFound:
        return GatewayView(False)
    return view_of(dict(obj))


@dataclass(frozen=True)
class GatewayOps:
    """How the migration builds, reads and removes the Gateway side. Each call is idempotent."""

    build: Callable[[Clients, Params], Any]  # plan and apply the Gateway topology's objects
    delete: Callable[[Clients, Params], Any]  # remove what the kit applied for the Gateway
    read: Callable[[Clients, Params], GatewayView] = read_gateway
