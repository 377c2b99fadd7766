"""Drift: is the split load balancer still wired the way the runbook built it?

Two owners share one load balancer. Kubernetes (the GKE Ingress controller) owns the backend service
and keeps it only while the anchor Ingress names it; the kit owns everything in front of it. Neither
side sees the other's changes: delete the anchor and GKE stops syncing (or garbage-collects) the
backend service under a URL map that still points at it; change the Service's port and the
controller makes a *new* backend service while the URL map keeps the old one; detach the server TLS
policy and the load balancer silently stops asking for client certificates. These checks find each
of those before users do, and say which notebook (or command) puts it right.

Every resource is read once, by name (never by listing a collection), into a `DriftState`; the checks
are computed from that state without asking again. One verification of an environment costs about
eleven API calls, however many other resources the project holds.
"""

from __future__ import annotations

import datetime as dt
import socket
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from google.cloud import certificate_manager_v1 as cm
from google.cloud import compute_v1
from google.cloud import network_security_v1 as ns

from mtlskit.build import backend, frontend, k8s, lbnames, trust
from mtlskit.build.backend import BackendService
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core.checks import Check
from mtlskit.pki.files import TRUST_FIELDS
from mtlskit.verify import changedrift, gatewaydrift
from mtlskit.verify.changedrift import HALF_DONE, SUCCESSOR, ChangeHistory
from mtlskit.verify.driftcommon import (
    DNS,
    DNS_TIMEOUT_SECONDS,
    EXPIRY,
    FAILED_CERT_STATES,
    MANAGED_CERT,
    TLS_POLICY,
    TRUST,
    WIRING,
    CertificateEntry,
    Resolution,
    Resolver,
    check_dns_answers,
    check_expiry,
    check_managed_certificate,
    judged,
    params_certificates,
    resolve_all,
    resolver_for,
    system_resolver,
    trust_config_certificates,
)
from mtlskit.verify.driftcommon import relative as _relative
from mtlskit.verify.driftcommon import role_counts as _role_counts
from mtlskit.verify.driftcommon import tail as _tail
from mtlskit.verify.gatewaydrift import GatewayDriftState

# Check names: stable, because summaries, reports and alerts key on them (the ones both topologies
# report live in driftcommon and are re-exported here).
ANCHOR = "anchor Ingress names the backend service"
ANCHOR_CLOSED = "anchor exposes no frontend"
URL_MAP = "URL map points at today's backend service"
BACKEND_CONFIG = "BackendConfig intent on the backend service"

__all__ = [
    "ANCHOR",
    "ANCHOR_CLOSED",
    "BACKEND_CONFIG",
    "DNS",
    "DNS_TIMEOUT_SECONDS",
    "EXPIRY",
    "FAILED_CERT_STATES",
    "HALF_DONE",
    "MANAGED_CERT",
    "SUCCESSOR",
    "TLS_POLICY",
    "TRUST",
    "URL_MAP",
    "WIRING",
    "CertificateEntry",
    "DriftState",
    "GatewayDriftState",
    "Resolution",
    "Resolver",
    "check_expiry",
    "check_managed_certificate",
    "params_certificates",
    "resolve_all",
    "system_resolver",
    "trust_config_certificates",
]


