"""The structural schemas of the custom resources the simulated cluster has installed.

A CRD's `openAPIV3Schema` is the one place its fields are defined: the API server prunes and validates
writes with it, publishes it in `/openapi/v2` and `/openapi/v3`, and shows it in the
CustomResourceDefinition object, so the sandbox builds all three from the schemas here (`kube_crds`).
No package ships these CRDs, so the fields the kit and a person at kubectl use are written out, with
their names, types, enums, bounds, defaults and required lists as the published CRDs have them:
BackendConfig from ingress-gce (`pkg/apis/backendconfig/v1`), the Gateway API kinds from the standard
channel of kubernetes-sigs/gateway-api (v1.3.0 to v1.5.x), and GKE's policies from
GoogleCloudPlatform/gke-gateway-api (`config/crd`). Sub-objects the kit never writes (CORS, URL
rewrites, gRPC health checks, ...) are kept as objects whose unknown fields are preserved, so a valid
manifest is never pruned by the sandbox although it does not check their insides.
"""

from __future__ import annotations

from typing import Any

from mtlskit.rules import gateway as gw

Schema = dict[str, Any]

# ---- a small vocabulary for structural schemas -----------------------------------------------------------


def obj(props: dict[str, Schema], desc: str = "", required: tuple[str, ...] = (), **extra: Any) -> Schema:
    out: Schema = {"type": "object", "properties": props}
    if desc:
        out["description"] = desc
    if required:
        out["required"] = list(required)
    return {**out, **extra}


def arr(items: Schema, desc: str = "", **extra: Any) -> Schema:
    out: Schema = {"type": "array", "items": items}
    if desc:
        out["description"] = desc
    return {**out, **extra}


def string(desc: str = "", **extra: Any) -> Schema:
    return {"type": "string", **({"description": desc} if desc else {}), **extra}


def integer(desc: str = "", lo: int | None = None, hi: int | None = None, fmt: str = "int32") -> Schema:
    out: Schema = {"type": "integer", "format": fmt}
    if desc:
        out["description"] = desc
    if lo is not None:
        out["minimum"] = lo
    if hi is not None:
        out["maximum"] = hi
    return out


def boolean(desc: str = "") -> Schema:
    return {"type": "boolean", **({"description": desc} if desc else {})}


def enum(values: tuple[str, ...], desc: str = "", default: str | None = None) -> Schema:
    out = string(desc, enum=list(values))
    if default is not None:
        out["default"] = default
    return out


def string_map(desc: str = "") -> Schema:
    return {
        "type": "object",
        "additionalProperties": {"type": "string"},
        **({"description": desc} if desc else {}),
    }


def loose(desc: str) -> Schema:
    """An object the sandbox does not model field by field: kept as written, never pruned."""
    return {"type": "object", "description": desc, "x-kubernetes-preserve-unknown-fields": True}


