"""The Compute REST surface: one generic handler for every collection (list, get, insert, patch,
update, delete, custom verbs), with each collection's rules looked up in the tables below.

Inserts check the name and that it is free, then apply the collection's defaults and reference
checks; updates check the fingerprint; deletes refuse what another resource still names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mtlskit.rules import names
from mtlskit.sandbox import discovery
from mtlskit.sandbox.compute import backends, certificates, routing
from mtlskit.sandbox.compute.operations import Operations
from mtlskit.sandbox.compute.resources import (
    API,
    BASE,
    FINGERPRINTED,
    KINDS,
    ComputeStore,
    invalid,
    key_of,
    same_fingerprint,
)
from mtlskit.sandbox.env import Env
from mtlskit.sandbox.web import ApiError, Request, Response, merge_patch, new_fingerprint

Body = dict[str, Any]
Prepare = Callable[[ComputeStore, str, Body], Body]
Setter = Callable[[ComputeStore, str, str, Body, Body], Body]

PREPARE: dict[str, Prepare] = {
    "addresses": routing.prepare_address,
    "sslCertificates": certificates.prepare_ssl_certificate,
    "sslPolicies": certificates.prepare_ssl_policy,
    "urlMaps": routing.prepare_url_map,
    "targetHttpsProxies": routing.prepare_https_proxy,
    "targetHttpProxies": routing.prepare_http_proxy,
    "forwardingRules": routing.prepare_forwarding_rule,
    "backendServices": backends.prepare_backend_service,
}
SETTERS: dict[tuple[str, str], Setter] = {
    **{("targetHttpsProxies", verb): routing.set_proxy_field for verb in routing.PROXY_SETTERS},
    ("forwardingRules", "setTarget"): routing.set_target,
}


def prepare(res: ComputeStore, project: str, coll: str, body: Body) -> Body:
    """Apply the collection's defaults and reference checks, if it has any."""
    rules = PREPARE.get(coll)
    return rules(res, project, body) if rules else body


