"""The custom resources the simulated GKE cluster has installed, and the one switch that decides them.

On GKE, BackendConfig is always there, and enabling the Gateway API (`--gateway-api=standard`)
installs the standard-channel Gateway API CRDs of the cluster version's bundle together with GKE's
policy CRDs and GatewayClasses. `sandbox.gateway_api` says which bundle the simulated cluster has:
v1.5 carries frontend client-certificate validation (`spec.tls.frontend`) in the standard Gateway CRD,
v1.4 and v1.3 do not (an apply with it is pruned, or refused under `fieldValidation=Strict`), and
"none" installs nothing, so the kinds are absent from discovery and their paths answer 404.

Everything a client can learn about a custom resource comes from one `CustomResource` row and its
schema function (`kube_crd_schemas`): which kinds are served (`served`), the discovery documents, the
OpenAPI v2/v3 definitions (`definitions`), validation and pruning, and the
CustomResourceDefinition objects stored for `apiextensions.k8s.io/v1` (`InstalledCrds.install`).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mtlskit.rules import gateway as gw
from mtlskit.sandbox import kube_crd_rules
from mtlskit.sandbox import kube_crd_schemas as schemas
from mtlskit.sandbox.kube import API, KINDS, Kind, KubeObjects, key_of
from mtlskit.sandbox.web import ApiError, kube_time

CRD = KINDS[("apiextensions.k8s.io", "customresourcedefinitions")]
GATEWAY_CLASS = KINDS[(gw.GROUP, "gatewayclasses")]
BUNDLE_META = "gateway_api"
BUNDLES = (*gw.BUNDLE_VERSIONS, gw.NO_GATEWAY_API)

AGE = {"jsonPath": ".metadata.creationTimestamp", "name": "Age", "type": "date"}


def _column(name: str, json_path: str, priority: int = 0) -> dict[str, Any]:
    """A string column of `kubectl get` (priority 1: shown only with -o wide)."""
    return {
        "jsonPath": json_path,
        "name": name,
        **({"priority": priority} if priority else {}),
        "type": "string",
    }


def _condition_column(name: str) -> dict[str, Any]:
    return _column(name, f'.status.conditions[?(@.type=="{name}")].status')


@dataclass(frozen=True, eq=False)  # one object per CRD, hashed by identity (its columns are dicts)
class CustomResource:
    """One CRD: its kind, its schema for a bundle, and what its CRD object says besides the schema."""

    kind: Kind  # at its storage version: what `kube.KINDS` holds, the store keeps and controllers see
    schema: Callable[[str], dict[str, Any]]
    columns: tuple[dict[str, Any], ...] = ()
    gateway_api: bool = False  # part of the Gateway API bundle (its annotations, installed with it)
    gke_policy: bool = False  # one of GKE's policies (installed with the Gateway API, labelled Direct)
    # Other versions served with the same schema (conversion "None": only apiVersion changes), each
    # with the first Gateway API release whose standard CRD serves it.
    other_versions: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return self.kind.qualified

    def kinds(self, bundle: str) -> tuple[Kind, ...]:
        """The kind at every version the bundle serves, GA before beta (the CRD's and discovery's order)."""
        others = [
            dataclasses.replace(self.kind, version=v)
            for v, since in self.other_versions
            if gw.bundle_at_least(bundle, since)
        ]
        return tuple(sorted([self.kind, *others], key=lambda k: _version_rank(k.version)))


def _version_rank(version: str) -> tuple[int, int, int]:
    """Kubernetes' version priority: v1 before v1beta2 before v1beta1 before v1alpha1."""
    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if match is None:
        return (3, 0, 0)
    major, stage, minor = match.groups()
    return ({None: 0, "beta": 1, "alpha": 2}[stage], -int(major), -int(minor or 0))


