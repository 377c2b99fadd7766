"""Drift in the Gateway topology: is the Gateway still asking for what the params say, and did Google's
controller build (and keep) the load balancer that enforces it?

In this topology the kit writes only Kubernetes objects (the Gateway with `spec.tls.frontend`, the CA
ConfigMap, the HTTPRoute with the mTLS header filter, three GKE policies); the controller turns them
into a load balancer under names of its own. Drift therefore has two sides. The Kubernetes side:
the Gateway and its listeners' conditions (a bad CA reference is a GEP-91 reason such as
`InvalidCACertificateRef`, and the listener then refuses every client), `spec.tls.frontend` present
with the params' mode (an older CRD prunes it silently), the ConfigMap's `ca.crt` equal to the
params' anchors and intermediates by SHA-256, the header filter on every route rule (a rule without
it forwards no client-certificate headers), and the policies Attached. The load balancer side: the
same judgments as the split frontend's (certificate, SSL policy, server TLS policy mode, trust config
contents), on the resources the Gateway's annotations name.

Every object is read once, by name, into a `GatewayDriftState`; the checks are pure functions of it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from google.cloud import certificate_manager_v1 as cm
from google.cloud import compute_v1
from google.cloud import network_security_v1 as ns

from mtlskit.build import frontend, gateway, lbnames, trust
from mtlskit.build.lbnames import LoadBalancerNames
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core.checks import Check
from mtlskit.core.errors import GatewayNotReady
from mtlskit.rules import gateway as gw
from mtlskit.verify import driftcommon as common
from mtlskit.verify.driftcommon import (
    DNS,
    MANAGED_CERT,
    TLS_POLICY,
    TRUST,
    WIRING,
    CertificateEntry,
    judged,
    role_counts,
    tail,
    trust_config_certificates,
)

# The Gateway's own check names: stable, as the split ones.
GATEWAY_READY = "Gateway Programmed, listeners resolved"
FRONTEND_VALIDATION = "Gateway frontend validation as params say"
CA_BUNDLE = "CA ConfigMap holds the params' anchors and intermediates"
ROUTE = "HTTPRoute attached and routing to the Service"
HEADER_FILTER = "mTLS header filter on every HTTPRoute rule"
POLICIES = "Gateway policies Attached"

REQUEST_HEADER_MODIFIER = "RequestHeaderModifier"
# The GKE policy kinds the Gateway build applies.
POLICY_KINDS = ("GCPGatewayPolicy", "GCPBackendPolicy", "HealthCheckPolicy")
# What each GEP-91 CA-reference reason asks for.
CA_REASON_FIX = {
    "InvalidCACertificateRef": "the CA ConfigMap named in spec.tls.frontend is missing or has no "
    f"{gw.CA_KEY} key: apply the Gateway build again (it writes the ConfigMap)",
    "InvalidCACertificateKind": "caCertificateRefs must name a ConfigMap (core group): apply the Gateway "
    "build again",
    "RefNotPermitted": "a CA ConfigMap in another namespace needs a ReferenceGrant: keep it in the Gateway's "
    "namespace (gateway.namespace) and apply the Gateway build again",
    gw.NO_VALID_CA: "no CA reference of the Gateway resolves: apply the Gateway build again (it writes the "
    "ConfigMap and the Gateway)",
}
REBUILD = (
    "apply the Gateway build again (mtlskit run --params PARAMS --apply); it restores what the params say"
)


@dataclass
class GatewayDriftState:
    """Everything the Gateway drift checks look at, read once. A missing object is None; `names` is None
    while the Gateway names no load balancer (`problem` says why)."""

    gateway: dict[str, Any] | None
    route: dict[str, Any] | None
    configmap: dict[str, Any] | None
    policies: dict[str, dict[str, Any] | None]
    names: LoadBalancerNames | None
    problem: str
    url_map: compute_v1.UrlMap | None = None
    proxy: compute_v1.TargetHttpsProxy | None = None
    forwarding_rule: compute_v1.ForwardingRule | None = None
    ssl_policy: compute_v1.SslPolicy | None = None
    certificate: compute_v1.SslCertificate | None = None
    address: compute_v1.Address | None = None
    policy: ns.ServerTlsPolicy | None = None
    trust_config: cm.TrustConfig | None = None
    dns: list[common.Resolution] = field(default_factory=list)
    read_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    looked_up: dict[str, str] = field(default_factory=dict)  # kind -> the name read

    @property
    def ip(self) -> str:
        """Where the domains must point: the Gateway's address."""
        return self.names.ip if self.names else ""

    def rows(self) -> list[dict[str, str]]:
        """What was read, one row per object, for the notebook's first table."""
        pol, tc, p, fr, sp, cert = (
            self.policy,
            self.trust_config,
            self.proxy,
            self.forwarding_rule,
            self.ssl_policy,
            self.certificate,
        )
        entries: list[tuple[str, str, bool, str]] = [
            (
                "Gateway",
                self.looked_up["Gateway"],
                self.gateway is not None,
                "; ".join(lbnames.conditions_summary(self.gateway)) or self.problem,
            ),
            ("HTTPRoute", self.looked_up["HTTPRoute"], self.route is not None, _rules_summary(self.route)),
            (
                "ConfigMap",
                self.looked_up["ConfigMap"],
                self.configmap is not None,
                f"{len(bundle_entries(self.configmap))} certificates in {gw.CA_KEY}"
                if self.configmap
                else "",
            ),
            *(
                (kind, self.looked_up[kind], obj is not None, "; ".join(lbnames.conditions_summary(obj)))
                for kind, obj in self.policies.items()
            ),
            ("ForwardingRule", self.looked_up.get("ForwardingRule", ""), fr is not None, _rule_text(fr)),
            (
                "TargetHttpsProxy",
                self.looked_up.get("TargetHttpsProxy", ""),
                p is not None,
                f"serverTlsPolicy={tail(p.server_tls_policy) or '(none)'}" if p else "",
            ),
            ("UrlMap", self.looked_up.get("UrlMap", ""), self.url_map is not None, ""),
            (
                "SslPolicy",
                self.looked_up.get("SslPolicy", ""),
                sp is not None,
                f"{sp.profile} {sp.min_tls_version}" if sp else "",
            ),
            ("SslCertificate", self.looked_up.get("SslCertificate", ""), cert is not None, _cert_text(cert)),
            (
                "ServerTlsPolicy",
                self.looked_up.get("ServerTlsPolicy", ""),
                pol is not None,
                pol.mtls_policy.client_validation_mode.name if pol else "",
            ),
            (
                "TrustConfig",
                self.looked_up.get("TrustConfig", ""),
                tc is not None,
                role_counts(trust_config_certificates(tc)) if tc else "",
            ),
        ]
        return [
            {
                "resource": kind,
                "name": name or "(not named)",
                "found": "yes" if found else "NO",
                "detail": detail,
            }
            for kind, name, found, detail in entries
        ]


