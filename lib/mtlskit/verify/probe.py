"""Real requests against the frontend, as a client would send them, with the outcome each should have.

A probe connects to the forwarding rule's IP address but names the domain in SNI and Host, as
`curl --resolve DOMAIN:PORT:IP` does, so it exercises the certificate, SSL policy and server TLS policy
the load balancer really serves for that name. TLS is the standard library's (OpenSSL), HTTP is
`http.client`; nothing here speaks TLS by hand.

Each probe carries a unique id (in the path and a header) and is saved, so the log step can find the
load balancer's entry for every probe and compare its statusDetails with what was expected.

Private keys are only ever handed to OpenSSL by path; no function here reads or returns key material.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import http.client
import json
import socket
import ssl
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from cryptography import x509

from mtlskit.build import frontend, lbnames
from mtlskit.build.lbnames import LoadBalancerNames
from mtlskit.cloud.clients import Clients
from mtlskit.config import paths
from mtlskit.config.params import RESERVED_PROBE_CASES, Params
from mtlskit.core.checks import Check
from mtlskit.core.errors import PrerequisiteMissing
from mtlskit.pki import certs
from mtlskit.rules import gateway as gw
from mtlskit.rules.logentry import FORWARDED, NOT_PROVIDED, VALIDATION_FAILED

PROBE_HEADER = "X-Mtlskit-Probe"
PROBE_PATH = "/.mtlskit/probe/"  # followed by the probe id
USER_AGENT = "mtlskit-probe"
# statusDetails of a request the load balancer passed to the backend and answered from it (documented
# for the global external ALB; the sandbox data plane logs the same string).
REJECT = "REJECT_INVALID"
PROBE_CERTIFICATE, NO_CERTIFICATE = RESERVED_PROBE_CASES
CLOSED_QUIETLY = "closed by the server without a TLS alert"
MAX_BODY = 64 * 1024  # enough for the echo app's JSON; a real backend's page is not needed whole
# The SSL-policy minimum -> the newest version below it, which the frontend must refuse.
BELOW_MINIMUM = {
    "TLS_1_1": ("TLS 1.0", "TLSv1"),
    "TLS_1_2": ("TLS 1.1", "TLSv1_1"),
    "TLS_1_3": ("TLS 1.2", "TLSv1_2"),
}
# The mTLS variables whose headers decide a probe's verdict.
PRESENT, VERIFIED, ERROR = "client_cert_present", "client_cert_chain_verified", "client_cert_error"
FORWARDED_FOR = "X-Forwarded-For"


# ---- saved records ------------------------------------------------------------------------------------


@dataclass
class ProbeResult:
    probe_id: str
    case: str
    expected: str  # "ok" or the documented client_cert_* string
    expected_status_details: str  # what the load balancer's log entry should say
    outcome: str  # "HTTP 200", "closed after the TLS handshake, no HTTP response (...)", "timeout", ...
    http_status: int | None
    verdict: str  # pass | fail | warn (answered, but the backend does not show the mTLS headers)
    sent_at: str  # RFC 3339 UTC, taken just before connecting
    finished_at: str
    detail: str = ""
    backend_headers: dict[str, str] = field(default_factory=dict)  # mTLS and probe headers it received
    backend_path: str = ""  # the path the backend received, when it echoes requests
    validation_mode: str = ""  # the mode the expectation was derived from
    forwarding_rule: str = ""
    domain: str = ""
    source: str = ""  # where the case comes from: probe.client_cert, probe.cases, demo PKI
    fix: str = ""
    topology: str = "split"  # the load balancer probed: the split frontend or the Gateway's
    scheme: str = "EXTERNAL"

    def row(self) -> dict[str, Any]:
        return asdict(self)


def results_file(params: Params, topology: lbnames.Topology | None = None) -> Path:
    """Where the last probes of one environment are kept, so 60_logs finds them whether the runbook
    ran headless or step by step in JupyterLab. A Gateway's probes are kept apart from the split
    frontend's, which one params file may also name (a migration)."""
    # Two sandboxes may hold the same project and stack names: their state directories tell them apart.
    key = f"{params.state_dir}|{params.frontend.forwarding_rule}"
    if lbnames.topology_of(params, topology) == "gateway":
        key += f"|gateway {lbnames.gateway_where(params)}"
    where = hashlib.sha256(key.encode()).hexdigest()[:8]
    return paths.repo_root() / "runs" / "probes" / f"{params.project}-{params.stack}-{where}.json"


