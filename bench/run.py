"""Sandbox API throughput: requests per second through the official clients (figures only).

Run: make bench. Uses a throwaway state directory and stops its sandbox afterwards.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from google.cloud import compute_v1

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from figures import rate_line  # noqa: E402  (bench/ is on sys.path when a script here runs)

from mtlskit.cloud.clients import build_clients  # noqa: E402
from mtlskit.cloud.operations import wait  # noqa: E402
from mtlskit.config import params as params_mod  # noqa: E402
from mtlskit.sandbox import process  # noqa: E402


def timed(label: str, fn, n: int) -> None:  # type: ignore[no-untyped-def]
    samples = []
    start = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    print(rate_line(label, samples, time.perf_counter() - start))


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        state = Path(d)
        p = params_mod.parse(
            {
                "target": "sandbox",
                "project": "mtlskit-sandbox",
                "sandbox": {"state_dir": str(state), "operation_delay_seconds": 0.0, "demo_pki": False},
                "mtls": {"validation_mode": "ALLOW_INVALID_OR_MISSING_CLIENT_CERT"},
            }
        )
        t = time.perf_counter()
        clients = build_clients(p)
        print(f"{'sandbox start + client build':<40} {time.perf_counter() - t:8.2f} s")
        try:
            wait(
                clients,
                clients.compute.ssl_policies.insert(
                    project=p.project,
                    ssl_policy_resource=compute_v1.SslPolicy(name="bench", profile="MODERN"),
                ),
                "x",
            )
            timed(
                "compute sslPolicies.get",
                lambda: clients.compute.ssl_policies.get(project=p.project, ssl_policy="bench"),
                300,
            )
            timed("kubernetes read_namespace", lambda: clients.kube.core.read_namespace("default"), 300)
            counter = iter(range(10_000))
            timed(
                "compute addresses.insert (+wait)",
                lambda: wait(
                    clients,
                    clients.compute.addresses.insert(
                        project=p.project, address_resource=compute_v1.Address(name=f"bench-{next(counter)}")
                    ),
                    "insert",
                ),
                100,
            )
        finally:
            process.stop(state)


if __name__ == "__main__":
    main()
