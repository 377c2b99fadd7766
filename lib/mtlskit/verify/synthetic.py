"""Synthetic request-log entries of a global external Application Load Balancer with mTLS, for tests,
training and benchmarks of log analysis at volumes no sandbox run produces.

The shape is the one the sandbox data plane writes (itself the documented `http_load_balancer`
record: resource labels, `httpRequest`, `jsonPayload.statusDetails`, TLS and the Envoy-style `mtls`
object), so an analysis that reads one reads the other. The mix is what a public mTLS endpoint
sees: mostly requests the backend answered, a steady share of clients without a certificate
(scanners), fewer of the other documented `client_cert_*` refusals, and a few requests the load
balancer answered itself.

A `Population` replaces the default mix with named groups of clients, for the day-2 change reports:
clients of the CA a rotation moves away from and of the one it moves to, clients without a
certificate and clients of a foreign CA, each with its issuer and subject DN, fingerprint, serial
and source IP, refused or forwarded as the live mode would. An impact report over a million of
them shows who a change would refuse, at the scale of a busy day.

Entries are rendered from string templates, not `json.dumps`: ten million of them are written in
well under a minute and streamed, so the size of a file never becomes the size of memory. Every
value is drawn from fixed ASCII pools (DNs as Base64), so the templates need no escaping.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import itertools
import json
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

from cryptography import x509
from cryptography.x509.oid import NameOID

from mtlskit.rules import dn
from mtlskit.rules.logentry import (
    BACKEND_TIMEOUT,
    DOCUMENTED_OUTCOMES,
    FORWARDED,
    NO_BACKEND,
    NOT_PROVIDED,
    PAYLOAD_TYPE,
    RESOURCE_TYPE,
    VALIDATION_FAILED,
    fingerprint_value,
    serial_value,
)

T = TypeVar("T")
CHUNK = 10_000  # entries per write: big enough to amortise the call, small enough to stay flat in memory


# Answered by the load balancer itself: documented statusDetails with the status it sends.
LB_ANSWERS = (
    (NO_BACKEND, 502),  # the classic load balancer; EXTERNAL_MANAGED answers 503 (rules.gateway)
    (BACKEND_TIMEOUT, 502),
)


def default_mix() -> dict[str, float]:
    """Shares of statusDetails: 93 % forwarded, 5 % without a certificate, 1.5 % split over the
    other documented refusals (validation failures most, exotic key problems least), 0.5 % answered
    by the load balancer."""
    others = [o for o in DOCUMENTED_OUTCOMES if o != NOT_PROVIDED]
    weights = {o: 1.0 for o in others}
    weights[VALIDATION_FAILED] = 6.0
    weights["client_cert_chain_invalid_eku"] = 3.0
    total = sum(weights.values())
    mix = {FORWARDED: 0.93, NOT_PROVIDED: 0.05}
    mix.update({o: 0.015 * w / total for o, w in weights.items()})
    mix.update({d: 0.005 / len(LB_ANSWERS) for d, _ in LB_ANSWERS})
    return mix


# The kinds of client a population holds: what a client-CA rotation and an enforcement flip are about.
OLD_CA = "old-ca"
NEW_CA = "new-ca"
NO_CERTIFICATE = "no-certificate"
FOREIGN = "foreign"
KINDS = (OLD_CA, NEW_CA, NO_CERTIFICATE, FOREIGN)
REJECT = "REJECT_INVALID"
ALLOW = "ALLOW_INVALID_OR_MISSING_CLIENT_CERT"


@dataclass(frozen=True)
class ClientGroup:
    """Clients of one kind: how many, their share of the requests, the issuer they present (as logged:
    `rules.dn.field` of the issuer's subject) and whether the live trust config verifies them."""

    kind: str
    clients: int
    share: float
    issuer_dn: str = ""
    verified: bool = True
    error: str = ""  # the client_cert_* error of a client the live trust config does not verify

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"client group kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.clients < 1 or not 0 < self.share <= 1:
            raise ValueError(f"client group {self.kind}: clients must be >= 1 and share in (0, 1]")
        if self.kind == NO_CERTIFICATE and (self.verified or self.error != NOT_PROVIDED):
            raise ValueError(f"client group {NO_CERTIFICATE}: verified=False, error={NOT_PROVIDED!r}")
        if not self.verified and not self.error.startswith("client_cert_"):
            raise ValueError(f"client group {self.kind}: an unverified group names its client_cert_* error")


@dataclass(frozen=True)
class Population:
    """Who sends the requests, group by group, and the live validation mode: REJECT_INVALID closes
    an unverified client's connection (status 0, its error as statusDetails); ALLOW forwards it with
    the error in `jsonPayload.mtls`."""

    groups: tuple[ClientGroup, ...]
    mode: str = REJECT

    def __post_init__(self) -> None:
        if not self.groups or self.mode not in (REJECT, ALLOW):
            raise ValueError(f"a population needs groups and a mode of {REJECT} or {ALLOW}")


def rotation_population(
    old_issuer_dn: str,
    new_issuer_dn: str,
    foreign_issuer_dn: str,
    *,
    clients: int = 2000,
    shares: tuple[float, float, float, float] = (0.80, 0.15, 0.03, 0.02),
    new_trusted: bool = False,
    mode: str = REJECT,
) -> Population:
    """A client population in the middle of a client-CA rotation: most clients still on the old CA,
    some on the new one (verified once the new CA is trusted), a few without a certificate and a few
    from a CA nobody trusts. `shares` are (old, new, none, foreign) of the requests; clients are
    split in the same proportions."""
    failed = "client_cert_validation_failed"
    kinds = (
        (OLD_CA, old_issuer_dn, True, ""),
        (NEW_CA, new_issuer_dn, new_trusted, "" if new_trusted else failed),
        (NO_CERTIFICATE, "", False, NOT_PROVIDED),
        (FOREIGN, foreign_issuer_dn, False, failed),
    )
    groups = tuple(
        ClientGroup(kind, max(1, round(clients * share)), share, issuer, verified, error)
        for (kind, issuer, verified, error), share in zip(kinds, shares, strict=True)
        if share > 0
    )
    return Population(groups, mode)


@dataclass(frozen=True)
class Shape:
    """Where the entries claim to come from, and how they are spread."""

    project: str = "mtlskit-sandbox"
    forwarding_rule: str = "mtls-fr"
    target_proxy: str = "mtls-proxy"
    url_map: str = "mtls-um"
    backend_service: str = "k8s1-0a1b2c3d-default-web-8080-4e5f6a7b"
    host: str = "api.mtlskit.test"
    server_ip: str = "127.1.0.2"
    start: dt.datetime = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    window: dt.timedelta = dt.timedelta(hours=24)
    mtls_object: bool = True  # the sandbox writes jsonPayload.mtls; the documented global format has none
    mix: dict[str, float] = field(default_factory=default_mix)
    clients: int = 400  # distinct client certificates (the refused ones repeat, as real offenders do)
    population: Population | None = None  # named client groups instead of the default mix


PATHS = ("/", "/api/orders", "/api/orders/42", "/api/customers", "/healthz", "/static/app.js")
METHODS = ("GET", "GET", "GET", "POST", "PUT")
AGENTS = ("curl/8.7.1", "python-requests/2.32.3", "Go-http-client/2.0", "okhttp/4.12.0", "Wget/1.21.4")
STATUSES = (200, 200, 200, 200, 201, 204, 304, 404)
TLS = (
    ("TLSv1.3", "TLS_AES_128_GCM_SHA256"),
    ("TLSv1.3", "TLS_AES_256_GCM_SHA384"),
    ("TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256"),
)


@dataclass(frozen=True)
class _Cert:
    fingerprint: str
    serial: str
    not_before: str
    not_after: str


def _certs(n: int, rng: random.Random) -> list[_Cert]:
    out = []
    for i in range(n):
        digest = hashlib.sha256(f"client-{i}-{rng.random()}".encode()).digest()
        serial = ":".join(f"{b:02X}" for b in digest[:8])
        out.append(
            _Cert(
                base64.b64encode(digest).decode().rstrip("="),
                serial,
                *VALIDITY,
            )
        )
    return out


# The templates, in the field order the sandbox writes. %-style, so JSON's braces need no doubling.
HEAD = (
    '{"logName":"projects/%s/logs/requests","resource":{"type":"' + RESOURCE_TYPE + '","labels":'
    '{"project_id":"%s","zone":"global","forwarding_rule_name":"%s","target_proxy_name":"%s",'
    '"url_map_name":"%s","backend_service_name":"%s"}},'
)
MTLS = (
    ',"mtls":{"clientCertPresent":%s,"clientCertChainVerified":%s,"clientCertError":"%s",'
    '"clientCertSha256Fingerprint":"%s","clientCertSerialNumber":"%s",'
    '"clientCertValidStartTime":"%s","clientCertValidEndTime":"%s"}'
)
MTLS_DN = ',"clientCertIssuerDn":"%s","clientCertSubjectDn":"%s"'
VALIDITY = ("2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z")
HTTP_ANSWERED = (
    '"httpRequest":{"requestMethod":"%s","requestUrl":"https://%s%s","requestSize":"%d",'
    '"status":%d,"responseSize":"%d","userAgent":"%s","remoteIp":"%s","serverIp":"%s",'
    '"latency":"%.6fs"},'
)
HTTP_CLOSED = (
    '"httpRequest":{"status":0,"remoteIp":"%s","latency":"%.6fs"},'  # no serverIp: no backend answered
)
TAIL = (
    '"jsonPayload":{"@type":"%s","statusDetails":"%s","remoteIp":"%s",'
    '"tls":{"protocol":"%s","cipher":"%s","earlyDataRequest":false}%s},'
    '"severity":"INFO","timestamp":"%s","receiveTimestamp":"%s","insertId":"%s"}'
)


def _head(shape: Shape, bs_name: str) -> str:
    labels = (shape.project, shape.forwarding_rule, shape.target_proxy, shape.url_map, bs_name)
    return HEAD % (shape.project, *labels)


def _mtls(
    present: bool, verified: bool, error: str, cert: _Cert | None, dns: tuple[str, str] | None = None
) -> str:
    fp, serial, nb, na = (
        (cert.fingerprint, cert.serial, cert.not_before, cert.not_after) if cert else ("",) * 4
    )
    flags = ("true" if present else "false", "true" if verified else "false")
    rendered = MTLS % (*flags, error, fp, serial, nb, na)
    return rendered[:-1] + MTLS_DN % dns + "}" if dns is not None else rendered


def _pick(pool: Sequence[T], r: Callable[[], float]) -> T:
    """`random.choice` without its bookkeeping: the generator's hot path calls this ten times an entry."""
    return pool[int(r() * len(pool))]


class _Clock:
    """RFC 3339 times with microseconds; the date part is formatted once per second, not per entry."""

    def __init__(self) -> None:
        self.second = -1
        self.prefix = ""

    def __call__(self, micros: int) -> str:
        second, frac = divmod(micros, 1_000_000)
        if second != self.second:
            self.second = second
            self.prefix = dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self.prefix}.{frac:06d}Z"