def _row(
    group: str,
    plural: str,
    schema: Callable[[str], dict[str, Any]],
    *columns: dict[str, Any],
    other_versions: tuple[tuple[str, str], ...] = (),
) -> CustomResource:
    return CustomResource(
        KINDS[(group, plural)],
        schema,
        columns,
        gateway_api=group == gw.GROUP,
        gke_policy=group == gw.POLICY_GROUP,
        other_versions=other_versions,
    )


# The standard CRDs of v1.3 to v1.5 still serve v1beta1 of the kinds that went GA, and v1.5 serves
# ReferenceGrant at v1 (its storage version stays v1beta1).
V1BETA1 = (("v1beta1", "v1.3.0"),)


CUSTOM_RESOURCES = (
    _row("cloud.google.com", "backendconfigs", schemas.backend_config),
    _row(
        gw.GROUP,
        "gatewayclasses",
        schemas.gateway_class,
        _column("Controller", ".spec.controllerName"),
        _condition_column("Accepted"),
        AGE,
        _column("Description", ".spec.description", priority=1),
        other_versions=V1BETA1,
    ),
    _row(
        gw.GROUP,
        "gateways",
        schemas.gateway,
        _column("Class", ".spec.gatewayClassName"),
        _column("Address", ".status.addresses[*].value"),
        _condition_column("Programmed"),
        AGE,
        other_versions=V1BETA1,
    ),
    _row(
        gw.GROUP,
        "httproutes",
        schemas.http_route,
        _column("Hostnames", ".spec.hostnames"),
        AGE,
        other_versions=V1BETA1,
    ),
    _row(gw.GROUP, "referencegrants", schemas.reference_grant, AGE, other_versions=(("v1", "v1.5.0"),)),
    _row(gw.POLICY_GROUP, "gcpgatewaypolicies", schemas.gcp_gateway_policy),
    _row(gw.POLICY_GROUP, "gcpbackendpolicies", schemas.gcp_backend_policy),
    _row(gw.POLICY_GROUP, "healthcheckpolicies", schemas.health_check_policy),
)
CUSTOM_KINDS = frozenset(r.kind for r in CUSTOM_RESOURCES)

# The `api-approved.kubernetes.io` annotation the API server requires on CRDs in a *.k8s.io group:
# the pull request that approved each bundle's API.
APPROVED = {
    "v1.5": "https://github.com/kubernetes-sigs/gateway-api/pull/4530",
    "v1.4": "https://github.com/kubernetes-sigs/gateway-api/pull/3328",
    "v1.3": "https://github.com/kubernetes-sigs/gateway-api/pull/3328",
}


def check_bundle(bundle: str) -> str:
    if bundle not in BUNDLES:
        raise ApiError.google(
            400, f"gateway_api must be one of {', '.join(BUNDLES)} (got {bundle!r}); set sandbox.gateway_api"
        )
    return bundle


@functools.cache
def installed(bundle: str) -> tuple[CustomResource, ...]:
    """The CRDs a cluster with this bundle has: BackendConfig always, the rest with the Gateway API."""
    enabled = bundle != gw.NO_GATEWAY_API
    return tuple(r for r in CUSTOM_RESOURCES if enabled or not (r.gateway_api or r.gke_policy))


@functools.cache
def served(bundle: str) -> tuple[Kind, ...]:
    """Every kind the API serves with this bundle, at every version: the built-in ones and the
    installed CRDs'."""
    builtin = tuple(k for k in KINDS.values() if k not in CUSTOM_KINDS)
    return builtin + tuple(k for r in installed(bundle) for k in r.kinds(bundle))


def resource_of(kind: Kind) -> CustomResource | None:
    """The CRD of a kind at any of its versions, or None for a built-in kind."""
    return next(
        (r for r in CUSTOM_RESOURCES if (r.kind.group, r.kind.plural) == (kind.group, kind.plural)), None
    )


def rules_of(kind: Kind) -> list[kube_crd_rules.Rule]:
    """The validation rules of a custom resource's CRD (none for a built-in kind)."""
    return kube_crd_rules.RULES.get(kind.plural, []) if is_custom(kind) else []


