"""The GKE Gateway's words and facts that both the kit and the sandbox's Gateway controller rely on.

The Gateway topology builds the same mTLS frontend through Kubernetes objects (Gateway API v1.5,
GEP-91) that Google's Gateway controller turns into a load balancer. Which classes exist, which
features each one claims, how the controller names and annotates what it builds, and how the
EXTERNAL_MANAGED data plane answers differently from the classic one are stated once here, so the
kit's params checks, preflight, build and verification agree with the sandbox that stands in for GKE.
Sources and what is unverified: the reference notes on Gateway mTLS (conformance reports v1.5/v1.6).
"""

from __future__ import annotations

from dataclasses import dataclass

GROUP = "gateway.networking.k8s.io"
VERSION = "v1"
POLICY_GROUP = "networking.gke.io"
POLICY_VERSION = "v1"
CONTROLLER_NAME = "networking.gke.io/gateway"
FINALIZER = "gateway.finalizer.networking.gke.io"

# GEP-91 conformance feature names (standard channel since v1.5).
FEATURE_VALIDATION = "GatewayFrontendClientCertificateValidation"
FEATURE_FALLBACK = "GatewayFrontendClientCertificateValidationInsecureFallback"

# The Core way to hand the Gateway a client CA: one ConfigMap with this key.
CA_KEY = "ca.crt"

# GEP-91 validation modes, and the server TLS policy mode each one means on the load balancer.
ALLOW_VALID_ONLY = "AllowValidOnly"
ALLOW_INSECURE_FALLBACK = "AllowInsecureFallback"
MODE_FOR_VALIDATION = {
    "REJECT_INVALID": ALLOW_VALID_ONLY,
    "ALLOW_INVALID_OR_MISSING_CLIENT_CERT": ALLOW_INSECURE_FALLBACK,
}

# The oldest Gateway API bundle whose standard CRDs carry spec.tls.frontend, and the GKE versions that
# install it (new clusters and upgrades, standard channel).
FRONTEND_VALIDATION_SINCE = "v1.5.0"
FRONTEND_VALIDATION_GKE = "1.35.2-gke.1751000"
# The oldest bundle whose standard GatewayClass has `status.supportedFeatures` (GEP-2162); before it
# a class cannot say what it supports, so the kit can only read the schema.
SUPPORTED_FEATURES_SINCE = "v1.4.0"

# Annotations the controller writes on a Gateway, each holding the resource paths it built.
ANNOTATION_PREFIX = "networking.gke.io/"
ANNOTATIONS = {
    "addresses": "networking.gke.io/addresses",
    "forwarding_rules": "networking.gke.io/forwarding-rules",
    "target_https_proxies": "networking.gke.io/target-https-proxies",
    "target_http_proxies": "networking.gke.io/target-http-proxies",
    "url_maps": "networking.gke.io/url-maps",
    "backend_services": "networking.gke.io/backend-services",
    "health_checks": "networking.gke.io/health-checks",
    "ssl_certificates": "networking.gke.io/ssl-certificates",
    "firewalls": "networking.gke.io/firewalls",
    "last_reconcile_time": "networking.gke.io/last-reconcile-time",
}
# How a listener gets its server certificate: a Certificate Manager map (Gateway annotation) or
# existing Compute SSL certificates named in the listener's TLS options.
CERTMAP_ANNOTATION = "networking.gke.io/certmap"
PRE_SHARED_CERTS_OPTION = "networking.gke.io/pre-shared-certs"
# Every resource the single-cluster controller builds is named with this prefix.
NAME_PREFIX = "gkegw1-"

# Conditions and reasons the kit reads (GEP-91 listener conditions for CA references).
INVALID_CA_REASONS = ("InvalidCACertificateRef", "InvalidCACertificateKind", "RefNotPermitted")
NO_VALID_CA = "NoValidCACertificate"
INSECURE_MODE_CONDITION = "InsecureFrontendValidationMode"


@dataclass(frozen=True)
class GatewayClassFacts:
    """What one GKE GatewayClass builds and which GEP-91 features GKE's conformance reports claim."""

    name: str
    load_balancing_scheme: str
    regional: bool
    claims: frozenset[str]

    def claims_fallback(self) -> bool:
        return FEATURE_FALLBACK in self.claims


# Both managed classes: GKE's v1.5 and v1.6 conformance reports list frontend validation as
# supported and the insecure fallback as unsupported.
CLASSES = {
    c.name: c
    for c in (
        GatewayClassFacts(
            "gke-l7-global-external-managed", "EXTERNAL_MANAGED", False, frozenset({FEATURE_VALIDATION})
        ),
        GatewayClassFacts(
            "gke-l7-regional-external-managed", "EXTERNAL_MANAGED", True, frozenset({FEATURE_VALIDATION})
        ),
    )
}
DEFAULT_CLASS = "gke-l7-global-external-managed"


