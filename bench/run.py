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

from figures import bare_sandbox, time_calls  # noqa: E402  (bench/ is on sys.path when a script here runs)

from mtlskit.cloud.clients import build_clients  # noqa: E402
from mtlskit.cloud.operations import wait  # noqa: E402
from mtlskit.sandbox import process  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        state = Path(d)
        p = bare_sandbox(state, {"operation_delay_seconds": 0.0})
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
            time_calls(
                "compute sslPolicies.get",
                lambda: clients.compute.ssl_policies.get(project=p.project, ssl_policy="bench"),
                n=300,
            )
            time_calls(
                "kubernetes read_namespace", lambda: clients.kube.core.read_namespace("default"), n=300
            )
            counter = iter(range(10_000))
            time_calls(
                "compute addresses.insert (+wait)",
                lambda: wait(
                    clients,
                    clients.compute.addresses.insert(
                        project=p.project, address_resource=compute_v1.Address(name=f"bench-{next(counter)}")
                    ),
                    "insert",
                ),
                n=100,
            )
        finally:
            process.stop(state)


if __name__ == "__main__":
    main()
