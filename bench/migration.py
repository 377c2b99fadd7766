"""A live split frontend moved to the Gateway on the sandbox, with a steady client sending requests the
whole time on fresh connections with a valid certificate (resolving through the sandbox's DNS,
honouring the TTL). Prints, for each strategy, the wall time of every phase, the requests sent,
answered, refused and failed in it, and for named_address the downtime measured from the kit's
forwarding rule's deletion to the Gateway's first valid answer. Figures only; nothing is asserted.
Run: make bench (or .venv/bin/python bench/migration.py [new_ip|named_address ...]).

TTLs and the drain window are the rehearsal's seconds (`mtlskit.migrate.rehearsal.FAST`); on Google
Cloud the cut-over waits the records' real TTL, the drain window is minutes and a Gateway takes
10-15 minutes to be programmed, so these figures measure the kit and the sandbox, not Google.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from mtlskit.migrate import rehearsal, run, state
from mtlskit.migrate.traffic import SteadyClient, Tally
from mtlskit.sandbox import process

STRATEGIES = ("new_ip", "named_address")


def _delta(before: dict[str, int], after: Tally) -> dict[str, int]:
    return {k: v - before[k] for k, v in after.row().items()}


def bench(strategy: str) -> None:
    with tempfile.TemporaryDirectory(prefix="mtlskit-bench-migrate-") as tmp:
        d = Path(tmp)
        try:
            started = time.monotonic()
            live = rehearsal.live_split_stack(d, gateway={"address": strategy})
            print(f"\n{strategy}: split stack built and published in {time.monotonic() - started:.1f} s")
            ctx = run.Context(live.clients, live.params, state.kit_ops())
            client = SteadyClient.for_params(live.clients, live.params).start()
            passed: set[str] = set()
            total = time.monotonic()
            print(
                f"  {'phase':<8} {'wall s':>7} {'sent':>6} {'answered':>9} {'refused':>8} {'failed':>7}  gate"
            )
            try:
                while True:
                    before = client.tally.row()
                    result = run.run_phase(ctx, passed)
                    if result is None:
                        break
                    n = _delta(before, client.tally)
                    gate = "passed" if result.passed else "REFUSED"
                    print(
                        f"  {result.phase:<8} {result.seconds:7.2f} {n['sent']:6d} {n['answered']:9d} "
                        f"{n['refused']:8d} {n['failed']:7d}  {gate}"
                    )
                    if "downtime_seconds" in result.figures:
                        print(
                            f"  {'':<8} downtime {result.figures['downtime_seconds']:.2f} s (forwarding rule deleted -> first valid answer)"
                        )
                    if not result.passed:
                        break
            finally:
                tally = client.stop()
            t = tally.row()
            print(
                f"  {'all':<8} {time.monotonic() - total:7.2f} {t['sent']:6d} {t['answered']:9d} "
                f"{t['refused']:8d} {t['failed']:7d}  requests by IP: {dict(tally.by_ip)}"
            )
            for problem in tally.problems[:3]:
                print(f"    e.g. {problem}")
        finally:
            process.stop(d)


def main(argv: list[str]) -> None:
    for strategy in argv or STRATEGIES:
        bench(strategy)


if __name__ == "__main__":
    main(sys.argv[1:])