@dataclass(frozen=True)
class DataPlane:
    """How a load balancer of one scheme answers where the classic and the managed ones differ
    (Google's "migrate to the global external Application Load Balancer" page)."""

    no_healthy_backend: int
    header_too_large: int
    forwarded_for_delimiter: str


DATA_PLANE = {
    "EXTERNAL": DataPlane(no_healthy_backend=502, header_too_large=413, forwarded_for_delimiter=", "),
    "EXTERNAL_MANAGED": DataPlane(no_healthy_backend=503, header_too_large=431, forwarded_for_delimiter=","),
}


# ---- what the controller writes back, read by the kit -----------------------------------------------

# Events about Gateways come from this component (single-cluster controller), with these reasons.
EVENT_COMPONENT = "sc-gateway-controller"
EVENT_REASONS = ("ADD", "UPDATE", "SYNC")
# A `networking.gke.io/*` annotation holds resource paths (`/projects/P/global/<collection>/<name>`)
# joined by this separator; an empty string when the controller built none of that collection.
PATH_SEPARATOR = ", "

# Listener and route condition reasons the kit names in its checks (Gateway API v1.5).
UNSUPPORTED_VALUE = "UnsupportedValue"
BACKEND_NOT_FOUND = "BackendNotFound"
# Policies report `Attached` (GKE's shared policy status).
POLICY_CONDITION = "Attached"
POLICY_TARGET_NOT_FOUND = "TargetNotFound"
POLICY_INVALID = "Invalid"


def join_paths(paths: list[str]) -> str:
    """An annotation value from resource paths, as the controller writes it."""
    return PATH_SEPARATOR.join(paths)


def split_paths(value: str | None) -> list[str]:
    """The resource paths an annotation holds (none for an absent or empty one)."""
    return [p.strip() for p in (value or "").split(",") if p.strip()]


def resource_name(path: str) -> str:
    """The name at the end of a resource path or link."""
    return path.rstrip("/").rsplit("/", 1)[-1]


# ---- the CRD bundle a cluster serves ------------------------------------------------------------------

# `sandbox.gateway_api` (the simulated cluster's bundle) and the Gateway API release each one installs
# (GKE's GatewayClass capabilities page: 1.35.2+ installs 1.5.0, 1.34.1+ 1.4.0, 1.33.2+ 1.3.0). "none"
# is a cluster without the Gateway API enabled: no Gateway API CRDs and no GKE policy CRDs.
BUNDLE_VERSIONS = {"v1.5": "v1.5.0", "v1.4": "v1.4.0", "v1.3": "v1.3.0"}
NO_GATEWAY_API = "none"
CHANNEL = "standard"
# The annotations every Gateway API CRD carries (what the kit reads to name the installed bundle).
BUNDLE_VERSION_ANNOTATION = "gateway.networking.k8s.io/bundle-version"
CHANNEL_ANNOTATION = "gateway.networking.k8s.io/channel"
# The label on GKE's policy CRDs (GEP-713: a Direct policy attaches to the object it targets).
POLICY_LABEL = "gateway.networking.k8s.io/policy"


def bundle_at_least(bundle: str, release: str) -> bool:
    """True when the bundle installs this Gateway API release or a later one ("none" installs none)."""
    installed = BUNDLE_VERSIONS.get(bundle)
    return installed is not None and _release(installed) >= _release(release)


def frontend_in_standard(bundle: str) -> bool:
    """True when the bundle's standard Gateway CRD carries `spec.tls.frontend` (v1.5 and later)."""
    return bundle_at_least(bundle, FRONTEND_VALIDATION_SINCE)


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.lstrip("v").split("."))


# Features GKE's conformance reports (v1.3 to v1.6) list as supported on the managed classes besides
# the frontend validation ones: the core profile and the extended features every report claims.
CORE_FEATURES = ("Gateway", "HTTPRoute", "ReferenceGrant")
COMMON_FEATURES = (
    "GatewayPort8080",
    "HTTPRouteHostRewrite",
    "HTTPRoutePathRedirect",
    "HTTPRouteRequestMirror",
    "HTTPRouteResponseHeaderModification",
    "HTTPRouteSchemeRedirect",
)


def supported_features(class_name: str, bundle: str) -> list[str]:
    """What the class publishes in `status.supportedFeatures` on a cluster with this bundle, sorted as
    the API lists them: the frontend validation features only where the bundle's schema has the field,
    nothing where the bundle's GatewayClass has no such status field."""
    if not bundle_at_least(bundle, SUPPORTED_FEATURES_SINCE):
        return []
    facts = CLASSES[class_name]
    features = set(CORE_FEATURES) | set(COMMON_FEATURES)
    if frontend_in_standard(bundle):
        features |= facts.claims
    return sorted(features)