def save_results(params: Params, results: list[ProbeResult]) -> Path:
    """Kept under the topology the probes went to (a migration probes both frontends of one params file)."""
    path = results_file(params, _topology_of(results))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([r.row() for r in results], indent=2))
    return path


def _topology_of(results: list[ProbeResult]) -> lbnames.Topology | None:
    topologies = {r.topology for r in results}
    return "gateway" if topologies == {"gateway"} else ("split" if topologies == {"split"} else None)


def load_results(params: Params, topology: lbnames.Topology | None = None) -> list[ProbeResult]:
    """The probes 50_verify sent last; empty when it has not run for this environment."""
    path = results_file(params, topology)
    if not path.is_file():
        return []
    return [ProbeResult(**row) for row in json.loads(path.read_text())]


# ---- cases ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One client certificate to present (or none), and what the load balancer should make of it."""

    name: str
    expected: str  # "ok" or a client_cert_* statusDetails
    cert: str | None = None
    key: str | None = None
    chain: tuple[str, ...] = ()  # issuer files sent after the leaf, in TLS order
    source: str = ""


def probe_cases(params: Params) -> list[Case]:
    """The configured probe certificate, no certificate at all, the params' own cases, and the demo PKI's."""
    p = params.probe
    cases = []
    if p.client_cert and p.client_key:
        cases.append(Case(PROBE_CERTIFICATE, "ok", p.client_cert, p.client_key, source="probe.client_cert"))
    cases.append(Case(NO_CERTIFICATE, NOT_PROVIDED, source="(none sent)"))
    cases += [Case(c.name, c.expect, c.cert, c.key, source="probe.cases") for c in p.cases]
    return cases + demo_cases(params)


def demo_cases(params: Params) -> list[Case]:
    """Every demo PKI certificate, when its expectations can hold: only a trust config built from the
    demo PKI (its root among the trust anchors) judges them as documented in `certs.demo_pki_specs`.
    Against any other trust config they would all be 'untrusted', which tells nothing.

    A Gateway carries one CA bundle (anchors and intermediates together) and no allowlist: a leaf
    meant for the allowlist is refused there, and an intermediate in the bundle is trusted like an
    anchor, so a leaf sent without it still validates."""
    pki = certs.DemoPki.in_state_dir(params.state_dir)
    if not params.probe.demo_cases or pki.manifest() is None:
        return []
    anchors = _resolved(params.mtls.trust_anchors)
    if pki.trust_anchor.resolve() not in anchors:
        return []
    meant_for_allowlist = pki.meant_for_allowlist()
    gateway = params.topology == "gateway"
    allowlisted = set() if gateway else _resolved(params.mtls.allowlisted)
    trusted = _resolved(params.mtls.intermediates) | (anchors if gateway else set())
    intermediate_trusted = pki.intermediate.resolve() in trusted
    out = []
    for spec in pki.cases():
        leaf = pki.cert(spec.name).resolve()
        expected = spec.expected
        if leaf in allowlisted:
            expected = "ok"
        elif spec.name in meant_for_allowlist:
            expected = VALIDATION_FAILED  # self-signed, and not allowlisted by these params
        elif expected == "ok" and not spec.chain and not intermediate_trusted:
            expected = VALIDATION_FAILED  # its issuer is neither sent nor in the trust config
        chain = tuple(str(p) for p in pki.chain(spec))
        out.append(Case(f"demo/{spec.name}", expected, str(leaf), str(pki.key(spec.name)), chain, "demo PKI"))
    return out


def _resolved(files: list[str]) -> set[Path]:
    return {Path(f).resolve() for f in files}


def expected_status_details(expected: str, mode: str) -> str:
    """What the log entry should say: the error string for a connection REJECT_INVALID closes, else
    the normal statusDetails of a request the backend answered (ALLOW mode forwards invalid ones)."""
    return expected if expected != "ok" and mode == REJECT else FORWARDED


def expectation_text(expected: str, mode: str) -> str:
    if expected == "ok":
        return "accepted, chain verified"
    if mode == REJECT:
        return f"refused: {expected}"
    return f"forwarded, error {expected}"


# ---- the frontend as a client finds it ------------------------------------------------------------------


@dataclass
class Handshake:
    """One TLS handshake with the frontend, for one domain: what the server presented, or why not."""

    domain: str
    ended: str  # ok | untrusted | closed | refused | timeout | error
    error: str = ""
    protocol: str = ""
    subject: str = ""
    issuer: str = ""
    not_after: dt.datetime | None = None

    @property
    def server_answered(self) -> bool:
        """The server got as far as presenting a certificate (trusted or not)."""
        return self.ended in ("ok", "untrusted")

    def days_left(self, now: dt.datetime | None = None) -> float | None:
        if self.not_after is None:
            return None
        return (self.not_after - (now or dt.datetime.now(dt.UTC))).total_seconds() / 86400


