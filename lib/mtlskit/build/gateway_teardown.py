"""Teardown of the Gateway topology: remove what the kit applied for this stack, and nothing else.

The Gateway goes first, and the teardown waits until it is gone and the controller has deleted the
`gkegw1-` load-balancer resources it annotated: until then its target HTTPS proxy still uses the kit's
SSL policy and certificate, which Compute refuses to delete while in use. Then the HTTPRoute, the
policies and the CA ConfigMap, then the kit's Compute resources. As in the split teardown, only
objects carrying this stack's ownership marker are deleted (others of the same name are listed as
kept), the plan is read from what exists (a second run plans nothing), and the Service and the
namespaces are never touched: a split stack or the app may still use them.
"""

from __future__ import annotations

from typing import Any

from mtlskit.build import frontend, gateway, k8s, lbnames
from mtlskit.build import gateway_kube as kube
from mtlskit.build.plan import Change
from mtlskit.cloud import ownership
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core.errors import NotFound, OperationFailed
from mtlskit.core.poll import poll
from mtlskit.rules import gateway as gw

# Gateway first (the controller then deletes the load balancer), the rest after it is gone.
ORDER = ("Gateway", "HTTPRoute", "GCPGatewayPolicy", "GCPBackendPolicy", "HealthCheckPolicy", "ConfigMap")
# The controller's resources whose deletion frees the kit's SSL policy, certificate and address.
CONTROLLER_KINDS = {
    "forwarding_rules": "ForwardingRule",
    "target_https_proxies": "TargetHttpsProxy",
    "url_maps": "UrlMap",
    "addresses": "Address",
}
GATEWAY_GONE_TIMEOUT_SECONDS = 1200.0


def _row(kind: str, name: str, owned: bool, command: str, current: Any = None) -> Change:
    if not owned:
        return Change(kind, name, "keep", [ownership.NOT_OURS], current=current)
    return Change(kind, name, "delete", [], command, current=current)


def plan_gateway_teardown(clients: Clients, params: Params) -> list[Change]:
    """Deletions, in order, of what exists now and carries this stack's marker."""
    gateway.require_gateway_topology(params)
    objects = gateway.manifests(params)
    changes = []
    target = " ".join(f for f in k8s.kubectl_target(params, namespaced=False).split(" ") if f)
    for kind in ORDER:
        meta = objects[kind]["metadata"]
        current = kube.read(clients, kube.KUBE_KINDS[kind], meta["namespace"], meta["name"])
        if current is None:
            continue
        owned = ownership.owns_kube((current.get("metadata") or {}).get("labels"), params.stack)
        command = f"kubectl delete {kind.lower()} {meta['name']} -n {meta['namespace']} {target}".strip()
        changes.append(_row(kind, meta["name"], owned, command, current))
    for kind_name in reversed(frontend.gateway_kinds(params)):
        kind = frontend.KINDS[kind_name]
        name = kind.resource_name(params)
        current = kind.get(clients, name)
        if current is not None:
            command = f"gcloud compute {kind.gcloud_group} delete {name} --global --project={params.project} --quiet"
            changes.append(
                _row(
                    kind_name,
                    name,
                    ownership.owns_compute(current.description, params.stack),
                    command,
                    current,
                )
            )
    return changes


def controller_resources(clients: Clients, annotated: dict[str, list[str]]) -> list[str]:
    """The controller-named (`gkegw1-`) resources of `annotated` (annotation key -> names) that still
    exist in Compute."""
    left = []
    for key, names in annotated.items():
        kind = frontend.KINDS[CONTROLLER_KINDS[key]]
        for name in names:
            if name.startswith(gw.NAME_PREFIX) and kind.get(clients, name) is not None:
                left.append(f"{kind.name} {name}")
    return left


def annotated_resources(obj: dict[str, Any]) -> dict[str, list[str]]:
    """What the Gateway's annotations name of the resources that hold the kit's on the load balancer."""
    return {key: [p.name for p in lbnames.annotation_paths(obj, key)] for key in CONTROLLER_KINDS}


def wait_gateway_gone(
    clients: Clients, params: Params, annotated: dict[str, list[str]], timeout: float
) -> list[str]:
    """Wait until the Gateway object is gone (its finalizer released) and none of its annotated
    controller resources exists; returns what is left (empty when done)."""

    def left() -> list[str]:
        still = ["Gateway"] if gateway.read_object(clients, params, "Gateway") is not None else []
        return still + controller_resources(clients, annotated)

    return poll(left, lambda rest: not rest, timeout, every=0.2, growth=1.5, longest=10.0).value


def apply_gateway_teardown(
    clients: Clients, params: Params, changes: list[Change], timeout: float = GATEWAY_GONE_TIMEOUT_SECONDS
) -> list[Change]:
    """Execute a plan from `plan_gateway_teardown`: only `delete` rows cause calls; an object already
    gone is not an error."""
    ownership.may_apply(params, apply=True)
    objects = gateway.manifests(params)
    for c in changes:
        if c.action != "delete":
            continue
        if c.kind in kube.KUBE_KINDS:
            meta = objects[c.kind]["metadata"]
            # what the controller annotated last, read before the object goes
            latest = (
                (gateway.read_object(clients, params, "Gateway") or c.current)
                if c.kind == "Gateway"
                else None
            )
            kube.delete(clients, kube.KUBE_KINDS[c.kind], meta["namespace"], meta["name"])
            if latest is not None:
                rest = wait_gateway_gone(clients, params, annotated_resources(latest), timeout)
                if rest:
                    raise OperationFailed(
                        f"delete Gateway {c.name}",
                        f"{params.gateway_namespace}/{c.name}",
                        None,
                        f"the controller has not removed {', '.join(rest)} after {timeout:.0f}s; read "
                        f"kubectl describe gateway {c.name} -n {params.gateway_namespace}",
                        None,
                    )
            continue
        try:
            operation = frontend.KINDS[c.kind].delete(clients, c.name)
        except NotFound:
            continue
        clients.wait(operation, f"delete {c.kind} {c.name}")
    return changes
