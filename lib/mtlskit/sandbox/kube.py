"""Kubernetes objects in the store, with the API server's semantics.

Creates set uid/resourceVersion/creationTimestamp; replaces and patches check resourceVersion (409
Conflict); deletes honour finalizers; errors are `Status` objects. The HTTP surface (`kube_api`) and
the Ingress controller both work through `KubeObjects`, as both go through the API server on GKE.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mtlskit.rules import gateway as gw
from mtlskit.sandbox.state import Store
from mtlskit.sandbox.web import ApiError, kube_time, merge_patch

API = "kube"


@dataclass(frozen=True)
class Kind:
    """One served resource, with what discovery tells clients about it (kubectl maps kinds,
    short names and `all` through discovery, not through a built-in table)."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    has_status: bool = False

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _gateway_api(plural: str, kind: str, version: str = gw.VERSION, **facts: Any) -> Kind:
    """A Gateway API kind: its group, and the category `kubectl get gateway-api` lists."""
    return Kind(gw.GROUP, version, plural, kind, categories=("gateway-api",), **facts)


def _gke_policy(plural: str, kind: str) -> Kind:
    """A GKE Gateway policy kind (networking.gke.io): its controller reports attachment in status."""
    return Kind(gw.POLICY_GROUP, gw.POLICY_VERSION, plural, kind, has_status=True)


# Keyed by (group, plural), in the order discovery lists them.
KINDS = {
    (k.group, k.plural): k
    for k in (
        Kind("", "v1", "namespaces", "Namespace", namespaced=False, short_names=("ns",), has_status=True),
        Kind("", "v1", "services", "Service", short_names=("svc",), categories=("all",), has_status=True),
        Kind("", "v1", "endpoints", "Endpoints", short_names=("ep",)),
        Kind("", "v1", "events", "Event", short_names=("ev",)),
        Kind("", "v1", "configmaps", "ConfigMap", short_names=("cm",)),
        Kind("networking.k8s.io", "v1", "ingresses", "Ingress", short_names=("ing",), has_status=True),
        # Served so that `kubectl describe` can look up a Service's endpoints; the sandbox keeps none.
        Kind("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice"),
        Kind("cloud.google.com", "v1", "backendconfigs", "BackendConfig"),
        # The cluster's CustomResourceDefinitions, readable as on GKE (they follow `sandbox.gateway_api`).
        Kind(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            namespaced=False,
            short_names=("crd", "crds"),
            categories=("api-extensions",),
            has_status=True,
        ),
        # The Gateway API's standard channel and GKE's policies: custom resources, served only while
        # the cluster's CRD bundle installs them (`kube_crds`).
        _gateway_api(
            "gatewayclasses", "GatewayClass", namespaced=False, short_names=("gc",), has_status=True
        ),
        _gateway_api("gateways", "Gateway", short_names=("gtw",), has_status=True),
        _gateway_api("httproutes", "HTTPRoute", has_status=True),
        _gateway_api("referencegrants", "ReferenceGrant", "v1beta1", short_names=("refgrant",)),
        _gke_policy("gcpgatewaypolicies", "GCPGatewayPolicy"),
        _gke_policy("gcpbackendpolicies", "GCPBackendPolicy"),
        _gke_policy("healthcheckpolicies", "HealthCheckPolicy"),
    )
}


def _bookkeeping_only(current: dict[str, Any], new: dict[str, Any]) -> bool:
    """True when `new` differs from `current` only in what a write stamps (resourceVersion, the times
    in managedFields): nothing a client or a `kubectl diff` would see changed."""

    def comparable(obj: dict[str, Any]) -> dict[str, Any]:
        meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "resourceVersion"}
        meta["managedFields"] = [
            {k: v for k, v in entry.items() if k != "time"} for entry in meta.get("managedFields") or []
        ]
        return {**obj, "metadata": meta}

    return comparable(current) == comparable(new)


def key_of(kind: Kind, namespace: str | None, name: str) -> str:
    return f"{kind.qualified}/{namespace or ''}/{name}"