@dataclass
class DriftState:
    """Everything the drift checks look at, read once. A resource that does not exist is None."""

    anchor: dict[str, Any] | None
    backend_config: dict[str, Any] | None
    named_backends: list[BackendService]  # the ones the anchor's backends annotation names
    missing_backends: list[str]  # named on the anchor but absent from Compute
    url_map: compute_v1.UrlMap | None
    url_map_backend: BackendService | None  # what the URL map's default service is today
    proxy: compute_v1.TargetHttpsProxy | None
    forwarding_rule: compute_v1.ForwardingRule | None
    ssl_policy: compute_v1.SslPolicy | None
    certificate: compute_v1.SslCertificate | None
    address: compute_v1.Address | None
    policy: ns.ServerTlsPolicy | None
    trust_config: cm.TrustConfig | None
    dns: list[Resolution] = field(default_factory=list)
    # The BackendConfig is read only when the backend service disagrees with the params: it then says
    # which side moved. When the backend service agrees, it is not needed and costs no call.
    backend_config_read: bool = True
    anchor_answering: list[str] = field(default_factory=list)  # ip:port where the anchor's own IPs answer
    read_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    names: dict[str, str] = field(default_factory=dict)  # kind -> the name looked up, found or not
    # The stack's day-2 change records: an open rotation explains a trust config that differs from
    # the params (see `changedrift`).
    changes: ChangeHistory = field(default_factory=ChangeHistory)

    @property
    def ip(self) -> str:
        """Where the domains must point: the reserved address."""
        return self.address.address if self.address else ""

    def ours(self, params: Params) -> BackendService | None:
        """The backend service the anchor names today for the params' Service and port."""
        return self.ours_among(self.named_backends, params)

    @staticmethod
    def ours_among(named: list[BackendService], params: Params) -> BackendService | None:
        wanted = _wanted(params)
        return next((b for b in named if (b.service, b.service_port) == wanted), None)

    def rows(self) -> list[dict[str, str]]:
        """What was read, one row per resource, for the notebook's first table."""
        pol, tc, um, fr, p = self.policy, self.trust_config, self.url_map, self.forwarding_rule, self.proxy
        sp, cert, addr = self.ssl_policy, self.certificate, self.address
        url_map_only = [b for b in [self.url_map_backend] if b is not None and b not in self.named_backends]
        entries: list[tuple[str, str, bool, str]] = [
            (
                "Ingress (anchor)",
                self.names["Ingress"],
                self.anchor is not None,
                ", ".join(k8s.backends_of(self.anchor)),
            ),
            (
                "BackendConfig",
                self.names["BackendConfig"],
                self.backend_config is not None or not self.backend_config_read,
                _intent_of(self.backend_config)
                if self.backend_config_read
                else "not read: the backend service is as the params ask",
            ),
            *(
                ("BackendService", b.name, True, f"{b.service}:{b.service_port} {b.health}")
                for b in self.named_backends
            ),
            *(
                ("BackendService", n, False, "named on the anchor, missing in Compute")
                for n in self.missing_backends
            ),
            (
                "UrlMap",
                self.names["UrlMap"],
                um is not None,
                f"default -> {_tail(um.default_service)}" if um else "",
            ),
            *(
                ("BackendService", b.name, True, f"{b.service}:{b.service_port} (the URL map's target)")
                for b in url_map_only
            ),
            (
                "TargetHttpsProxy",
                self.names["TargetHttpsProxy"],
                p is not None,
                f"serverTlsPolicy={_tail(p.server_tls_policy)}" if p else "",
            ),
            (
                "ForwardingRule",
                self.names["ForwardingRule"],
                fr is not None,
                f"{fr.I_p_address}:{fr.port_range} -> {_tail(fr.target)}" if fr else "",
            ),
            (
                "SslPolicy",
                self.names["SslPolicy"],
                sp is not None,
                f"{sp.profile} {sp.min_tls_version}" if sp else "",
            ),
            (
                "SslCertificate",
                self.names["SslCertificate"],
                cert is not None,
                cert.managed.status if cert else "",
            ),
            ("Address", self.names["Address"], addr is not None, addr.address if addr else ""),
            (
                "ServerTlsPolicy",
                self.names["ServerTlsPolicy"],
                pol is not None,
                pol.mtls_policy.client_validation_mode.name if pol else "",
            ),
            (
                "TrustConfig",
                self.names["TrustConfig"],
                tc is not None,
                _role_counts(trust_config_certificates(tc)) if tc else "",
            ),
            ("change records", self.changes.location, not self.changes.error, self.changes.summary()),
        ]
        return [
            {"resource": kind, "name": name, "found": "yes" if found else "NO", "detail": detail}
            for kind, name, found, detail in entries
        ]