class _Render:
    """What every entry has whoever sent it: its time, spread evenly over the window, the TLS
    parameters, an insert id, and the HTTP part of a request the backend answered or of a
    connection the load balancer closed."""

    def __init__(self, n: int, shape: Shape, rng: random.Random) -> None:
        self.shape, self.rng, self.r = shape, rng, rng.random
        self.start_us = int(shape.start.timestamp() * 1_000_000)
        self.step = shape.window.total_seconds() * 1_000_000 / max(n, 1)
        self.clock, self.receive_clock = _Clock(), _Clock()
        self.head_backend, self.head_closed = _head(shape, shape.backend_service), _head(shape, "")

    def answered(self, ip: str, status: int) -> str:
        r, shape = self.r, self.shape
        method = _pick(METHODS, r)
        path = _pick(PATHS, r)
        return HTTP_ANSWERED % (
            method,
            shape.host,
            path,
            int(r() * 2048) if method != "GET" else 0,
            status,
            50 + int(r() * 49_950),
            _pick(AGENTS, r),
            ip,
            shape.server_ip,
            r() * 0.2,
        )

    def closed(self, ip: str) -> str:
        return HTTP_CLOSED % (ip, self.r() * 0.01)

    def entry(self, i: int, head: str, http: str, details: str, ip: str, mtls: str) -> str:
        r = self.r
        when = self.start_us + int(i * self.step + r() * self.step)
        stamp = self.clock(when)
        received = self.receive_clock(when + 400_000 + int(r() * 1_000_000))  # ingestion lags the request
        protocol, cipher = _pick(TLS, r)
        insert_id = f"{self.rng.getrandbits(56):014x}"
        tail = TAIL % (PAYLOAD_TYPE, details, ip, protocol, cipher, mtls, stamp, received, insert_id)
        return head + http + tail