@dataclass
class Frontend:
    """Where clients reach the frontend (the forwarding rule's IP, the domains, the port), the managed
    certificate's status, and one handshake per domain."""

    forwarding_rule: str
    ip: str
    port: int
    domains: list[str]
    server_ca_file: str | None
    certificate: str
    certificate_status: str
    validation_mode: str
    timeout: float
    probe_cert: str | None = None
    probe_key: str | None = None
    handshakes: list[Handshake] = field(default_factory=list)
    # The load balancer's resources as resolved for this step; None: the split frontend's, by the params.
    names: LoadBalancerNames | None = None

    @property
    def topology(self) -> str:
        return self.names.topology if self.names else "split"

    @property
    def scheme(self) -> str:
        return self.names.scheme if self.names else "EXTERNAL"

    @property
    def answering(self) -> bool:
        return any(h.server_answered for h in self.handshakes)

    def rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = [
            *(
                [{"item": "Gateway", "value": f"{self.names.gateway} ({self.scheme})"}]
                if self.names and self.names.gateway
                else []
            ),
            {"item": "forwarding rule", "value": f"{self.forwarding_rule} ({self.ip}:{self.port})"},
            {"item": "certificate", "value": f"{self.certificate}: {self.certificate_status}"},
            {"item": "server trust", "value": self.server_ca_file or "system trust store"},
            {"item": "validation mode (params)", "value": self.validation_mode},
        ]
        for h in self.handshakes:
            if h.ended == "ok":
                left = h.days_left()
                value = (
                    f"{h.protocol}; {h.subject} issued by {h.issuer}; valid until "
                    f"{h.not_after:%Y-%m-%d} ({left:.0f} days)"
                )
            else:
                value = f"{h.ended}: {h.error}"
            rows.append({"item": f"handshake {h.domain}", "value": value})
        return rows


def locate_frontend(clients: Clients, params: Params, names: LoadBalancerNames | None = None) -> Frontend:
    """The frontend as Compute describes it, and one handshake per domain to see what it serves.
    `names` is the load balancer resolved for the step (default: resolved here, from the params'
    topology: the split frontend by name, or the one the Gateway's controller built)."""
    f = params.frontend
    names = names or lbnames.load_balancer_names(clients, params)
    fr = frontend.KINDS["ForwardingRule"].get(clients, names.forwarding_rule)
    if fr is None:
        built_by = (
            f"Gateway {names.gateway}'s controller ({lbnames.kubectl_describe_gateway(params)})"
            if names.gateway
            else "notebook 40_frontend with apply=True first"
        )
        raise PrerequisiteMissing(f"forwarding rule {names.forwarding_rule} does not exist: run {built_by}")
    target = Frontend(
        forwarding_rule=fr.name,
        ip=fr.I_p_address,
        port=clients.https_port,
        domains=list(f.domains),
        server_ca_file=clients.server_ca_file,
        certificate=", ".join(names.certificates) or names.certificate_map or f.certificate,
        certificate_status="served (70_drift checks its status)",
        validation_mode=params.mtls.validation_mode,
        timeout=params.probe.timeout_seconds,
        probe_cert=params.probe.client_cert,
        probe_key=params.probe.client_key,
        names=names,
    )
    target.handshakes = [server_handshake(target, d) for d in target.domains]
    if not target.answering:  # only then is the certificate's status the likely reason, worth a call
        target.certificate_status = frontend.certificate_status(clients, params)
    return target


def server_handshake(target: Frontend, domain: str) -> Handshake:
    """A handshake as a strict client makes it (default OpenSSL security level, name checked), with
    the probe certificate when one is configured: a frontend in REJECT_INVALID may refuse a client
    without one, and a handshake alone sends no request, so it leaves no log entry."""
    ctx = ssl.create_default_context(cafile=target.server_ca_file)
    if target.probe_cert and target.probe_key:
        with contextlib.suppress(ssl.SSLError, OSError):
            ctx.load_cert_chain(target.probe_cert, target.probe_key, password=_no_password)
    try:
        with _tls(target, domain, ctx) as tls:
            der = tls.getpeercert(binary_form=True)
            protocol = tls.version() or ""
    except (OSError, ssl.SSLError) as err:
        ended, why = classify(err, target.timeout)
        return Handshake(domain, ended, why)
    cert = x509.load_der_x509_certificate(der or b"")
    return Handshake(
        domain,
        "ok",
        protocol=protocol,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_after=cert.not_valid_after_utc,
    )


