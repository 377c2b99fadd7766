"""Remove what the kit built, in reverse dependency order, and nothing else.

A resource is deleted only when it carries the kit's ownership marker for this stack. The backend
service and everything Kubernetes owns are never touched; the anchor Ingress goes only when asked
explicitly, because deleting it makes GKE stop syncing the backend service.
"""

from __future__ import annotations

from google.api_core import exceptions as gexc
from kubernetes.client.exceptions import ApiException

from mtlskit import k8s, trust
from mtlskit.clients import Clients, wait_for_compute
from mtlskit.frontend import KINDS, ORDER, resource_names
from mtlskit.params import Params
from mtlskit.plan import Change, is_owned


def plan_teardown(clients: Clients, params: Params, delete_anchor: bool = False) -> list[Change]:
    """Deletions, in the order they must happen. Resources not marked as ours are listed as kept."""
    changes: list[Change] = []
    names = resource_names(params)
    for kind_name in reversed(ORDER):
        kind = KINDS[kind_name]
        client = getattr(clients.compute, kind.client)
        try:
            current = client.get(
                project=clients.project, **{kind.name_arg: names[kind_name]}, retry=clients.retry
            )
        except gexc.NotFound:
            continue
        owned = is_owned(current.description, params.stack)
        changes.append(
            Change(
                kind_name,
                names[kind_name],
                "delete" if owned else "keep",
                [] if owned else ["not created by this stack (no ownership marker)"],
                f"gcloud compute {kind.gcloud_group} delete {names[kind_name]} --global "
                f"--project={params.project} --quiet"
                if owned
                else "",
                current=current,
            )
        )
    for kind_name, getter, name, group in (
        (
            "ServerTlsPolicy",
            clients.network_security.get_server_tls_policy,
            trust.policy_name(clients, params),
            "network-security server-tls-policies",
        ),
        (
            "TrustConfig",
            clients.certificate_manager.get_trust_config,
            trust.trust_config_name(clients, params),
            "certificate-manager trust-configs",
        ),
    ):
        try:
            current = getter(name=name, retry=clients.retry)
        except gexc.NotFound:
            continue
        owned = current.labels.get("mtlskit-stack") == params.stack
        short = name.rsplit("/", 1)[-1]
        changes.append(
            Change(
                kind_name,
                short,
                "delete" if owned else "keep",
                [] if owned else ["not created by this stack (no ownership label)"],
                f"gcloud {group} delete {short} --location=global --project={params.project} --quiet"
                if owned
                else "",
                current=current,
            )
        )
    if delete_anchor:
        changes += _anchor_teardown(clients, params)
    return changes


def _anchor_teardown(clients: Clients, params: Params) -> list[Change]:
    """The anchor Ingress, planned from what the cluster has: nothing once it is gone, and kept when it
    is not the kit's (someone else's Ingress of the same name must survive a teardown)."""
    k = params.kubernetes
    try:
        anchor = k8s.read_anchor(clients, params)
    except k8s.IngressNotReady:
        return []
    labels = anchor["metadata"].get("labels") or {}
    owned = k8s.is_kit_object(labels, params.stack)
    return [
        Change(
            "Ingress",
            k.ingress,
            "delete" if owned else "keep",
            ["WARNING: GKE stops syncing the backend service and garbage-collects it"]
            if owned
            else ["not created by this stack (no mtlskit labels)"],
            f"kubectl delete ingress {k.ingress} {k8s.kubectl_target(params)}" if owned else "",
        )
    ]


def apply_teardown(
    clients: Clients,
    params: Params,
    changes: list[Change],
    delete_anchor: bool = False,
) -> list[Change]:
    """Execute a plan from `plan_teardown`; only its `delete` rows cause calls."""
    for c in changes:
        if c.action != "delete":
            continue
        try:
            if c.kind in KINDS:
                kind = KINDS[c.kind]
                client = getattr(clients.compute, kind.client)
                op = client.delete(project=clients.project, **{kind.name_arg: c.name}, retry=clients.retry)
                wait_for_compute(clients, op, f"delete {c.kind} {c.name}")
            elif c.kind == "ServerTlsPolicy":
                op = clients.network_security.delete_server_tls_policy(
                    name=c.current.name, retry=clients.retry
                )
                op.result(timeout=600, retry=clients.retry)
            elif c.kind == "TrustConfig":
                op = clients.certificate_manager.delete_trust_config(name=c.current.name, retry=clients.retry)
                op.result(timeout=600, retry=clients.retry)
            elif c.kind == "Ingress":
                clients.kube.networking.delete_namespaced_ingress(c.name, params.kubernetes.namespace)
        except gexc.NotFound:
            pass  # already gone: a re-run after a partial teardown
        except ApiException as exc:
            if exc.status != 404:
                raise
    return changes