class KubeObjects:
    def __init__(self, store: Store):
        self.store = store

    def bootstrap(self, cluster_uid: str) -> None:
        """What a new GKE cluster already has: its namespaces and the ingress-uid ConfigMap."""
        for ns in ("default", "kube-system"):
            if self.get(KINDS[("", "namespaces")], None, ns) is None:
                self.create(KINDS[("", "namespaces")], None, {"metadata": {"name": ns}})
        # Where GKE's Ingress controller keeps the cluster UID its resource names start with.
        configmaps = KINDS[("", "configmaps")]
        if self.get(configmaps, "kube-system", "ingress-uid") is None:
            self.create(
                configmaps,
                "kube-system",
                {
                    "metadata": {"name": "ingress-uid"},
                    "data": {"uid": cluster_uid, "provider-uid": cluster_uid},
                },
            )

    def get(self, kind: Kind, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.store.get(API, kind.qualified, key_of(kind, namespace, name))

    def list(self, kind: Kind, namespace: str | None = None) -> list[dict[str, Any]]:
        prefix = f"{kind.qualified}/{namespace}/" if namespace else f"{kind.qualified}/"
        return [b for _k, b in self.store.list(API, kind.qualified, prefix)]

    def resource_version(self) -> str:
        """The newest resourceVersion handed out, as a list answer carries it."""
        return self.store.meta("counter:kube-resource-version", "0") or "0"

    def _next_rv(self) -> str:
        return str(self.store.next_counter("kube-resource-version"))

    def _save(self, kind: Kind, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        meta["resourceVersion"] = self._next_rv()
        self.store.put(API, kind.qualified, key_of(kind, meta.get("namespace"), meta["name"]), obj)
        return obj

    def create(self, kind: Kind, namespace: str | None, obj: dict[str, Any]) -> dict[str, Any]:
        meta = dict(obj.get("metadata") or {})
        name = meta.get("name")
        if not name and meta.get("generateName"):
            name = meta["generateName"] + uuid.uuid4().hex[:5]
        if not name:
            raise ApiError.kube(
                422,
                "Invalid",
                f'{kind.kind} "" is invalid: metadata.name: Required value',
                kind=kind.kind,
                group=kind.group,
            )
        if kind.namespaced:
            if namespace is None:
                raise ApiError.kube(400, "BadRequest", "a namespace is required")
            if meta.get("namespace") not in (None, namespace):
                raise ApiError.kube(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            home = self.get(KINDS[("", "namespaces")], None, namespace)
            if home is None:
                raise ApiError.kube(
                    404, "NotFound", f'namespaces "{namespace}" not found', name=namespace, kind="namespaces"
                )
            if home["metadata"].get("deletionTimestamp"):
                raise ApiError.kube(
                    403,
                    "Forbidden",
                    f'{kind.qualified} "{name}" is forbidden: unable to create new content in namespace '
                    f"{namespace} because it is being terminated",
                    name=name,
                    group=kind.group,
                    kind=kind.plural,
                )
        if self.get(kind, namespace, name) is not None:
            raise ApiError.kube(
                409,
                "AlreadyExists",
                f'{kind.qualified} "{name}" already exists',
                name=name,
                group=kind.group,
                kind=kind.plural,
            )
        meta.update(name=name, uid=str(uuid.uuid4()), creationTimestamp=kube_time(), generation=1)
        meta.pop("resourceVersion", None)
        if kind.namespaced:
            meta["namespace"] = namespace
        body = {**obj, "apiVersion": kind.api_version, "kind": kind.kind, "metadata": meta}
        if kind.plural == "namespaces":
            body["spec"] = {"finalizers": ["kubernetes"]}
            body["status"] = {"phase": "Active"}
        if kind.plural == "services":
            spec = body.setdefault("spec", {})
            spec.setdefault("type", "ClusterIP")
            spec.setdefault("clusterIP", f"10.96.{self.store.next_counter('cluster-ip') % 250}.10")
        return self._save(kind, body)

    def require(self, kind: Kind, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self.get(kind, namespace, name)
        if obj is None:
            raise ApiError.kube(
                404,
                "NotFound",
                f'{kind.qualified} "{name}" not found',
                name=name,
                group=kind.group,
                kind=kind.plural,
            )
        return obj

    def patch(
        self, kind: Kind, namespace: str | None, name: str, patch: dict[str, Any], status_only: bool = False
    ) -> dict[str, Any]:
        return self.update_with(
            kind, namespace, name, patch, lambda current: merge_patch(current, patch), status_only
        )

    def update_with(
        self,
        kind: Kind,
        namespace: str | None,
        name: str,
        incoming: dict[str, Any],
        change: Callable[[dict[str, Any]], dict[str, Any]],
        status_only: bool = False,
    ) -> dict[str, Any]:
        """Store `change(current)`, after the optimistic-locking check of `incoming`'s resourceVersion;
        every kind of patch and server-side apply goes through here."""
        current = self._current_version(kind, namespace, name, incoming)
        return self._store_update(kind, current, change(copy.deepcopy(current)), status_only)

    def _current_version(
        self, kind: Kind, namespace: str | None, name: str, incoming: dict[str, Any]
    ) -> dict[str, Any]:
        """The stored object, unless the caller wrote against an older resourceVersion (optimistic locking)."""
        current = self.require(kind, namespace, name)
        rv = (incoming.get("metadata") or {}).get("resourceVersion")
        if rv and rv != current["metadata"]["resourceVersion"]:
            raise ApiError.kube(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {kind.qualified} "{name}": '
                "the object has been modified; please apply your changes to the latest version "
                "and try again",
                name=name,
                group=kind.group,
                kind=kind.plural,
            )
        return current

    def _store_update(
        self, kind: Kind, current: dict[str, Any], new: dict[str, Any], status_only: bool
    ) -> dict[str, Any]:
        if status_only:
            body = {**current, "status": new.get("status", {})}
        else:
            body = (
                {**new, "status": current.get("status", new.get("status"))}
                if "status" in current
                else dict(new)
            )
            meta = dict(new.get("metadata") or {})
            meta.pop("deletionTimestamp", None)  # only a delete sets it
            if "managedFields" not in meta and "managedFields" in current["metadata"]:
                meta["managedFields"] = current["metadata"][
                    "managedFields"
                ]  # a write that omits them keeps them
            for keep in ("uid", "creationTimestamp", "namespace", "name", "deletionTimestamp"):
                if keep in current["metadata"]:
                    meta[keep] = current["metadata"][keep]
            meta["generation"] = current["metadata"].get("generation", 1) + (
                1 if new.get("spec") != current.get("spec") else 0
            )
            body["metadata"] = meta
            body["apiVersion"], body["kind"] = kind.api_version, kind.kind
        if _bookkeeping_only(current, body):
            return current  # a no-op write keeps the resourceVersion, as the API server's does
        saved = self._save(kind, body)
        if saved["metadata"].get("deletionTimestamp") and not saved["metadata"].get("finalizers"):
            self.store.delete(
                API,
                kind.qualified,
                key_of(kind, saved["metadata"].get("namespace"), saved["metadata"]["name"]),
            )
        return saved

    def delete(self, kind: Kind, namespace: str | None, name: str) -> dict[str, Any]:
        current = self.require(kind, namespace, name)
        if current["metadata"].get("finalizers"):
            if not current["metadata"].get("deletionTimestamp"):
                current["metadata"]["deletionTimestamp"] = kube_time()
                current = self._save(kind, current)
            return current
        self.store.delete(API, kind.qualified, key_of(kind, namespace, name))
        return current

    def terminating(self, namespace: str | None) -> bool:
        home = self.get(KINDS[("", "namespaces")], None, namespace) if namespace else None
        return bool(home and home["metadata"].get("deletionTimestamp"))

    def contents(self, namespace: str) -> list[tuple[Kind, dict[str, Any]]]:
        """Everything in a namespace, Ingresses first: their finalizer needs the Services they name."""
        order = sorted((k for k in KINDS.values() if k.namespaced), key=lambda k: k.plural != "ingresses")
        return [(k, obj) for k in order for obj in self.list(k, namespace)]

    def mark_terminating(self, name: str) -> dict[str, Any]:
        """The first step of a namespace delete: `Terminating` until the namespace controller empties it."""
        current = self.require(KINDS[("", "namespaces")], None, name)
        if not current["metadata"].get("deletionTimestamp"):
            current["metadata"]["deletionTimestamp"] = kube_time()
            current["status"] = {**(current.get("status") or {}), "phase": "Terminating"}
            current = self._save(KINDS[("", "namespaces")], current)
        return current

    def settle(self, namespace: str | None) -> bool:
        """A terminating namespace goes once the last object in it (finalizers done) has gone; the
        events recorded while it emptied hold nothing and go with it. True when it went."""
        if not namespace or not self.terminating(namespace):
            return False
        for kind, obj in self.contents(namespace):
            if kind.plural == "events":
                self.delete(kind, namespace, obj["metadata"]["name"])
        return self.finish_namespace(namespace)

    def finish_namespace(self, name: str) -> bool:
        """Remove a terminating namespace once nothing is left in it (its `kubernetes` finalizer)."""
        if not self.terminating(name) or self.contents(name):
            return False
        self.store.delete(
            API, KINDS[("", "namespaces")].qualified, key_of(KINDS[("", "namespaces")], None, name)
        )
        return True

    def record_event(
        self,
        involved: dict[str, Any],
        kind: Kind,
        reason: str,
        message: str,
        type_: str = "Normal",
        component: str = "loadbalancer-controller",
    ) -> None:
        meta = involved["metadata"]
        ns = meta.get("namespace", "default")
        if self.terminating(ns):
            return  # the API server refuses new content there; recorders drop the event
        now = kube_time()
        self.create(
            KINDS[("", "events")],
            ns,
            {
                "metadata": {"generateName": f"{meta['name']}.", "namespace": ns},
                "involvedObject": {
                    "kind": kind.kind,
                    "apiVersion": kind.api_version,
                    "name": meta["name"],
                    "namespace": ns,
                    "uid": meta.get("uid"),
                },
                "reason": reason,
                "message": message,
                "type": type_,
                "count": 1,
                "firstTimestamp": now,
                "lastTimestamp": now,
                "source": {"component": component},
            },
        )