def _rule_text(fr: compute_v1.ForwardingRule | None) -> str:
    return f"{fr.I_p_address}:{fr.port_range} -> {tail(fr.target)} ({fr.load_balancing_scheme})" if fr else ""


def _cert_text(cert: compute_v1.SslCertificate | None) -> str:
    if cert is None:
        return ""
    return str(cert.managed.status) if cert.type_ == "MANAGED" else "SELF_MANAGED"


def _rules_summary(route: dict[str, Any] | None) -> str:
    if route is None:
        return ""
    rules = (route.get("spec") or {}).get("rules") or []
    filtered = sum(1 for r in rules if header_filter(r) is not None)
    return f"{len(rules)} rules, {filtered} with a {REQUEST_HEADER_MODIFIER} filter"


# ---- reading ------------------------------------------------------------------------------------------


KUBE_OBJECTS = ("Gateway", "HTTPRoute", "ConfigMap", *POLICY_KINDS)


def looked_up(params: Params) -> dict[str, str]:
    """The Kubernetes objects the Gateway drift reads, by kind (namespace/name, where the build puts them)."""
    manifests = gateway.manifests(params)
    return {
        kind: f"{manifests[kind]['metadata']['namespace']}/{manifests[kind]['metadata']['name']}"
        for kind in KUBE_OBJECTS
    }