def is_custom(kind: Kind) -> bool:
    return resource_of(kind) is not None


def storage_of(kind: Kind) -> Kind:
    """The kind at the version its objects are stored under (what the store and controllers use)."""
    return KINDS[(kind.group, kind.plural)]


def definition_name(kind: Kind) -> str:
    """The name the API server gives a CRD's schema in its OpenAPI documents: the group reversed,
    then version and kind (`io.k8s.networking.gateway.v1.Gateway`)."""
    return ".".join([*reversed(kind.group.split(".")), kind.version, kind.kind])


@functools.cache
def open_api_v3_schema(resource: CustomResource, bundle: str) -> dict[str, Any]:
    """The CRD's `openAPIV3Schema`, self-contained as the CRD object holds it."""
    return resource.schema(bundle)


@functools.cache
def definitions(bundle: str) -> dict[str, dict[str, Any]]:
    """The installed CRDs' schemas as the OpenAPI documents publish them: metadata is the ObjectMeta
    definition and each names its group, version and kind."""
    out: dict[str, dict[str, Any]] = {}
    for resource in installed(bundle):
        for kind in resource.kinds(bundle):
            schema = copy.deepcopy(open_api_v3_schema(resource, bundle))
            schema["properties"]["metadata"] = {
                "$ref": "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
                "description": "Standard object's metadata.",
            }
            schema["x-kubernetes-group-version-kind"] = [
                {"group": kind.group, "kind": kind.kind, "version": kind.version}
            ]
            out[definition_name(kind)] = schema
    return out


def crd_body(resource: CustomResource, bundle: str) -> dict[str, Any]:
    """The CustomResourceDefinition object of one installed CRD (without what the server sets)."""
    kind = resource.kind
    annotations: dict[str, str] = {}
    labels: dict[str, str] = {}
    if resource.gateway_api:
        annotations = {
            "api-approved.kubernetes.io": APPROVED[bundle],
            gw.BUNDLE_VERSION_ANNOTATION: gw.BUNDLE_VERSIONS[bundle],
            gw.CHANNEL_ANNOTATION: gw.CHANNEL,
        }
    if resource.gke_policy:
        labels = {gw.POLICY_LABEL: "Direct"}
    names: dict[str, Any] = {
        "kind": kind.kind,
        "listKind": f"{kind.kind}List",
        "plural": kind.plural,
        "singular": kind.singular,
    }
    if kind.short_names:
        names["shortNames"] = list(kind.short_names)
    if kind.categories:
        names["categories"] = list(kind.categories)
    versions = [_crd_version(resource, served_as, bundle) for served_as in resource.kinds(bundle)]
    meta: dict[str, Any] = {"name": resource.name}
    if annotations:
        meta["annotations"] = annotations
    if labels:
        meta["labels"] = labels
    now = kube_time()
    return {
        "apiVersion": CRD.api_version,
        "kind": CRD.kind,
        "metadata": meta,
        "spec": {
            "group": kind.group,
            "names": names,
            "scope": "Namespaced" if kind.namespaced else "Cluster",
            "versions": versions,
            "conversion": {"strategy": "None"},
        },
        "status": {
            "acceptedNames": names,
            "conditions": [
                _condition("NamesAccepted", "NoConflicts", "no conflicts found", now),
                _condition(
                    "Established", "InitialNamesAccepted", "the initial names have been accepted", now
                ),
            ],
            "storedVersions": [kind.version],
        },
    }


def _crd_version(resource: CustomResource, kind: Kind, bundle: str) -> dict[str, Any]:
    version: dict[str, Any] = {
        "name": kind.version,
        "served": True,
        "storage": kind == resource.kind,
        "schema": {"openAPIV3Schema": copy.deepcopy(open_api_v3_schema(resource, bundle))},
    }
    if kind.has_status:
        version["subresources"] = {"status": {}}
    if resource.columns:
        version["additionalPrinterColumns"] = [dict(c) for c in resource.columns]
    return version