@contextlib.contextmanager
def _tls(target: Frontend, domain: str, ctx: ssl.SSLContext) -> Iterator[ssl.SSLSocket]:
    """Connect to the forwarding rule's IP and complete a handshake naming `domain` (SNI and the
    certificate's name check), within the probe timeout."""
    sock = socket.create_connection((target.ip, target.port), timeout=target.timeout)
    try:
        tls = ctx.wrap_socket(sock, server_hostname=domain)
    except BaseException:
        sock.close()
        raise
    try:
        yield tls
    finally:
        tls.close()


def _no_password(*_: Any) -> bytes:
    """An encrypted key fails to load instead of OpenSSL prompting on a terminal nobody watches."""
    return b""


def classify(err: BaseException, timeout: float) -> tuple[str, str]:
    """(how the connection ended, why) for an exception of socket, ssl or http.client."""
    if isinstance(err, ssl.SSLCertVerificationError):
        return "untrusted", f"server certificate not accepted: {err.verify_message}"
    if isinstance(err, ConnectionRefusedError):
        return "refused", "connection refused: nothing listens there"
    if isinstance(err, TimeoutError):
        return "timeout", f"no answer within {timeout:g}s"
    if isinstance(err, ssl.SSLError) and "ALERT" in (err.reason or ""):
        return "closed", f"TLS alert from the server: {err.reason.lower()}"
    if isinstance(
        err,
        ssl.SSLEOFError
        | ssl.SSLZeroReturnError
        | ConnectionResetError
        | BrokenPipeError
        | ConnectionAbortedError
        | http.client.RemoteDisconnected,
    ):
        return "closed", CLOSED_QUIETLY
    if isinstance(err, ssl.SSLError):
        return "error", f"TLS error: {err.reason or err}"
    return "error", f"{type(err).__name__}: {err}"


# ---- probes ---------------------------------------------------------------------------------------------


@dataclass
class Attempt:
    """What one request got, before it is judged."""

    ended: str  # http | closed | untrusted | refused | timeout | error | not sent
    outcome: str
    http_status: int | None = None
    backend: dict[str, str] | None = None  # headers the backend echoed (lowercase names), None if it does not
    backend_path: str = ""


def send_probes(clients: Clients, params: Params, target: Frontend | None) -> list[ProbeResult]:
    """One request per case, one after the other (the log step matches refused connections by time,
    so probes must not overlap). Nothing is sent to a frontend that does not complete a handshake:
    every refusal would look like the expected one."""
    if target is None or not target.answering:
        return []
    names = mtls_header_names(params)
    with tempfile.TemporaryDirectory(prefix="mtlskit-probe-") as work:
        return [probe(target, case, names, Path(work)) for case in probe_cases(params)]


def probe(target: Frontend, case: Case, names: dict[str, str], work: Path) -> ProbeResult:
    """Send one case and judge what happened against what the validation mode says should."""
    probe_id = uuid.uuid4().hex
    domain = target.domains[0]
    sent_at = _now()
    attempt = _request(target, case, domain, probe_id, work)
    finished_at = _now()
    mode = target.validation_mode
    verdict, detail, fix = judge(case, mode, attempt, names, target.names)
    shown = {
        name: attempt.backend[name.lower()]
        for name in [*names.values(), PROBE_HEADER, FORWARDED_FOR]
        if attempt.backend is not None and name.lower() in attempt.backend
    }
    return ProbeResult(
        probe_id=probe_id,
        case=case.name,
        expected=case.expected,
        expected_status_details=expected_status_details(case.expected, mode),
        outcome=attempt.outcome,
        http_status=attempt.http_status,
        verdict=verdict,
        sent_at=sent_at,
        finished_at=finished_at,
        detail=detail,
        backend_headers=shown,
        backend_path=attempt.backend_path,
        validation_mode=mode,
        forwarding_rule=target.forwarding_rule,
        domain=domain,
        source=case.source,
        fix=fix,
        topology=target.topology,
        scheme=target.scheme,
    )


def client_context(target: Frontend, cert: str | None, key: str | None) -> ssl.SSLContext:
    """The server is verified against the frontend's trust (the system store on Google Cloud). The
    security level is lowered so OpenSSL lets the probe present the deliberately weak certificates
    (RSA-1024, SHA-1) whose refusal by the load balancer is the point of the case."""
    ctx = ssl.create_default_context(cafile=target.server_ca_file)
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    if cert:
        ctx.load_cert_chain(cert, key, password=_no_password)
    return ctx