def read_state(
    clients: Clients, params: Params, resolver: common.Resolver | None = None
) -> GatewayDriftState:
    """Read the Gateway's objects and the load balancer its controller built, once, by name. A Gateway
    that names no load balancer yet is not an error here: its checks say so and what to do."""
    g = params.gateway
    found = lbnames.read_gateway(clients, params)
    problem = lbnames.readiness_problem(params, found)
    lb = None
    if not problem:
        try:
            lb = lbnames.gateway_load_balancer(clients, params, found)
        except GatewayNotReady as err:
            problem = str(err)
    names = lb.names if lb else None
    state = GatewayDriftState(
        gateway=found,
        route=gateway.read_object(clients, params, "HTTPRoute"),
        configmap=gateway.read_object(clients, params, "ConfigMap"),
        policies={kind: gateway.read_object(clients, params, kind) for kind in POLICY_KINDS},
        names=names,
        problem=problem,
        dns=common.resolve_all(
            list(params.frontend.domains), resolver or common.resolver_for(clients.nameserver)
        ),
        looked_up=looked_up(params),
    )
    if lb is None or names is None:
        return state
    state.forwarding_rule, state.proxy, state.policy = lb.forwarding_rule, lb.proxy, lb.policy
    state.url_map = frontend.KINDS["UrlMap"].get(clients, names.url_map) if names.url_map else None
    state.ssl_policy = (
        frontend.KINDS["SslPolicy"].get(clients, names.ssl_policy) if names.ssl_policy else None
    )
    cert_name = params.frontend.certificate if g.certificate == "pre_shared" else ""
    state.certificate = frontend.KINDS["SslCertificate"].get(clients, cert_name) if cert_name else None
    if g.address == "named_address":
        state.address = frontend.KINDS["Address"].get(clients, params.frontend.address)
    state.trust_config = trust.TRUST_CONFIG.get(clients, names.trust_config) if names.trust_config else None
    state.looked_up.update(
        ForwardingRule=names.forwarding_rule,
        TargetHttpsProxy=names.target_proxy,
        UrlMap=names.url_map,
        SslPolicy=names.ssl_policy,
        SslCertificate=cert_name or names.certificate_map,
        ServerTlsPolicy=names.server_tls_policy_id,
        TrustConfig=names.trust_config_id,
    )
    return state


# ---- pure helpers over the objects ------------------------------------------------------------------------


def bundle_entries(configmap: dict[str, Any] | None) -> list[CertificateEntry]:
    """The certificates in the ConfigMap's `ca.crt` (one CA bundle: anchors and intermediates)."""
    pem = str(((configmap or {}).get("data") or {}).get(gw.CA_KEY) or "")
    return common.pem_entries("CA bundle", f"ConfigMap {gw.CA_KEY}", pem.encode()) if pem.strip() else []


def wanted_bundle(params: Params) -> dict[str, CertificateEntry]:
    """What the CA bundle must hold, by SHA-256: the params' trust anchors and intermediates."""
    return {
        e.sha256: e
        for e in common.params_certificates(params)
        if e.role in ("trust anchor", "intermediate") and e.sha256
    }


def compare_sets(want: dict[str, CertificateEntry], have: dict[str, CertificateEntry]) -> list[str]:
    """Which certificates are missing and which are extra, by fingerprint."""
    missing = [f"{e.source} (sha256 {fp[:16]})" for fp, e in want.items() if fp not in have]
    extra = [f"{e.subject} (sha256 {fp[:16]})" for fp, e in have.items() if fp not in want]
    return [
        *([f"missing {', '.join(missing)}"] if missing else []),
        *([f"not in the params {', '.join(extra)}"] if extra else []),
    ]


def header_filter(rule: dict[str, Any]) -> dict[str, str] | None:
    """The headers a route rule's RequestHeaderModifier adds or sets (lowercase name -> value), or None
    when the rule has no such filter."""
    found: dict[str, str] | None = None
    for f in rule.get("filters") or []:
        if not isinstance(f, dict) or f.get("type") != REQUEST_HEADER_MODIFIER:
            continue
        found = found or {}
        modifier = f.get("requestHeaderModifier") or {}
        for h in [*(modifier.get("add") or []), *(modifier.get("set") or [])]:
            found[str(h.get("name", "")).lower()] = str(h.get("value", ""))
    return found


def wanted_headers(params: Params) -> dict[str, str]:
    """The headers the build's filter adds (`gateway.header_additions`): lowercase name -> value."""
    return {h["name"].lower(): h["value"] for h in gateway.header_additions(params)}


def listener_problems(gateway: dict[str, Any]) -> list[tuple[str, str]]:
    """(what is wrong, reason) for every listener condition that is not as a working listener has it:
    ResolvedRefs, Accepted or Programmed False (ResolvedRefs=False with a GEP-91 reason names a bad
    CA reference)."""
    out = []
    for listener in (gateway.get("status") or {}).get("listeners") or []:
        name = listener.get("name", "?")
        for c in lbnames.by_type(listener.get("conditions")).values():
            if (
                c.get("type") in ("ResolvedRefs", "Accepted", "Programmed")
                and str(c.get("status")) == "False"
            ):
                out.append((f"listener {name}: {lbnames.condition_text(c)}", str(c.get("reason") or "")))
    return out


