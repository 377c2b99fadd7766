"""How every benchmark prints a rate: operations per second with median and 95th-percentile latency."""

from __future__ import annotations

import statistics


def rate_line(label: str, latencies: list[float], elapsed: float) -> str:
    n = len(latencies)
    p50 = statistics.median(latencies) * 1000
    p95 = sorted(latencies)[max(int(n * 0.95) - 1, 0)] * 1000
    return f"{label:<52} {n / elapsed:8.1f} /s   p50 {p50:6.2f} ms   p95 {p95:6.2f} ms   (n={n})"