State = DriftState | GatewayDriftState


def read_state(
    clients: Clients,
    params: Params,
    resolver: Resolver | None = None,
    topology: lbnames.Topology | None = None,
) -> State:
    """What the drift checks of the params' topology (or `topology`: a migration asks for either from
    one params file) look at, read once: the split frontend and its anchor, or the Gateway's objects
    and the load balancer its controller built (`gatewaydrift`)."""
    if lbnames.topology_of(params, topology) == "gateway":
        return gatewaydrift.read_state(clients, params, resolver)
    return read_split_state(clients, params, resolver)


def read_split_state(clients: Clients, params: Params, resolver: Resolver | None = None) -> DriftState:
    """Read each resource the checks need once, by name. Missing resources become None; other API
    errors (after the clients' retries) propagate, so a broken API is not mistaken for drift."""
    anchor = k8s.read(clients, "Ingress", params)
    named, missing = _named_backends(clients, anchor)
    ours = DriftState.ours_among(named, params)
    bc_needed = ours is None or bool(
        _intent_differences(params, ours.log_enable, ours.log_sample_rate, ours.custom_request_headers)
    )
    names = frontend.resource_names(params)  # the split frontend's: lbnames.split_names, by kind
    url_map = frontend.KINDS["UrlMap"].get(clients, names["UrlMap"])
    url_map_backend = None
    if url_map is not None and url_map.default_service:
        target = url_map.default_service.rsplit("/", 1)[-1]
        url_map_backend = next((b for b in named if b.name == target), None) or _get_backend(clients, target)
    return DriftState(
        anchor=anchor,
        backend_config=k8s.read(clients, "BackendConfig", params) if bc_needed else None,
        backend_config_read=bc_needed,
        anchor_answering=_answering(k8s.anchor_exposure(anchor)[1] if anchor else [], clients.https_port),
        named_backends=named,
        missing_backends=missing,
        url_map=url_map,
        url_map_backend=url_map_backend,
        proxy=frontend.KINDS["TargetHttpsProxy"].get(clients, names["TargetHttpsProxy"]),
        forwarding_rule=frontend.KINDS["ForwardingRule"].get(clients, names["ForwardingRule"]),
        ssl_policy=frontend.KINDS["SslPolicy"].get(clients, names["SslPolicy"]),
        certificate=frontend.KINDS["SslCertificate"].get(clients, names["SslCertificate"]),
        address=frontend.KINDS["Address"].get(clients, names["Address"]),
        policy=trust.SERVER_TLS_POLICY.get(clients, trust.policy_name(clients, params)),
        trust_config=trust.TRUST_CONFIG.get(clients, trust.trust_config_name(clients, params)),
        dns=resolve_all(list(params.frontend.domains), resolver or resolver_for(clients.nameserver)),
        names=looked_up(params),
        changes=changedrift.read_history(params),
    )


def looked_up(params: Params) -> dict[str, str]:
    """The name of every resource the drift checks read, by kind."""
    k, m = params.kubernetes, params.mtls
    return {
        "Ingress": f"{k.namespace}/{k.ingress}",
        "BackendConfig": f"{k.namespace}/{k.backend_config}",
        **frontend.resource_names(params),
        "ServerTlsPolicy": m.server_tls_policy,
        "TrustConfig": m.trust_config,
    }


def _answering(ips: list[str], https_port: int, timeout: float = 3.0) -> list[str]:
    """Which of the anchor's own addresses accept a TCP connection on 80, 443 or the HTTPS port."""
    found = []
    for ip in ips:
        for port in sorted({80, 443, https_port}):
            try:
                with socket.create_connection((ip, port), timeout=timeout):
                    found.append(f"{ip}:{port}")
            except OSError:
                pass
    return found


def _named_backends(
    clients: Clients, anchor: dict[str, Any] | None
) -> tuple[list[BackendService], list[str]]:
    named, missing = [], []
    for name, health in k8s.backends_of(anchor).items():
        bs = _get_backend(clients, name, health)
        if bs is None:
            missing.append(name)
        else:
            named.append(bs)
    return named, missing


