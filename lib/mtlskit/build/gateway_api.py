"""What the cluster says about its Gateway API: is it served, does its Gateway schema carry frontend
client-certificate validation, and does the GatewayClass exist, accept, and claim the feature.

GKE installs the Gateway API CRDs with the cluster, and only the v1.5 bundle (GKE 1.35.2 and later)
has `spec.tls.frontend` in the standard channel. An older schema does not refuse a Gateway that sets
it: the API server prunes the unknown field and the load balancer comes up without mTLS. So the kit
reads the served schema (the group's OpenAPI v3 document, else the CRD's `openAPIV3Schema`: not a
version guess) before writing anything,
and the build refuses (`errors.GatewayApiUnsupported`) when it lacks the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mtlskit.build import gateway_kube as kube
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core.errors import ApiError, GatewayApiUnsupported, NotFound
from mtlskit.rules import gateway as gw

GATEWAY_CRD = f"gateways.{gw.GROUP}"
BUNDLE_ANNOTATION = f"{gw.GROUP}/bundle-version"
CHANNEL_ANNOTATION = f"{gw.GROUP}/channel"
# The schema path of GEP-91's validation, below the Gateway's openAPIV3Schema.
FRONTEND_PATH = ("spec", "tls", "frontend", "default", "validation", "caCertificateRefs")


def upgrade_fix(params: Params) -> str:
    """What makes a cluster serve frontend validation (the reader's cluster and region are not in the
    params: the kube context names them)."""
    return (
        f"upgrade the cluster to GKE {gw.FRONTEND_VALIDATION_GKE} or later (Gateway API "
        f"{gw.FRONTEND_VALIDATION_SINCE} standard CRDs) and enable the standard channel: `gcloud container "
        f"clusters update CLUSTER --gateway-api=standard --location=LOCATION --project={params.project}`"
    )


@dataclass(frozen=True)
class GatewaySchema:
    """The served Gateway CRD, as far as frontend validation is concerned."""

    served: bool  # discovery lists gateways in gateway.networking.k8s.io/v1
    crd_found: bool  # a schema was read (the served OpenAPI v3 document, or the CRD)
    bundle: str  # the bundle-version annotation ("v1.5.0"), "" when absent
    channel: str  # "standard" / "experimental", "" when absent
    frontend: bool  # spec.tls.frontend.default.validation.caCertificateRefs is in the v1 schema
    has_mode: bool  # ... and validation.mode
    source: str = ""  # where the schema was read: the served OpenAPI v3 document or the CRD

    def describe(self) -> str:
        if not self.served:
            return f"{gw.GROUP}/{gw.VERSION} is not served: the cluster has no Gateway API"
        bundle = f"CRD bundle {self.bundle or 'unknown'}, {self.channel or 'channel unknown'}"
        if not self.crd_found:
            return (
                f"gateways are served but neither their OpenAPI v3 schema nor CRD {GATEWAY_CRD} could be read"
            )
        where = ".".join(FRONTEND_PATH)
        read = f"the Gateway {gw.VERSION} schema ({self.source or 'served'}; {bundle})"
        if not self.frontend:
            return f"{read} has no {where}"
        return f"{read} has {where}" + (
            " and validation.mode" if self.has_mode else " but no validation.mode"
        )


def _served(clients: Clients) -> bool:
    try:
        resources = clients.call(clients.kube.custom.get_api_resources, gw.GROUP, gw.VERSION)
    except NotFound:
        return False
    return any(r.name == "gateways" for r in resources.resources or [])


def _walk(
    schema: dict[str, Any] | None, path: tuple[str, ...], defs: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The schema node at `path` (property names), following `$ref`/`allOf` into `defs` (OpenAPI v3
    components); None when a step is missing."""
    node = _resolve(schema, defs)
    for part in path:
        node = _resolve(((node or {}).get("properties") or {}).get(part), defs)
        if node is None:
            return None
    return node


def _resolve(node: dict[str, Any] | None, defs: dict[str, Any] | None) -> dict[str, Any] | None:
    for _ in range(8):  # a reference to a reference, at most a few deep
        if node is None:
            return None
        ref = node.get("$ref") or next((a.get("$ref") for a in node.get("allOf") or [] if "$ref" in a), None)
        if not ref:
            return node
        node = (defs or {}).get(str(ref).rsplit("/", 1)[-1])
    return node