# ---- the checks ----------------------------------------------------------------------------------------


def evaluate(params: Params, state: GatewayDriftState, now: dt.datetime | None = None) -> list[Check]:
    """Every Gateway drift check from one `GatewayDriftState`; no API is asked again."""
    return [
        check_gateway(params, state),
        check_frontend_validation(params, state),
        check_ca_bundle(params, state),
        check_route(params, state),
        check_header_filter(params, state),
        check_policies(params, state),
        check_wiring(params, state),
        check_tls_policy(params, state),
        check_trust_config(params, state),
        common.check_expiry(params, now or state.read_at),
        check_certificate(params, state),
        check_dns(params, state),
    ]


def check_gateway(params: Params, state: GatewayDriftState) -> Check:
    """The Gateway Accepted and Programmed, no listener with a condition False (a GEP-91 CA reason
    named), no insecure frontend mode, and a load balancer named on it."""
    where = f"Gateway {lbnames.gateway_where(params)}"
    if state.gateway is None:
        return Check(GATEWAY_READY, "fail", f"{where} does not exist", lbnames.BUILD_FIX)
    problems, fixes = [], []
    conditions = lbnames.conditions(state.gateway)
    for kind in ("Accepted", "Programmed"):
        c = conditions.get(kind)
        if c is None or str(c.get("status")) != "True":
            problems.append(lbnames.condition_text(c) if c else f"no {kind} condition")
    insecure = conditions.get(gw.INSECURE_MODE_CONDITION)
    if insecure is not None and str(insecure.get("status")) == "True":
        problems.append(lbnames.condition_text(insecure))
        fixes.append(f"the params ask {params.mtls.validation_mode}: {REBUILD}")
    for text, reason in listener_problems(state.gateway):
        problems.append(text)
        fixes.append(f"{reason}: {CA_REASON_FIX[reason]}" if reason in CA_REASON_FIX else "")
    if not problems and state.problem:
        problems.append(state.problem)
    if problems:
        fix = "; ".join(dict.fromkeys(f for f in fixes if f)) or (
            f"see `{lbnames.kubectl_describe_gateway(params)}` (conditions and events); {REBUILD}"
        )
        return Check(GATEWAY_READY, "fail", f"{where}: {'; '.join(problems)}", fix)
    lb = state.names
    built = f"; load balancer {lb.forwarding_rule} ({lb.scheme}) at {lb.ip}" if lb else ""
    return Check(GATEWAY_READY, "pass", f"{where} Accepted and Programmed, every listener resolved{built}")


def check_frontend_validation(params: Params, state: GatewayDriftState) -> Check:
    """spec.tls.frontend present (an older CRD prunes it and the Gateway then asks no client for a
    certificate), the mode the params' validation mode means, and the CA reference the params' ConfigMap."""
    if state.gateway is None:
        return Check(FRONTEND_VALIDATION, "fail", "no Gateway to read", lbnames.BUILD_FIX)
    frontend_ = (((state.gateway.get("spec") or {}).get("tls") or {}).get("frontend")) or {}
    validation = (frontend_.get("default") or {}).get("validation")
    if not validation:
        return Check(
            FRONTEND_VALIDATION,
            "fail",
            f"Gateway {lbnames.gateway_where(params)} has no spec.tls.frontend.default.validation: its load "
            "balancer asks no client for a certificate",
            "check the cluster serves Gateway API v1.5 or later (00_preflight), then "
            + REBUILD
            + "; read it back with "
            + f"kubectl get gateway {params.gateway.name} -n {params.gateway_namespace} -o jsonpath='{{.spec.tls}}'",
        )
    problems = []
    want = gateway.gateway_manifest(params)["spec"]["tls"]["frontend"]["default"]["validation"]
    want_mode = want["mode"]
    mode = validation.get("mode") or gw.ALLOW_VALID_ONLY  # the API's default
    if mode != want_mode:
        problems.append(f"mode {mode}, params ask {want_mode} ({params.mtls.validation_mode})")
    refs = validation.get("caCertificateRefs") or []
    wanted_ref = next(
        (r.get("group") or "", r["kind"], r["name"], r.get("namespace") or params.gateway_namespace)
        for r in want["caCertificateRefs"]
    )
    shown = [
        f"{r.get('kind')} {r.get('namespace') or params.gateway_namespace}/{r.get('name')}" for r in refs
    ]
    as_tuples = [
        (r.get("group") or "", r.get("kind"), r.get("name"), r.get("namespace") or params.gateway_namespace)
        for r in refs
    ]
    if as_tuples != [wanted_ref]:
        problems.append(
            f"caCertificateRefs {', '.join(shown) or '(none)'}, params ask ConfigMap "
            f"{params.gateway_namespace}/{params.gateway.ca_configmap}"
        )
    for entry in frontend_.get("perPort") or []:
        problems.append(
            f"a perPort override for port {entry.get('port')} replaces the default there (the params ask one "
            "validation for every port)"
        )
    return judged(
        FRONTEND_VALIDATION,
        problems,
        REBUILD,
        f"spec.tls.frontend.default: {mode}, CA from ConfigMap {params.gateway_namespace}/"
        f"{params.gateway.ca_configmap}",
    )


