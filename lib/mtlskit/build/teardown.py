"""Remove what the kit built, in reverse dependency order, and nothing else.

Deletions are planned from what exists now, so a second teardown plans nothing and sends no
mutating call. A resource is deleted only when it carries this stack's ownership marker
(`mtlskit.cloud.ownership`); the rest are listed as kept. The backend service and everything Kubernetes
owns are never touched; the anchor Ingress goes only when asked explicitly, because deleting it
makes GKE stop syncing the backend service.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mtlskit.build import k8s, trust
from mtlskit.build.frontend import KINDS
from mtlskit.build.plan import Change
from mtlskit.cloud import ownership
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core.errors import NotFound

NOT_OURS = ownership.NOT_OURS


def _row(kind: str, name: str, owned: bool, command: str, current: Any = None, warning: str = "") -> Change:
    """A teardown row: delete what is ours (with the command that does it by hand), keep the rest."""
    if not owned:
        return Change(kind, name, "keep", [NOT_OURS], current=current)
    return Change(kind, name, "delete", [warning] if warning else [], command, current=current)


def plan_teardown(clients: Clients, params: Params, delete_anchor: bool = False) -> list[Change]:
    """Deletions, in the order they must happen, of what exists now. Resources not marked as this
    stack's are listed as kept."""
    changes: list[Change] = []
    for kind in reversed(KINDS.values()):
        name = kind.resource_name(params)
        current = kind.get(clients, name)
        if current is not None:
            command = f"gcloud compute {kind.gcloud_group} delete {name} --global --project={params.project} --quiet"
            owned = ownership.owns_compute(current.description, params.stack)
            changes.append(_row(kind.name, name, owned, command, current))
    for tkind in reversed(trust.TRUST_KINDS.values()):  # the policy refers to the trust config
        current = tkind.get(clients, tkind.full_name(clients, params))
        if current is not None:
            name = tkind.resource_id(params)
            command = f"gcloud {tkind.gcloud_group} delete {name} --location=global --project={params.project} --quiet"
            owned = ownership.owns_labelled(current.labels, params.stack)
            changes.append(_row(tkind.name, name, owned, command, current))
    if delete_anchor:
        changes += _anchor_teardown(clients, params)
    return changes


def _anchor_teardown(clients: Clients, params: Params) -> list[Change]:
    """The anchor Ingress, planned from what the cluster has: nothing once it is gone, and kept when it
    is not the kit's (someone else's Ingress of the same name must survive a teardown)."""
    anchor = k8s.read(clients, "Ingress", params)
    if anchor is None:
        return []
    name = params.kubernetes.ingress
    owned = ownership.owns_kube(anchor["metadata"].get("labels"), params.stack)
    command = f"kubectl delete ingress {name} {k8s.kubectl_target(params)}"
    warning = "WARNING: GKE stops syncing the backend service and garbage-collects it"
    return [_row("Ingress", name, owned, command, warning=warning)]


def _deleter(clients: Clients, params: Params, change: Change) -> Callable[[], Any]:
    """The call that deletes the row's resource; returns an operation to wait for, or None."""
    if change.kind in KINDS:
        return lambda: KINDS[change.kind].delete(clients, change.name)
    if change.kind in trust.TRUST_KINDS:
        tkind = trust.TRUST_KINDS[change.kind]
        return lambda: tkind.delete(clients, tkind.full_name(clients, params))
    if change.kind == "Ingress":

        def delete_ingress() -> None:  # Kubernetes deletes at once; there is no operation to wait for
            k8s.kube_call(clients, "delete", "Ingress", params)

        return delete_ingress
    raise ValueError(f"teardown does not know how to delete a {change.kind}")


def apply_teardown(
    clients: Clients,
    params: Params,
    changes: list[Change],
    delete_anchor: bool = False,
) -> list[Change]:
    """Execute a plan from `plan_teardown`; only its `delete` rows cause calls. A resource that is
    already gone (a re-run after a partial teardown, or someone else deleted it) is not an error."""
    ownership.may_apply(params, apply=True)
    for c in changes:
        if c.action != "delete":
            continue
        try:
            operation = _deleter(clients, params, c)()
        except NotFound:
            continue
        if operation is not None:
            clients.wait(operation, f"delete {c.kind} {c.name}")
    return changes