def _certificate_file(case: Case, work: Path) -> str | None:
    """The leaf followed by the issuers it sends, as one file (OpenSSL loads a chain from one file)."""
    if not case.cert or not case.chain:
        return case.cert
    bundle = work / f"{case.name.replace('/', '_')}-bundle.pem"
    bundle.write_text("".join(Path(p).read_text() for p in (case.cert, *case.chain)))
    return str(bundle)


def _request(target: Frontend, case: Case, domain: str, probe_id: str, work: Path) -> Attempt:
    try:
        ctx = client_context(target, _certificate_file(case, work), case.key)
    except (ssl.SSLError, OSError) as err:
        return Attempt("not sent", f"client certificate not loaded: {getattr(err, 'reason', None) or err}")
    phase = "during the TLS handshake"
    try:
        with _tls(target, domain, ctx) as tls:
            phase = "after the TLS handshake, no HTTP response"
            conn = http.client.HTTPSConnection(domain, target.port, timeout=target.timeout, context=ctx)
            conn.sock = tls  # already connected to the forwarding rule's IP: `curl --resolve`
            conn.request(
                "GET", PROBE_PATH + probe_id, headers={PROBE_HEADER: probe_id, "User-Agent": USER_AGENT}
            )
            response = conn.getresponse()
            body = response.read(MAX_BODY)
    except (OSError, ssl.SSLError, http.client.HTTPException) as err:
        ended, why = classify(err, target.timeout)
        where = f" {phase}" if ended in ("closed", "error") else ""
        return Attempt(ended, f"{ended}{where}" + ("" if why == CLOSED_QUIETLY else f" ({why})"))
    echoed = _echoed(body)
    return Attempt(
        "http",
        f"HTTP {response.status}",
        response.status,
        None if echoed is None else echoed[0],
        "" if echoed is None else echoed[1],
    )


def _echoed(body: bytes) -> tuple[dict[str, str], str] | None:
    """(headers, path) when the backend answers as the sandbox echo app does; None for other backends."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("headers"), list):
        return None
    headers: dict[str, str] = {}
    for item in data["headers"]:
        if isinstance(item, list) and len(item) == 2:
            headers.setdefault(str(item[0]).lower(), str(item[1]))
    return headers, str(data.get("path", ""))


def mtls_header_names(params: Params) -> dict[str, str]:
    """variable -> header name, for the custom request headers that carry exactly one mTLS variable."""
    out: dict[str, str] = {}
    for header in params.mtls.custom_headers:
        name, _, value = header.partition(":")
        value = value.strip()
        if value.startswith("{") and value.endswith("}") and value.count("{") == 1:
            out.setdefault(value[1:-1], name.strip())
    return out


# What to do when a probe did not even get an answer to judge.
UNREACHED_FIX = {
    "untrusted": "the served certificate is not valid for the domain: see the server certificate checks",
    "not sent": "check the certificate and key files of this case (a key with a passphrase cannot be used)",
    "refused": "see the check 'frontend answers' and re-run once it passes",
    "timeout": "see the check 'frontend answers' and re-run once it passes",
    "error": "see the check 'frontend answers' and re-run once it passes",
}
LINT_FIX = (
    "run 00_preflight's certificate lint on this certificate; check that the trust config (30_trust) holds "
    "its root, and its intermediates unless the client sends them"
)


@dataclass(frozen=True)
class Seen:
    """The mTLS headers the backend received; None where it does not show them."""

    present: str | None
    verified: str | None
    error: str | None

    @property
    def errors(self) -> list[str]:
        return [e for e in (self.error or "").split(",") if e]

    def __str__(self) -> str:
        return f"backend saw chain verified={self.verified}, error={self.error or '(none)'}"


def judge(
    case: Case,
    mode: str,
    attempt: Attempt,
    names: dict[str, str],
    lb: LoadBalancerNames | None = None,
) -> tuple[str, str, str]:
    """(verdict, detail, fix) for one probe. The detail adds to the outcome, never repeats it. `lb` is
    the load balancer probed (default: the split frontend): a Gateway's answers and fixes differ."""
    if attempt.ended not in ("http", "closed"):
        return "fail", "", UNREACHED_FIX[attempt.ended]

    def header(variable: str) -> str | None:
        if attempt.backend is None or variable not in names:
            return None
        return attempt.backend.get(names[variable].lower())

    seen = Seen(header(PRESENT), header(VERIFIED), header(ERROR))
    gateway = lb is not None and lb.topology == "gateway"
    if case.expected == "ok":
        # A Gateway passes client-certificate headers only through the route rule's filter: an echoing
        # backend that saw none of them shows the filter is gone (70_drift names the rule).
        echoed = attempt.ended == "http" and attempt.backend is not None and (attempt.http_status or 0) < 500
        if gateway and mode == REJECT and echoed and VERIFIED in names and seen.verified is None:
            return (
                "warn",
                "accepted, but the backend received none of the mTLS headers: the HTTPRoute rule "
                "that served it has no RequestHeaderModifier filter with them",
                "see 70_drift's check 'mTLS header filter on every HTTPRoute rule' and apply the "
                "Gateway build again",
            )
        return _judge_accepted(mode, attempt, seen, lb)
    if mode == REJECT:
        return _judge_refused(case, attempt, seen, gateway)
    return _judge_forwarded(case, attempt, seen)


