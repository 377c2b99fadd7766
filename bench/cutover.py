"""A DNS cut-over on the sandbox: DNS queries per second its responder answers (UDP and TCP), how long
a Cloud DNS change takes to be `done` and answered by name, and a whole cut-over's wall time per step
(figures only).

Run: make bench. Uses a throwaway state directory (the sandbox's default 0.2 s operation delay, so a
change is `done` after it as on Google within seconds) and stops its sandbox afterwards.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dns.message  # noqa: E402
import dns.query  # noqa: E402
from figures import bare_sandbox, time_calls  # noqa: E402  (bench/ is on sys.path when a script here runs)

from mtlskit.build import dns as kit_dns  # noqa: E402
from mtlskit.cloud.clients import build_clients  # noqa: E402
from mtlskit.rules import dns as rules  # noqa: E402
from mtlskit.sandbox import process  # noqa: E402

DOMAINS = ["api.mtlskit.test", "www.mtlskit.test"]
OLD, NEW = "192.0.2.10", "198.51.100.20"
TTL, CUTOVER_TTL = 3, 1


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        state = Path(d)
        p = bare_sandbox(
            state,
            frontend={"domains": DOMAINS},
            dns={"managed_zone": rules.SANDBOX_ZONE, "ttl_seconds": TTL, "cutover_ttl_seconds": CUTOVER_TTL},
        )
        clients = build_clients(p)
        try:
            host, port = rules.nameserver_address(clients.nameserver or "")
            started = time.monotonic()
            kit_dns.apply(clients, p, kit_dns.plan_records(clients, p, OLD))
            published = kit_dns.wait_resolves(DOMAINS, OLD, clients.nameserver, 30, every=0.05)
            print(
                f"publish {len(DOMAINS)} A records: change done and answered by name in "
                f"{time.monotonic() - started:.2f}s (operation delay {p.sandbox.operation_delay_seconds}s)"
            )
            assert published.done, published.answers
            query = dns.message.make_query(DOMAINS[0], "A")
            print(f"DNS responder on {host}:{port}, authoritative for {rules.SANDBOX_DNS_NAME}")
            time_calls(
                "A query over UDP (dnspython)",
                lambda: dns.query.udp(query, host, port=port, timeout=2),
                seconds=3.0,
            )
            time_calls(
                "A query over TCP, a connection each",
                lambda: dns.query.tcp(query, host, port=port, timeout=2),
                seconds=3.0,
            )

            steps: list[tuple[str, float]] = []
            last = time.monotonic()

            def mark(what: str, _: float) -> None:
                nonlocal last
                if what.endswith(" done"):
                    steps.append((what, time.monotonic() - last))
                    last = time.monotonic()

            began = time.monotonic()
            plan = kit_dns.plan_cutover(clients, p, NEW)
            planned = time.monotonic() - began
            kit_dns.apply(clients, p, plan, on_progress=mark)
            resolved = kit_dns.wait_resolves(DOMAINS, NEW, clients.nameserver, 30, every=0.05)
            total = time.monotonic() - began
            print(f"cut-over {OLD} -> {NEW} (TTL {TTL}s lowered to {CUTOVER_TTL}s), {len(DOMAINS)} domains:")
            print(f"  plan (read Cloud DNS): {planned:.2f}s")
            for what, seconds in steps:
                print(f"  {what}: {seconds:.2f}s after the previous one")
            print(f"  (the second step waits the old TTL, {TTL}s, for answers cached before the first)")
            print(f"  every name answers the new IP: {resolved.done}; total {total:.2f}s")
        finally:
            process.stop(state)


if __name__ == "__main__":
    main()