def check_ca_bundle(params: Params, state: GatewayDriftState) -> Check:
    """The ConfigMap's ca.crt decides who gets in; compare it with the params' files by SHA-256."""
    where = f"ConfigMap {state.looked_up['ConfigMap']}"
    if state.configmap is None:
        return Check(
            CA_BUNDLE,
            "fail",
            f"{where} does not exist: the listener reports InvalidCACertificateRef and refuses every client",
            REBUILD,
        )
    have = {e.sha256: e for e in bundle_entries(state.configmap) if e.sha256}
    problems = compare_sets(wanted_bundle(params), have)
    if not have:
        problems.insert(0, f"no PEM certificate in {gw.CA_KEY}")
    if problems:
        return Check(
            CA_BUNDLE,
            "fail",
            f"{where} {gw.CA_KEY}: " + "; ".join(problems),
            f"{REBUILD}; if the change was meant, add the certificate file to mtls.trust_anchors or "
            "mtls.intermediates first",
        )
    return Check(
        CA_BUNDLE, "pass", f"{where} {gw.CA_KEY} = params' anchors and intermediates by SHA-256 ({len(have)})"
    )


def check_route(params: Params, state: GatewayDriftState) -> Check:
    """The HTTPRoute names the Gateway as parent, every rule sends to the params' Service and port, and
    the controller accepted it for this Gateway."""
    g, k = params.gateway, params.kubernetes
    where = f"HTTPRoute {state.looked_up['HTTPRoute']}"
    if state.route is None:
        return Check(
            ROUTE, "fail", f"{where} does not exist: the Gateway routes nothing to the Service", REBUILD
        )
    spec = state.route.get("spec") or {}
    problems = []
    parents = [p for p in spec.get("parentRefs") or [] if p.get("name") == g.name]
    if not parents:
        problems.append(f"parentRefs do not name Gateway {g.name}")
    for i, rule in enumerate(spec.get("rules") or []):
        refs = [(r.get("name"), r.get("port")) for r in rule.get("backendRefs") or []]
        if (k.service, k.service_port) not in refs:
            shown = ", ".join(f"{n}:{p}" for n, p in refs) or "none"
            problems.append(f"rule {i} sends to {shown}, not Service {k.service}:{k.service_port}")
    for parent in (state.route.get("status") or {}).get("parents") or []:
        if (parent.get("parentRef") or {}).get("name") != g.name:
            continue
        for c in lbnames.by_type(parent.get("conditions")).values():
            if c.get("type") in ("Accepted", "ResolvedRefs") and str(c.get("status")) == "False":
                problems.append(lbnames.condition_text(c))
    if not spec.get("rules"):
        problems.append("no rules")
    if problems:
        return Check(ROUTE, "fail", f"{where}: " + "; ".join(problems), REBUILD)
    return Check(
        ROUTE, "pass", f"{where} -> Service {k.service}:{k.service_port}, attached to Gateway {g.name}"
    )


