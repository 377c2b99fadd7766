"""Synthetic request-log entries of a global external Application Load Balancer with mTLS, for tests,
training and benchmarks of log analysis at volumes no sandbox run produces.

The shape is the one the sandbox data plane writes (itself the documented `http_load_balancer`
record: resource labels, `httpRequest`, `jsonPayload.statusDetails`, TLS and the Envoy-style `mtls`
object), so an analysis that reads one reads the other. The mix is what a public mTLS endpoint
sees: mostly requests the backend answered, a steady share of clients without a certificate
(scanners), fewer of the other documented `client_cert_*` refusals, and a few requests the load
balancer answered itself.

Entries are rendered from string templates, not `json.dumps`: ten million of them are written in
well under a minute and streamed, so the size of a file never becomes the size of memory. Every
value is drawn from fixed ASCII pools, so the templates need no escaping.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

from mtlskit.rules.logentry import (
    BACKEND_TIMEOUT,
    DOCUMENTED_OUTCOMES,
    FORWARDED,
    NO_BACKEND,
    NOT_PROVIDED,
    PAYLOAD_TYPE,
    RESOURCE_TYPE,
    VALIDATION_FAILED,
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
                "2026-01-01T00:00:00Z",
                "2027-01-01T00:00:00Z",
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


def _mtls(present: bool, verified: bool, error: str, cert: _Cert | None) -> str:
    fp, serial, nb, na = (
        (cert.fingerprint, cert.serial, cert.not_before, cert.not_after) if cert else ("",) * 4
    )
    flags = ("true" if present else "false", "true" if verified else "false")
    return MTLS % (*flags, error, fp, serial, nb, na)


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


def lines(n: int, seed: int = 0, shape: Shape | None = None) -> Iterator[str]:
    """`n` entries as JSON text, oldest first, reproducible for a seed."""
    shape = shape or Shape()
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
    head_backend, head_closed = _head(shape, shape.backend_service), _head(shape, "")
    start_us = int(shape.start.timestamp() * 1_000_000)
    step = shape.window.total_seconds() * 1_000_000 / max(n, 1)
    clock, receive_clock = _Clock(), _Clock()
    r = rng.random
    for i in range(n):
        when = start_us + int(i * step + r() * step)
        stamp = clock(when)
        received = receive_clock(when + 400_000 + int(r() * 1_000_000))  # ingestion lags the request
        details = rng.choices(details_pool, cum_weights=cum)[0]
        protocol, cipher = _pick(TLS, r)
        insert_id = f"{rng.getrandbits(56):014x}"
        if details == FORWARDED or details in lb_status:
            ip = _pick(ips, r)
            cert = _pick(certs, r)
            status = _pick(STATUSES, r) if details == FORWARDED else lb_status[details]
            method = _pick(METHODS, r)
            path = _pick(PATHS, r)
            http = HTTP_ANSWERED % (
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
            head = head_backend
            mtls = _mtls(True, True, "", cert) if shape.mtls_object else ""
        else:
            present = details != NOT_PROVIDED
            ip = _pick(scanners, r) if not present else _pick(ips, r)
            cert = _pick(offenders, r) if present else None
            http = HTTP_CLOSED % (ip, r() * 0.01)
            head = head_closed
            mtls = _mtls(present, False, details, cert) if shape.mtls_object else ""
        tail = TAIL % (PAYLOAD_TYPE, details, ip, protocol, cipher, mtls, stamp, received, insert_id)
        yield head + http + tail


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
