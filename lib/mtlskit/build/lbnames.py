"""Which load balancer a verification step looks at: one resolver for the split and the Gateway topology.

In the split topology the kit names every frontend resource itself (the params' `frontend:` and
`mtls:`), so the names are the params' and cost no call. In the Gateway topology Google's Gateway
controller builds the load balancer under names of its own (`gkegw1-…`) and records them only on the
Gateway, as `networking.gke.io/*` annotations holding resource paths; the server TLS policy and trust
config it made are found from the target HTTPS proxy. 50_verify, 60_logs and 70_drift all need the
same answer (which forwarding rule to connect to and filter logs by, which proxy, policy and trust
config to judge), so each step resolves it once here and passes the names down.

`topology=` overrides the params' topology: a migration's one params file (topology: gateway) still
names its live split frontend, and asks for either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from google.cloud import compute_v1
from google.cloud import network_security_v1 as ns

from mtlskit.build import backend, frontend, trust
from mtlskit.build import gateway_kube as kube
from mtlskit.build.backend import BackendService
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core.errors import GatewayNotReady
from mtlskit.rules import gateway as gw

Topology = Literal["split", "gateway"]
# What to do when the Gateway is not there or not ready (the build is `mtlskit run ... --apply` on
# the Gateway params, or its build notebooks with apply=True).
BUILD_FIX = (
    "build the Gateway first (mtlskit run --params PARAMS --apply, or the Gateway build notebooks with "
    "apply=True) and wait until it is Programmed"
)


@dataclass(frozen=True)
class LoadBalancerNames:
    """The resources of one load balancer, by name, as a verification step needs them.

    `server_tls_policy` and `trust_config` are full resource names
    (`projects/P/locations/global/serverTlsPolicies/NAME`); the Compute resources are short names.
    An empty string is a resource the load balancer does not have (a proxy without a server TLS policy).
    """

    topology: Topology
    scheme: str  # EXTERNAL (classic) or EXTERNAL_MANAGED (global external Application Load Balancer)
    forwarding_rule: str
    target_proxy: str
    url_map: str
    address: str  # the address resource's name; "" when the IP is ephemeral
    ip: str  # "" when not read (split: the names come from the params alone)
    backend_services: tuple[str, ...]  # split: () — the anchor Ingress names it (backend_service())
    server_tls_policy: str
    trust_config: str
    ssl_policy: str
    certificates: tuple[str, ...]
    certificate_map: str = ""
    gateway: str = ""  # namespace/name of the Gateway, in the Gateway topology
    conditions: tuple[str, ...] = field(default_factory=tuple)  # the Gateway's, as "Type=Status (Reason)"

    @property
    def data_plane(self) -> gw.DataPlane:
        """How this load balancer answers where the classic and managed ones differ."""
        return gw.DATA_PLANE[self.scheme]

    @property
    def server_tls_policy_id(self) -> str:
        return tail(self.server_tls_policy)

    @property
    def trust_config_id(self) -> str:
        return tail(self.trust_config)

    def rows(self) -> list[dict[str, str]]:
        """One row per resource, for a notebook's table."""
        items = [
            ("topology", self.topology + (f" (Gateway {self.gateway})" if self.gateway else "")),
            ("scheme", self.scheme),
            ("forwarding rule", self.forwarding_rule + (f" ({self.ip})" if self.ip else "")),
            ("target HTTPS proxy", self.target_proxy),
            ("URL map", self.url_map),
            ("address", self.address or "(ephemeral)"),
            ("backend services", ", ".join(self.backend_services) or "(from the anchor Ingress)"),
            ("SSL policy", self.ssl_policy or "(none)"),
            ("certificates", ", ".join(self.certificates) or self.certificate_map or "(none)"),
            ("server TLS policy", self.server_tls_policy_id or "(none)"),
            ("trust config", self.trust_config_id or "(none)"),
        ]
        return [{"resource": k, "name": v} for k, v in items]


