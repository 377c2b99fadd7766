"""The Kubernetes API's HTTP surface for the kinds the kit uses, reached by the official client
through a kubeconfig.

Which kinds are served is the cluster's CRD bundle's say (`kube_crds`): a kind it lacks is absent
from discovery and its paths answer 404. Writes are validated against the published schemas
(`kube_openapi`; custom resources are also defaulted and checked as the CRD handler does), record
their field manager (`kube_apply`), and take merge, strategic merge and server-side apply patches.
Every accepted write is published as an event, so the controllers reconcile before the response
returns. CustomResourceDefinitions are read-only: they follow `sandbox.gateway_api`.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from mtlskit.sandbox import kube_apply, kube_openapi, kube_table
from mtlskit.sandbox import kube_discovery as discovery
from mtlskit.sandbox.events import KUBE_WRITE, Events
from mtlskit.sandbox.kube import KINDS, Kind, KubeObjects
from mtlskit.sandbox.kube_crds import CRD, InstalledCrds, is_custom, resource_of, storage_of
from mtlskit.sandbox.web import ApiError, Request, Response, merge_patch

WRITES = ("POST", "PUT", "PATCH", "DELETE")


class KubeApi:
    def __init__(self, objects: KubeObjects, events: Events, crds: InstalledCrds):
        self.objects = objects
        self.events = events
        self.crds = crds

    def handle(self, req: Request, parts: list[str]) -> Response:
        if parts[:1] == ["version"]:
            return Response(
                200,
                {
                    "major": "1",
                    "minor": "31",
                    "gitVersion": "v1.31.0-mtlskit-sandbox",
                    "platform": "linux/amd64",
                },
            )
        found = self._discovery(req, parts)
        if found is not None:
            return found
        if parts[:1] == ["api"] and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError.kube(404, "NotFound", "the server could not find the requested resource")
        served = {(k.group, k.plural): k for k in self.crds.served() if k.version == version}
        namespace = None
        # `namespaces/NAME/KIND/...` is a namespaced scope; `namespaces/NAME[/status]` is the
        # Namespace object itself (a cluster-scoped kind like any other)
        if len(rest) >= 3 and rest[0] == "namespaces" and (group, rest[2]) in served:
            namespace, rest = rest[1], rest[2:]
        if not rest or (group, rest[0]) not in served:
            raise ApiError.kube(404, "NotFound", "the server could not find the requested resource")
        kind = served[(group, rest[0])]
        dry_run = _dry_run(req)
        if dry_run is None or req.method not in WRITES:
            return self._dispatch(req, kind, namespace, rest[1:])
        if dry_run != "All":
            raise ApiError.kube(
                400, "BadRequest", f'dryRun: Unsupported value: "{dry_run}": supported values: "All"'
            )
        # A dry run (`kubectl apply --dry-run=server`, `kubectl diff`): the write with every check,
        # default and conflict of a real one, answered, then undone; no controller hears of it.
        with self.objects.store.discarded(), self.events.held():
            return self._dispatch(req, kind, namespace, rest[1:])

    def _discovery(self, req: Request, parts: list[str]) -> Response | None:
        """Discovery and OpenAPI documents, or None when the path names resources instead."""
        if parts[:1] == ["openapi"]:
            return kube_openapi.handle(req.headers.get("accept", ""), parts[1:], self.crds.bundle)
        if req.method != "GET" or parts[:1] not in (["api"], ["apis"]):
            return None
        served = self.crds.served()
        if len(parts) == 1:
            if discovery.wants_aggregated(req.headers.get("accept", "")):
                body = discovery.aggregated(served, core=parts == ["api"])
                return Response(200, body, {"Content-Type": discovery.AGGREGATED_V2})
            if parts == ["api"]:
                return Response(200, discovery.api_versions(served, req.headers.get("host", "127.0.0.1")))
            return Response(200, discovery.api_group_list(served))
        if parts[0] == "apis" and len(parts) == 2:
            return _found(discovery.api_group(served, parts[1]))
        if parts[0] == "api" and len(parts) == 2:
            return _found(discovery.api_resource_list(served, "", parts[1]))
        if parts[0] == "apis" and len(parts) == 3:
            return _found(discovery.api_resource_list(served, parts[1], parts[2]))
        return None

    def _dispatch(self, req: Request, asked: Kind, namespace: str | None, rest: list[str]) -> Response:
        """One request for `asked` (the kind at the version in the path); objects are stored at the
        kind's storage version and answered at the asked one."""
        kind = storage_of(asked)
        if kind == CRD and req.method != "GET":
            raise ApiError.kube(
                405,
                "MethodNotAllowed",
                "the sandbox's CustomResourceDefinitions follow its Gateway API bundle and cannot be "
                "changed through the API; set sandbox.gateway_api in the params instead",
            )
        bundle = self.crds.bundle
        if not rest and req.method == "GET":
            return self._list(req, asked, namespace)
        if not rest and req.method == "POST":
            body, warnings = kube_openapi.validate(asked, req.json(), req.arg("fieldValidation"), bundle)
            manager = kube_apply.manager_of(req.arg("fieldManager"), req.headers.get("user-agent", ""))
            managed = kube_apply.created_by(manager, "Update", asked.api_version, body)
            body = kube_openapi.admit(asked, _new_custom_object(kind, body), bundle)
            created = self.objects.create(kind, namespace, _with_managed(body, managed))
            return self._written(asked, created, 201, warnings)
        if not rest:
            raise ApiError.kube(405, "MethodNotAllowed", f"{req.method} is not supported")
        name, sub = rest[0], rest[1] if len(rest) > 1 else None
        status_only = sub == "status"
        if req.method == "GET":
            return self._read(req, asked, [self.objects.require(kind, namespace, name)], single=True)
        if req.method == "DELETE":
            return self._delete(asked, namespace, name)
        manager = kube_apply.manager_of(req.arg("fieldManager"), req.headers.get("user-agent", ""))
        ctype = req.headers.get("content-type", "").split(";")[0].strip()
        if req.method == "PATCH" and ctype == "application/apply-patch+yaml":
            return self._apply(req, asked, namespace, name, manager)
        if req.method not in ("PUT", "PATCH"):
            raise ApiError.kube(405, "MethodNotAllowed", f"{req.method} is not supported")
        if "json-patch" in ctype:
            raise ApiError.kube(
                415,
                "UnsupportedMediaType",
                "the sandbox accepts merge, strategic merge and apply patches only",
            )
        incoming = req.json()
        warnings: list[str] = []
        custom = is_custom(kind)
        if req.method == "PUT":
            incoming, warnings = kube_openapi.validate(asked, incoming, req.arg("fieldValidation"), bundle)

        def change(current: dict[str, Any]) -> dict[str, Any]:
            if req.method == "PUT":
                new = incoming
            elif ctype == "application/strategic-merge-patch+json" and not custom:
                new = kube_apply.strategic_merge(
                    current, incoming, kube_openapi.schema_of(kind, bundle), kube_openapi.resolve
                )
            else:  # custom resources take merge patches only, as the API server's CRD handler does
                new = merge_patch(current, incoming)
                if custom:  # the patched object is pruned like any other write
                    new, pruned = kube_openapi.validate(asked, new, req.arg("fieldValidation"), bundle)
                    warnings.extend(pruned)
            new = kube_openapi.admit(asked, new, bundle)
            if status_only:
                return new
            return _with_managed(
                new, kube_apply.record_update(current, incoming, new, manager, asked.api_version)
            )

        saved = self.objects.update_with(kind, namespace, name, incoming, change, status_only)
        return self._written(asked, saved, 200, warnings)

    def _apply(self, req: Request, asked: Kind, namespace: str | None, name: str, manager: str) -> Response:
        """Server-side apply: create (201) or update (200) with `manager` owning what it applied."""
        kind = storage_of(asked)
        if not req.arg("fieldManager"):
            raise ApiError.kube(
                400, "BadRequest", "PATCH /apply: fieldManager is required for apply requests"
            )
        try:
            applied = yaml.safe_load(req.body or b"{}") or {}
        except yaml.YAMLError as exc:
            raise ApiError.kube(400, "BadRequest", f"error decoding YAML: {exc}") from None
        if (applied.get("apiVersion"), applied.get("kind")) != (asked.api_version, asked.kind):
            raise ApiError.kube(
                400,
                "BadRequest",
                f"the API version in the data ({applied.get('apiVersion')}) does not match the expected "
                f"API version ({asked.api_version}) or kind ({applied.get('kind')} != {asked.kind})",
            )
        if (applied.get("metadata") or {}).get("name") not in (None, name):
            raise ApiError.kube(
                400, "BadRequest", "the name of the object does not match the name on the URL"
            )
        bundle = self.crds.bundle
        applied, warnings = kube_openapi.validate(asked, applied, req.arg("fieldValidation"), bundle)
        # Compared with the stored object, which has its defaults: a manifest that leaves a defaulted
        # field out (a listener's allowedRoutes) must not conflict with its own earlier apply.
        applied = kube_openapi.defaulted(asked, applied, bundle)
        force = (req.arg("force") or "").lower() == "true"
        if self.objects.get(kind, namespace, name) is None:
            managed = kube_apply.created_by(manager, "Apply", asked.api_version, applied)
            meta = {**(applied.get("metadata") or {}), "name": name}
            body = kube_openapi.admit(asked, _new_custom_object(kind, {**applied, "metadata": meta}), bundle)
            created = self.objects.create(kind, namespace, _with_managed(body, managed))
            return self._written(asked, created, 201, warnings)

        def change(current: dict[str, Any]) -> dict[str, Any]:
            result, managed = kube_apply.apply(current, applied, manager, force)
            return _with_managed(kube_openapi.admit(asked, result, bundle), managed)

        saved = self.objects.update_with(kind, namespace, name, {}, change)
        return self._written(asked, saved, 200, warnings)

    def _written(self, asked: Kind, stored: dict[str, Any], status: int, warnings: list[str]) -> Response:
        """Publish an accepted write (the controller follows before the answer) and answer with the
        object as it is now, or as written when the write completed its deletion (last finalizer)."""
        kind = storage_of(asked)
        namespace, name = stored["metadata"].get("namespace"), stored["metadata"]["name"]
        self.events.publish(KUBE_WRITE, kind, stored)
        self._settle(namespace)
        headers = {"Warning": ", ".join(_warning(w) for w in warnings)} if warnings else {}
        return Response(status, _at(asked, self.objects.get(kind, namespace, name) or stored), headers)

    def _list(self, req: Request, asked: Kind, namespace: str | None) -> Response:
        items = self.objects.list(storage_of(asked), namespace)
        labels = _selector(req.arg("labelSelector"))
        fields = _selector(req.arg("fieldSelector"))
        items = [
            i
            for i in items
            if all(((i["metadata"].get("labels") or {}).get(k) == v) is eq for k, (v, eq) in labels.items())
            and all((_field(i, k) == v) is eq for k, (v, eq) in fields.items())
        ]
        return self._read(req, asked, items, single=False)

    def _read(self, req: Request, asked: Kind, items: list[dict[str, Any]], single: bool) -> Response:
        """Objects as asked: a Table of a custom resource's printer columns for `kubectl get`, else
        the object or the list, at the asked version."""
        resource = resource_of(asked)
        version = self.objects.resource_version()
        if resource is not None and kube_table.wants_table(req.headers.get("accept", "")):
            return Response(200, kube_table.table(resource.columns, items, version))
        items = [_at(asked, i) for i in items]
        if single:
            return Response(200, items[0])
        return Response(
            200,
            {
                "apiVersion": asked.api_version,
                "kind": f"{asked.kind}List",
                "metadata": {"resourceVersion": version},
                "items": items,
            },
        )

    def _delete(self, asked: Kind, namespace: str | None, name: str) -> Response:
        kind = storage_of(asked)
        if kind.plural == "namespaces":
            return self._delete_namespace(name)
        result = self.objects.delete(kind, namespace, name)
        self.events.publish(KUBE_WRITE, kind, result)
        self._settle(namespace)
        remaining = self.objects.get(kind, namespace, name)
        if remaining is not None:
            return Response(200, _at(asked, remaining))
        if kind.plural == "services":
            return Response(200, result)  # the API answers a Service delete with the Service
        return Response(
            200,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {"name": name, "kind": kind.plural, "uid": result["metadata"].get("uid")},
            },
        )

    def _delete_namespace(self, name: str) -> Response:
        """Mark the namespace Terminating, then delete what is in it one object at a time, through the
        same path as a client's delete: an Ingress's finalizer lets the controller remove its frontend and
        collect its backend services before the Ingress goes, as on GKE. The namespace goes when empty."""
        marked = self.objects.mark_terminating(name)
        for kind, obj in self.objects.contents(name):
            if not obj["metadata"].get("deletionTimestamp"):
                result = self.objects.delete(kind, name, obj["metadata"]["name"])
                self.events.publish(KUBE_WRITE, kind, result)
        self._settle(name)
        return Response(200, self.objects.get(KINDS[("", "namespaces")], None, name) or marked)

    def _settle(self, namespace: str | None) -> None:
        """A terminating namespace goes once the last object in it (finalizers done) has gone."""
        self.objects.settle(namespace)


