"""Exported request-log analysis: DuckDB (`mtlskit logs`) against the naive `json.loads` +
`pandas.json_normalize` baseline, on synthetic load-balancer entries (figures only).

Each measurement runs in a fresh Python process that reports its own peak RSS, so one run's memory
does not hide in another's. The analysis is the same in both: counts by statusDetails and by
certificate error, outcomes per minute, and the most refused certificates.

Run: make bench (100 k and 1 M entries), or `python bench/logs.py --big` to add 10 M (needs about
15 GB of free disk for the file; the naive baseline is skipped there, it would need ~80 GB of RAM).
`--sizes 10000000` measures only the sizes named. The 10 M scan's peak memory is held against its
target: under 1 GB, however large the file (DuckDB spills past its memory limit).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NAIVE_LIMIT = 1_000_000
BIG = 10_000_000
BIG_TARGET_MB = 1024.0


def naive(path: Path) -> int:
    """What a notebook does without a columnar engine: every entry a dict, then one wide frame."""
    import pandas as pd

    with path.open() as f:
        entries = [json.loads(line) for line in f if line.strip()]
    frame = pd.json_normalize(entries)
    details = frame["jsonPayload.statusDetails"].fillna("")
    refused = (frame["httpRequest.status"] == 0) | details.str.startswith("client_cert_")
    outcome = refused.map({True: "refused", False: "accepted"}).where(
        refused | (details == "response_sent_by_backend"), "other"
    )
    error = frame["jsonPayload.mtls.clientCertError"].replace("", None)
    details.value_counts()
    error.value_counts()
    when = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    pd.crosstab(when.dt.floor("30min"), outcome)
    fp = frame["jsonPayload.mtls.clientCertSha256Fingerprint"].replace("", None)
    frame[refused & fp.notna()].groupby(
        ["jsonPayload.mtls.clientCertSha256Fingerprint", "jsonPayload.mtls.clientCertSerialNumber"]
    ).size().nlargest(10)
    return len(frame)


def columnar(path: Path) -> int:
    from mtlskit.verify import logs

    with logs.scan_exported(path) as scan:
        return scan.summaries().entries


def child(kind: str, path: Path) -> None:
    import pandas  # noqa: F401  (imports are not the analysis: both sides load their libraries first)

    from mtlskit.verify import logs  # noqa: F401

    start = time.perf_counter()
    entries = naive(path) if kind == "naive" else columnar(path)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    print(json.dumps({"entries": entries, "seconds": seconds, "peak_mb": peak_mb}))


def measure(kind: str, path: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path)], capture_output=True, text=True, check=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--big", action="store_true", help="add 10 M entries (columnar only)")
    parser.add_argument("--sizes", type=int, nargs="+", help="only these sizes (entries)")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    from mtlskit.verify import synthetic

    sizes = args.sizes or [100_000, 1_000_000] + ([BIG] if args.big else [])
    print("exported request logs: DuckDB scan vs json.loads + json_normalize (fresh process each)")
    with tempfile.TemporaryDirectory(prefix="mtlskit-bench-logs-") as d:
        for n in sizes:
            path = Path(d) / f"requests-{n}.json"
            t = time.perf_counter()
            synthetic.write(path, n, seed=n)
            made = time.perf_counter() - t
            size_mb = path.stat().st_size / 1e6
            print(f"\n{n:>12,} entries, {size_mb:,.0f} MB NDJSON, generated in {made:.1f}s")
            fast = measure("duckdb", path)
            target = ""
            if n >= BIG:
                within = "within" if fast["peak_mb"] < BIG_TARGET_MB else "OVER"
                target = f"  ({within} the {BIG_TARGET_MB:,.0f} MB target)"
            print(f"  duckdb        {fast['seconds']:8.2f}s  peak {fast['peak_mb']:8,.0f} MB{target}")
            if n <= NAIVE_LIMIT:
                slow = measure("naive", path)
                print(f"  json+pandas   {slow['seconds']:8.2f}s  peak {slow['peak_mb']:8,.0f} MB")
                print(
                    f"  speed-up      {slow['seconds'] / fast['seconds']:8.1f}x  "
                    f"memory {slow['peak_mb'] / fast['peak_mb']:.1f}x less"
                )
            else:
                print("  json+pandas   skipped (would not fit in memory)")
            path.unlink()


if __name__ == "__main__":
    main()