def check_header_filter(params: Params, state: GatewayDriftState) -> Check:
    """Client-certificate headers reach the app only through a RequestHeaderModifier on each route rule;
    a rule without it (or with other values) forwards requests without them."""
    where = f"HTTPRoute {state.looked_up['HTTPRoute']}"
    if state.route is None:
        return Check(HEADER_FILTER, "fail", f"{where} does not exist", REBUILD)
    want = wanted_headers(params)
    rules = (state.route.get("spec") or {}).get("rules") or []
    problems = []
    for i, rule in enumerate(rules):
        have = header_filter(rule)
        if have is None:
            problems.append(f"rule {i} has no {REQUEST_HEADER_MODIFIER} filter")
            continue
        missing = [n for n in want if n not in have]
        changed = [n for n in want if n in have and have[n] != want[n]]
        if missing:
            problems.append(f"rule {i} lacks {', '.join(missing)}")
        if changed:
            problems.append(
                f"rule {i} sets {', '.join(f'{n}={have[n]!r}' for n in changed)} (params: other values)"
            )
    if problems:
        return Check(
            HEADER_FILTER,
            "fail",
            f"{where}: "
            + "; ".join(problems)
            + ": the app receives no (or other) client-certificate headers",
            REBUILD,
        )
    return Check(
        HEADER_FILTER, "pass", f"{where}: {len(rules)} rules, each adds the {len(want)} params' headers"
    )


def check_policies(params: Params, state: GatewayDriftState) -> Check:
    """GCPGatewayPolicy (SSL policy), GCPBackendPolicy (request logging) and HealthCheckPolicy exist
    and the controller reports them Attached (else it ignores them: Conflicted, Invalid, TargetNotFound)."""
    problems, good = [], []
    for kind, obj in state.policies.items():
        where = f"{kind} {state.looked_up[kind]}"
        if obj is None:
            problems.append(f"{where} does not exist")
            continue
        attached = lbnames.conditions(obj).get("Attached")
        if attached is None or str(attached.get("status")) != "True":
            problems.append(
                f"{where}: {lbnames.condition_text(attached) if attached else 'no Attached condition'}"
            )
        else:
            good.append(kind)
    if problems:
        return Check(
            POLICIES, "fail", "; ".join(problems), f"{REBUILD}; `kubectl describe` the policy for why"
        )
    return Check(POLICIES, "pass", f"{', '.join(good)} Attached")


def check_wiring(params: Params, state: GatewayDriftState) -> Check:
    """The controller's chain: forwarding rule on 443 to the HTTPS proxy, the proxy to a URL map with
    the params' certificate (or certificate map) and SSL policy (profile and minimum TLS)."""
    f, g, lb = params.frontend, params.gateway, state.names
    if lb is None:
        return Check(
            WIRING, "fail", state.problem or "no load balancer named on the Gateway", lbnames.BUILD_FIX
        )
    fr, proxy, sp = state.forwarding_rule, state.proxy, state.ssl_policy
    problems = []
    if fr is None or proxy is None:
        problems.append(
            f"forwarding rule {lb.forwarding_rule} or proxy {lb.target_proxy} vanished since resolving"
        )
    if fr is not None:
        if fr.port_range.split("-")[0] != "443":
            problems.append(f"forwarding rule {fr.name} on port {fr.port_range}, not 443")
        if state.address is not None and fr.I_p_address != state.address.address:
            problems.append(
                f"forwarding rule on {fr.I_p_address}, not address {f.address} ({state.address.address})"
            )
    if g.address == "named_address" and state.address is None:
        problems.append(f"address {f.address} (gateway.address: named_address) does not exist")
    if proxy is not None:
        if state.url_map is None:
            problems.append(
                f"proxy {proxy.name} -> URL map {tail(proxy.url_map) or '(none)'}, which does not exist"
            )
        certs = [tail(c) for c in proxy.ssl_certificates]
        if g.certificate == "pre_shared" and f.certificate not in certs:
            problems.append(f"proxy {proxy.name} serves {certs}, not {f.certificate}")
        if g.certificate == "certificate_map" and tail(proxy.certificate_map) != g.certificate_map:
            problems.append(
                f"proxy {proxy.name} uses certificate map {tail(proxy.certificate_map) or '(none)'}, not {g.certificate_map}"
            )
        if tail(proxy.ssl_policy) != f.ssl_policy:
            problems.append(
                f"proxy {proxy.name} SSL policy {tail(proxy.ssl_policy) or '(none)'}, not {f.ssl_policy}"
            )
    if sp is not None and (sp.profile, sp.min_tls_version) != (f.ssl_profile, f.min_tls_version):
        problems.append(
            f"SSL policy {sp.name} is {sp.profile} {sp.min_tls_version}, params ask {f.ssl_profile} {f.min_tls_version}"
        )
    served = (
        f"certificate {f.certificate}"
        if g.certificate == "pre_shared"
        else f"certificate map {g.certificate_map}"
    )
    return judged(
        WIRING,
        problems,
        f"{REBUILD}; the controller rebuilds its own resources from the Gateway and the GCPGatewayPolicy "
        "(never edit gkegw1-… resources by hand)",
        f"{lb.ip}:443 ({lb.forwarding_rule}, {lb.scheme}) -> {lb.target_proxy} -> {lb.url_map}; {served}; "
        f"SSL policy {f.ssl_policy}",
    )


