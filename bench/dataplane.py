"""Sandbox data plane on loopback: mTLS handshakes per second, requests per second, and how long a
control-plane change takes to show in the data plane, without and with a propagation delay (figures
only).

Run: make bench. Uses a throwaway state directory and stops its sandbox afterwards.
"""

from __future__ import annotations

import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from figures import rate_line  # noqa: E402  (bench/ is on sys.path when a script here runs)

from mtlskit.build import stack, trust  # noqa: E402
from mtlskit.cloud.clients import build_clients  # noqa: E402
from mtlskit.config import params as params_mod  # noqa: E402
from mtlskit.pki import certs  # noqa: E402
from mtlskit.sandbox import process  # noqa: E402

DOMAIN = "api.mtlskit.test"
PROPAGATION = 1.0  # seconds, as the day-2 tests and labs set sandbox.propagation_delay_seconds
REQUEST = f"GET /bench HTTP/1.1\r\nHost: {DOMAIN}\r\n\r\n".encode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _read_response(tls: ssl.SSLSocket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += tls.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += tls.recv(65536)
    return head


def _rate(label: str, fn: Callable[[], None], seconds: float, threads: int = 1) -> None:
    latencies: list[float] = []  # list.append is atomic: the workers share it
    stop = time.perf_counter() + seconds

    def worker() -> None:
        while time.perf_counter() < stop:
            t = time.perf_counter()
            fn()
            latencies.append(time.perf_counter() - t)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    print(rate_line(label, latencies, time.perf_counter() - start))


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        state = Path(d)
        certs.generate_demo_pki(state / "pki")
        p = params_mod.parse(
            {
                "target": "sandbox",
                "project": "mtlskit-sandbox",
                "sandbox": {
                    "state_dir": str(state),
                    "operation_delay_seconds": 0.0,
                    "managed_cert_delay_seconds": 0.0,
                    "data_plane_port": _free_port(),
                },
                "mtls": {
                    "trust_anchors": [str(state / "pki" / "root.pem")],
                    "intermediates": [str(state / "pki" / "intermediate.pem")],
                },
                "frontend": {"domains": [DOMAIN]},
            }
        )
        clients = build_clients(p)
        try:
            stack.build(clients, p, 60)
            fr = clients.compute.forwarding_rules.get(
                project=p.project, forwarding_rule=p.frontend.forwarding_rule
            )
            addr = (fr.I_p_address, p.sandbox.data_plane_port)
            ctx = ssl.create_default_context(cafile=str(state / "dataplane" / "ca.pem"))
            ctx.load_cert_chain(str(state / "pki" / "client.pem"), str(state / "pki" / "client.key"))
            bare = ssl.create_default_context(cafile=str(state / "dataplane" / "ca.pem"))
            deadline = time.monotonic() + 30
            while True:  # wait for the listener and the managed certificate
                try:
                    with socket.create_connection(addr, 2) as s, ctx.wrap_socket(s, server_hostname=DOMAIN):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)

            def handshake() -> None:
                with (
                    socket.create_connection(addr, 5) as s,
                    ctx.wrap_socket(s, server_hostname=DOMAIN) as tls,
                ):
                    tls.sendall(REQUEST)
                    _read_response(tls)

            print(f"data plane on {addr[0]}:{addr[1]} (REJECT_INVALID, ECDSA P-256 client certificate)")
            _rate("new connection + mTLS handshake + 1 request", handshake, 3.0)
            _rate("same, 4 concurrent clients", handshake, 3.0, threads=4)

            sock = socket.create_connection(addr, 5)
            tls = ctx.wrap_socket(sock, server_hostname=DOMAIN)

            def keepalive() -> None:
                tls.sendall(REQUEST)
                _read_response(tls)

            _rate("requests on one kept-alive connection", keepalive, 3.0)
            tls.close()

            def refused() -> bool:
                try:
                    with (
                        socket.create_connection(addr, 2) as s,
                        bare.wrap_socket(s, server_hostname=DOMAIN) as t,
                    ):
                        t.sendall(REQUEST)
                        return not t.recv(1)
                except OSError:
                    return True

            def reaction(label: str, change: Callable[[], None], settled: Callable[[], bool]) -> None:
                change()
                returned = time.perf_counter()
                while not settled():
                    time.sleep(0.005)
                samples.setdefault(label, []).append(time.perf_counter() - returned)

            def set_mode(mode: str) -> Callable[[], None]:
                q = p.model_copy(update={"mtls": p.mtls.model_copy(update={"validation_mode": mode})})
                return lambda: trust.apply_trust(clients, q, trust.plan_trust(clients, q))

            def delete_rule() -> None:
                clients.compute.forwarding_rules.delete(
                    project=p.project, forwarding_rule=p.frontend.forwarding_rule
                ).result()

            def gone() -> bool:
                try:
                    socket.create_connection(addr, 1).close()
                    return False
                except OSError:
                    return True

            samples: dict[str, list[float]] = {}
            for _ in range(3):
                reaction(
                    "server TLS policy mode switch (to ALLOW)",
                    set_mode("ALLOW_INVALID_OR_MISSING_CLIENT_CERT"),
                    lambda: not refused(),
                )
                reaction("server TLS policy mode switch (to REJECT)", set_mode("REJECT_INVALID"), refused)
                reaction("forwarding rule deleted -> listener closed", delete_rule, gone)
                reaction(
                    "forwarding rule created -> listener serving",
                    lambda: stack.build(clients, p, 60),
                    lambda: not gone(),
                )
            # With a propagation delay the new behaviour waits for it: a runbook must wait too.
            info = process.status(state)
            assert info is not None
            process.set_propagation_delay(info, PROPAGATION)
            for _ in range(3):
                reaction(
                    f"mode switch (to ALLOW), delay {PROPAGATION:g} s",
                    set_mode("ALLOW_INVALID_OR_MISSING_CLIENT_CERT"),
                    lambda: not refused(),
                )
                reaction(
                    f"mode switch (to REJECT), delay {PROPAGATION:g} s",
                    set_mode("REJECT_INVALID"),
                    refused,
                )
            print("control plane -> data plane, from the API call returning to the new behaviour (bar: 1 s):")
            for label, values in samples.items():
                print(
                    f"  {label:<50} median {statistics.median(values):.3f} s   max {max(values):.3f} s"
                    f"   (n={len(values)})"
                )
        finally:
            process.stop(state)


if __name__ == "__main__":
    main()
