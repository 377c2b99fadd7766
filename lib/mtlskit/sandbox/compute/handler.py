"""The Compute REST surface: one generic handler for every collection (list, get, insert, patch,
update, delete, custom verbs), with each collection's rules looked up in the tables below.

Inserts check the name and that it is free, then apply the collection's defaults and reference
checks; updates check the fingerprint; deletes refuse what another resource still names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mtlskit.rules import names
from mtlskit.sandbox.compute import backends, certificates, routing
from mtlskit.sandbox.compute.lists import ZONAL, ZONE, no_results, paged
from mtlskit.sandbox.compute.operations import Operations
from mtlskit.sandbox.compute.resources import (
    API,
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


def answers(req: Request, method: str) -> bool:
    """Whether the request resolved to `method` (`get`, `setUrlMap`, `globalOperations.aggregatedList`):
    a path two methods share (`sslPolicies/listAvailableFeatures` is also `sslPolicies/{name}`) is
    answered only by the one the discovery document gives it."""
    return req.method_id.endswith("." + method)


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
        if tail[:2] == ["aggregated", "operations"] and answers(req, "globalOperations.aggregatedList"):
            return self.ops.aggregated(req, project)
        if tail and tail[0] == "zones" and len(tail) >= 3:
            if tail[2] == "operations":
                return self.ops.handle(req, project, tail[3:], zone=tail[1])
            return self._collection(req, project, tail[2], tail[3:], tail[1])
        if tail[:1] == ["aggregated"] and len(tail) == 2 and answers(req, "aggregatedList"):
            return self._aggregated(req, project, tail[1])
        if tail and tail[0] == "global" and len(tail) >= 2:
            return self._collection(req, project, tail[1], tail[2:], None)
        if len(tail) == 3 and tail[0] == "targetHttpsProxies" and answers(req, tail[2]):
            # setUrlMap / setSslCertificates live outside /global/ in the v1 API.
            return self._verb(req, project, "targetHttpsProxies", tail[1], tail[2])
        raise ApiError.unknown_method(req.path)

    def _collection(
        self, req: Request, project: str, coll: str, more: list[str], zone: str | None
    ) -> Response:
        if coll not in KINDS or (coll in ZONAL) != (zone is not None):
            raise ApiError.unknown_method(req.path)  # e.g. global NEGs: the sandbox has zonal ones only
        if not more:
            if answers(req, "list"):
                return self._list(req, project, coll, zone)
            if answers(req, "insert"):
                return self._insert(req, project, coll, zone)
        elif len(more) == 1:
            name = more[0]
            if answers(req, "get"):
                return Response(200, self.res.render(self.res.require(project, coll, name, zone)))
            if answers(req, "delete"):
                return self._delete(req, project, coll, name, zone)
            if answers(req, "patch") or answers(req, "update"):
                return self._update(req, project, coll, name, replace=req.method == "PUT")
        elif len(more) == 2 and answers(req, more[1]) and self._serves_verb(coll, more[1]):
            return self._verb(req, project, coll, more[0], more[1])
        raise ApiError.unknown_method(req.path)

    @staticmethod
    def _serves_verb(coll: str, verb: str) -> bool:
        return (coll, verb) in SETTERS or (coll, verb) == ("backendServices", "getHealth")

    def _list(self, req: Request, project: str, coll: str, zone: str | None) -> Response:
        prefix = f"{project}/{zone}/" if zone else f"{project}/"
        stored = self.env.store.list(API, coll, prefix)
        items = [self.res.render(b) for k, b in stored if zone or k.count("/") == 1]
        where = f"zones/{zone}" if zone else "global"
        body, page = paged(req, f"projects/{project}/{where}/{coll}", items)
        return Response(200, {**body, **({"items": page} if page else {})})

    def _aggregated(self, req: Request, project: str, coll: str) -> Response:
        """`aggregated/<collection>`: every scope's resources, keyed `global` or `zones/<zone>` as the
        discovery document's `<X>AggregatedList` has them (what gcloud's `list` asks for without a
        scope flag). A scope without resources carries Compute's NO_RESULTS_ON_PAGE warning, as Google
        answers; gcloud skips those scopes quietly."""
        if coll not in KINDS:
            raise ApiError.unknown_method(req.path)
        scoped = []
        for key, stored in self.env.store.list(API, coll, f"{project}/"):
            parts = key.split("/")
            scoped.append(("global" if len(parts) == 2 else f"zones/{parts[1]}", self.res.render(stored)))
        body, page = paged(req, f"projects/{project}/aggregated/{coll}", scoped)
        items: dict[str, Body] = {scope: no_results(scope) for scope in self._scopes(coll)}
        for scope, resource in page:
            if "warning" in items.get(scope, {}):
                items[scope] = {coll: []}
            items.setdefault(scope, {coll: []})[coll].append(resource)
        return Response(200, {**body, "items": items})

    def _scopes(self, coll: str) -> list[str]:
        """The scopes an aggregated list reports: `global` for global collections, and the zones the
        sandbox has for zonal ones."""
        return [f"zones/{ZONE}"] if coll in ZONAL else ["global"]

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
            short = f"projects/{project}/{f'zones/{zone}' if zone else 'global'}/{coll}/{name}"
            raise ApiError.compute(409, f"The resource '{short}' already exists", "alreadyExists")
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
                raise ApiError.compute(
                    412,
                    "Supplied fingerprint does not match current metadata fingerprint."
                    if given
                    else "Required field 'fingerprint' not specified or does not match.",
                    "conditionNotMet",
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
        setter = SETTERS[(coll, verb)]
        updated = setter(self.res, project, verb, current, req.json())
        return self.ops.mutate(
            req, project, verb, (coll, name, None), lambda: self.res.save(project, coll, updated)
        )
