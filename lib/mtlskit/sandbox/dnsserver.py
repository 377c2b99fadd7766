"""A real DNS responder on a loopback port (UDP and TCP), answering from the sandbox's Cloud DNS zones.

A cut-over is finished when the domains resolve to the new address, which only a DNS query can show:
`dig @127.0.0.1 -p PORT api.mtlskit.test` and the kit's own wait (dnspython) ask this responder as
they would ask Google's name servers. It is authoritative for every zone of the Cloud DNS stand-in
(`mtlskit.sandbox.clouddns`) and answers with the records of its done changes, with their TTLs:
the record sets at the name and type asked (a CNAME at the name when the type is absent), NOERROR
with the zone's SOA when the name has other types only, NXDOMAIN with the SOA for a name the zone
does not hold, REFUSED for a name outside every zone. Wire format is dnspython's (message parsing,
rdata from Cloud DNS's presentation format); the servers are the standard library's socketservers.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import struct
import threading
from collections import Counter
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from mtlskit.rules import dns as rules
from mtlskit.sandbox.clouddns import CloudDns

log = logging.getLogger("mtlskit.sandbox.dns")
BIND_ATTEMPTS = 20  # a free UDP port whose TCP twin is taken is tried again with another
TCP_TIMEOUT_SECONDS = 5.0


class DnsResponder:
    def __init__(self, clouddns: CloudDns):
        self.clouddns = clouddns
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._servers: list[socketserver.BaseServer] = []
        self.port = 0
        self.error = ""

    # ---- answers -------------------------------------------------------------------------------------

    def answer(self, wire: bytes) -> bytes | None:
        """The response to one query in wire format; None when it cannot even be read as a query."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return _formerr(wire)
        response = dns.message.make_response(query)
        response.flags &= ~dns.flags.RA
        if query.opcode() != 0 or len(query.question) != 1:
            response.set_rcode(dns.rcode.NOTIMP if query.opcode() != 0 else dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        rcode = self._fill(response, question.name, question.rdtype)
        response.set_rcode(rcode)
        self._count(dns.rcode.to_text(rcode))
        return response.to_wire()

    def _fill(self, response: dns.message.Message, qname: dns.name.Name, qtype: int) -> int:
        name = rules.fqdn(qname.to_text())
        zones = [(z, r) for z, r in self.clouddns.served_zones() if rules.in_zone(name, z["dnsName"])]
        if not zones:
            return dns.rcode.REFUSED
        zone, rrsets = max(zones, key=lambda zr: len(zr[0]["dnsName"]))  # the most specific zone
        response.flags |= dns.flags.AA
        here = [r for r in rrsets if r["name"] == name]
        wanted = [
            r
            for r in here
            if qtype == dns.rdatatype.ANY
            or r["type"] == dns.rdatatype.to_text(qtype)
            or (r["type"] == "CNAME" and qtype != dns.rdatatype.CNAME)
        ]
        response.answer += [_rrset(r) for r in wanted]
        if wanted:
            return dns.rcode.NOERROR
        soa = [r for r in rrsets if r["name"] == zone["dnsName"] and r["type"] == "SOA"]
        response.authority += [_rrset(r) for r in soa]
        below = any(rules.in_zone(r["name"], name) for r in rrsets)  # an empty non-terminal exists
        return dns.rcode.NOERROR if here or below else dns.rcode.NXDOMAIN

    def _count(self, what: str) -> None:
        with self._lock:
            self.counts[what] += 1

    # ---- listening -----------------------------------------------------------------------------------

    def start(self, port: int) -> None:
        """Listen on 127.0.0.1:`port` over UDP and TCP (0: a free port both can have). A port that
        cannot be bound is reported in `status`, not raised: the APIs still serve without it."""
        for _ in range(BIND_ATTEMPTS if port == 0 else 1):
            try:
                udp = _UdpServer(("127.0.0.1", port), self)
            except OSError as exc:
                self.error = f"UDP port {port}: {exc}"
                return
            try:
                tcp = _TcpServer(("127.0.0.1", udp.server_address[1]), self)
            except OSError as exc:
                udp.server_close()
                self.error = f"TCP port {udp.server_address[1]}: {exc}"
                continue
            self._servers = [udp, tcp]
            self.port = int(udp.server_address[1])
            self.error = ""
            for server in self._servers:
                threading.Thread(
                    target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
                ).start()
            return

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers = []

    def status(self) -> dict[str, Any]:
        with self._lock:
            answered = dict(self.counts)
        zones = [z["dnsName"] for z, _ in self.clouddns.served_zones()]
        return {
            "port": self.port,
            "listening": bool(self._servers),
            "error": self.error,
            "zones": zones,
            "answered": answered,
        }


def _rrset(rrset: dict[str, Any]) -> dns.rrset.RRset:
    return dns.rrset.from_text_list(
        rrset["name"], int(rrset["ttl"]), dns.rdataclass.IN, rrset["type"], list(rrset["rrdatas"])
    )


def _formerr(wire: bytes) -> bytes | None:
    """FORMERR with the query's id, when at least the 12-byte header arrived."""
    if len(wire) < 12:
        return None
    (query_id,) = struct.unpack("!H", wire[:2])
    flags = 0x8000 | dns.rcode.FORMERR  # QR set
    return struct.pack("!HHHHHH", query_id, flags, 0, 0, 0, 0)


class _UdpHandler(socketserver.BaseRequestHandler):
    server: _UdpServer

    def handle(self) -> None:
        data, sock = self.request
        reply = self.server.responder.answer(data)
        if reply is not None:
            sock.sendto(reply, self.client_address)


class _TcpHandler(socketserver.BaseRequestHandler):
    """RFC 7766: each message with a two-byte length; several queries may share a connection."""

    server: _TcpServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(TCP_TIMEOUT_SECONDS)
        try:
            while True:
                head = _read(sock, 2)
                if head is None:
                    return
                body = _read(sock, struct.unpack("!H", head)[0])
                reply = self.server.responder.answer(body or b"")
                if body is None or reply is None:
                    return
                sock.sendall(struct.pack("!H", len(reply)) + reply)
        except OSError:
            return


def _read(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


class _UdpServer(socketserver.ThreadingUDPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], responder: DnsResponder):
        self.responder = responder
        super().__init__(address, _UdpHandler)


class _TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], responder: DnsResponder):
        self.responder = responder
        super().__init__(address, _TcpHandler)
