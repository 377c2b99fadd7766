"""A steady client for watching a migration from the clients' side: requests one after another, each
on a fresh connection with a valid client certificate, to whatever the domain resolves to now.

A cut-over is only as good as what clients see. This client resolves the name the way a client
with a caching stub resolver does (asking `dns.nameserver`, keeping the answer for its TTL), opens a
new TLS connection per request (so a connection kept alive to the old IP cannot hide a refusal) and
counts every request as answered, refused (the TLS handshake or the connection was refused after
connecting: what the load balancer does to a client it rejects) or failed (nothing listening, a
time-out, an HTTP error, a name that does not resolve). The migration test and bench/migration.py
run it in a thread for the whole migration.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import dns.exception

from mtlskit.build import dns as kit_dns
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params

RETRY_PAUSE_SECONDS = 0.01
Lookup = Callable[[str], tuple[tuple[str, ...], float]]  # domain -> (A records, TTL seconds)


@dataclass
class Tally:
    sent: int = 0
    answered: int = 0
    refused: int = 0
    failed: int = 0
    by_ip: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)  # the first few refusals and failures, in words

    def row(self) -> dict[str, int]:
        return {"sent": self.sent, "answered": self.answered, "refused": self.refused, "failed": self.failed}


def dns_lookup(nameserver: str | None, timeout: float = 2.0) -> Lookup:
    """A lookup through `nameserver` (ip[:port]; None: the system's resolver) giving the TTL too: the
    client keeps the answer that long, as a caching stub resolver would."""
    resolver = kit_dns.resolver_for(nameserver)

    def lookup(domain: str) -> tuple[tuple[str, ...], float]:
        answer = resolver.resolve(domain, "A", lifetime=timeout, search=False)
        ttl = float(answer.rrset.ttl) if answer.rrset is not None else 0.0
        return tuple(sorted(r.to_text() for r in answer)), ttl

    return lookup


def fixed_address(ip: str, ttl: float = 3600.0) -> Lookup:
    """A lookup that always answers `ip`, as `curl --resolve` pins a client to one load balancer."""

    def lookup(_domain: str) -> tuple[tuple[str, ...], float]:
        return (ip,), ttl

    return lookup


class SteadyClient:
    """Sends requests until stopped; `tally` holds the counts so far."""

    def __init__(
        self,
        domain: str,
        port: int,
        cert: str,
        key: str,
        lookup: Lookup,
        server_ca: str | None = None,
        timeout: float = 5.0,
        pause: float = 0.0,
    ) -> None:
        self.domain, self.port, self.lookup, self.timeout, self.pause = domain, port, lookup, timeout, pause
        self.context = ssl.create_default_context(cafile=server_ca)
        self.context.load_cert_chain(cert, key)
        self.tally = Tally()
        self._cached: tuple[tuple[str, ...], float] = ((), 0.0)  # answer, monotonic expiry
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="steady-client", daemon=True)

    @classmethod
    def for_params(
        cls,
        clients: Clients,
        params: Params,
        pause: float = 0.0,
        cert: str | None = None,
        key: str | None = None,
        lookup: Lookup | None = None,
    ) -> SteadyClient:
        """The first domain, resolved through the clients' name server (`dns.nameserver`; on the
        sandbox, its DNS responder) unless `lookup` is given, presenting `cert` and `key` (leaf first,
        then the issuers it sends), by default the probe's valid certificate: a client-CA rotation
        watches old-CA and new-CA clients side by side."""
        cert, key = (cert, key) if cert else (params.probe.client_cert, params.probe.client_key)
        if not (cert and key):
            raise ValueError(
                "probe.client_cert and probe.client_key: the steady client needs a valid certificate"
            )
        return cls(
            params.frontend.domains[0],
            clients.https_port,
            cert,
            key,
            lookup or dns_lookup(clients.nameserver),
            clients.server_ca_file,
            params.probe.timeout_seconds,
            pause,
        )

    def start(self) -> SteadyClient:
        self._thread.start()
        return self

    def stop(self) -> Tally:
        self._stop.set()
        self._thread.join()
        return self.tally

    def _resolve(self) -> tuple[str, ...]:
        ips, expires = self._cached
        if not ips or time.monotonic() >= expires:
            ips, ttl = self.lookup(self.domain)
            self._cached = (ips, time.monotonic() + ttl)
        return ips

    def _loop(self) -> None:
        while not self._stop.is_set():
            ended = self.send_one()
            # A client retries a failure after a moment rather than in a tight loop (a refused
            # connection returns at once): the counts then stay comparable across phases.
            pause = self.pause if ended == "answered" else max(self.pause, RETRY_PAUSE_SECONDS)
            if pause:
                self._stop.wait(pause)

    def send_one(self) -> str:
        """One request on a new connection; returns how it ended (answered, refused, failed)."""
        t = self.tally
        t.sent += 1
        try:
            ip = self._resolve()[0]
        except (dns.exception.DNSException, IndexError) as err:
            return self._count("failed", f"{self.domain} did not resolve: {err}")
        t.by_ip[ip] += 1
        try:
            sock = socket.create_connection((ip, self.port), timeout=self.timeout)
        except OSError as err:
            return self._count("failed", f"{ip}: no connection ({err})")
        try:
            with self.context.wrap_socket(sock, server_hostname=self.domain) as tls:
                conn = http.client.HTTPSConnection(
                    self.domain, self.port, timeout=self.timeout, context=self.context
                )
                conn.sock = tls
                conn.request("GET", "/migration-watch", headers={"User-Agent": "mtlskit-steady-client"})
                response = conn.getresponse()
                response.read()
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected) as err:
            sock.close()
            return self._count("refused", f"{ip}: refused ({err.__class__.__name__}: {err})")
        except (OSError, http.client.HTTPException) as err:
            sock.close()
            return self._count("failed", f"{ip}: {err.__class__.__name__}: {err}")
        if response.status >= 400:
            return self._count("failed", f"{ip}: HTTP {response.status}")
        t.answered += 1
        return "answered"

    def _count(self, how: str, why: str) -> str:
        setattr(self.tally, how, getattr(self.tally, how) + 1)
        if len(self.tally.problems) < 20:
            self.tally.problems.append(why)
        return how