def tail(link: str) -> str:
    """The last path segment of a resource path or URL: the resource's name."""
    return link.rstrip("/").rsplit("/", 1)[-1] if link else ""


def topology_of(params: Params, topology: Topology | None = None) -> Topology:
    return topology or params.topology


# ---- split: the params name everything ------------------------------------------------------------------


def split_names(params: Params) -> LoadBalancerNames:
    """The split frontend's names, from the params alone (no call)."""
    f, m = params.frontend, params.mtls
    location = f"projects/{params.project}/locations/global"
    return LoadBalancerNames(
        topology="split",
        scheme=f.load_balancing_scheme,
        forwarding_rule=f.forwarding_rule,
        target_proxy=f.target_proxy,
        url_map=f.url_map,
        address=f.address,
        ip="",
        backend_services=(),
        server_tls_policy=f"{location}/serverTlsPolicies/{m.server_tls_policy}",
        trust_config=f"{location}/trustConfigs/{m.trust_config}",
        ssl_policy=f.ssl_policy,
        certificates=(f.certificate,),
    )


# ---- the Gateway: what its controller wrote on it ---------------------------------------------------------


@dataclass(frozen=True)
class ResourcePath:
    """One path of a `networking.gke.io/*` annotation: `/projects/N/global/forwardingRules/NAME`."""

    name: str
    region: str = ""  # "" for a global resource


def annotation_paths(gateway: dict[str, Any], key: str) -> list[ResourcePath]:
    """The resources one annotation names (`key` as in `rules.gateway.ANNOTATIONS`); the controller
    separates several paths with commas and leaves an annotation empty when it built none."""
    value = ((gateway.get("metadata") or {}).get("annotations") or {}).get(gw.ANNOTATIONS[key]) or ""
    out = []
    for path in str(value).split(","):
        parts = [p for p in path.strip().split("/") if p]
        if not parts:
            continue
        region = parts[parts.index("regions") + 1] if "regions" in parts[:-1] else ""
        out.append(ResourcePath(parts[-1], region))
    return out