NO_BACKEND_FIX = {
    "split": "see 70_drift's anchor and URL map checks (a deleted anchor Ingress or a changed Service port "
    "leaves the URL map on a backend nobody syncs) and the backend service's health in 20_backend_service",
    "gateway": "see 70_drift's Gateway checks (the HTTPRoute's backendRefs to the Service and port, the "
    "policies Attached) and the health of the backend service the Gateway's controller built",
}


def no_backend_detail(status: int, lb: LoadBalancerNames | None) -> str:
    """What a 5xx to a certificate that got through says, in this load balancer's terms: the classic
    one answers 502 when no backend is healthy, the managed one (a Gateway's) 503."""
    scheme = lb.scheme if lb else "EXTERNAL"
    plane = gw.DATA_PLANE[scheme]
    if status == plane.no_healthy_backend:
        return (
            f"the certificate got through, but no healthy backend answered (HTTP {status} is what an "
            f"{scheme} load balancer answers then)"
        )
    return f"the certificate got through, but the backend or the load balancer answered HTTP {status}"


def forwarded_for_hops(value: str, plane: gw.DataPlane) -> list[str]:
    """The hops of an X-Forwarded-For value as this scheme writes them: the classic load balancer
    joins them with ", ", the managed one with "," (client IP first, then the load balancer's)."""
    return [hop.strip() for hop in value.split(plane.forwarded_for_delimiter) if hop.strip()]


def forwarded_for_note(value: str, plane: gw.DataPlane) -> str:
    """A note when the X-Forwarded-For the backend saw is joined the other scheme's way (an app
    parsing it by this scheme's delimiter would take the whole list for the client's IP)."""
    hops = forwarded_for_hops(value, plane)
    if len(hops) == 1 and "," in hops[0]:
        return (
            f"; {FORWARDED_FOR} {value!r} is not joined with {plane.forwarded_for_delimiter!r}, as this "
            "load balancer's scheme joins it: another load balancer answered, or an app parsing it will "
            "misread the client IP"
        )
    return f"; client IP seen {hops[0]}" if hops else ""


def _judge_accepted(
    mode: str, attempt: Attempt, seen: Seen, lb: LoadBalancerNames | None = None
) -> tuple[str, str, str]:
    if attempt.ended != "http":
        return "fail", "expected to be accepted", LINT_FIX
    if attempt.http_status is not None and attempt.http_status >= 500:
        topology = lb.topology if lb else "split"
        return "fail", no_backend_detail(attempt.http_status, lb), NO_BACKEND_FIX[topology]
    if seen.verified == "true":
        xff = (attempt.backend or {}).get(FORWARDED_FOR.lower())
        plane = gw.DATA_PLANE[lb.scheme if lb else "EXTERNAL"]
        return "pass", str(seen) + (forwarded_for_note(xff, plane) if xff else ""), ""
    if seen.verified is not None:
        return "fail", f"forwarded without a verified chain: {seen}", LINT_FIX
    if mode == REJECT:
        return "pass", "accepted (the backend does not show the mTLS headers)", ""
    # ALLOW mode forwards invalid certificates too: only the header tells them apart.
    return (
        "warn",
        "answered, but this backend does not show the chain-verified header, which alone tells a valid "
        "certificate from a forwarded invalid one in ALLOW mode",
        "compare with the log entry in 60_logs",
    )