def root(spec: Schema, status: Schema, desc: str, spec_required: bool = True) -> Schema:
    """A custom resource's top level: apiVersion, kind, metadata, spec and status."""
    return obj(
        {
            "apiVersion": string(
                "APIVersion defines the versioned schema of this representation of an object."
            ),
            "kind": string("Kind is a string value representing the REST resource this object represents."),
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
        desc,
        required=("spec",) if spec_required else (),
    )


# ---- shared pieces ---------------------------------------------------------------------------------------

PORT = integer("Port number.", 1, 65535)


def condition_list(default: list[dict[str, str]] | None = None, at_least_one: bool = False) -> Schema:
    """metav1.Condition, keyed by type (what `kubectl describe` shows under Conditions)."""
    condition = obj(
        {
            "lastTransitionTime": string("When the condition last changed.", format="date-time"),
            "message": string("A human-readable message.", maxLength=32768),
            "observedGeneration": integer(
                "The .metadata.generation the condition was set for.", 0, fmt="int64"
            ),
            "reason": string("A CamelCase reason.", minLength=1, maxLength=1024),
            "status": enum(("True", "False", "Unknown"), "Status of the condition."),
            "type": string("Type of condition in CamelCase.", maxLength=316),
        },
        required=("lastTransitionTime", "message", "reason", "status", "type"),
    )
    out = arr(
        condition,
        "Conditions describe the current state of the object.",
        maxItems=8,
        **{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    if default is not None:
        out["default"] = default
    if at_least_one:
        out["minItems"] = 1
    return out


def pending(*types: str) -> list[dict[str, str]]:
    """What a new object's status says until its controller writes one (the CRDs' status defaults)."""
    return [
        {
            "lastTransitionTime": "1970-01-01T00:00:00Z",
            "message": "Waiting for controller",
            "reason": "Pending",
            "status": "Unknown",
            "type": t,
        }
        for t in types
    ]


def object_reference(desc: str, required: tuple[str, ...] = ("group", "kind", "name")) -> Schema:
    return obj(
        {
            "group": string("The group of the referent; empty for the core API group.", maxLength=253),
            "kind": string("Kind of the referent.", minLength=1, maxLength=63),
            "name": string("Name of the referent.", minLength=1, maxLength=253),
            "namespace": string(
                "Namespace of the referent; the local namespace when empty.", minLength=1, maxLength=63
            ),
        },
        desc,
        required=required,
    )


def local_reference(desc: str) -> Schema:
    ref = object_reference(desc)
    del ref["properties"]["namespace"]
    return ref


def secret_reference(desc: str) -> Schema:
    ref = object_reference(desc, required=("name",))
    ref["properties"]["group"] = {**ref["properties"]["group"], "default": ""}
    ref["properties"]["kind"] = {**ref["properties"]["kind"], "default": "Secret"}
    return ref


def parent_reference(desc: str) -> Schema:
    return obj(
        {
            "group": string("Group of the parent.", maxLength=253, default=gw.GROUP),
            "kind": string("Kind of the parent.", minLength=1, maxLength=63, default="Gateway"),
            "name": string("Name of the parent.", minLength=1, maxLength=253),
            "namespace": string(
                "Namespace of the parent; the route's own when empty.", minLength=1, maxLength=63
            ),
            "port": PORT,
            "sectionName": string(
                "A section of the parent: a Gateway listener's name.", minLength=1, maxLength=253
            ),
        },
        desc,
        required=("name",),
    )


def label_selector() -> Schema:
    return loose("A label selector (matchLabels, matchExpressions).")


# ---- GatewayClass -------------------------------------------------------------------------------------


def gateway_class(bundle: str) -> Schema:
    spec = obj(
        {
            "controllerName": string(
                "The controller that manages Gateways of this class (domain-prefixed path). Immutable.",
                minLength=1,
                maxLength=253,
            ),
            "description": string("Describes the class.", maxLength=64),
            "parametersRef": object_reference(
                "Implementation-specific parameters for the class.", ("group", "kind", "name")
            ),
        },
        "Spec for this GatewayClass.",
        required=("controllerName",),
    )
    status_props: dict[str, Schema] = {"conditions": condition_list(pending("Accepted"))}
    if gw.bundle_at_least(bundle, gw.SUPPORTED_FEATURES_SINCE):
        status_props["supportedFeatures"] = arr(
            obj(
                {"name": string("A feature name of the Gateway API conformance suite.")},
                required=("name",),
            ),
            "The features the class supports, by conformance feature name (GEP-2162).",
            maxItems=64,
            **{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
        )
    status = obj(
        status_props,
        "Status of the GatewayClass.",
        default={"conditions": pending("Accepted")},
    )
    return root(spec, status, "GatewayClass describes a class of Gateways available to the user.")


# ---- Gateway ------------------------------------------------------------------------------------------

ALLOWED_ROUTES = obj(
    {
        "kinds": arr(
            obj(
                {
                    "group": string("Group of the route kind.", maxLength=253, default=gw.GROUP),
                    "kind": string("Kind of the route.", minLength=1, maxLength=63),
                },
                required=("kind",),
            ),
            "Route kinds allowed to attach.",
            maxItems=8,
        ),
        "namespaces": obj(
            {
                "from": enum(("All", "Selector", "Same"), "Where routes may come from.", default="Same"),
                "selector": label_selector(),
            },
            "Namespaces routes may be attached from.",
            default={"from": "Same"},
        ),
    },
    "Which routes may attach to the listener.",
    default={"namespaces": {"from": "Same"}},
)

LISTENER = obj(
    {
        "name": string("The listener's name, unique within the Gateway.", minLength=1, maxLength=253),
        "hostname": string(
            "The host name the listener matches (SNI and Host header).", minLength=1, maxLength=253
        ),
        "port": PORT,
        "protocol": string("The network protocol: HTTP, HTTPS, TLS, TCP, UDP.", minLength=1, maxLength=255),
        "tls": obj(
            {
                "certificateRefs": arr(
                    secret_reference("A Secret (or implementation kind) holding the certificate and key."),
                    "Server certificates of the listener.",
                    maxItems=64,
                ),
                "mode": enum(("Terminate", "Passthrough"), "TLS handling.", default="Terminate"),
                "options": string_map(
                    "Implementation-specific options; on GKE `networking.gke.io/pre-shared-certs` names "
                    "Compute SSL certificates."
                ),
            },
            "TLS settings of the listener (HTTPS and TLS protocols).",
        ),
        "allowedRoutes": ALLOWED_ROUTES,
    },
    required=("name", "port", "protocol"),
)

ADDRESS = obj(
    {
        "type": string(
            "The address type: IPAddress, Hostname or NamedAddress (on GKE a reserved Compute address).",
            minLength=1,
            maxLength=253,
            default="IPAddress",
        ),
        "value": string("The address.", maxLength=253),
    }
)


def frontend_validation() -> Schema:
    return obj(
        {
            "caCertificateRefs": arr(
                object_reference(
                    "A CA bundle: Core support is a ConfigMap with the PEM certificates in key `ca.crt`."
                ),
                "Client CA certificates the Gateway validates client certificates against.",
                minItems=1,
                maxItems=8,
            ),
            "mode": enum(
                (gw.ALLOW_VALID_ONLY, gw.ALLOW_INSECURE_FALLBACK),
                "AllowValidOnly refuses a connection without a valid client certificate; "
                "AllowInsecureFallback accepts it and lets the backend decide.",
                default=gw.ALLOW_VALID_ONLY,
            ),
        },
        "Client certificate validation (GEP-91).",
        required=("caCertificateRefs",),
    )


def gateway_tls() -> Schema:
    """`spec.tls` of the v1.5 standard channel: frontend validation by default and per port."""
    return obj(
        {
            "backend": obj(
                {
                    "clientCertificateRef": secret_reference(
                        "The client certificate the Gateway shows backends."
                    )
                },
                "TLS from the Gateway to backends.",
            ),
            "frontend": obj(
                {
                    "default": obj(
                        {"validation": frontend_validation()},
                        "Applies to every HTTPS listener that no perPort entry names.",
                    ),
                    "perPort": arr(
                        obj(
                            {"port": PORT, "tls": obj({"validation": frontend_validation()})},
                            required=("port", "tls"),
                        ),
                        "Overrides of the default for every HTTPS listener on one port.",
                        maxItems=64,
                        **{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port"]},
                    ),
                },
                "TLS between clients and the Gateway.",
                required=("default",),
            ),
        },
        "TLS settings that apply to the whole Gateway.",
    )


def gateway(bundle: str) -> Schema:
    props: dict[str, Schema] = {
        "gatewayClassName": string("The GatewayClass this Gateway is of.", minLength=1, maxLength=253),
        "listeners": arr(
            LISTENER,
            "Logical endpoints bound to the Gateway's addresses.",
            minItems=1,
            maxItems=64,
            **{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
        ),
        "addresses": arr(ADDRESS, "Requested addresses.", maxItems=16),
        "infrastructure": loose(
            "Labels, annotations and parameters for the infrastructure the Gateway creates."
        ),
    }
    if gw.frontend_in_standard(bundle):
        props["allowedListeners"] = loose("Which ListenerSets may attach to the Gateway.")
        props["tls"] = gateway_tls()
    spec = obj(props, "Desired state of the Gateway.", required=("gatewayClassName", "listeners"))
    # v1.5 counts the ListenerSets attached (GEP-1713); older bundles have no such field.
    listener_sets = (
        {"attachedListenerSets": integer("ListenerSets attached to the Gateway.")}
        if gw.bundle_at_least(bundle, "v1.5.0")
        else {}
    )
    listener_status = obj(
        {
            "name": string("The listener's name.", minLength=1, maxLength=253),
            "attachedRoutes": integer("Routes attached to the listener."),
            "supportedKinds": arr(
                obj({"group": string(default=gw.GROUP), "kind": string()}, required=("kind",)),
                "Route kinds the listener supports.",
                maxItems=8,
            ),
            "conditions": condition_list(),
        },
        # supportedKinds is required before v1.5
        required=("name", "attachedRoutes", "conditions")
        if gw.bundle_at_least(bundle, "v1.5.0")
        else ("name", "attachedRoutes", "conditions", "supportedKinds"),
    )
    status = obj(
        {
            "addresses": arr(
                obj(
                    {"type": string(default="IPAddress"), "value": string(minLength=1, maxLength=253)},
                    required=("value",),
                ),
                "Addresses the Gateway is bound to.",
                maxItems=16,
            ),
            "conditions": condition_list(pending("Accepted", "Programmed")),
            **listener_sets,
            "listeners": arr(
                listener_status,
                "Status of each listener.",
                maxItems=64,
                **{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
            ),
        },
        "Status of the Gateway.",
        default={"conditions": pending("Accepted", "Programmed")},
    )
    return root(spec, status, "Gateway represents an instance of a service-traffic handling infrastructure.")


# ---- HTTPRoute ----------------------------------------------------------------------------------------

HEADER = obj(
    {
        "name": string("Header name (case-insensitive).", minLength=1, maxLength=256),
        "value": string("Header value.", minLength=1, maxLength=4096),
    },
    required=("name", "value"),
)


def header_modifier(desc: str) -> Schema:
    keyed = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}
    return obj(
        {
            "add": arr(HEADER, "Headers added to the existing value(s).", maxItems=16, **keyed),
            "set": arr(HEADER, "Headers set, replacing any value.", maxItems=16, **keyed),
            "remove": arr(
                string(), "Header names removed.", maxItems=16, **{"x-kubernetes-list-type": "set"}
            ),
        },
        desc,
    )


FILTER_TYPES = (
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
    "RequestMirror",
    "RequestRedirect",
    "URLRewrite",
    "ExtensionRef",
)


def route_filter(bundle: str) -> Schema:
    props: dict[str, Schema] = {
        "requestHeaderModifier": header_modifier("Changes request headers before they reach the backend."),
        "responseHeaderModifier": header_modifier("Changes response headers before they reach the client."),
        "requestMirror": loose("Mirrors requests to another backend."),
        "requestRedirect": loose("Answers with a redirect."),
        "urlRewrite": loose("Rewrites the host or path."),
        "extensionRef": local_reference("An implementation-specific filter in the route's namespace."),
    }
    types = FILTER_TYPES
    if gw.bundle_at_least(bundle, "v1.5.0"):  # CORS reached the standard channel in v1.5
        types = (*types, "CORS")
        props["cors"] = loose("Cross-origin resource sharing.")
    kind = enum(types, "The kind of filter; the field of the same name holds its settings.")
    return obj({"type": kind, **props}, required=("type",))


MATCH = obj(
    {
        "path": obj(
            {
                "type": enum(
                    ("Exact", "PathPrefix", "RegularExpression"), "How the path matches.", "PathPrefix"
                ),
                "value": string("The path to match.", maxLength=1024, default="/"),
            },
            "Path match.",
            default={"type": "PathPrefix", "value": "/"},
        ),
        "headers": arr(loose("A header match (name, value, type)."), "Header matches.", maxItems=16),
        "queryParams": arr(loose("A query parameter match."), "Query parameter matches.", maxItems=16),
        "method": enum(
            ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"), "HTTP method."
        ),
    }
)


def backend_ref(bundle: str) -> Schema:
    return obj(
        {
            "group": string("Group of the backend; empty for the core group.", maxLength=253, default=""),
            "kind": string("Kind of the backend.", minLength=1, maxLength=63, default="Service"),
            "name": string("Name of the backend.", minLength=1, maxLength=253),
            "namespace": string("Namespace of the backend.", minLength=1, maxLength=63),
            "port": PORT,
            "weight": {**integer("Share of requests sent to this backend.", 0, 1000000), "default": 1},
            "filters": arr(
                route_filter(bundle), "Filters applied to requests sent to this backend only.", maxItems=16
            ),
        },
        required=("name",),
    )


def route_rule(bundle: str) -> Schema:
    props: dict[str, Schema] = {}
    if gw.bundle_at_least(bundle, "v1.4.0"):  # named rules (GEP-995) reached the standard channel in v1.4
        props["name"] = string("The rule's name.", minLength=1, maxLength=253)
    return obj(
        {
            **props,
            "matches": arr(
                MATCH,
                "Conditions a request must meet for the rule to apply.",
                maxItems=64,
                default=[{"path": {"type": "PathPrefix", "value": "/"}}],
            ),
            "filters": arr(
                route_filter(bundle), "Filters applied to every request the rule matches.", maxItems=16
            ),
            "backendRefs": arr(backend_ref(bundle), "Where matching requests go.", maxItems=16),
            "timeouts": loose("Request and backend request timeouts."),
        }
    )


def http_route(bundle: str) -> Schema:
    v15 = gw.bundle_at_least(bundle, "v1.5.0")
    rules = arr(
        route_rule(bundle),
        "Matching rules and the actions taken on matches.",
        maxItems=16,
        default=[{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}],
    )
    if v15:
        rules["minItems"] = 1
    spec = obj(
        {
            "parentRefs": arr(parent_reference("A Gateway (listener) the route attaches to."), maxItems=32),
            "hostnames": arr(
                string(minLength=1, maxLength=253), "Host names the route matches.", maxItems=16
            ),
            "rules": rules,
        },
        "Desired state of the HTTPRoute.",
    )
    since_v14 = gw.bundle_at_least(bundle, "v1.4.0")
    parent_status = obj(
        {
            "parentRef": parent_reference("The parent this status is for."),
            "controllerName": string("The controller that wrote this status.", minLength=1, maxLength=253),
            "conditions": condition_list(at_least_one=True),
        },
        required=("parentRef", "controllerName", "conditions")
        if since_v14
        else ("parentRef", "controllerName"),
    )
    status = obj(
        {"parents": arr(parent_status, "Status per parent.", maxItems=32)},
        "Status of the HTTPRoute.",
        required=("parents",),
    )
    return root(spec, status, "HTTPRoute routes HTTP requests from a Gateway listener to backends.")


# ---- ReferenceGrant -----------------------------------------------------------------------------------


def reference_grant(bundle: str) -> Schema:
    peer = {
        "group": string("Group of the referent.", maxLength=253),
        "kind": string("Kind of the referent.", minLength=1, maxLength=63),
    }
    spec = obj(
        {
            "from": arr(
                obj(
                    {
                        **peer,
                        "namespace": string("Namespace of the referring objects.", minLength=1, maxLength=63),
                    },
                    required=("group", "kind", "namespace"),
                ),
                "Objects that may refer to the ones in `to`.",
                minItems=1,
                maxItems=16,
            ),
            "to": arr(
                obj(
                    {**peer, "name": string("Name of the referent.", minLength=1, maxLength=253)},
                    required=("group", "kind"),
                ),
                "Objects in this namespace that may be referred to.",
                minItems=1,
                maxItems=16,
            ),
        },
        "Desired state of the ReferenceGrant.",
        required=("from", "to"),
    )
    body = root(
        spec,
        {"type": "object"},
        "ReferenceGrant lets objects in other namespaces refer to objects here.",
        spec_required=False,
    )
    body["properties"].pop("status")
    return body


# ---- GKE's policies (networking.gke.io/v1) --------------------------------------------------------------


def target_ref() -> Schema:
    return object_reference("The object the policy applies to (a Gateway or a Service).")


def policy(default: Schema, desc: str, ancestors: bool = False) -> Schema:
    status_props: dict[str, Schema] = {"conditions": condition_list()}
    if ancestors:
        status_props["ancestors"] = arr(
            obj(
                {
                    "ancestorRef": parent_reference("The Gateway the policy took effect through."),
                    "controllerName": string(minLength=1, maxLength=253),
                    "conditions": condition_list(at_least_one=True),
                },
                required=("ancestorRef", "controllerName"),
            ),
            "Status per ancestor.",
            maxItems=16,
        )
    spec = obj({"default": default, "targetRef": target_ref()}, required=("targetRef",))
    return root(spec, obj(status_props, "Status of the policy (condition Attached)."), desc)


def gcp_gateway_policy(bundle: str) -> Schema:
    default = obj(
        {
            "allowGlobalAccess": boolean("Clients from any region may reach an internal Gateway."),
            "region": string("Region of the Gateway's load balancer (multi-cluster Gateways)."),
            "sslPolicy": string("Name of the Compute SSL policy of the Gateway's target HTTPS proxy."),
        },
        "Settings applied to the Gateway.",
    )
    return policy(default, "GCPGatewayPolicy configures the load balancer of a Gateway.")


def gcp_backend_policy(bundle: str) -> Schema:
    default = obj(
        {
            "backendPreference": enum(("DEFAULT", "PREFERRED"), "Preference of the backend."),
            "connectionDraining": obj(
                {"drainingTimeoutSec": integer("Seconds to drain connections.", 0, 3600, "int64")}
            ),
            "iap": obj(
                {
                    "enabled": boolean(),
                    "clientID": string(),
                    "oauth2ClientSecret": obj({"name": string()}),
                },
                "Identity-Aware Proxy.",
            ),
            "logging": obj(
                {
                    "enabled": boolean("Log every sampled request of the backend service."),
                    "sampleRate": integer("Share of requests logged, in millionths.", 0, 1000000),
                },
                "Request logging of the backend service.",
            ),
            "maxRatePerEndpoint": integer("Requests per second per endpoint.", 1, 1000000000, "int64"),
            "securityPolicy": string("Name of a Cloud Armor security policy."),
            "sessionAffinity": obj(
                {
                    "cookieTtlSec": integer("Cookie lifetime.", 0, 1209600, "int64"),
                    "type": enum(
                        (
                            "CLIENT_IP",
                            "CLIENT_IP_PORT_PROTO",
                            "CLIENT_IP_PROTO",
                            "GENERATED_COOKIE",
                            "HEADER_FIELD",
                            "HTTP_COOKIE",
                            "NONE",
                        ),
                        "Session affinity type.",
                    ),
                }
            ),
            "timeoutSec": integer("Backend service timeout.", 1, 2147483647, "int64"),
        },
        "Settings applied to the backend service of the target Service.",
    )
    return policy(
        default, "GCPBackendPolicy configures the backend service built for a Service.", ancestors=True
    )


def health_check_policy(bundle: str) -> Schema:
    port_spec = enum(("USE_FIXED_PORT", "USE_NAMED_PORT", "USE_SERVING_PORT"), "Which port is probed.")
    http_check = obj(
        {
            "host": string("Host header of the probe.", maxLength=2048),
            "port": integer("Port probed.", 1, 65535, "int64"),
            "portName": string("Named port probed.", maxLength=63),
            "portSpecification": port_spec,
            "proxyHeader": enum(("NONE", "PROXY_V1"), "Proxy header sent."),
            "requestPath": string("Path of the probe request.", maxLength=2048),
            "response": string("Expected start of the response body.", maxLength=1024),
        }
    )
    default = obj(
        {
            "checkIntervalSec": integer("Seconds between probes.", 1, 300, "int64"),
            "timeoutSec": integer("Seconds a probe may take.", 1, 300, "int64"),
            "healthyThreshold": integer("Successes that make an endpoint healthy.", 1, 10, "int64"),
            "unhealthyThreshold": integer("Failures that make an endpoint unhealthy.", 1, 10, "int64"),
            "logConfig": obj({"enabled": boolean("Log health state changes.")}),
            "config": obj(
                {
                    "type": enum(("TCP", "HTTP", "HTTPS", "HTTP2", "GRPC"), "Protocol of the health check."),
                    "httpHealthCheck": http_check,
                    "httpsHealthCheck": http_check,
                    "http2HealthCheck": http_check,
                    "tcpHealthCheck": loose("TCP health check."),
                    "grpcHealthCheck": loose("gRPC health check."),
                },
                "The health check's protocol and probe.",
            ),
        },
        "Settings of the health check built for the target Service.",
    )
    return policy(
        default, "HealthCheckPolicy configures the health check of the backend service of a Service."
    )


# ---- BackendConfig (cloud.google.com/v1) ----------------------------------------------------------------


# ingress-gce's BackendConfig `spec` in a shorthand `_shape` expands: a type name, a map of fields,
# or a one-element list of items.
BACKEND_CONFIG_SPEC: dict[str, Any] = {
    "iap": {
        "enabled": "boolean",
        "oauthclientCredentials": dict.fromkeys(("secretName", "clientID", "clientSecret"), "string"),
    },
    "cdn": {
        "enabled": "boolean",
        "bypassCacheOnRequestHeaders": [{"headerName": "string"}],
        "cachePolicy": {
            **dict.fromkeys(("includeHost", "includeProtocol", "includeQueryString"), "boolean"),
            **dict.fromkeys(("queryStringBlacklist", "queryStringWhitelist"), ["string"]),
        },
        "cacheMode": "string",
        **dict.fromkeys(
            ("clientTtl", "defaultTtl", "maxTtl", "serveWhileStale", "signedUrlCacheMaxAgeSec"), "integer"
        ),
        **dict.fromkeys(("negativeCaching", "requestCoalescing"), "boolean"),
        "negativeCachingPolicy": [{"code": "integer", "ttl": "integer"}],
        "signedUrlKeys": [dict.fromkeys(("keyName", "keyValue", "secretName"), "string")],
    },
    "securityPolicy": {"name": "string"},
    "timeoutSec": "integer",
    "connectionDraining": {"drainingTimeoutSec": "integer"},
    "sessionAffinity": {"affinityType": "string", "affinityCookieTtlSec": "integer"},
    "customRequestHeaders": {"headers": ["string"]},
    "customResponseHeaders": {"headers": ["string"]},
    "healthCheck": {
        **dict.fromkeys(
            ("checkIntervalSec", "timeoutSec", "healthyThreshold", "unhealthyThreshold", "port"), "integer"
        ),
        **dict.fromkeys(("type", "requestPath"), "string"),
    },
    "logging": {"enable": "boolean", "sampleRate": "number"},
}


def _shape(shape: Any) -> Schema:
    if isinstance(shape, str):
        return {"type": shape}
    if isinstance(shape, list):
        return {"type": "array", "items": _shape(shape[0])}
    return {"type": "object", "properties": {k: _shape(v) for k, v in shape.items()}}


def backend_config(bundle: str) -> Schema:
    status = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return root(
        _shape(BACKEND_CONFIG_SPEC),
        status,
        "BackendConfig is the Schema for the backendconfig API (GKE Ingress).",
        spec_required=False,
    )