def check_tls_policy(params: Params, state: GatewayDriftState) -> Check:
    """The controller's server TLS policy on the proxy, in the mode the params' validation mode is, with
    a trust config. Without it the load balancer asks no client for a certificate."""
    lb = state.names
    if lb is None or state.proxy is None:
        return Check(
            TLS_POLICY, "fail", state.problem or "no HTTPS proxy named on the Gateway", lbnames.BUILD_FIX
        )
    if not lb.server_tls_policy or state.policy is None:
        return Check(
            TLS_POLICY,
            "fail",
            f"proxy {lb.target_proxy} has no server TLS policy"
            + (f" ({lb.server_tls_policy_id} does not exist)" if lb.server_tls_policy else "")
            + ": the load balancer asks no client for a certificate",
            "check the Gateway's spec.tls.frontend and its listener conditions (the checks above), then "
            + REBUILD,
        )
    mode = state.policy.mtls_policy.client_validation_mode.name
    problems = []
    if mode != params.mtls.validation_mode:
        problems.append(f"policy mode {mode}, params ask {params.mtls.validation_mode}")
    if state.trust_config is None:
        problems.append(
            f"policy points at trust config {lb.trust_config_id or '(none)'}, which does not exist"
        )
    return judged(
        TLS_POLICY,
        problems,
        REBUILD,
        f"proxy {lb.target_proxy} -> policy {lb.server_tls_policy_id} ({mode}) -> trust config {lb.trust_config_id}",
        where=f"server TLS policy {lb.server_tls_policy_id}: ",
    )


def check_trust_config(params: Params, state: GatewayDriftState) -> Check:
    """The trust config the controller built from ca.crt holds exactly the params' anchors and
    intermediates (in whichever store it put each), and no allowlisted certificate."""
    lb = state.names
    if lb is None or state.trust_config is None:
        missing = lb.trust_config_id if lb and lb.trust_config_id else "(none named)"
        return Check(TRUST, "fail", f"trust config {missing} does not exist", REBUILD)
    theirs = trust_config_certificates(state.trust_config)
    have = {e.sha256: e for e in theirs if e.role != "allowlisted" and e.sha256}
    problems = compare_sets(wanted_bundle(params), have)
    allowlisted = [e.subject for e in theirs if e.role == "allowlisted"]
    if allowlisted:
        problems.append(f"allowlisted certificates a Gateway cannot express: {', '.join(allowlisted)}")
    if problems:
        return Check(TRUST, "fail", f"trust config {lb.trust_config_id}: " + "; ".join(problems), REBUILD)
    return Check(
        TRUST, "pass", f"trust config {lb.trust_config_id} = params by SHA-256 ({role_counts(theirs)})"
    )


def check_certificate(params: Params, state: GatewayDriftState) -> Check:
    """The pre-shared managed certificate, judged as the split's; a certificate map is Certificate
    Manager's to report."""
    if params.gateway.certificate == "pre_shared":
        return common.check_managed_certificate(params, state)
    return Check(
        MANAGED_CERT,
        "pass",
        f"served from Certificate Manager map {params.gateway.certificate_map}: its certificates' status is "
        "Certificate Manager's (gcloud certificate-manager certificates list)",
    )


def check_dns(params: Params, state: GatewayDriftState) -> Check:
    """Each domain resolves to the Gateway's address (before a cut-over, still to the split frontend's)."""
    ip = state.ip
    if not ip:
        return Check(DNS, "fail", "the Gateway reports no address", lbnames.BUILD_FIX)
    return common.check_dns_answers(
        state.dns,
        ip,
        whose="the Gateway's",
        wrong_fix=lambda domain, ip: (
            f"point the A record {domain} at {ip} (a migration's cut-over does this)"
        ),
        good_in_evidence=False,
    )