ACCEPTS_INVALID_FIX = {
    False: "the load balancer accepts a certificate it should refuse: check the trust anchors, intermediates "
    "and allowlist (30_trust) and that the server TLS policy is REJECT_INVALID",
    True: "the Gateway accepts a certificate it should refuse: check that the CA ConfigMap's ca.crt holds "
    f"only the params' anchors and intermediates and that spec.tls.frontend's mode is {gw.ALLOW_VALID_ONLY} "
    "(70_drift's Gateway checks)",
}


def _judge_refused(case: Case, attempt: Attempt, seen: Seen, gateway: bool = False) -> tuple[str, str, str]:
    if attempt.ended == "closed":
        return "pass", f"the log entry should say {case.expected} (60_logs)", ""
    return "fail", f"expected a closed connection ({case.expected}); {seen}", ACCEPTS_INVALID_FIX[gateway]


def _judge_forwarded(case: Case, attempt: Attempt, seen: Seen) -> tuple[str, str, str]:
    if attempt.ended != "http":
        return (
            "fail",
            "ALLOW_INVALID_OR_MISSING_CLIENT_CERT should forward it",
            "check that the server TLS policy's mode is ALLOW_INVALID_OR_MISSING_CLIENT_CERT (30_trust)",
        )
    if seen.verified is None:
        return (
            "warn",
            f"forwarded; this backend does not show the mTLS headers, so {case.expected} is not confirmed here",
            "compare with the log entry in 60_logs",
        )
    want_present = "false" if case.expected == NOT_PROVIDED else "true"
    if seen.verified == "false" and case.expected in seen.errors and seen.present in (None, want_present):
        return "pass", str(seen), ""
    return (
        "fail",
        f"expected chain verified=false and error {case.expected}; {seen}, present={seen.present}",
        LINT_FIX,
    )


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---- tables ---------------------------------------------------------------------------------------------


RESULT_COLUMNS = ["case", "expected", "outcome", "backend received", "verdict", "detail", "probe_id"]


def results_frame(results: list[ProbeResult]) -> pd.DataFrame:
    """One row per probe: what was expected, what happened, what the backend saw, the verdict."""
    if not results:
        return pd.DataFrame([{"skipped": "no probes sent (see the checks below)"}])
    rows = []
    for r in results:
        rows.append(
            {
                "case": r.case,
                "expected": expectation_text(r.expected, r.validation_mode),
                "outcome": r.outcome,
                "backend received": _backend_summary(r),
                "verdict": r.verdict,
                "detail": r.detail,
                "probe_id": r.probe_id,
            }
        )
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def _backend_summary(r: ProbeResult) -> str:
    """The short mTLS headers (present, verified, error) and whether the probe id arrived; the leaf,
    chain and DN headers are long and stay in the saved record."""
    if not r.backend_headers and not r.backend_path:
        return "" if r.http_status is None else "(headers not echoed)"
    short = {
        k: v
        for k, v in r.backend_headers.items()
        if k.lower().endswith(("-present", "-chain-verified", "-error"))
    }
    parts = [f"{k}={v or '(empty)'}" for k, v in short.items()]
    arrived = r.backend_headers.get(PROBE_HEADER) == r.probe_id and r.backend_path.endswith(r.probe_id)
    parts.append("probe id arrived" if arrived else "probe id NOT in path/header")
    return "; ".join(parts)


def target_frame(target: Frontend | None) -> pd.DataFrame:
    if target is None:
        return pd.DataFrame([{"skipped": "prerequisite missing (see the checks below)"}])
    return pd.DataFrame(target.rows())


# ---- checks ---------------------------------------------------------------------------------------------


def server_checks(clients: Clients, params: Params, target: Frontend | None) -> list[Check]:
    """The server side: does it answer, is its certificate good for every domain and far from expiry,
    does it refuse TLS below the SSL policy's minimum."""
    if target is None:
        return []
    answering = answering_check(target)
    if answering.status != "pass":
        return [answering]  # every other check would fail for the same reason
    return [
        answering,
        *(certificate_check(target, h, params.expiry_horizon_days) for h in target.handshakes),
        old_tls_check(target, params),
    ]