class Compute:
    def __init__(self, env: Env):
        self.env = env
        self.res = ComputeStore(env)
        self.ops = Operations(env)

    def handle(self, req: Request, rest: list[str]) -> Response:
        """`rest` is the path after `/compute/v1/projects/`."""
        project = rest[0]
        self.env.require_project(project, "compute")
        tail = rest[1:]
        if tail[:2] == ["global", "operations"]:
            return self.ops.handle(req, project, tail[2:])
        if tail and tail[0] == "zones" and len(tail) >= 3:
            zone, coll, more = tail[1], tail[2], tail[3:]
            if coll == "operations":
                return self.ops.handle(req, project, more)
            return self._collection(req, project, coll, more, zone)
        if tail[:1] == ["aggregated"] and len(tail) == 2 and req.method == "GET":
            return self._aggregated(req, project, tail[1])
        if tail and tail[0] == "global" and len(tail) >= 2:
            return self._collection(req, project, tail[1], tail[2:], None)
        if len(tail) == 3 and tail[0] == "targetHttpsProxies":
            # setUrlMap / setSslCertificates live outside /global/ in the v1 API.
            return self._verb(req, project, "targetHttpsProxies", tail[1], tail[2])
        raise ApiError.google(404, f"Not found: {req.path}", "notFound")

    def _collection(
        self, req: Request, project: str, coll: str, more: list[str], zone: str | None
    ) -> Response:
        if coll not in KINDS:
            raise ApiError.google(404, f"Not found: {req.path}", "notFound")
        if not more:
            if req.method == "GET":
                return self._list(req, project, coll, zone)
            if req.method == "POST":
                return self._insert(req, project, coll, zone)
        elif len(more) == 1:
            name = more[0]
            if req.method == "GET":
                return Response(200, self.res.render(self.res.require(project, coll, name, zone)))
            if req.method == "DELETE":
                return self._delete(req, project, coll, name, zone)
            if req.method in ("PATCH", "PUT"):
                return self._update(req, project, coll, name, replace=req.method == "PUT")
        elif len(more) == 2 and req.method == "POST":
            return self._verb(req, project, coll, more[0], more[1])
        raise ApiError.google(405, f"Method {req.method} not allowed on {req.path}", "methodNotAllowed")

    def _list(self, req: Request, project: str, coll: str, zone: str | None) -> Response:
        prefix = f"{project}/{zone}/" if zone else f"{project}/"
        stored = self.env.store.list(API, coll, prefix)
        items = [self.res.render(b) for k, b in stored if zone or k.count("/") == 1]
        where = f"zones/{zone}" if zone else "global"
        body, page = _paged(req, f"projects/{project}/{where}/{coll}", items)
        return Response(200, {**body, "items": page})

    def _aggregated(self, req: Request, project: str, coll: str) -> Response:
        """`aggregated/<collection>`: every scope's resources, keyed `global` or `zones/<zone>` as the
        discovery document's `<X>AggregatedList` has them (what gcloud's `list` asks for without a
        scope flag). Scopes without resources are left out rather than listed with a warning, so a
        client has nothing to report."""
        if coll not in KINDS:
            raise ApiError.google(404, f"Not found: {req.path}", "notFound")
        scoped = []
        for key, stored in self.env.store.list(API, coll, f"{project}/"):
            parts = key.split("/")
            scoped.append(("global" if len(parts) == 2 else f"zones/{parts[1]}", self.res.render(stored)))
        body, page = _paged(req, f"projects/{project}/aggregated/{coll}", scoped)
        items: dict[str, Body] = {}
        for scope, resource in page:
            items.setdefault(scope, {coll: []})[coll].append(resource)
        return Response(200, {**body, "items": items})

    def _insert(self, req: Request, project: str, coll: str, zone: str | None) -> Response:
        body = req.json()
        name = body.get("name")
        if not names.GOOGLE_RESOURCE.matches(name):
            raise invalid(
                f"Invalid value for field 'resource.name': '{name}'. Must be a match of regex "
                "'(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'"
            )
        replay = self.ops.replay(req, project)
        if replay:
            return replay
        if self.res.get(project, coll, name, zone) is not None:
            short = f"projects/{project}/global/{coll}/{name}"
            raise ApiError.google(409, f"The resource '{short}' already exists", "alreadyExists")
        prepared = prepare(self.res, project, coll, dict(body))
        return self.ops.mutate(
            req, project, "insert", (coll, name, zone), lambda: self.res.create(project, coll, prepared, zone)
        )

    def _update(self, req: Request, project: str, coll: str, name: str, replace: bool) -> Response:
        current = self.res.require(project, coll, name)
        patch = req.json()
        if coll in FINGERPRINTED:
            given = patch.get("fingerprint")
            if not same_fingerprint(given, current.get("fingerprint")):
                raise ApiError.google(
                    412,
                    "Supplied fingerprint does not match current metadata fingerprint."
                    if given
                    else "Required field 'fingerprint' not specified or does not match.",
                    "conditionNotMet",
                    "FAILED_PRECONDITION",
                )
        if patch.get("name", name) != name:
            raise invalid("Invalid value for field 'resource.name': the name of a resource cannot change.")
        keep = {
            k: current[k] for k in ("kind", "id", "creationTimestamp", "selfLink", "name") if k in current
        }
        internal = {k: v for k, v in current.items() if k.startswith("_")}
        merged = {**patch, **keep, **internal} if replace else {**merge_patch(current, patch), **keep}
        merged.pop("fingerprint", None)
        merged = prepare(self.res, project, coll, merged)
        if coll in FINGERPRINTED:
            merged["fingerprint"] = new_fingerprint()
        kind = "update" if replace else "patch"
        return self.ops.mutate(
            req, project, kind, (coll, name, None), lambda: self.res.save(project, coll, merged)
        )

    def _delete(self, req: Request, project: str, coll: str, name: str, zone: str | None) -> Response:
        replay = self.ops.replay(req, project)
        if replay:
            return replay
        self.res.raise_if_in_use(self.res.require(project, coll, name, zone))
        store = self.env.store
        return self.ops.mutate(
            req,
            project,
            "delete",
            (coll, name, zone),
            lambda: store.delete(API, coll, key_of(project, name, zone)),
        )

    def _verb(self, req: Request, project: str, coll: str, name: str, verb: str) -> Response:
        current = self.res.require(project, coll, name)
        if coll == "backendServices" and verb == "getHealth":
            return Response(200, backends.health(self.res, project, current))
        setter = SETTERS.get((coll, verb))
        if setter is None:
            raise ApiError.google(400, f"Unsupported action {verb} on {coll}", "invalid")
        updated = setter(self.res, project, verb, current, req.json())
        return self.ops.mutate(
            req, project, verb, (coll, name, None), lambda: self.res.save(project, coll, updated)
        )


def _paged(req: Request, path: str, items: list[Any]) -> tuple[Body, list[Any]]:
    """A list response's envelope (kind from the discovery document, id, selfLink, nextPageToken)
    and the page of `items` that `maxResults` and `pageToken` select."""
    size = int(req.arg("maxResults") or 500)
    start = int(req.arg("pageToken") or 0)
    method = discovery.api(API).find("GET", req.path)
    schema = discovery.api(API).schemas[method.response_ref] if method and method.response_ref else {}
    body: Body = {
        "kind": schema.get("properties", {}).get("kind", {}).get("default", "compute#list"),
        "id": path,
        "selfLink": f"{BASE}{path}",
    }
    if start + size < len(items):
        body["nextPageToken"] = str(start + size)
    return body, items[start : start + size]