def openapi_definition_name() -> str:
    """How the API server names the Gateway kind in its OpenAPI (`io.k8s.networking.gateway.v1.Gateway`)."""
    return ".".join([*reversed(gw.GROUP.split(".")), gw.VERSION, "Gateway"])


def _openapi_schema(clients: Clients) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The Gateway's schema from the served OpenAPI v3 document of the group version (what the API
    server validates and prunes with), and the document's components; (None, {}) when not served."""
    api = clients.kube.api
    request = api.param_serialize(
        "GET",
        f"/openapi/v3/apis/{gw.GROUP}/{gw.VERSION}",
        header_params={"Accept": "application/json"},
        auth_settings=["BearerToken"],
    )
    response = clients.call(api.call_api, *request)
    response.read()
    if response.status != 200:
        return None, {}
    document = json.loads(response.data)
    defs = (document.get("components") or {}).get("schemas") or {}
    return defs.get(openapi_definition_name()), defs


def _crd(clients: Clients) -> dict[str, Any] | None:
    """The Gateway CRD, or None when it cannot be read (absent, or RBAC without CRD reads)."""
    try:
        return kube.read(clients, kube.CRD, None, GATEWAY_CRD)
    except ApiError as err:
        if err.status in (401, 403):
            return None
        raise


def read_schema(clients: Clients) -> GatewaySchema:
    """Discovery for the group, then the served OpenAPI v3 schema of the Gateway (the CRD's
    `openAPIV3Schema` when the document is not served); the CRD's annotations name the bundle."""
    if not _served(clients):
        return GatewaySchema(False, False, "", "", False, False)
    schema, defs = _openapi_schema(clients)
    crd = _crd(clients)
    source = f"OpenAPI v3 /openapi/v3/apis/{gw.GROUP}/{gw.VERSION}"
    if schema is None and crd is not None:
        source = f"CRD {GATEWAY_CRD} openAPIV3Schema"
        versions = {v.get("name"): v for v in crd.get("spec", {}).get("versions", [])}
        schema = ((versions.get(gw.VERSION) or {}).get("schema") or {}).get("openAPIV3Schema")
    if schema is None:
        return GatewaySchema(True, False, "", "", False, False)
    annotations = ((crd or {}).get("metadata") or {}).get("annotations") or {}
    validation = _walk(schema, FRONTEND_PATH[:-1], defs)
    return GatewaySchema(
        served=True,
        crd_found=True,
        bundle=annotations.get(BUNDLE_ANNOTATION, ""),
        channel=annotations.get(CHANNEL_ANNOTATION, ""),
        frontend=_walk(validation, FRONTEND_PATH[-1:], defs) is not None,
        has_mode=_walk(validation, ("mode",), defs) is not None,
        source=source,
    )


@dataclass(frozen=True)
class ClassState:
    """The GatewayClass as its controller reports it."""

    name: str
    found: bool
    controller: str = ""
    accepted: str = ""  # the Accepted condition's status: "True", "False", "Unknown" or "" (none yet)
    reason: str = ""
    message: str = ""
    features: list[str] | None = field(default=None)  # None: status.supportedFeatures not published


def features_of(status: dict[str, Any]) -> list[str] | None:
    """`status.supportedFeatures`: a list of `{name}` since Gateway API v1.2 (plain strings before)."""
    raw = status.get("supportedFeatures")
    if raw is None:
        return None
    return [str(f.get("name") if isinstance(f, dict) else f) for f in raw]


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    """A status condition by type (`Accepted`, `Programmed`, ...), or an empty dict."""
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return dict(c)
    return {}


def read_class(clients: Clients, name: str) -> ClassState:
    obj = kube.read(clients, kube.GATEWAY_CLASS, None, name)
    if obj is None:
        return ClassState(name, False)
    accepted = condition(obj, "Accepted")
    return ClassState(
        name,
        True,
        controller=str((obj.get("spec") or {}).get("controllerName", "")),
        accepted=str(accepted.get("status", "")),
        reason=str(accepted.get("reason", "")),
        message=str(accepted.get("message", "")),
        features=features_of(obj.get("status") or {}),
    )


def require_frontend_validation(clients: Clients, params: Params) -> GatewaySchema:
    """Refuse before any write when the cluster's Gateway schema cannot carry frontend validation."""
    schema = read_schema(clients)
    if not (schema.served and schema.crd_found and schema.frontend):
        raise GatewayApiUnsupported(
            f"{schema.describe()}; nothing was applied. Fix: {upgrade_fix(params)}, then run 00_preflight"
        )
    return schema