def answering_check(target: Frontend) -> Check:
    name = "frontend answers"
    where = f"{target.ip}:{target.port}"
    if target.answering:
        done = [h.domain for h in target.handshakes if h.server_answered]
        return Check(name, "pass", f"TLS handshake at {where} for {', '.join(done)}")
    first = target.handshakes[0] if target.handshakes else Handshake("", "error", "no domains")
    evidence = f"no TLS handshake at {where} ({first.error}); certificate {target.certificate}: {target.certificate_status}"
    if target.certificate_status != "ACTIVE" and target.certificate_status != "SELF_MANAGED":
        fix = (
            f"wait for the managed certificate {target.certificate} to become ACTIVE (now "
            f"{target.certificate_status}): every domain's A record must point at {target.ip} (see the DNS "
            "table in 40_frontend); then re-run this notebook"
        )
    elif first.ended == "refused":
        fix = (
            f"nothing listens at {where}: run 40_frontend with apply=True and check forwarding rule "
            f"{target.forwarding_rule} targets the HTTPS proxy; a new forwarding rule takes a few minutes to serve"
        )
    elif first.ended == "timeout":
        fix = f"no answer from {where}: a new forwarding rule takes a few minutes; check nothing on the way drops the port"
    else:
        fix = "run 40_frontend with apply=True (its plan should show no change) and re-run this notebook"
    return Check(name, "fail", evidence, fix)


def certificate_check(target: Frontend, h: Handshake, horizon_days: int) -> Check:
    """Valid for the domain (name and trust checked by the handshake itself) and not about to expire."""
    name = f"server certificate {h.domain}"
    if h.ended != "ok":
        return Check(
            name,
            "fail",
            f"{h.ended}: {h.error}",
            f"the managed certificate {target.certificate} must list {h.domain}: check frontend.domains in "
            "the params and run 40_frontend with apply=True",
        )
    left = h.days_left() or 0.0
    evidence = f"{h.subject}, issued by {h.issuer}, valid until {h.not_after:%Y-%m-%d} ({left:.0f} days left)"
    if left < horizon_days:
        return Check(
            name,
            "fail",
            f"{evidence}: within expiry_horizon_days ({horizon_days})",
            "Google renews a managed certificate about 30 days before expiry, only while every domain's DNS "
            f"points at {target.ip}; check DNS and the certificate's domain status",
        )
    return Check(name, "pass", evidence)


def old_tls_check(target: Frontend, params: Params) -> Check:
    """A handshake one version below the SSL policy's minimum must fail. Says so (warn) when the local
    OpenSSL cannot offer that version at all, rather than counting its own refusal as the server's."""
    minimum = params.frontend.min_tls_version
    name = f"TLS older than {minimum[4:].replace('_', '.')} refused"
    if minimum not in BELOW_MINIMUM:
        return Check(name, "pass", "the minimum is TLS 1.0: there is no older version to refuse")
    label, version_name = BELOW_MINIMUM[minimum]
    domain = target.domains[0]
    try:
        ctx = client_context(target, target.probe_cert, target.probe_key)
    except (ssl.SSLError, OSError):
        ctx = client_context(target, None, None)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", DeprecationWarning
            )  # TLS 1.0/1.1 are deprecated: that is the point
            version = getattr(ssl.TLSVersion, version_name)
            ctx.minimum_version = ctx.maximum_version = version
    except (ValueError, ssl.SSLError) as err:
        return Check(
            name, "warn", f"the local OpenSSL ({ssl.OPENSSL_VERSION}) cannot offer {label}: {err}", ""
        )
    try:
        with _tls(target, domain, ctx) as tls:
            agreed = tls.version()
    except (OSError, ssl.SSLError) as err:
        reason = (getattr(err, "reason", "") or "").upper()
        if reason in ("NO_PROTOCOLS_AVAILABLE", "NO_CIPHERS_AVAILABLE"):
            return Check(
                name,
                "warn",
                f"the local OpenSSL ({ssl.OPENSSL_VERSION}) cannot offer {label} ({reason.lower()})",
            )
        ended, why = classify(err, target.timeout)
        if ended in ("refused", "timeout"):
            return Check(name, "fail", f"{label} attempt: {why}", "see the check 'frontend answers'")
        return Check(name, "pass", f"{label} handshake for {domain} refused ({why})")
    return Check(
        name,
        "fail",
        f"a {label} handshake for {domain} succeeded ({agreed}) although the SSL policy's minimum is {minimum}",
        f"check SSL policy {params.frontend.ssl_policy} (min_tls_version {minimum}) and that the target "
        f"proxy uses it: run 40_frontend with apply=True",
    )


def probe_checks(results: list[ProbeResult]) -> list[Check]:
    """One check per probe, with the probe's own verdict, so summary.json lists every case."""
    return [
        Check(
            f"probe {r.case}",
            r.verdict if r.verdict in ("pass", "warn") else "fail",
            f"{r.outcome}; {r.detail}" if r.detail else r.outcome,
            r.fix,
        )
        for r in results
    ]