def lines(n: int, seed: int = 0, shape: Shape | None = None) -> Iterator[str]:
    """`n` entries as JSON text, oldest first, reproducible for a seed: the default mix, or the
    shape's client population."""
    shape = shape or Shape()
    if shape.population is not None:
        return _population_lines(n, seed, shape, shape.population)
    return _mix_lines(n, seed, shape)


# The default mix's DNs: every certificate from one demo issuer, as the sandbox logs DNs (a population
# names its own issuers and subjects).
MIX_DNS = (
    dn.field(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mtlskit demo intermediate")])),
    dn.field(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client.example")])),
)


def _mix_lines(n: int, seed: int, shape: Shape) -> Iterator[str]:
    rng = random.Random(seed)
    details_pool = list(shape.mix)
    cum, acc = [], 0.0
    for d in details_pool:
        acc += shape.mix[d]
        cum.append(acc)
    certs = _certs(shape.clients, rng)
    offenders = certs[: max(1, len(certs) // 20)]  # a few certificates cause most refusals
    ips = [f"198.51.{i // 250}.{i % 250 + 1}" for i in range(2000)]
    scanners = [f"203.0.113.{i}" for i in range(1, 60)]
    lb_status = dict(LB_ANSWERS)
    render = _Render(n, shape, rng)
    r = rng.random
    for i in range(n):
        details = rng.choices(details_pool, cum_weights=cum)[0]
        if details == FORWARDED or details in lb_status:
            ip = _pick(ips, r)
            cert = _pick(certs, r)
            status = _pick(STATUSES, r) if details == FORWARDED else lb_status[details]
            http, head = render.answered(ip, status), render.head_backend
            mtls = _mtls(True, True, "", cert, MIX_DNS) if shape.mtls_object else ""
        else:
            present = details != NOT_PROVIDED
            ip = _pick(scanners, r) if not present else _pick(ips, r)
            cert = _pick(offenders, r) if present else None
            http, head = render.closed(ip), render.head_closed
            dns = MIX_DNS if present else ("", "")
            mtls = _mtls(present, False, details, cert, dns) if shape.mtls_object else ""
        yield render.entry(i, head, http, details, ip, mtls)


@dataclass(frozen=True)
class Member:
    """One client of a population: where it connects from and the certificate it presents (none for
    a client without one), with the `jsonPayload.mtls` object its entries carry, rendered once."""

    kind: str
    ip: str
    fingerprint: str  # unpadded Base64 of the SHA-256, as logged; empty without a certificate
    serial: str
    subject_dn: str
    issuer_dn: str
    verified: bool
    error: str
    mtls: str


def members(population: Population, seed: int = 0) -> list[list[Member]]:
    """Every client of every group, in group order; the same for a seed, so a test can name the
    clients a report should find."""
    out = []
    for g, group in enumerate(population.groups):
        listed = []
        for i in range(group.clients):
            ip = f"10.{g + 1}.{i // 250}.{i % 250 + 1}"
            if group.kind == NO_CERTIFICATE:
                mtls = _mtls(False, False, NOT_PROVIDED, None, ("", ""))
                listed.append(Member(group.kind, ip, "", "", "", "", False, NOT_PROVIDED, mtls))
                continue
            digest = hashlib.sha256(f"{group.kind}-{i}-{seed}".encode()).digest()
            serial = serial_value(int.from_bytes(digest[:16], "big") >> 1)  # a positive 127-bit serial
            cert = _Cert(fingerprint_value(digest), serial, *VALIDITY)
            subject = dn.field(
                x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{group.kind}-{i:05d}.example")])
            )
            mtls = _mtls(True, group.verified, group.error, cert, (group.issuer_dn, subject))
            listed.append(
                Member(
                    group.kind,
                    ip,
                    cert.fingerprint,
                    serial,
                    subject,
                    group.issuer_dn,
                    group.verified,
                    group.error,
                    mtls,
                )
            )
        out.append(listed)
    return out


def _population_lines(n: int, seed: int, shape: Shape, population: Population) -> Iterator[str]:
    """Entries of the population's clients: a group drawn by its share, a client within it skewed
    towards the first ones (a few clients send most requests, as in real traffic)."""
    rng = random.Random(seed)
    groups = members(population, seed)
    cum = list(itertools.accumulate(g.share for g in population.groups))
    indexes = list(range(len(groups)))
    allow = population.mode == ALLOW
    render = _Render(n, shape, rng)
    r = rng.random
    for i in range(n):
        group = groups[rng.choices(indexes, cum_weights=cum)[0]]
        client = group[int(r() * r() * len(group))]
        if client.verified or allow:
            http, head, details = (
                render.answered(client.ip, _pick(STATUSES, r)),
                render.head_backend,
                FORWARDED,
            )
        else:
            http, head, details = render.closed(client.ip), render.head_closed, client.error
        yield render.entry(i, head, http, details, client.ip, client.mtls if shape.mtls_object else "")


def entries(n: int, seed: int = 0, shape: Shape | None = None) -> list[dict[str, Any]]:
    """`n` entries as API-shaped dicts (what `entries:list` and an export hold), for small tests."""
    return [json.loads(line) for line in lines(n, seed, shape)]


def write(path: str | Path, n: int, seed: int = 0, shape: Shape | None = None, array: bool = False) -> Path:
    """Write `n` entries: newline-delimited JSON (what a Cloud Storage sink writes), or one JSON array
    (what `gcloud logging read --format=json` prints). Streamed in chunks; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as out:
        _stream(out, lines(n, seed, shape), array)
    return path


def _stream(out: TextIO, rendered: Iterator[str], array: bool) -> None:
    sep = ",\n" if array else "\n"
    if array:
        out.write("[\n")
    chunk: list[str] = []
    first = True
    for line in rendered:
        chunk.append(line)
        if len(chunk) == CHUNK:
            out.write(("" if first else sep) + sep.join(chunk))
            first, chunk = False, []
    if chunk:
        out.write(("" if first else sep) + sep.join(chunk))
        first = False
    out.write("\n]\n" if array else ("" if first else "\n"))
