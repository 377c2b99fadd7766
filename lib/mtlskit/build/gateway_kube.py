"""Server-side apply of the Gateway topology's Kubernetes objects, under the kit's field manager.

The split topology creates and patches its three objects; the Gateway topology shares its objects
with others (the Service with a live split stack during a migration, the Gateway with the controller
that writes its status and annotations), so it applies with server-side apply: the API server
records which manager set which field, a field the kit stops applying is removed, and a field
another manager owns is a conflict the kit reports instead of overwriting (`force=False`).

One table (`KUBE_KINDS`) says where each kind lives in the API; read, apply and delete go through it
and through `Clients.call`, so failures are the kit's `ApiError`s.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mtlskit.build.plan import Change, decide
from mtlskit.cloud import ownership
from mtlskit.cloud.clients import Clients
from mtlskit.core.errors import Conflict, NotFound
from mtlskit.rules import gateway as gw

APPLY_CONTENT_TYPE = "application/apply-patch+yaml"


@dataclass(frozen=True)
class KubeKind:
    """Where one kind lives in the Kubernetes API."""

    kind: str
    group: str  # "" for the core group
    version: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


_KINDS = (
    KubeKind("Namespace", "", "v1", "namespaces", namespaced=False),
    KubeKind("Service", "", "v1", "services"),
    KubeKind("ConfigMap", "", "v1", "configmaps"),
    KubeKind("Gateway", gw.GROUP, gw.VERSION, "gateways"),
    KubeKind("HTTPRoute", gw.GROUP, gw.VERSION, "httproutes"),
    KubeKind("GCPGatewayPolicy", gw.POLICY_GROUP, gw.POLICY_VERSION, "gcpgatewaypolicies"),
    KubeKind("GCPBackendPolicy", gw.POLICY_GROUP, gw.POLICY_VERSION, "gcpbackendpolicies"),
    KubeKind("HealthCheckPolicy", gw.POLICY_GROUP, gw.POLICY_VERSION, "healthcheckpolicies"),
)
KUBE_KINDS: dict[str, KubeKind] = {k.kind: k for k in _KINDS}
GATEWAY_CLASS = KubeKind("GatewayClass", gw.GROUP, gw.VERSION, "gatewayclasses", namespaced=False)
CRD = KubeKind(
    "CustomResourceDefinition", "apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False
)


def _core_method(clients: Clients, verb: str, kind: KubeKind) -> Any:
    suffix = "namespace" if kind.kind == "Namespace" else f"namespaced_{_snake(kind.kind)}"
    return getattr(clients.kube.core, f"{verb}_{suffix}")


def _snake(kind: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(kind))


def _custom_args(kind: KubeKind, namespace: str | None, name: str) -> list[Any]:
    return [kind.group, kind.version, *([namespace] if kind.namespaced else []), kind.plural, name]


def _custom_method(clients: Clients, verb: str, kind: KubeKind) -> Any:
    scope = "namespaced" if kind.namespaced else "cluster"
    return getattr(clients.kube.custom, f"{verb}_{scope}_custom_object")


def read(clients: Clients, kind: KubeKind, namespace: str | None, name: str) -> dict[str, Any] | None:
    """The object as the API server has it (a plain dict), or None when it does not exist."""
    try:
        if kind.group:
            obj = clients.call(_custom_method(clients, "get", kind), *_custom_args(kind, namespace, name))
        else:
            args = [name] if kind.kind == "Namespace" else [name, namespace]
            obj = clients.call(_core_method(clients, "read", kind), *args)
    except NotFound:
        return None
    return dict(clients.kube.api.sanitize_for_serialization(obj))


def apply(clients: Clients, manifest: dict[str, Any], force: bool = False) -> dict[str, Any]:
    """Server-side apply of `manifest` as the kit's field manager; returns the object as stored.

    Without `force`, a field another manager owns with a different value makes the server answer 409
    (`errors.Conflict`), and nothing of the object changes."""
    kind = KUBE_KINDS[manifest["kind"]]
    meta = manifest["metadata"]
    options = {"field_manager": ownership.FIELD_MANAGER, "force": force, "_content_type": APPLY_CONTENT_TYPE}
    if kind.group:
        args = _custom_args(kind, meta.get("namespace"), meta["name"])
        obj = clients.call(_custom_method(clients, "patch", kind), *args, manifest, **options)
    else:
        args = [meta["name"]] if kind.kind == "Namespace" else [meta["name"], meta["namespace"]]
        obj = clients.call(_core_method(clients, "patch", kind), *args, manifest, **options)
    if obj is None:  # the client maps only 200 for custom objects: an apply that created one (201) reads back
        return read(clients, kind, meta.get("namespace"), meta["name"]) or {}
    return dict(clients.kube.api.sanitize_for_serialization(obj))


def delete(clients: Clients, kind: KubeKind, namespace: str | None, name: str) -> None:
    """Ask the API server to delete the object (finalizers may keep it a while); gone already is fine."""
    try:
        if kind.group:
            clients.call(_custom_method(clients, "delete", kind), *_custom_args(kind, namespace, name))
        else:
            args = [name] if kind.kind == "Namespace" else [name, namespace]
            clients.call(_core_method(clients, "delete", kind), *args)
    except NotFound:
        return


def watched(manifest: dict[str, Any]) -> dict[str, Any]:
    """What the kit compares: its labels and annotations and every field it sets outside metadata;
    the server and the controller add fields of their own (status, defaults, their annotations)."""
    meta = manifest["metadata"]
    body = {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind", "metadata")}
    return {"metadata": {k: meta[k] for k in ("labels", "annotations") if k in meta}, **body}


def differences(desired: Any, current: Any, prefix: str = "") -> list[str]:
    """Paths where `current` does not hold what `desired` asks for. Maps may carry more keys; a list
    must have as many elements, each holding its desired element (the server fills defaults into list
    elements: a backendRef's weight, a parentRef's group)."""
    if isinstance(desired, dict) and isinstance(current, dict):
        out: list[str] = []
        for key, value in desired.items():
            out += differences(value, current.get(key), f"{prefix}.{key}" if prefix else key)
        return out
    if isinstance(desired, list) and isinstance(current, list) and len(desired) == len(current):
        if all(not differences(d, c) for d, c in zip(desired, current, strict=True)):
            return []
        return [prefix or "(value)"]
    return [] if desired == current else [prefix or "(value)"]


def _owned_paths(fields: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The field paths of a `FieldsV1` tree (`f:spec` -> `spec`); a list element (`k:`/`v:`) counts as
    its list."""
    if not isinstance(fields, dict) or not fields:
        yield prefix
        return
    for key, sub in fields.items():
        if key.startswith("f:"):
            yield from _owned_paths(sub, (*prefix, key[2:]))
        elif key != ".":
            yield prefix