def _get_backend(clients: Clients, name: str, health: str = "") -> BackendService | None:
    bs = clients.find(clients.compute.backend_services.get, project=clients.project, backend_service=name)
    return None if bs is None else backend.describe(bs, health)


# ---- small helpers --------------------------------------------------------------------------------------


def _wanted(params: Params) -> tuple[str, str]:
    k = params.kubernetes
    return f"{k.namespace}/{k.service}", str(k.service_port)


def _intent_of(backend_config: dict[str, Any] | None) -> str:
    if backend_config is None:
        return ""
    spec = backend_config.get("spec") or {}
    logging = spec.get("logging") or {}
    headers = (spec.get("customRequestHeaders") or {}).get("headers") or []
    return f"logging enable={logging.get('enable')} sampleRate={logging.get('sampleRate')}, {len(headers)} headers"


def _bs_label(bs: BackendService) -> str:
    return f"{bs.name} ({bs.service}:{bs.service_port})" if bs.service else bs.name


def certificates_frame(params: Params, state: State) -> pd.DataFrame:
    """Params' certificates and the trust config's, side by side by fingerprint, with days left. A
    Gateway's trust config is built from one CA bundle, so there a certificate counts as in it
    whichever store (anchor or intermediate) the controller put it in."""
    mine = params_certificates(params)
    theirs = trust_config_certificates(state.trust_config) if state.trust_config else []
    if isinstance(state, GatewayDriftState):
        bundle = {e.sha256 for e in theirs if e.role != "allowlisted"}
        theirs = [e for e in theirs if e.role == "allowlisted" or e.sha256 not in {m.sha256 for m in mine}]
        in_tc = {(e.role, e.sha256) for e in theirs} | {
            (m.role, m.sha256) for m in mine if m.sha256 in bundle
        }
    else:
        in_tc = {(e.role, e.sha256) for e in theirs}
    in_params = {(e.role, e.sha256) for e in mine}
    rows = []
    for e in [*mine, *(t for t in theirs if (t.role, t.sha256) not in in_params)]:
        days = e.days_left(state.read_at)
        rows.append(
            {
                "role": e.role,
                "source": e.source,
                "subject": e.subject,
                "sha256": e.sha256[:16],
                "not after": f"{e.not_after:%Y-%m-%d}" if e.not_after else "",
                "days left": days,
                "in params": "yes" if (e.role, e.sha256) in in_params else "NO",
                "in trust config": ("yes" if (e.role, e.sha256) in in_tc else "NO")
                if e.role != "client"
                else "",
            }
        )
    return pd.DataFrame(rows)


def dns_frame(params: Params, state: State) -> pd.DataFrame:
    ip = state.ip
    status = dict(state.certificate.managed.domain_status) if state.certificate else {}
    return pd.DataFrame(
        [
            {
                "domain": r.domain,
                "A record wanted": ip,
                "resolves to": ", ".join(r.addresses) or f"(nothing: {r.error})",
                "certificate domain status": status.get(r.domain, ""),
            }
            for r in state.dns
        ]
    )


# ---- the checks ----------------------------------------------------------------------------------------


def drift_checks(
    clients: Clients,
    params: Params,
    resolver: Resolver | None = None,
    now: dt.datetime | None = None,
    topology: lbnames.Topology | None = None,
) -> list[Check]:
    """Read once, then judge: the whole verification of one environment."""
    return evaluate(params, read_state(clients, params, resolver, topology), now)