def conditions(obj: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """An object's status conditions by type."""
    return by_type(((obj or {}).get("status") or {}).get("conditions"))


def by_type(items: Any) -> dict[str, dict[str, Any]]:
    """Conditions by type, from a list as the API writes them (a Gateway's listeners and a route's
    parents carry theirs directly, not under a status)."""
    return {str(c.get("type")): c for c in items or [] if isinstance(c, dict)}


def is_true(obj: dict[str, Any] | None, kind: str) -> bool:
    return str(conditions(obj).get(kind, {}).get("status")) == "True"


def condition_text(c: dict[str, Any]) -> str:
    """`Programmed=False (AddressNotAssigned: no address yet)` — what `kubectl describe` shows, in a line."""
    reason, message = c.get("reason") or "", c.get("message") or ""
    why = ": ".join(p for p in (reason, message) if p)
    return f"{c.get('type')}={c.get('status')}" + (f" ({why})" if why else "")


def conditions_summary(obj: dict[str, Any] | None) -> tuple[str, ...]:
    return tuple(condition_text(c) for c in conditions(obj).values())


def gateway_ip(gateway: dict[str, Any]) -> str:
    """The address the controller reports in status.addresses (type IPAddress, or untyped)."""
    for a in (gateway.get("status") or {}).get("addresses") or []:
        if isinstance(a, dict) and a.get("type", "IPAddress") == "IPAddress" and a.get("value"):
            return str(a["value"])
    return ""


def gateway_where(params: Params) -> str:
    return f"{params.gateway_namespace}/{params.gateway.name}"


def kubectl_describe_gateway(params: Params) -> str:
    return f"kubectl describe gateway {params.gateway.name} -n {params.gateway_namespace}"


def readiness_problem(params: Params, gateway: dict[str, Any] | None) -> str:
    """Why the Gateway does not name a load balancer yet ("" when it does): absent, not Programmed, or
    without the controller's annotations for the forwarding rule and the HTTPS proxy."""
    where = f"Gateway {gateway_where(params)}"
    if gateway is None:
        return f"{where} does not exist: {BUILD_FIX}"
    shown = "; ".join(conditions_summary(gateway)) or "no conditions yet (no controller has seen it)"
    missing = [
        gw.ANNOTATIONS[key]
        for key in ("forwarding_rules", "target_https_proxies")
        if not annotation_paths(gateway, key)
    ]
    if not is_true(gateway, "Programmed") or missing:
        lacks = f"; no {' or '.join(missing)} annotation yet" if missing else ""
        return (
            f"{where} does not name its load balancer yet (conditions: {shown}{lacks}): wait for "
            f"Programmed=True, or see why in `{kubectl_describe_gateway(params)}` (its events and "
            f"listener conditions); {BUILD_FIX}"
        )
    regional = [
        p.name
        for key in ("forwarding_rules", "target_https_proxies")
        for p in annotation_paths(gateway, key)
        if p.region
    ]
    if regional:
        return (
            f"{where} built regional resources ({', '.join(regional)}): the kit verifies the global "
            f"class {gw.DEFAULT_CLASS} only; set gateway.class_name to it"
        )
    return ""


def read_gateway(clients: Clients, params: Params) -> dict[str, Any] | None:
    """The params' Gateway as the API server has it (a plain dict), or None."""
    return kube.read(clients, kube.KUBE_KINDS["Gateway"], params.gateway_namespace, params.gateway.name)


@dataclass(frozen=True)
class GatewayLoadBalancer:
    """The names, and the three resources read to find them (a caller that judges them, 70_drift,
    then reads each only once)."""

    names: LoadBalancerNames
    forwarding_rule: compute_v1.ForwardingRule
    proxy: compute_v1.TargetHttpsProxy
    policy: ns.ServerTlsPolicy | None


def gateway_names(
    clients: Clients, params: Params, gateway: dict[str, Any] | None = None
) -> LoadBalancerNames:
    """The load balancer the Gateway controller built, read from the Gateway's annotations, the
    target HTTPS proxy and its server TLS policy. Raises `GatewayNotReady` (naming the Gateway, its
    conditions and what to do) until the Gateway is Programmed and annotated."""
    return gateway_load_balancer(clients, params, gateway).names


def gateway_load_balancer(
    clients: Clients, params: Params, gateway: dict[str, Any] | None = None
) -> GatewayLoadBalancer:
    """`gateway_names` with the forwarding rule, proxy and server TLS policy it read."""
    gateway = read_gateway(clients, params) if gateway is None else gateway
    problem = readiness_problem(params, gateway)
    if problem or gateway is None:
        raise GatewayNotReady(problem)
    proxies = [p.name for p in annotation_paths(gateway, "target_https_proxies")]
    proxy = None
    for name in proxies:
        proxy = frontend.KINDS["TargetHttpsProxy"].get(clients, name)
        if proxy is not None:
            break
    if proxy is None:
        raise GatewayNotReady(
            f"Gateway {gateway_where(params)} names target HTTPS proxy {', '.join(proxies)}, which Compute "
            f"does not have: the controller is still building or rebuilding; re-run in a minute, or see "
            f"`{kubectl_describe_gateway(params)}`"
        )
    rule = None
    rules = [p.name for p in annotation_paths(gateway, "forwarding_rules")]
    for name in rules:
        fr = frontend.KINDS["ForwardingRule"].get(clients, name)
        if fr is not None and tail(fr.target) == proxy.name:
            rule = fr
            break
    if rule is None:
        raise GatewayNotReady(
            f"none of the forwarding rules on Gateway {gateway_where(params)} ({', '.join(rules)}) targets its "
            f"HTTPS proxy {proxy.name}: the controller is still building; re-run in a minute, or see "
            f"`{kubectl_describe_gateway(params)}`"
        )
    policy_ref = relative(proxy.server_tls_policy)
    policy = trust.SERVER_TLS_POLICY.get(clients, policy_ref) if policy_ref else None
    trust_ref = relative(policy.mtls_policy.client_validation_trust_config) if policy else ""
    addresses = [p.name for p in annotation_paths(gateway, "addresses")]
    named = [
        str(a.get("value"))
        for a in (gateway.get("spec") or {}).get("addresses") or []
        if isinstance(a, dict) and a.get("type") == "NamedAddress"
    ]
    names = LoadBalancerNames(
        topology="gateway",
        scheme=rule.load_balancing_scheme or params.gateway.facts.load_balancing_scheme,
        forwarding_rule=rule.name,
        target_proxy=proxy.name,
        url_map=tail(proxy.url_map),
        address=(named or addresses or [""])[0],
        ip=gateway_ip(gateway) or rule.I_p_address,
        backend_services=tuple(p.name for p in annotation_paths(gateway, "backend_services")),
        server_tls_policy=policy_ref,
        trust_config=trust_ref,
        ssl_policy=tail(proxy.ssl_policy),
        certificates=tuple(tail(c) for c in proxy.ssl_certificates),
        certificate_map=tail(proxy.certificate_map),
        gateway=gateway_where(params),
        conditions=conditions_summary(gateway),
    )
    return GatewayLoadBalancer(names, rule, proxy, policy)


def relative(link: str) -> str:
    """A reference as `projects/...`, however the API spelled it (full URL, `//service/projects/...`)."""
    if not link:
        return ""
    return "projects/" + link.split("projects/", 1)[1] if "projects/" in link else link


# ---- the one entry point ----------------------------------------------------------------------------------


def load_balancer_names(
    clients: Clients, params: Params, topology: Topology | None = None
) -> LoadBalancerNames:
    """The load balancer a verification step looks at: the split frontend from the params (no call),
    or the one the Gateway's controller built (the Gateway, its HTTPS proxy and server TLS policy:
    four reads)."""
    if topology_of(params, topology) == "split":
        return split_names(params)
    return gateway_names(clients, params)


def known_names(params: Params, names: LoadBalancerNames | None) -> LoadBalancerNames | None:
    """`names` when resolved, the split names when the params' topology is split (they cost no call),
    else None: a Gateway's names need a read."""
    if names is not None:
        return names
    return split_names(params) if params.topology == "split" else None


def backend_service(clients: Clients, params: Params, names: LoadBalancerNames) -> BackendService:
    """The backend service that serves the params' Service and port: the one the anchor Ingress names
    (split), or among those the Gateway names, the one made for the Service (not the controller's
    default 404 backend)."""
    if names.topology == "split":
        return backend.locate_backend_service(clients, params)
    k = params.kubernetes
    found = []
    for name in names.backend_services:
        bs = clients.find(clients.compute.backend_services.get, project=clients.project, backend_service=name)
        if bs is not None:
            found.append(backend.describe(bs))
    return pick_backend(found, f"{k.namespace}/{k.service}", str(k.service_port), names)


def pick_backend(
    found: list[BackendService], service: str, port: str, names: LoadBalancerNames
) -> BackendService:
    """Which of the Gateway's backend services serves `service`:`port`: the one whose description says
    so, else the only one that is not the controller's `gw-serve404` default."""
    exact = [b for b in found if (b.service, b.service_port) == (service, port)]
    if exact:
        return exact[0]
    own = [b for b in found if "-gw-serve404-" not in b.name]
    if len(own) == 1:
        return own[0]
    raise GatewayNotReady(
        f"none of the backend services on Gateway {names.gateway} ({', '.join(names.backend_services) or 'none'}) "
        f"serves Service {service} port {port}: check the HTTPRoute's backendRefs and kubernetes.service / "
        "kubernetes.service_port in the params"
    )
