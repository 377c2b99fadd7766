"""The day-2 reports at volume: the impact report of a client-CA rotation's phase 2 and the enforcement
readiness report, each over a million synthetic request-log entries from a client population (old CA,
new CA, no certificate, foreign), read from an exported file (figures only; targets: 10 s, 1 GB).

Each measurement runs in a fresh Python process that reports its own peak RSS, so one run's memory does
not hide in another's. The trust states are real (the demo PKI's root and intermediate, and the next
CA's), and the population's issuer DNs are theirs, so the report judges clients as it would live.

Run: python bench/impact.py (1 M entries), --big to add 10 M (about 15 GB of free disk for the file).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_SECONDS, TARGET_MB = 10.0, 1024.0


def states(pki_dir: Path) -> tuple[object, object, dict[str, str]]:
    """Phase 2 of a rotation (old + new trusted -> new only) and the issuer DNs as logged."""
    from cryptography import x509

    from mtlskit.change.state import REJECT, TrustedCert, TrustState
    from mtlskit.pki import certs
    from mtlskit.rules import dn

    certs.ensure_demo_pki(pki_dir)
    pki = certs.DemoPki(pki_dir)

    def trusted(role: str, name: str) -> TrustedCert:
        return TrustedCert.from_pem(role, pki.cert(name).read_text())  # type: ignore[arg-type]

    old = (trusted("anchor", certs.TRUST_ANCHOR), trusted("intermediate", certs.INTERMEDIATE))
    new = (trusted("anchor", certs.NEXT_ANCHOR), trusted("intermediate", certs.NEXT_INTERMEDIATE))
    subject = {n: x509.load_pem_x509_certificate(pki.cert(n).read_bytes()).subject for n in pki_names()}
    dns = {n: dn.field(s) for n, s in subject.items()}
    return TrustState(old + new, REJECT, True), TrustState(new, REJECT, True), dns


def pki_names() -> tuple[str, str, str]:
    from mtlskit.pki import certs

    return certs.INTERMEDIATE, certs.NEXT_INTERMEDIATE, "untrusted-root"


def population(dns: dict[str, str], mode: str) -> object:
    from mtlskit.verify import synthetic

    old, new, foreign = (dns[n] for n in pki_names())
    return synthetic.rotation_population(old, new, foreign, clients=5000, new_trusted=True, mode=mode)


def child(kind: str, path: Path, pki_dir: Path) -> None:
    import pandas  # noqa: F401  (libraries load before the clock starts, as in bench/logs.py)

    from mtlskit.change import impact, readiness, seen
    from mtlskit.verify import logs

    before, after, _ = states(pki_dir)
    start = time.perf_counter()
    with logs.scan_exported(path, columns=seen.READ_COLUMNS) as scan:
        loaded = time.perf_counter() - start
        if kind == "impact":
            report = impact.impact_report(before, after, impact.clients_seen(scan))  # type: ignore[arg-type]
            gate = report.gate()
            summary = {
                "clients": len(report.clients),
                "newly_refused": len(report.newly_refused()),
                "counts": report.counts(),
                "gate": gate.passed,
            }
        else:
            ready = readiness.readiness(scan)
            summary = {
                "clients": ready.clients,
                "refused_clients": ready.refused_clients,
                "refused_share": round(ready.refused_share, 4),
                "gate": ready.gate(0.0).passed,
            }
        entries = scan.count()
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    print(json.dumps({"entries": entries, "seconds": seconds, "load": loaded, "peak_mb": peak_mb, **summary}))


def measure(kind: str, path: Path, pki_dir: Path) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path), str(pki_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def verdict(seconds: float, peak_mb: float) -> str:
    ok = seconds <= TARGET_SECONDS and peak_mb <= TARGET_MB
    return "within" if ok else "OVER"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--big", action="store_true", help="add 10 M entries")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "FILE", "PKI"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return
    from mtlskit.verify import synthetic

    sizes = [1_000_000] + ([10_000_000] if args.big else [])
    print(
        "day-2 reports over exported request logs (fresh process each; "
        f"targets {TARGET_SECONDS:.0f} s, {TARGET_MB:.0f} MB at 1 M entries); "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory(prefix="mtlskit-bench-impact-") as d:
        pki_dir = Path(d) / "pki"
        _, _, dns = states(pki_dir)
        for n in sizes:
            for kind, mode in (("impact", synthetic.REJECT), ("readiness", synthetic.ALLOW)):
                path = Path(d) / f"{kind}-{n}.json"
                t = time.perf_counter()
                shape = synthetic.Shape(population=population(dns, mode))  # type: ignore[arg-type]
                synthetic.write(path, n, seed=n, shape=shape)
                made = time.perf_counter() - t
                size_mb = path.stat().st_size / 1e6
                m = measure(kind, path, pki_dir)
                seconds, peak = float(m["seconds"]), float(m["peak_mb"])  # type: ignore[arg-type]
                print(
                    f"\n{kind:<9} {n:>12,} entries ({size_mb:,.0f} MB NDJSON, generated in {made:.1f}s, "
                    f"{mode})"
                )
                print(
                    f"  {seconds:6.2f}s (load {float(m['load']):.2f}s)  peak {peak:7,.0f} MB  "  # type: ignore[arg-type]
                    f"{verdict(seconds, peak) if n == 1_000_000 else ''}"
                )
                rest = {k: v for k, v in m.items() if k not in ("entries", "seconds", "load", "peak_mb")}
                print(f"  {rest}")
                path.unlink()


if __name__ == "__main__":
    main()