def evaluate(params: Params, state: State, now: dt.datetime | None = None) -> list[Check]:
    """Every drift check from one state (split or Gateway); no API is asked again."""
    if isinstance(state, GatewayDriftState):
        return gatewaydrift.evaluate(params, state, now)
    return [
        check_anchor(params, state),
        check_anchor_closed(params, state),
        check_url_map(params, state),
        check_backend_config(params, state),
        check_wiring(params, state),
        check_tls_policy(params, state),
        changedrift.trust_check_mid_rotation(
            check_trust_config(params, state), state.changes, state.trust_config
        ),
        check_expiry(params, now or state.read_at),
        changedrift.check_successors(params, state.trust_config, now or state.read_at),
        changedrift.check_half_done(params, state.changes, state.trust_config, now or state.read_at),
        check_managed_certificate(params, state),
        check_dns(params, state),
    ]


def _kubectl_describe(params: Params) -> str:
    k = params.kubernetes
    return f"kubectl describe ingress {k.ingress} -n {k.namespace}"


def check_anchor(params: Params, state: DriftState) -> Check:
    k = params.kubernetes
    svc, port = _wanted(params)
    where = f"Ingress {k.namespace}/{k.ingress}"
    if state.anchor is None:
        kept = (
            f"; the URL map still points at {_bs_label(state.url_map_backend)}"
            if state.url_map_backend
            else ""
        )
        return Check(
            ANCHOR,
            "fail",
            f"{where} does not exist: GKE no longer syncs the backend service and garbage-collects it once "
            f"nothing uses it{kept}",
            "re-apply the anchor now: run 10_ingress with apply=True (its plan prints the kubectl command "
            "and writes the manifest); never delete the anchor Ingress",
        )
    named = k8s.backends_of(state.anchor)
    if not named:
        return Check(
            ANCHOR,
            "fail",
            f"{where} has no {k8s.BACKENDS_ANNOTATION} annotation: the controller keeps no backend service for it",
            f"{_kubectl_describe(params)} (look for Translate warnings: missing Service or port), then re-run "
            "10_ingress with apply=True",
        )
    ours = state.ours(params)
    gone = (
        f"; named but missing in Compute: {', '.join(state.missing_backends)}"
        if state.missing_backends
        else ""
    )
    if ours is None:
        others = ", ".join(_bs_label(b) for b in state.named_backends) or "none that exist"
        return Check(
            ANCHOR,
            "fail",
            f"{where} names {others}, none for Service {svc} port {port}{gone}",
            "if the Service or port changed on purpose, set kubernetes.service / kubernetes.service_port in "
            "the params and re-run 20_backend_service and 40_frontend with apply=True; otherwise re-run "
            "10_ingress with apply=True to restore the Service and the anchor",
        )
    return Check(
        ANCHOR,
        "pass",
        f"{where} names {ours.name} ({ours.health or 'health unknown'}) for Service {svc} port {port}{gone}",
    )


def check_anchor_closed(params: Params, state: DriftState) -> Check:
    """The anchor exists only so GKE keeps the backend service; a frontend of its own is an unguarded
    way in that bypasses mTLS."""
    if state.anchor is None:
        return Check(
            ANCHOR_CLOSED, "pass", "no anchor Ingress, so no frontend of its own (see the anchor check)"
        )
    rules, ips = k8s.anchor_exposure(state.anchor)
    problems = [
        *([f"forwarding rule(s) of its own: {', '.join(rules)}"] if rules else []),
        *([f"address(es) in its status: {', '.join(ips)}"] if ips else []),
        *([f"answering at {', '.join(state.anchor_answering)}"] if state.anchor_answering else []),
    ]
    if problems:
        return Check(
            ANCHOR_CLOSED,
            "fail",
            f"the anchor serves traffic itself, without mTLS: {'; '.join(problems)}",
            k8s.ANCHOR_FIX,
        )
    return Check(
        ANCHOR_CLOSED, "pass", "no forwarding rule, no address, nothing answering (HTTP off, no TLS)"
    )


