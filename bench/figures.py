"""What every benchmark shares: how it prints a rate (operations per second with median and 95th-percentile
latency), the loop that times calls, and the params of a throwaway sandbox."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mtlskit.config import params as params_mod
from mtlskit.config.params import Params


def rate_line(label: str, latencies: list[float], elapsed: float) -> str:
    n = len(latencies)
    p50 = statistics.median(latencies) * 1000
    p95 = sorted(latencies)[max(int(n * 0.95) - 1, 0)] * 1000
    return f"{label:<52} {n / elapsed:8.1f} /s   p50 {p50:6.2f} ms   p95 {p95:6.2f} ms   (n={n})"


def time_calls(
    label: str, fn: Callable[[], object], *, n: int | None = None, seconds: float | None = None
) -> None:
    """Call `fn` n times, or for `seconds`, and print its rate and latencies: one loop for every bench."""
    latencies: list[float] = []
    start = time.perf_counter()
    while (n is not None and len(latencies) < n) or (
        seconds is not None and time.perf_counter() - start < seconds
    ):
        t = time.perf_counter()
        fn()
        latencies.append(time.perf_counter() - t)
    print(rate_line(label, latencies, time.perf_counter() - start))


def bare_sandbox(state: Path, sandbox: dict[str, Any] | None = None, **sections: Any) -> Params:
    """Params for a throwaway sandbox with no certificates at all (ALLOW mode needs no trust anchor):
    the benches that time API calls rather than TLS."""
    return params_mod.parse(
        {
            "target": "sandbox",
            "project": "mtlskit-sandbox",
            "sandbox": {"state_dir": str(state), "demo_pki": False, **(sandbox or {})},
            "mtls": {"validation_mode": "ALLOW_INVALID_OR_MISSING_CLIENT_CERT"},
            **sections,
        }
    )
