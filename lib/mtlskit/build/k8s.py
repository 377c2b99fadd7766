"""The Kubernetes half of the split: Service (NEG), BackendConfig and the anchor Ingress.

Only an Ingress makes the GKE Ingress controller create the backend service, and only while it
exists does the controller keep applying BackendConfig changes to it. The anchor is hardened so
its own frontend exposes nothing: HTTP off, no TLS section, so no forwarding rule of its own.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mtlskit.build.plan import Change, changed_fields, decide
from mtlskit.cloud import ownership
from mtlskit.cloud.clients import Clients
from mtlskit.config import paths
from mtlskit.config.params import Params
from mtlskit.core.errors import IngressNotReady, NotFound
from mtlskit.core.poll import poll

BACKENDS_ANNOTATION = "ingress.kubernetes.io/backends"
BACKEND_CONFIG_API = ("cloud.google.com", "v1", "backendconfigs")  # group, version, plural
# Each kind the kit applies, with the `params.kubernetes` field that names its object.
KIND_PARAMS = {
    "Namespace": "namespace",
    "Service": "service",
    "BackendConfig": "backend_config",
    "Ingress": "ingress",
}


def kube_call(clients: Clients, verb: str, kind: str, params: Params, body: Any = None) -> Any:
    """One Kubernetes call (`read`, `create`, `patch`, `delete`) on the params' object of `kind`,
    through `Clients.call`, so failures are the kit's `ApiError`s. The client's methods differ in
    name and argument order by kind; this is the one place that knows how."""
    k, api = params.kubernetes, clients.kube
    name = getattr(k, KIND_PARAMS[kind])
    if kind == "BackendConfig":
        group, version, plural = BACKEND_CONFIG_API
        method = getattr(api.custom, f"{'get' if verb == 'read' else verb}_namespaced_custom_object")
        args: list[Any] = [group, version, k.namespace, plural] + ([] if verb == "create" else [name])
    else:
        owner = api.networking if kind == "Ingress" else api.core
        method = getattr(
            owner, f"{verb}_namespace" if kind == "Namespace" else f"{verb}_namespaced_{kind.lower()}"
        )
        args = ([] if verb == "create" else [name]) + ([] if kind == "Namespace" else [k.namespace])
    if body is not None:
        args.append(body)
    return clients.call(method, *args)


def manifests(params: Params) -> dict[str, dict[str, Any]]:
    """Service (NEG), BackendConfig and anchor Ingress, each carrying the stack's ownership labels."""
    k = params.kubernetes
    labels = ownership.kube_labels(params.stack)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": k.service,
            "namespace": k.namespace,
            "labels": labels,
            "annotations": {
                "cloud.google.com/neg": json.dumps({"ingress": True}),
                "cloud.google.com/backend-config": json.dumps({"default": k.backend_config}),
            },
        },
        "spec": {
            "type": "ClusterIP",
            "selector": {"app": k.app_label},
            "ports": [
                {"name": "http", "port": k.service_port, "targetPort": k.target_port, "protocol": "TCP"}
            ],
        },
    }
    backend_config = {
        "apiVersion": "cloud.google.com/v1",
        "kind": "BackendConfig",
        "metadata": {"name": k.backend_config, "namespace": k.namespace, "labels": labels},
        "spec": {
            "logging": {"enable": params.logging.enable, "sampleRate": params.logging.sample_rate},
            "customRequestHeaders": {"headers": list(params.mtls.custom_headers)},
        },
    }
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": k.ingress,
            "namespace": k.namespace,
            "labels": {**labels, "mtlskit/role": "anchor"},
            "annotations": {
                "kubernetes.io/ingress.class": "gce",
                # The anchor exists only so the controller owns and syncs the backend service;
                # it must not serve traffic itself.
                "kubernetes.io/ingress.allow-http": "false",
                "mtlskit/anchor": "true - deleting this Ingress makes GKE stop syncing the backend service",
            },
        },
        "spec": {"defaultBackend": {"service": {"name": k.service, "port": {"number": k.service_port}}}},
    }
    return {"Service": service, "BackendConfig": backend_config, "Ingress": ingress}


def read(clients: Clients, kind: str, params: Params) -> dict[str, Any] | None:
    """The params' object of `kind` as the API server has it (a plain dict), or None."""
    try:
        obj = kube_call(clients, "read", kind, params)
    except NotFound:
        return None
    return dict(clients.kube.api.sanitize_for_serialization(obj))


def kubectl_target(params: Params, namespaced: bool = True) -> str:
    """The flags that point a printed kubectl command at the namespace and cluster the kit uses.

    Without them a command pasted at 3 a.m. lands in whatever namespace and context the shell happens
    to have.
    """
    k = params.kubernetes
    flags = [f"-n {shlex.quote(k.namespace)}"] if namespaced else []
    if k.context:
        flags.append(f"--context={shlex.quote(k.context)}")
    if k.kubeconfig:
        flags.append(f"--kubeconfig={shlex.quote(k.kubeconfig)}")
    return " ".join(flags)


def manifest_file(params: Params, obj: dict[str, Any]) -> Path:
    """Write the exact manifest the kit applies to the stack's manifest directory; return its path.

    The printed `kubectl apply -f` then names a file that exists and holds what the kit sends, so the
    equivalent command runs as printed and `kubectl diff -f` works against it too.
    """
    filename = f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
    return paths.write_manifest(params.project, params.stack, filename, obj)


