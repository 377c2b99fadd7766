"""The sandbox data plane: a real TLS listener per HTTPS forwarding rule, enforcing the proxy's
certificate, SSL policy and server TLS policy as the load balancer documents them.

It follows the control-plane state by re-reading the store every `REFRESH_SECONDS`: a changed
certificate or URL map applies to the next connection, a new forwarding rule opens a listener and a
deleted one closes it, all without a restart. A changed server TLS policy, trust config or proxy
`serverTlsPolicy` applies to connections made `propagation_delay_seconds` later (`propagation`),
and a connection keeps the mTLS setting and verdict of its handshake until it closes.

TLS is pyOpenSSL because the standard library cannot accept a client certificate that fails
verification, and the load balancer must see such certificates to name the error (ALLOW mode
forwards them). OpenSSL still enforces proof of possession of the client's key (CertificateVerify);
everything else about the certificate is decided by `mtlskit.rules.verdict`.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import logging
import random
import re
import socket
import socketserver
import struct
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import h11
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from OpenSSL import SSL

from mtlskit.rules.gateway import DATA_PLANE
from mtlskit.rules.logentry import (
    BACKEND_UNREACHABLE,
    FORWARDED,
    MTLS,
    NO_BACKEND,
    NOT_PROVIDED,
    PAYLOAD_TYPE,
    RESOURCE_TYPE,
)
from mtlskit.rules.verdict import TrustMaterial, Verdict, judge
from mtlskit.sandbox import locations, stand_in_ca
from mtlskit.sandbox.compute.resources import ComputeStore
from mtlskit.sandbox.echo import EchoApps
from mtlskit.sandbox.env import Env
from mtlskit.sandbox.kube import KINDS as KUBE_KINDS
from mtlskit.sandbox.kube import KubeObjects
from mtlskit.sandbox.logs import append_entry
from mtlskit.sandbox.mtls_headers import expand, log_fields, request_headers, variables
from mtlskit.sandbox.propagation import MtlsView, Propagation
from mtlskit.sandbox.stand_in_ca import Served
from mtlskit.sandbox.web import ApiError

log = logging.getLogger("mtlskit.sandbox.dataplane")

REFRESH_SECONDS = 0.2
# The most request-line-and-header bytes the sandbox reads before refusing the request. Google's own
# limits differ by product and are not the point here; the answer's status is (rules.gateway.DATA_PLANE).
MAX_REQUEST_HEADERS = 64 * 1024
IDLE_SECONDS = 30
MIN_VERSION = {
    "TLS_1_0": SSL.TLS1_VERSION,
    "TLS_1_1": SSL.TLS1_1_VERSION,
    "TLS_1_2": SSL.TLS1_2_VERSION,
    "TLS_1_3": SSL.TLS1_3_VERSION,
}
# TLS <= 1.2 cipher sets as close to Google's profiles as OpenSSL names allow. SECLEVEL=0 so OpenSSL
# itself refuses nothing the load balancer would accept: the kit's rules decide about certificates.
CIPHERS = {
    "COMPATIBLE": "ECDHE+AESGCM:ECDHE+CHACHA20:ECDHE+AES:RSA+AESGCM:RSA+AES:@SECLEVEL=0",
    "MODERN": "ECDHE+AESGCM:ECDHE+CHACHA20:ECDHE+AES:@SECLEVEL=0",
    "RESTRICTED": "ECDHE+AESGCM:ECDHE+CHACHA20:@SECLEVEL=0",
    "FIPS_202205": "ECDHE+AESGCM:@SECLEVEL=0",
    "CUSTOM": "ECDHE+AESGCM:ECDHE+CHACHA20:ECDHE+AES:@SECLEVEL=0",
}
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
}


# ---- what one listener serves ---------------------------------------------------------------------


@dataclass
class ServingCert:
    domains: tuple[str, ...]
    context: SSL.Context


@dataclass
class Frontend:
    """Everything a connection to one forwarding rule needs, read from the control plane."""

    project: str
    ip: str
    forwarding_rule: str
    proxy: str
    url_map: str  # self link, "" when the proxy has none
    certs: list[ServingCert]
    mtls_mode: str | None  # None: the proxy has no server TLS policy (in force, see `propagation`)
    trust: TrustMaterial | None
    scheme: str = "EXTERNAL"  # the forwarding rule's: classic and managed answer some cases differently
    mtls: MtlsView = field(default_factory=lambda: MtlsView(None))  # what mtls_mode and trust came from

    def context_for(self, server_name: str | None) -> SSL.Context | None:
        if not self.certs:
            return None
        if server_name:
            for c in self.certs:
                if any(_host_matches(server_name, d) for d in c.domains):
                    return c.context
        return self.certs[0].context  # the proxy's first certificate is its primary


def _host_matches(host: str, pattern: str) -> bool:
    host, pattern = host.lower().rstrip("."), pattern.lower().rstrip(".")
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and host.count(".") == pattern.count(".")
    return host == pattern


@dataclass
class Route:
    """What the URL map picked for one request: the backend service and the header actions that apply
    (URL map, path matcher, route rule, weighted backend: outermost first)."""

    service: dict[str, Any] | None
    url_map: str
    header_actions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Connection:
    frontend: Frontend
    remote_ip: str
    leaf: x509.Certificate | None = None
    sent: list[x509.Certificate] = field(default_factory=list)
    verdict: Verdict | None = None
    values: dict[str, str] = field(default_factory=dict)  # the mTLS variables, fixed per connection
    protocol: str = ""
    cipher: str = ""
    url_map_name: str = ""
    server_name: str = ""  # the client's SNI
    upstreams: dict[tuple[str, int], http.client.HTTPConnection] = field(default_factory=dict)


class DataPlane:
    def __init__(self, env: Env):
        self.store = env.store
        self.compute = ComputeStore(env)
        self.kube = KubeObjects(env.store)
        self.port = env.settings.data_plane_port
        self.dir = env.state_dir / "dataplane"
        self.ca = stand_in_ca.load_or_create(self.dir)
        self.echo = EchoApps()
        self.frontends: dict[str, Frontend] = {}
        self.listeners: dict[str, _TCPServer] = {}
        self.errors: dict[str, str] = {}  # listeners that could not bind
        self.config_errors: dict[str, str] = {}  # frontends whose resources could not be loaded
        self._contexts: dict[str, SSL.Context] = {}
        self._issued: dict[str, Served] = {}
        self._trust: dict[str, TrustMaterial] = {}
        self._stop = threading.Event()
        self.refreshes = 0
        self.propagation = Propagation(env.settings.propagation_delay_seconds)
        self._thread: threading.Thread | None = None
        self.counters = {"connections": 0, "handshake_failures": 0, "requests": 0}
        self._count_lock = threading.Lock()

    def _count(self, what: str) -> None:
        with self._count_lock:
            self.counters[what] += 1

    @property
    def ca_file(self) -> Path:
        return self.dir / "ca.pem"

    # ---- following the control plane ----------------------------------------------------------------

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._loop, name="dataplane-refresh", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(REFRESH_SECONDS):
            try:
                self.refresh()
            except Exception:  # keep following the state; a broken resource must not stop the loop
                log.exception("data plane refresh failed")

    def stop(self) -> None:
        self._stop.set()
        for listener in list(self.listeners.values()):
            _close(listener)
        self.listeners.clear()
        self.echo.close()

    def refresh(self) -> None:
        """Follow the control plane's state; `refreshes` counts the completed ones, so a client that
        changed the state can wait for the first refresh begun after its change instead of sleeping."""
        frontends = {f.ip: f for f in self._read_frontends()}
        self.frontends = frontends
        self.propagation.keep_only(frontends)
        for ip in list(self.listeners):
            if ip not in frontends:
                _close(self.listeners.pop(ip))
        for ip in frontends:
            if ip in self.listeners:
                continue
            try:
                self.listeners[ip] = self._listen(ip)
                self.errors.pop(ip, None)
            except OSError as err:
                self.errors[ip] = f"cannot listen on {ip}:{self.port}: {err.strerror or err}"
        self.refreshes += 1

    def configure(self, changes: dict[str, Any]) -> None:
        """Settings a running sandbox takes without a restart (`POST /_sandbox/dataplane`)."""
        unknown = set(changes) - {"propagation_delay_seconds"}
        if unknown:
            raise ApiError.google(400, f"unknown data plane settings: {sorted(unknown)}")
        if "propagation_delay_seconds" in changes:
            try:
                self.propagation.set_delay(changes["propagation_delay_seconds"])
            except ValueError as err:
                raise ApiError.google(400, str(err)) from None

    def status(self) -> dict[str, Any]:
        """What the data plane serves; per listener, the mTLS setting in force (`enforced`) and the
        changes still propagating (`pending`), so a test can tell "not applied yet" from "wrong"."""
        return {
            "port": self.port,
            "refreshes": self.refreshes,
            "propagation_delay_seconds": self.propagation.delay,
            "ca_file": str(self.ca_file),
            "listeners": [
                {
                    "ip": ip,
                    "port": self.port,
                    "forwarding_rule": f.forwarding_rule,
                    "target_proxy": f.proxy,
                    "certificates_served": len(f.certs),
                    "mtls": f.mtls_mode or "off",
                    "enforced": f.mtls.describe(),
                    "pending": self.propagation.pending(ip),
                    "listening": ip in self.listeners,
                    "error": "; ".join(e for e in (self.errors.get(ip), self.config_errors.get(ip)) if e),
                }
                for ip, f in sorted(self.frontends.items())
            ],
            "counters": dict(self.counters),
            "errors": dict(self.config_errors),
        }

    def _read_frontends(self) -> list[Frontend]:
        out = []
        for project, fr in self.compute.list_all("forwardingRules"):
            proxy = self.compute.get_ref(fr.get("target", ""), project, "targetHttpsProxies")
            ip = fr.get("IPAddress", "")
            if proxy is None or not _is_loopback(ip):
                continue
            try:
                out.append(self._frontend(project, ip, fr, proxy))
                self.config_errors.pop(ip, None)
            except Exception as err:  # one broken resource must not freeze every other listener
                self.config_errors[ip] = f"cannot serve forwarding rule {fr.get('name')}: {err}"
                if ip in self.frontends:
                    out.append(self.frontends[ip])  # keep serving its last good configuration
        return out

    def _frontend(self, project: str, ip: str, fr: dict[str, Any], proxy: dict[str, Any]) -> Frontend:
        policy_body = self.compute.get_ref(proxy.get("sslPolicy", ""), project, "sslPolicies")
        profile = (policy_body or {}).get("profile", "COMPATIBLE")
        min_tls = (policy_body or {}).get("minTlsVersion", "TLS_1_0")
        view = self.propagation.enforced(ip, self._mtls_view(proxy))
        mtls_mode, trust = view.mode, view.trust
        serving = []
        for link in proxy.get("sslCertificates", []):
            body = self.compute.get_ref(link, project, "sslCertificates")
            material = self._certificate(body) if body else None
            if material is None:
                continue  # a managed certificate before ACTIVE is not served
            issued, domains = material
            ctx = self._context(issued, min_tls, profile, mtls_mode is not None)
            serving.append(ServingCert(domains, ctx))
        return Frontend(
            project=project,
            ip=ip,
            forwarding_rule=fr["name"],
            proxy=proxy["name"],
            url_map=proxy.get("urlMap", ""),
            certs=serving,
            mtls_mode=mtls_mode,
            trust=trust,
            mtls=view,
            scheme=fr.get("loadBalancingScheme", "EXTERNAL"),
        )

    def _mtls_view(self, proxy: dict[str, Any]) -> MtlsView:
        """The mTLS setting the control plane holds for this proxy now."""
        ref = proxy.get("serverTlsPolicy")
        stp = locations.server_tls_policy(self.store, ref) if ref else None
        if stp is None:
            return MtlsView(None)
        mtls = stp.get("mtlsPolicy") or {}
        tc_ref = mtls.get("clientValidationTrustConfig")
        tc = locations.trust_config(self.store, tc_ref) if tc_ref else None
        return MtlsView(
            mode=mtls.get("clientValidationMode", "REJECT_INVALID"),
            trust=self._trust_material(tc) if tc is not None else None,
            policy=stp["name"],
            trust_config=(tc or {}).get("name", ""),
            trust_etag=(tc or {}).get("etag", ""),
        )

    def _certificate(self, body: dict[str, Any]) -> tuple[Served, tuple[str, ...]] | None:
        rendered = self.compute.render(body)
        if rendered.get("type") == "MANAGED":
            if rendered["managed"].get("status") != "ACTIVE":
                return None
            domains = tuple(rendered["managed"].get("domains", []))
            key = str(body["id"])  # certificates are immutable: the id names one version
            if key not in self._issued:  # the certificate the API reports (see ComputeStore.render)
                cert = x509.load_pem_x509_certificate(rendered["certificate"].encode())
                private = serialization.load_pem_private_key(body["_managedKey"].encode(), None)
                self._issued[key] = Served(cert, private)
            return self._issued[key], domains
        key = str(body["id"])
        if key not in self._issued:
            chain = x509.load_pem_x509_certificates(body["certificate"].encode())
            private = serialization.load_pem_private_key(body["_privateKey"].encode(), None)
            self._issued[key] = Served(chain[0], private, tuple(chain[1:]))
        return self._issued[key], tuple(body.get("subjectAlternativeNames", []))

    def _trust_material(self, tc: dict[str, Any]) -> TrustMaterial:
        key = f"{tc['name']}@{tc['etag']}"  # the etag changes with every update
        if key not in self._trust:

            def load(items: list[dict[str, Any]]) -> tuple[x509.Certificate, ...]:
                out: list[x509.Certificate] = []
                for item in items:
                    out += x509.load_pem_x509_certificates(item["pemCertificate"].encode())
                return tuple(out)

            store = (tc.get("trustStores") or [{}])[0]
            self._trust[key] = TrustMaterial(
                anchors=load(store.get("trustAnchors", [])),
                intermediates=load(store.get("intermediateCas", [])),
                allowlisted=load(tc.get("allowlistedCertificates", [])),
            )
        return self._trust[key]

    def _context(self, issued: Served, min_tls: str, profile: str, mtls: bool) -> SSL.Context:
        fp = issued.cert.fingerprint(hashes.SHA256()).hex()
        key = f"{fp}:{min_tls}:{profile}:{mtls}"
        ctx = self._contexts.get(key)
        if ctx is not None:
            return ctx
        ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
        ctx.set_min_proto_version(MIN_VERSION.get(min_tls, SSL.TLS1_VERSION))
        ctx.set_cipher_list(CIPHERS.get(profile, CIPHERS["COMPATIBLE"]).encode())
        ctx.use_certificate(issued.cert)  # type: ignore[arg-type]
        for extra in issued.chain:
            ctx.add_extra_chain_cert(extra)  # type: ignore[arg-type]
        ctx.use_privatekey(issued.key)  # type: ignore[arg-type]
        # Full handshakes only: a resumed session would skip the client certificate.
        ctx.set_options(SSL.OP_NO_TICKET)
        ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
        if mtls:
            # Ask for a certificate, accept any at the TLS layer (the kit's rules decide after the
            # handshake); OpenSSL still verifies the client's CertificateVerify signature.
            ctx.set_verify(SSL.VERIFY_PEER, lambda *_: True)
        ctx.set_tlsext_servername_callback(_pick_certificate)
        self._contexts[key] = ctx
        return ctx

    def _listen(self, ip: str) -> _TCPServer:
        plane = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                plane.serve_connection(self.request, self.client_address[0], ip)

        server = _TCPServer((ip, self.port), Handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
        return server

    # ---- one connection -------------------------------------------------------------------------------

    def serve_connection(self, sock: socket.socket, remote_ip: str, ip: str) -> None:
        self._count("connections")
        frontend = self.frontends.get(ip)
        ctx = frontend.context_for(None) if frontend else None
        if frontend is None or ctx is None:
            return  # no certificate to present (e.g. managed certificate still provisioning)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", IDLE_SECONDS, 0))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls = SSL.Connection(ctx, sock)
        tls.set_app_data(frontend)
        tls.set_accept_state()
        started = time.monotonic()
        try:
            tls.do_handshake()
        except (SSL.Error, OSError):
            # Includes a failed proof of possession: closed without a log entry, as documented.
            self._count("handshake_failures")
            return
        conn = Connection(frontend, remote_ip)
        sni = tls.get_servername()
        conn.server_name = sni.decode() if sni else ""
        conn.protocol = tls.get_protocol_version_name() or ""
        conn.cipher = tls.get_cipher_name() or ""
        if frontend.mtls_mode:
            conn.leaf = tls.get_peer_certificate(as_cryptography=True)
            chain = tls.get_peer_cert_chain(as_cryptography=True) or []
            conn.sent = [c for c in chain if c != conn.leaf]
            conn.verdict = judge(conn.leaf, conn.sent, frontend.trust)
        conn.values = variables(frontend.mtls_mode is not None, conn.leaf, conn.sent, conn.verdict)
        if frontend.mtls_mode == "REJECT_INVALID" and conn.verdict is not None and not conn.verdict.ok:
            self._log_closed(conn, started)
            _shutdown(tls)
            return
        try:
            self._serve_http(tls, conn)
        except (SSL.Error, OSError, h11.ProtocolError):
            pass
        finally:
            for upstream in conn.upstreams.values():
                upstream.close()
            _shutdown(tls)

    def _serve_http(self, tls: SSL.Connection, conn: Connection) -> None:
        h = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_HEADERS)
        request: h11.Request | None = None
        body = b""
        started = time.monotonic()
        while True:
            try:
                event = h.next_event()
            except h11.RemoteProtocolError as err:
                if err.error_status_hint == HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE:
                    self._refuse_headers(tls, h, conn.frontend)
                return
            if event is h11.NEED_DATA:
                try:
                    data = tls.recv(65536)
                except SSL.ZeroReturnError:
                    data = b""
                h.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                if _header_bytes(event) > MAX_REQUEST_HEADERS:
                    self._refuse_headers(tls, h, conn.frontend)
                    return
                request, body, started = event, b"", time.monotonic()
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage) and request is not None:
                self._count("requests")
                status, headers, payload, details, bs = self._forward(conn, request, body)
                # The body's length, except for HEAD, whose answer keeps the backend's declared length.
                declared = [v for k, v in headers if k.lower() == "content-length"]
                length = declared[0] if request.method == b"HEAD" and declared else str(len(payload))
                response_headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
                response_headers.append(("content-length", length))
                tls.sendall(
                    h.send(h11.Response(status_code=status, headers=response_headers, reason=_reason(status)))
                )
                if request.method != b"HEAD":  # a HEAD answer declares its length but has no body
                    tls.sendall(h.send(h11.Data(data=payload)))
                tls.sendall(h.send(h11.EndOfMessage()))
                self._log_request(conn, request, body, status, len(payload), details, bs, started)
                if h.our_state is h11.MUST_CLOSE or h.their_state is h11.MUST_CLOSE:
                    return
                h.start_next_cycle()
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return

    @staticmethod
    def _refuse_headers(tls: SSL.Connection, h: h11.Connection, frontend: Frontend) -> None:
        """Request headers over the limit: 413 from the classic load balancer, 431 from the managed one."""
        status = DATA_PLANE.get(frontend.scheme, DATA_PLANE["EXTERNAL"]).header_too_large
        payload = b"request headers too large\n"
        headers = [
            ("content-type", "text/plain"),
            ("content-length", str(len(payload))),
            ("connection", "close"),
        ]
        tls.sendall(h.send(h11.Response(status_code=status, headers=headers, reason=_reason(status))))
        tls.sendall(h.send(h11.Data(data=payload)) + h.send(h11.EndOfMessage()))

    # ---- routing and the backend ----------------------------------------------------------------------

    def _route(
        self, frontend: Frontend, host: str, path: str, headers: dict[str, str] | None = None
    ) -> Route:
        """The backend service the URL map picks for host, path (and headers, for route rules)."""
        um = self.compute.get_ref(frontend.url_map, frontend.project, "urlMaps")
        if um is None:
            return Route(None, "")
        service = um.get("defaultService", "")
        actions = [um["headerAction"]] if um.get("headerAction") else []
        matcher_name = None
        for rule in um.get("hostRules", []):
            if any(h == "*" or _host_matches(host, h) for h in rule.get("hosts", [])):
                matcher_name = rule.get("pathMatcher")
                break
        for matcher in um.get("pathMatchers", []):
            if matcher.get("name") != matcher_name:
                continue
            service = matcher.get("defaultService", service)
            if matcher.get("headerAction"):
                actions.append(matcher["headerAction"])
            for rule in sorted(matcher.get("routeRules", []), key=lambda r: r.get("priority", 0)):
                if any(_rule_matches(m, path, headers or {}) for m in rule.get("matchRules") or [{}]):
                    service = rule.get("service") or _pick_weighted(rule) or service
                    if rule.get("headerAction"):
                        actions.append(rule["headerAction"])
                    break
            else:
                for rule in matcher.get("pathRules", []):
                    if any(_path_matches(path, p) for p in rule.get("paths", [])):
                        service = rule.get("service", service)
                        break
        bs = self.compute.get_ref(service, frontend.project, "backendServices")
        return Route(bs, um["name"], actions)

    def _endpoint(self, project: str, bs: dict[str, Any]) -> tuple[str, int] | None:
        """The echo app of the Service behind the backend service's NEG, if the Service still exists.

        An orphaned backend service (its Ingress is gone, the kit's URL map kept it alive) has no
        endpoints: nothing in Kubernetes syncs its NEG any more, which is how the sandbox models
        the original write-up's warning never to delete the anchor Ingress."""
        if bs.get("_orphaned"):
            return None
        for backend in bs.get("backends", []):
            neg = self.compute.get_ref(backend.get("group", ""), project, "networkEndpointGroups")
            if not neg or not neg.get("_endpoints"):
                continue
            meta = json.loads(neg.get("description") or "{}")
            ns, name = meta.get("namespace"), meta.get("service-name")
            if not ns or self.kube.get(KUBE_KINDS[("", "services")], ns, name) is None:
                continue
            return self.echo.address(ns, name, int(neg["_endpoints"][0]["port"]))
        return None

    def _forward(
        self, conn: Connection, request: h11.Request, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes, str, dict[str, Any] | None]:
        host = _header(request, "host")
        path = request.target.decode("latin-1")
        client_headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
        route = self._route(conn.frontend, host.split(":")[0], path.split("?")[0], client_headers)
        bs = route.service
        conn.url_map_name = route.url_map
        text = [("content-type", "text/plain")]
        plane = DATA_PLANE.get(conn.frontend.scheme, DATA_PLANE["EXTERNAL"])
        if bs is None:
            return 404, text, b"no backend for this host and path\n", "backend_service_not_found", None
        if bs.get("_answers") == 404:  # the Gateway's default backend: what no route matched
            return 404, text, b"default backend - 404\n", FORWARDED, bs
        endpoint = self._endpoint(conn.frontend.project, bs)
        if endpoint is None:
            return plane.no_healthy_backend, text, b"no healthy upstream\n", NO_BACKEND, bs
        added = request_headers(bs.get("customRequestHeaders", []), conn.values)
        appended, removed = _header_actions(route.header_actions, conn.values)
        replacing = [(n, v) for n, v, replace in appended if replace]
        # Headers the load balancer sets replace same-named client headers: no spoofed X-Client-Cert-*.
        # A header action with replace=false appends instead, keeping what the client sent.
        replaced = {n.lower() for n, _ in added + replacing} | HOP_BY_HOP | {"x-forwarded-for"} | removed
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in request.headers
            if k.decode("latin-1").lower() not in replaced
        ]
        forwarded = _header(request, "x-forwarded-for")
        delimiter = plane.forwarded_for_delimiter
        headers += [
            ("X-Forwarded-For", f"{forwarded}{delimiter}{conn.remote_ip}" if forwarded else conn.remote_ip),
            ("X-Forwarded-Proto", "https"),
            ("Via", "1.1 google"),
            *replacing,
            *[(n, v) for n, v, replace in appended if not replace],
            *added,
        ]
        try:
            response, payload = self._upstream_call(
                conn, endpoint, float(bs.get("timeoutSec", 30)), request, path, headers, body
            )
        except (OSError, http.client.HTTPException):
            return 502, text, b"upstream connect error\n", BACKEND_UNREACHABLE, bs
        out = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP - {"content-length"}]
        return response.status, out, payload, FORWARDED, bs

    @staticmethod
    def _upstream_call(
        conn: Connection,
        endpoint: tuple[str, int],
        timeout: float,
        request: h11.Request,
        path: str,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> tuple[http.client.HTTPResponse, bytes]:
        """One request to the backend, on a connection kept for this client connection (as the load
        balancer pools backend connections); a stale kept connection is replaced once."""
        while True:
            reused = endpoint in conn.upstreams
            upstream = conn.upstreams.get(endpoint) or http.client.HTTPConnection(*endpoint, timeout=timeout)
            conn.upstreams[endpoint] = upstream
            try:
                if upstream.sock is None:
                    upstream.connect()
                    upstream.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                upstream.putrequest(request.method.decode(), path, skip_host=True, skip_accept_encoding=True)
                for k, v in headers:
                    upstream.putheader(k, v)
                upstream.putheader("Content-Length", str(len(body)))
                upstream.endheaders(body)
                response = upstream.getresponse()
                return response, response.read()
            except (OSError, http.client.HTTPException):
                conn.upstreams.pop(endpoint).close()
                if not reused:  # only a kept connection the backend closed meanwhile is retried
                    raise

    # ---- request logs ---------------------------------------------------------------------------------

    def _log_config(self, bs: dict[str, Any] | None) -> bool:
        cfg = (bs or {}).get("logConfig") or {}
        if not cfg.get("enable"):
            return False
        return random.random() < float(cfg.get("sampleRate", 1.0))

    def _entry(
        self,
        conn: Connection,
        http_request: dict[str, Any],
        details: str,
        bs_name: str,
        um_name: str,
        started: float,
    ) -> dict[str, Any]:
        f = conn.frontend
        payload: dict[str, Any] = {
            "@type": PAYLOAD_TYPE,
            "statusDetails": details,
            "remoteIp": conn.remote_ip,
            "tls": {"protocol": conn.protocol, "cipher": conn.cipher, "earlyDataRequest": False},
        }
        if f.mtls_mode:
            # The `mtls` object as Google's Envoy-based proxies log it; the global load balancer's
            # documented schema has only statusDetails, so analyses should not depend on it.
            # The certificate's fields are there in both modes, also for a refused connection.
            payload[MTLS] = log_fields(conn.values)
        return {
            "logName": f"projects/{f.project}/logs/requests",
            "resource": {
                "type": RESOURCE_TYPE,
                "labels": {
                    "project_id": f.project,
                    "zone": "global",
                    "forwarding_rule_name": f.forwarding_rule,
                    "target_proxy_name": f.proxy,
                    "url_map_name": um_name,
                    "backend_service_name": bs_name,
                },
            },
            "httpRequest": {
                **http_request,
                "remoteIp": conn.remote_ip,
                # serverIp only when a backend answered; Google leaves an empty field out
                **({"serverIp": f.ip} if bs_name else {}),
                "latency": f"{time.monotonic() - started:.6f}s",
            },
            "jsonPayload": payload,
            "severity": "INFO",
        }

    def _log_closed(self, conn: Connection, started: float) -> None:
        """A connection refused after the handshake is logged under the backend service the URL map
        picks for the client's SNI name (a Gateway routes by host), and that service's sampling."""
        route = self._route(conn.frontend, conn.server_name, "/")
        bs, um_name = route.service, route.url_map
        if not self._log_config(bs):
            return
        verdict = conn.verdict or Verdict(False, False, NOT_PROVIDED)
        entry = self._entry(conn, {"status": 0}, verdict.error, "", um_name, started)
        append_entry(self.store, entry)

    def _log_request(
        self,
        conn: Connection,
        request: h11.Request,
        body: bytes,
        status: int,
        size: int,
        details: str,
        bs: dict[str, Any] | None,
        started: float,
    ) -> None:
        if not self._log_config(bs):
            return
        host = _header(request, "host")
        http_request = {
            "requestMethod": request.method.decode(),
            "requestUrl": f"https://{host}{request.target.decode('latin-1')}",
            "requestSize": str(len(body)),
            "status": status,
            "responseSize": str(size),
            "userAgent": _header(request, "user-agent"),
        }
        entry = self._entry(
            conn, http_request, details, (bs or {}).get("name", ""), conn.url_map_name, started
        )
        append_entry(self.store, entry)


# ---- helpers ----------------------------------------------------------------------------------------


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def _pick_certificate(tls: SSL.Connection) -> None:
    """SNI: switch to the context whose certificate covers the requested name."""
    frontend: Frontend = tls.get_app_data()
    name = tls.get_servername()
    ctx = frontend.context_for(name.decode() if name else None)
    if ctx is not None:
        tls.set_context(ctx)


def _shutdown(tls: SSL.Connection) -> None:
    with contextlib.suppress(SSL.Error, OSError):
        tls.shutdown()
    with contextlib.suppress(OSError):
        tls.sock_shutdown(socket.SHUT_RDWR)


def _close(server: _TCPServer) -> None:
    server.shutdown()
    server.server_close()


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def _header(request: h11.Request, name: str) -> str:
    for k, v in request.headers:
        if k.decode("latin-1").lower() == name:
            return v.decode("latin-1")
    return ""


def _header_bytes(request: h11.Request) -> int:
    """The request line and header block's size, as it came on the wire (give or take the spacing)."""
    line = len(request.method) + len(request.target) + 11
    return line + sum(len(k) + len(v) + 4 for k, v in request.headers)


def _rule_matches(rule: dict[str, Any], path: str, headers: dict[str, str]) -> bool:
    """A URL map route rule's matchRule: one of prefix/full/regex path, and every header match."""
    if "fullPathMatch" in rule and path != rule["fullPathMatch"]:
        return False
    if "prefixMatch" in rule and not path.startswith(rule["prefixMatch"]):
        return False
    if "regexMatch" in rule and not re.fullmatch(rule["regexMatch"], path):
        return False
    for h in rule.get("headerMatches") or []:
        value = headers.get(h.get("headerName", "").lower())
        if "exactMatch" in h and value != h["exactMatch"]:
            return False
        if "regexMatch" in h and (value is None or not re.fullmatch(h["regexMatch"], value)):
            return False
        if h.get("presentMatch") and value is None:
            return False
    return True


def _pick_weighted(rule: dict[str, Any]) -> str:
    """One of a route rule's weighted backend services, drawn by weight."""
    weighted = (rule.get("routeAction") or {}).get("weightedBackendServices") or []
    if not weighted:
        return ""
    picked = random.choices(weighted, weights=[max(int(w.get("weight", 0)), 0) or 1 for w in weighted])[0]
    return str(picked.get("backendService", ""))


def _header_actions(
    actions: list[dict[str, Any]], values: dict[str, str]
) -> tuple[list[tuple[str, str, bool]], set[str]]:
    """(name, expanded value, replace) of every header the URL map's actions add, and the lowercase
    names they remove; values expand the `{client_cert_*}` variables like custom headers do."""
    added: list[tuple[str, str, bool]] = []
    removed: set[str] = set()
    for action in actions:
        removed |= {n.lower() for n in action.get("requestHeadersToRemove") or []}
        for h in action.get("requestHeadersToAdd") or []:
            added.append(
                (h.get("headerName", ""), expand(h.get("headerValue", ""), values), bool(h.get("replace")))
            )
    return added, removed


def _path_matches(path: str, pattern: str) -> bool:
    if pattern.endswith("/*"):
        return path == pattern[:-2] or path.startswith(pattern[:-1])
    return path == pattern


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False