def other_owners(current: dict[str, Any], path: str) -> list[str]:
    """The managers other than the kit that own `path` (or a field inside or above it)."""
    want = tuple(path.split("."))
    owners = []
    for entry in (current.get("metadata") or {}).get("managedFields") or []:
        manager = entry.get("manager", "")
        if manager == ownership.FIELD_MANAGER:
            continue
        for owned in _owned_paths(entry.get("fieldsV1") or {}):
            if owned and (owned[: len(want)] == want or want[: len(owned)] == owned):
                owners.append(manager)
                break
    return sorted(set(owners))


def plan_object(manifest: dict[str, Any], current: dict[str, Any] | None, command: str) -> Change:
    """One object: create, update (each changed field names the other manager that owns it, if any:
    the apply would be refused as a conflict) or no change."""
    meta = manifest["metadata"]
    if current is None:
        return decide(manifest["kind"], meta["name"], manifest, None, command)
    fields = differences(watched(manifest), current)
    shown = []
    for f in fields:
        owners = other_owners(current, f)
        shown.append(f"{f} (owned by {', '.join(owners)})" if owners else f)
    return decide(manifest["kind"], meta["name"], manifest, current, command, shown)


def conflicted(change: Change) -> list[str]:
    """The changed fields of a planned row that another manager owns."""
    return [f for f in change.fields if "(owned by " in f]


def apply_changes(clients: Clients, changes: list[Change]) -> list[Change]:
    """Apply every create/update row of Kubernetes kinds, in order. A conflict with another manager is
    not overwritten: the row keeps the server's refusal in its fields and the rest still apply."""
    for c in changes:
        if c.action not in ("create", "update") or c.kind not in KUBE_KINDS:
            continue
        try:
            apply(clients, c.desired)
        except Conflict as err:
            c.fields = [*c.fields, f"not applied, conflict: {err.message}"]
    return changes