def check_url_map(params: Params, state: DriftState) -> Check:
    f = params.frontend
    if state.url_map is None:
        return Check(
            URL_MAP, "fail", f"URL map {f.url_map} does not exist", "run 40_frontend with apply=True"
        )
    target = _tail(state.url_map.default_service)
    shown = _bs_label(state.url_map_backend) if state.url_map_backend else f"{target} (missing in Compute)"
    ours = state.ours(params)
    if ours is None:
        return Check(
            URL_MAP,
            "fail",
            f"URL map {f.url_map} -> {shown}, but the anchor names no backend service for "
            f"{' port '.join(_wanted(params))} today, so GKE does not keep that one in sync",
            "fix the anchor first (see its check), then re-run 20_backend_service and 40_frontend with apply=True",
        )
    if _relative(state.url_map.default_service) != _relative(ours.self_link):
        return Check(
            URL_MAP,
            "fail",
            f"URL map {f.url_map} -> {shown}, but the anchor names {_bs_label(ours)} today",
            f"re-run 40_frontend with apply=True (gcloud compute url-maps set-default-service {f.url_map} "
            f"--default-service={ours.name} --global --project={params.project})",
        )
    return Check(URL_MAP, "pass", f"URL map {f.url_map} -> {_bs_label(ours)}")


def _same_rate(a: float, b: float) -> bool:
    return abs(a - b) < 1e-6


def _intent_differences(params: Params, enable: bool, rate: float, headers: list[str]) -> list[str]:
    """Where (enable, sampleRate, headers) differ from what the params ask the BackendConfig for."""
    want = params.logging
    diff = []
    if enable != want.enable:
        diff.append(f"logging enable {enable} (params {want.enable})")
    elif want.enable and not _same_rate(rate, want.sample_rate):
        diff.append(f"sampleRate {rate:g} (params {want.sample_rate:g})")
    wanted_headers = list(params.mtls.custom_headers)
    if headers != wanted_headers:
        names = [h.partition(":")[0] for h in headers]
        missing = [h.partition(":")[0] for h in wanted_headers if h not in headers]
        extra = [n for n, h in zip(names, headers, strict=True) if h not in wanted_headers]
        detail = ", ".join(
            part
            for part in (f"missing {missing}" if missing else "", f"extra {extra}" if extra else "")
            if part
        )
        diff.append(f"custom request headers differ ({detail or 'order'})")
    return diff


def check_backend_config(params: Params, state: DriftState) -> Check:
    """The BackendConfig is how Kubernetes shapes the backend service (request logs for the mTLS
    verdicts, the headers that carry the client certificate to the app); it must still say what the
    params say, and the controller must still be applying it."""
    k = params.kubernetes
    bs = state.ours(params) or state.url_map_backend
    if bs is None:
        return Check(
            BACKEND_CONFIG,
            "fail",
            "no backend service to compare: the anchor names none for our Service and port and the URL map "
            "points at none",
            "fix the anchor first (see its check)",
        )
    on_bs = _intent_differences(params, bs.log_enable, bs.log_sample_rate, bs.custom_request_headers)
    bc_where = f"BackendConfig {k.namespace}/{k.backend_config}"
    if not on_bs and not state.backend_config_read:
        return _backend_config_applied(bs, "the params")
    if state.backend_config is None:
        return Check(
            BACKEND_CONFIG,
            "fail",
            f"{bc_where} does not exist; backend service {bs.name}: {'; '.join(on_bs) or 'still as params ask'}",
            "re-run 10_ingress with apply=True",
        )
    spec = state.backend_config.get("spec") or {}
    logging = spec.get("logging") or {}
    in_bc = _intent_differences(
        params,
        bool(logging.get("enable", False)),
        float(logging.get("sampleRate", 1.0 if logging.get("enable") else 0.0)),
        list((spec.get("customRequestHeaders") or {}).get("headers") or []),
    )
    if in_bc:
        return Check(
            BACKEND_CONFIG,
            "fail",
            f"{bc_where} differs from the params: {'; '.join(in_bc)}"
            + (f"; backend service {bs.name}: {'; '.join(on_bs)}" if on_bs else ""),
            "re-run 10_ingress with apply=True (its plan prints the kubectl command); if the change was "
            "meant, put it in the params' logging / mtls.custom_headers first",
        )
    if on_bs:
        return Check(
            BACKEND_CONFIG,
            "fail",
            f"{bc_where} is as the params ask but backend service {bs.name} has {'; '.join(on_bs)}: the controller "
            "has not applied it (a hand edit on the backend service, or no anchor to sync it)",
            f"make sure the anchor Ingress exists (10_ingress with apply=True); if it does, {_kubectl_describe(params)} "
            "for sync errors; never edit the backend service by hand, the next sync undoes it",
        )
    return _backend_config_applied(bs, f"{bc_where} and the params")