def _dry_run(req: Request) -> str | None:
    """The request's dry-run directive: the `dryRun` query parameter, or for a delete the
    DeleteOptions body's `dryRun` list (what `kubectl delete --dry-run=server` sends)."""
    if req.arg("dryRun") is not None or req.method != "DELETE" or not req.body.strip():
        return req.arg("dryRun")
    try:
        options = json.loads(req.body)
    except ValueError:
        return None
    listed = options.get("dryRun") if isinstance(options, dict) else None
    return ",".join(listed) if isinstance(listed, list) and listed else None


def _at(asked: Kind, obj: dict[str, Any]) -> dict[str, Any]:
    """A stored object at the version the client asked for: the CRDs here convert with strategy
    None (one schema for every version), so only `apiVersion` changes."""
    if obj.get("apiVersion") in (None, asked.api_version) or obj.get("kind") != asked.kind:
        return obj
    return {**obj, "apiVersion": asked.api_version}


def _warning(text: str) -> str:
    """One `Warning` header value (RFC 9111: code, agent, quoted text with `"` and `\\` escaped), as
    the API server sends it and kubectl prints it (`Warning: unknown field "spec.tls"`)."""
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{quoted}"'


def _new_custom_object(kind: Kind, body: dict[str, Any]) -> dict[str, Any]:
    """A new custom resource with a status subresource starts without the status it was sent (the
    CRD's status default, or its controller, fills it), as the API server's CRD strategy does."""
    if is_custom(kind) and kind.has_status:
        return {k: v for k, v in body.items() if k != "status"}
    return body


def _with_managed(obj: dict[str, Any], managed: list[dict[str, Any]]) -> dict[str, Any]:
    return {**obj, "metadata": {**(obj.get("metadata") or {}), "managedFields": managed}}


def _selector(raw: str | None) -> dict[str, tuple[str, bool]]:
    """`a=b,c!=d` (and `==`) as {key: (value, equal)}: the selector forms kubectl sends."""
    out: dict[str, tuple[str, bool]] = {}
    for term in filter(None, (raw or "").split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            out[key.strip()] = (value.strip(), False)
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            out[key.strip()] = (value.strip(), True)
    return out


def _field(obj: dict[str, Any], path: str) -> str:
    node: Any = obj
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return "" if node is None else str(node)


def _found(body: dict[str, Any] | None) -> Response:
    if body is None:
        raise ApiError.kube(404, "NotFound", "the server could not find the requested resource")
    return Response(200, body)