def _condition(
    type_: str, reason: str, message: str, when: str, generation: int | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": type_,
        "status": "True",
        "lastTransitionTime": when,
        "reason": reason,
        "message": message,
    }
    if generation is not None:
        out["observedGeneration"] = generation
    return out


def _replaced(body: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """A stored CRD rewritten to `body`, keeping what the server set (uid, creation time)."""
    return {**current, **body, "metadata": {**current["metadata"], **body["metadata"]}}


def _same(stored: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """True when a stored CRD already says what the bundle wants (its schema, names, labels)."""
    meta_keys = ("annotations", "labels")
    return stored.get("spec") == wanted["spec"] and all(
        stored["metadata"].get(k) == wanted["metadata"].get(k) for k in meta_keys
    )


class InstalledCrds:
    """The cluster's CRD bundle, kept in the store so it survives restarts and can change at run time
    (a cluster upgrade, or the Gateway API being enabled or disabled)."""

    def __init__(self, objects: KubeObjects):
        self.objects = objects

    @property
    def bundle(self) -> str:
        return self.objects.store.meta(BUNDLE_META) or gw.NO_GATEWAY_API

    def served(self) -> tuple[Kind, ...]:
        return served(self.bundle)

    def install(self, bundle: str) -> None:
        """Make the stored CRDs, GatewayClasses and custom objects what a cluster with `bundle` has.

        CRDs of the bundle are created or replaced; a CRD the bundle lacks is deleted with every object
        of its kind, as the API server does; the GKE GatewayClasses are seeded with the features their
        controller claims on this bundle."""
        check_bundle(bundle)
        self.objects.store.set_meta(BUNDLE_META, bundle)
        wanted = {r.name: crd_body(r, bundle) for r in installed(bundle)}
        for stored in self.objects.list(CRD):
            name = stored["metadata"]["name"]
            if name not in wanted:
                self._uninstall(name)
            elif not _same(stored, wanted[name]):
                self.objects.update_with(CRD, None, name, {}, functools.partial(_replaced, wanted[name]))
        for name, body in wanted.items():
            if self.objects.get(CRD, None, name) is None:
                self.objects.create(CRD, None, body)
        if bundle != gw.NO_GATEWAY_API:
            self._seed_classes(bundle)

    def _uninstall(self, name: str) -> None:
        resource = next(r for r in CUSTOM_RESOURCES if r.name == name)
        for obj in self.objects.list(resource.kind):
            meta = obj["metadata"]
            self.objects.store.delete(
                API, resource.kind.qualified, key_of(resource.kind, meta.get("namespace"), meta["name"])
            )
        self.objects.store.delete(API, CRD.qualified, key_of(CRD, None, name))

    def _seed_classes(self, bundle: str) -> None:
        """GKE's managed GatewayClasses, Accepted, with the features the controller claims (GEP-2162)."""
        for facts in gw.CLASSES.values():
            current = self.objects.get(GATEWAY_CLASS, None, facts.name)
            if current is None:
                current = self.objects.create(
                    GATEWAY_CLASS,
                    None,
                    {"metadata": {"name": facts.name}, "spec": {"controllerName": gw.CONTROLLER_NAME}},
                )
            # None where the bundle's GatewayClass has no such field: the merge patch removes it
            features = [{"name": f} for f in gw.supported_features(facts.name, bundle)] or None
            status = current.get("status") or {}
            if status.get("conditions") and status.get("supportedFeatures") == features:
                continue
            accepted = _condition(
                "Accepted",
                "Accepted",
                "The GatewayClass is accepted",
                kube_time(),
                current["metadata"]["generation"],
            )
            patch = {"status": {"conditions": [accepted], "supportedFeatures": features}}
            self.objects.patch(GATEWAY_CLASS, None, facts.name, patch, status_only=True)