def _backend_config_applied(bs: BackendService, who: str) -> Check:
    rate = f" sampleRate={bs.log_sample_rate:g}" if bs.log_enable else ""
    return Check(
        BACKEND_CONFIG,
        "pass",
        f"{bs.name}: logging enable={bs.log_enable}{rate}, {len(bs.custom_request_headers)} custom request "
        f"headers, as {who} ask",
    )


def check_wiring(params: Params, state: DriftState) -> Check:
    """The chain in front of the URL map: an address, a forwarding rule on 443 to the proxy, the proxy
    to the URL map with our certificate and SSL policy (profile and minimum TLS as the params say)."""
    f, p = params.frontend, params.project
    problems = []
    fr, proxy, addr, sp = state.forwarding_rule, state.proxy, state.address, state.ssl_policy
    for kind, obj in (
        ("forwarding rule", fr),
        ("target HTTPS proxy", proxy),
        ("address", addr),
        ("SSL policy", sp),
    ):
        if obj is None:
            names = {
                "forwarding rule": f.forwarding_rule,
                "target HTTPS proxy": f.target_proxy,
                "address": f.address,
                "SSL policy": f.ssl_policy,
            }
            problems.append(f"{kind} {names[kind]} does not exist")
    if fr is not None:
        if _relative(fr.target) != frontend.link(p, "targetHttpsProxies", f.target_proxy):
            problems.append(f"forwarding rule {fr.name} -> {_tail(fr.target)}, not {f.target_proxy}")
        if addr is not None and fr.I_p_address != addr.address:
            problems.append(
                f"forwarding rule {fr.name} on {fr.I_p_address}, not address {f.address} ({addr.address})"
            )
        if fr.port_range.split("-")[0] != "443":
            problems.append(f"forwarding rule {fr.name} on port {fr.port_range}, not 443")
    if proxy is not None:
        if _relative(proxy.url_map) != frontend.link(p, "urlMaps", f.url_map):
            problems.append(f"proxy {proxy.name} -> URL map {_tail(proxy.url_map)}, not {f.url_map}")
        certs = [_relative(c) for c in proxy.ssl_certificates]
        if frontend.link(p, "sslCertificates", f.certificate) not in certs:
            problems.append(f"proxy {proxy.name} serves {[_tail(c) for c in certs]}, not {f.certificate}")
        if _relative(proxy.ssl_policy) != frontend.link(p, "sslPolicies", f.ssl_policy):
            problems.append(f"proxy {proxy.name} SSL policy {_tail(proxy.ssl_policy)}, not {f.ssl_policy}")
    if sp is not None and (sp.profile, sp.min_tls_version) != (f.ssl_profile, f.min_tls_version):
        problems.append(
            f"SSL policy {sp.name} is {sp.profile} {sp.min_tls_version}, params ask {f.ssl_profile} {f.min_tls_version}"
        )
    if problems or fr is None or sp is None:
        return Check(WIRING, "fail", "; ".join(problems), "re-run 40_frontend with apply=True")
    chain = f"{fr.I_p_address}:443 ({f.forwarding_rule}) -> {f.target_proxy} -> {f.url_map}"
    return Check(
        WIRING,
        "pass",
        f"{chain}; certificate {f.certificate}; SSL policy {f.ssl_policy} {sp.profile} {sp.min_tls_version}",
    )