def _kubectl(params: Params, obj: dict[str, Any]) -> str:
    return f"kubectl apply -f {shlex.quote(str(manifest_file(params, obj)))} {kubectl_target(params)}"


def _kubectl_create_namespace(params: Params) -> str:
    command = f"kubectl create namespace {shlex.quote(params.kubernetes.namespace)}"
    return " ".join(filter(None, [command, kubectl_target(params, namespaced=False)]))


def plan_ingress(clients: Clients, params: Params) -> list[Change]:
    """Namespace, Service, BackendConfig and anchor Ingress: desired vs what the cluster has."""
    changes = []
    ns = params.kubernetes.namespace
    if read(clients, "Namespace", params) is None:
        changes.append(
            decide("Namespace", ns, {"metadata": {"name": ns}}, None, _kubectl_create_namespace(params))
        )
    for kind, desired in manifests(params).items():
        current = read(clients, kind, params)
        meta = desired["metadata"]
        # Only what the kit sets is compared: the API server and the controller add fields of their own.
        watched = {
            "metadata": {k: meta[k] for k in ("labels", "annotations") if k in meta},
            "spec": desired["spec"],
        }
        diff = None if current is None else changed_fields(watched, current)
        changes.append(decide(kind, meta["name"], desired, current, _kubectl(params, desired), diff))
    return changes


def apply_ingress(clients: Clients, params: Params, changes: list[Change]) -> list[Change]:
    """Execute a plan from `plan_ingress`; unchanged resources get no call at all."""
    ownership.may_apply(params, apply=True)
    for c in changes:
        if c.action != "no change":
            kube_call(clients, "create" if c.action == "create" else "patch", c.kind, params, c.desired)
    return changes


def read_anchor(clients: Clients, params: Params) -> dict[str, Any]:
    k = params.kubernetes
    ing = read(clients, "Ingress", params)
    if ing is None:
        raise IngressNotReady(
            f"Ingress {k.namespace}/{k.ingress} does not exist: apply it with notebook 10_ingress (apply=True)"
        )
    return ing


def backends_annotation(clients: Clients, params: Params) -> dict[str, str] | None:
    """Backend service name -> health, as the controller wrote it on the anchor; None until it has."""
    return backends_of(read_anchor(clients, params)) or None


def backends_of(ingress: dict[str, Any] | None) -> dict[str, str]:
    """The controller's `ingress.kubernetes.io/backends` map of an Ingress; empty when absent or garbled."""
    raw = (((ingress or {}).get("metadata") or {}).get("annotations") or {}).get(BACKENDS_ANNOTATION)
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def anchor_exposure(ingress: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The anchor's own frontend, if any: the forwarding rules the controller wrote on it and the
    addresses in its status. The anchor must have neither: it exists only so GKE keeps the backend
    service, and a frontend of its own would be a way in without mTLS."""
    annotations = ingress["metadata"].get("annotations") or {}
    rules = sorted(
        f"{k}={v}"
        for k, v in annotations.items()
        if k.endswith(("/forwarding-rule", "/https-forwarding-rule"))
    )
    lb = (ingress.get("status") or {}).get("loadBalancer") or {}
    ips = [
        str(i.get("ip") or i.get("hostname"))
        for i in lb.get("ingress") or []
        if i.get("ip") or i.get("hostname")
    ]
    return rules, ips


ANCHOR_FIX = (
    'set kubernetes.io/ingress.allow-http: "false" and remove spec.tls on the anchor (10_ingress with '
    "apply=True); the controller then deletes its frontend"
)


def wait_for_backends(
    clients: Clients,
    params: Params,
    timeout: float,  # the caller says how long: a notebook waits longer than a test
    on_progress: Callable[[float], None] | None = None,
) -> dict[str, str]:
    """Wait until the controller has written `ingress.kubernetes.io/backends` on the anchor Ingress.

    On GKE this takes minutes (NEGs, health checks); the annotation is the controller's own word
    that the backend service exists.
    """
    k = params.kubernetes
    waited = poll(
        lambda: backends_annotation(clients, params),
        lambda backends: backends is not None,
        timeout,
        every=0.2,
        growth=1.5,
        longest=5.0,
        on_read=(lambda _, elapsed: on_progress(elapsed)) if on_progress else None,
    )
    if waited.value is None:
        raise IngressNotReady(
            f"the GKE Ingress controller has not written {BACKENDS_ANNOTATION} on {k.namespace}/{k.ingress} "
            f"after {timeout:.0f}s; check the Ingress events (kubectl describe ingress {k.ingress} -n "
            f"{k.namespace})"
        )
    return waited.value


def ingress_events(clients: Clients, params: Params) -> list[dict[str, str]]:
    """The controller's events for the anchor Ingress, oldest first."""
    k = params.kubernetes
    events = clients.call(clients.kube.core.list_namespaced_event, k.namespace).items
    rows = [
        {
            "time": str(e.last_timestamp or e.first_timestamp or ""),
            "type": e.type or "",
            "reason": e.reason or "",
            "message": e.message or "",
        }
        for e in events
        if e.involved_object and e.involved_object.kind == "Ingress" and e.involved_object.name == k.ingress
    ]
    return sorted(rows, key=lambda r: r["time"])
