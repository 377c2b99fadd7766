"""A population of real TLS clients, each from its own loopback source address, some with the probe's
valid certificate and some with none: the traffic an enforcement's readiness report reads.

Whether the flip to REJECT_INVALID may happen is decided from the request logs, client by client,
and on a load balancer the log's only name for a client that sends no certificate is its source
address. To show (and test) that the gate names exactly the clients it would cut off, the clients
must be told apart the same way: each request here is a new connection from its own `127.0.0.N`
(the whole 127/8 block is the loopback interface on Linux), through the standard library's TLS, to
the forwarding rule's IP with the domain as SNI and Host, as `curl --interface 127.0.0.N --resolve`
does. The requests are ordinary ones (not probes), so the log keeps them as any client's.

Private keys are handed to OpenSSL by path only.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass

from mtlskit.config.params import Params
from mtlskit.verify import probe

USER_AGENT = "mtlskit-client"
FIRST_SOURCE = "127.0.0.2"  # 127.0.0.1 is where the kit's own probes come from on one machine


@dataclass(frozen=True)
class Client:
    """One client: where it connects from and the certificate it presents (None: none)."""

    name: str
    source_ip: str
    cert: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class Sent:
    """What one request of one client got: the HTTP status, or how the connection ended."""

    client: Client
    status: int | None
    ended: str  # "http", or probe.classify's ending: closed, untrusted, refused, timeout, error


def population(
    params: Params, count: int, without_certificate: int, first_source: str = FIRST_SOURCE
) -> list[Client]:
    """`count` clients from consecutive loopback addresses starting at `first_source`; the ones
    without a certificate are spread evenly among them, the others present `probe.client_cert`."""
    if not 0 <= without_certificate <= count:
        raise ValueError(f"without_certificate={without_certificate}: between 0 and count ({count})")
    cert, key = params.probe.client_cert, params.probe.client_key
    if without_certificate < count and not (cert and key):
        raise ValueError("clients with a certificate present probe.client_cert: set it and probe.client_key")
    first = ipaddress.IPv4Address(first_source)
    if not first.is_loopback or not (first + count - 1).is_loopback:
        raise ValueError(f"{count} clients from {first_source}: the addresses must stay within 127.0.0.0/8")
    bare = {int((i + 0.5) * count / without_certificate) for i in range(without_certificate)}
    return [
        Client(f"client-{i + 1}", str(first + i), *((None, None) if i in bare else (cert, key)))
        for i in range(count)
    ]


def send(target: probe.Frontend, clients: list[Client], requests_each: int = 1) -> list[Sent]:
    """Every client sends `requests_each` requests, each on a new connection from its own address."""
    return [_request(target, c) for _ in range(requests_each) for c in clients]


def _request(target: probe.Frontend, client: Client) -> Sent:
    domain = target.domains[0]
    ctx = probe.client_context(target, client.cert, client.key)
    try:
        sock = socket.create_connection(
            (target.ip, target.port), timeout=target.timeout, source_address=(client.source_ip, 0)
        )
        with ctx.wrap_socket(sock, server_hostname=domain) as tls:
            conn = http.client.HTTPSConnection(domain, target.port, timeout=target.timeout, context=ctx)
            conn.sock = tls
            conn.request("GET", "/", headers={"User-Agent": f"{USER_AGENT}/{client.name}"})
            response = conn.getresponse()
            response.read(probe.MAX_BODY)
            return Sent(client, response.status, "http")
    except (OSError, ssl.SSLError, http.client.HTTPException) as err:
        return Sent(client, None, probe.classify(err, target.timeout)[0])