def check_tls_policy(params: Params, state: DriftState) -> Check:
    """Without the server TLS policy on the proxy the load balancer asks for no client certificate:
    every request reaches the backend, and nothing else looks broken."""
    m, f = params.mtls, params.frontend
    if state.proxy is None:
        return Check(
            TLS_POLICY,
            "fail",
            f"target HTTPS proxy {f.target_proxy} does not exist",
            "run 40_frontend with apply=True",
        )
    attached = state.proxy.server_tls_policy
    if state.policy is None:
        return Check(
            TLS_POLICY,
            "fail",
            f"server TLS policy {m.server_tls_policy} does not exist (proxy has {_tail(attached)})",
            "run 30_trust, then 40_frontend, with apply=True",
        )
    wanted = _relative(state.policy.name)
    if not attached:
        return Check(
            TLS_POLICY,
            "fail",
            f"proxy {f.target_proxy} has no server TLS policy: the load balancer asks for no client certificate "
            "and lets every request through",
            f"re-run 40_frontend with apply=True (gcloud compute target-https-proxies update {f.target_proxy} "
            f"--server-tls-policy={m.server_tls_policy} --global --project={params.project})",
        )
    if _relative(attached) != wanted:
        return Check(
            TLS_POLICY,
            "fail",
            f"proxy {f.target_proxy} carries server TLS policy {_relative(attached)}, not {wanted}",
            "re-run 40_frontend with apply=True",
        )
    mtls = state.policy.mtls_policy
    mode = mtls.client_validation_mode.name
    trust_ref = _relative(mtls.client_validation_trust_config)
    problems = []
    expected_trust = f"{wanted.split('/serverTlsPolicies/')[0]}/trustConfigs/{m.trust_config}"
    if trust_ref != expected_trust:
        problems.append(f"policy points at trust config {trust_ref or '(none)'}, not {expected_trust}")
    if mode != m.validation_mode:
        problems.append(f"policy mode {mode}, params ask {m.validation_mode}")
    return judged(
        TLS_POLICY,
        problems,
        "re-run 30_trust with apply=True",
        f"proxy {f.target_proxy} -> policy {m.server_tls_policy} ({mode}) -> trust config {_tail(trust_ref)}",
    )


def check_trust_config(params: Params, state: DriftState) -> Check:
    """The trust config decides who gets in; compare it with the params' files by SHA-256, so a swapped
    or added anchor shows even when names and counts look the same."""
    m = params.mtls
    if state.trust_config is None:
        return Check(
            TRUST, "fail", f"trust config {m.trust_config} does not exist", "run 30_trust with apply=True"
        )
    mine = params_certificates(params)
    theirs = trust_config_certificates(state.trust_config)
    problems, total = [], 0
    for role, fld in TRUST_FIELDS.items():
        want = {e.sha256: e for e in mine if e.role == role}
        have = {e.sha256: e for e in theirs if e.role == role}
        total += len(have)
        missing = [f"{e.source} (sha256 {e.sha256[:16]})" for fp, e in want.items() if fp not in have]
        added = [f"{e.subject} (sha256 {e.sha256[:16]})" for fp, e in have.items() if fp not in want]
        if missing:
            problems.append(f"{role}s missing from the trust config: {', '.join(missing)}")
        if added:
            problems.append(f"{role}s in the trust config but not in {fld}: {', '.join(added)}")
    if problems:
        return Check(
            TRUST,
            "fail",
            f"trust config {m.trust_config}: " + "; ".join(problems),
            "re-run 30_trust with apply=True to restore the params' certificates; if the change was meant, "
            "add the certificate file to the params first",
        )
    return Check(TRUST, "pass", f"trust config {m.trust_config} = params by SHA-256 ({_role_counts(theirs)})")


def check_dns(params: Params, state: DriftState) -> Check:
    f = params.frontend
    if state.address is None:
        return Check(DNS, "fail", f"address {f.address} does not exist", "run 40_frontend with apply=True")
    return check_dns_answers(
        state.dns, state.address.address, wrong_fix=lambda domain, ip: f"change the A record {domain} -> {ip}"
    )
