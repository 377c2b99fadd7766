"""Kubernetes API discovery for the kinds the sandbox serves, in both forms the API server offers.

kubectl maps `ingress`, `ing` or `backendconfig` to a URL only through discovery: without it
`api-resources`, `get`, `describe` and `apply` all fail before sending a request. Current clients ask
`/api` and `/apis` for the aggregated form (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`, one
request for everything) and fall back to the legacy form (`APIVersions`, `APIGroupList`, then one
`APIResourceList` per group version) when the answer's Content-Type is plain JSON, so both are served
from the kinds the cluster serves: `kube.KINDS`, less the custom resources its CRD bundle lacks
(`kube_crds.served`), which every function here takes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mtlskit.sandbox.kube import Kind

Kinds = Iterable[Kind]

# What the sandbox implements for every kind: no watch and no deletecollection, so clients that need
# them are told up front instead of failing mid-way.
VERBS = ["create", "delete", "get", "list", "patch", "update"]
SUBRESOURCE_VERBS = ["get", "patch", "update"]
AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def wants_aggregated(accept: str) -> bool:
    """True when the client lists the v2 aggregated form among what it accepts (kubectl ≥ 1.30 does first)."""
    for media in accept.split(","):
        params = {p.strip() for p in media.split(";")[1:]}
        if {"g=apidiscovery.k8s.io", "v=v2", "as=APIGroupDiscoveryList"} <= params:
            return True
    return False


def group_versions(served: Kinds) -> dict[str, list[str]]:
    """Served groups ("" is the core group) and their versions, preferred first."""
    out: dict[str, list[str]] = {}
    for kind in served:
        versions = out.setdefault(kind.group, [])
        if kind.version not in versions:
            versions.append(kind.version)
    return out


def kinds_of(served: Kinds, group: str, version: str) -> list[Kind]:
    return [k for k in served if k.group == group and k.version == version]


def _names(k: Kind) -> dict[str, list[str]]:
    """The other names kubectl accepts for a kind (`ing`), and the groups it belongs to (`all`)."""
    names = {"shortNames": list(k.short_names), "categories": list(k.categories)}
    return {key: value for key, value in names.items() if value}


# ---- legacy form -----------------------------------------------------------------------------------


def api_versions(served: Kinds, server_address: str) -> dict[str, Any]:
    """`GET /api`: the core group's versions."""
    return {
        "kind": "APIVersions",
        "versions": group_versions(served)[""],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _api_group(group: str, versions: list[str]) -> dict[str, Any]:
    listed = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": listed, "preferredVersion": listed[0]}


def api_group_list(served: Kinds) -> dict[str, Any]:
    """`GET /apis`: every named group."""
    groups = [_api_group(g, vs) for g, vs in group_versions(served).items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(served: Kinds, group: str) -> dict[str, Any] | None:
    """`GET /apis/<group>`, or None when the group is not served."""
    versions = group_versions(served).get(group) if group else None
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_api_group(group, versions)}


def api_resource_list(served: Kinds, group: str, version: str) -> dict[str, Any] | None:
    """`GET /api/v1` or `/apis/<group>/<version>`, or None when that version is not served."""
    kinds = kinds_of(served, group, version)
    if not kinds:
        return None
    resources: list[dict[str, Any]] = []
    for k in kinds:
        resources.append(
            {
                "name": k.plural,
                "singularName": k.singular,
                "namespaced": k.namespaced,
                "kind": k.kind,
                "verbs": VERBS,
                **_names(k),
            }
        )
        if k.has_status:
            resources.append(
                {
                    "name": f"{k.plural}/status",
                    "singularName": "",
                    "namespaced": k.namespaced,
                    "kind": k.kind,
                    "verbs": SUBRESOURCE_VERBS,
                }
            )
    group_version = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }


# ---- aggregated form -------------------------------------------------------------------------------


def _resource_discovery(k: Kind) -> dict[str, Any]:
    response_kind = {"group": k.group, "version": k.version, "kind": k.kind}
    entry: dict[str, Any] = {
        "resource": k.plural,
        "responseKind": response_kind,
        "scope": "Namespaced" if k.namespaced else "Cluster",
        "singularResource": k.singular,
        "verbs": VERBS,
        **_names(k),
    }
    if k.has_status:
        entry["subresources"] = [
            {"subresource": "status", "responseKind": response_kind, "verbs": SUBRESOURCE_VERBS}
        ]
    return entry


def aggregated(served: Kinds, core: bool) -> dict[str, Any]:
    """`GET /api` (core=True) or `/apis` asked for `APIGroupDiscoveryList` v2."""
    served = list(served)
    items = [
        {
            "metadata": {"name": group, "creationTimestamp": None},
            "versions": [
                {
                    "version": v,
                    "resources": [_resource_discovery(k) for k in kinds_of(served, group, v)],
                    "freshness": "Current",
                }
                for v in versions
            ],
        }
        for group, versions in group_versions(served).items()
        if (group == "") == core
    ]
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    }


def served_group_versions(served: Kinds) -> Iterable[tuple[str, str]]:
    for group, versions in group_versions(served).items():
        for v in versions:
            yield group, v
