"""The watch after a change: for `changes.watch_seconds`, the proof cases again and the request logs
since the change, so a client the report could not see (it had not called in the window) shows up
before the operator walks away.

A proof right after the load balancer applied a change says the known cases get the verdicts the
rules give; it says nothing of clients nobody listed. The logs do: every request refused since the
change by a client other than the kit's own probes is counted by client (certificate fingerprint,
else source address) with the readiness report's query, and the watch fails at the first look where
their share of requests is above `changes.max_refused_share`, or where a proof case got another
verdict. The kit's probes are told apart as the readiness report tells them (their URL carries the
probe id; refused connections from the addresses they came from carry none), so a client sharing
the operator's address is hidden with them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from mtlskit.change.proof import prove
from mtlskit.change.readiness import readiness
from mtlskit.change.run import Progress
from mtlskit.change.state import TrustState
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core.checks import Check
from mtlskit.core.poll import poll
from mtlskit.verify import logs


@dataclass(frozen=True)
class Look:
    """One look of the watch: the proof's checks and what the logs say since the change."""

    proof: tuple[Check, ...]
    requests: int  # requests logged since the change, the kit's probes left out
    refused: dict[str, int] = field(default_factory=dict)  # client -> requests refused since the change
    max_share: float = 0.0

    @property
    def refused_share(self) -> float:
        return sum(self.refused.values()) / self.requests if self.requests else 0.0

    @property
    def failed_proof(self) -> list[Check]:
        return [c for c in self.proof if c.status == "fail"]

    @property
    def failed(self) -> bool:
        return bool(self.failed_proof) or (bool(self.refused) and self.refused_share > self.max_share)

    def line(self) -> str:
        clients = f"{len(self.refused)} client(s) refused" if self.refused else "no client refused"
        return (
            f"{len(self.proof) - len(self.failed_proof)}/{len(self.proof)} proof cases as expected; "
            f"{self.requests} requests logged since the change, {clients} ({self.refused_share:.1%})"
        )


@dataclass(frozen=True)
class Watch:
    looks: int
    seconds: float
    last: Look

    def checks(self) -> list[Check]:
        """One check for the proof cases and one for the logs, over the whole watch."""
        last = self.last
        proof = Check(
            "watch: proof cases",
            "fail" if last.failed_proof else "pass",
            (
                "; ".join(f"{c.name}: {c.evidence}" for c in last.failed_proof)
                if last.failed_proof
                else f"every proof case as expected in {self.looks} look(s) over {self.seconds:.0f}s"
            ),
            "the change does not hold: take the way back named below",
        )
        over = bool(last.refused) and last.refused_share > last.max_share
        named = ", ".join(f"{who} ({n})" for who, n in sorted(last.refused.items(), key=lambda i: -i[1]))
        requests = Check(
            "watch: refused clients",
            "fail" if over else ("warn" if last.refused else "pass"),
            (
                f"{last.refused_share:.1%} of {last.requests} requests refused since the change "
                f"(at most {last.max_share:.1%} allowed): {named}"
                if last.refused
                else f"{last.requests} requests logged since the change over {self.seconds:.0f}s, none refused"
            ),
            "these clients called after the report's window or were not in it: give them a certificate "
            "the trust config accepts, or take the way back named below",
        )
        return [proof, requests]


def look(clients: Clients, params: Params, after: TrustState, since: dt.datetime) -> Look:
    """The proof once more, and the logs since `since` counted by the readiness report's own query
    (the kit's probes left out, a client named by its certificate, else its source address)."""
    proof = tuple(prove(clients, params, after))
    frame = logs.entries_frame(logs.fetch_entries(clients, params, since))
    seen = readiness(frame, since, enforcing=True)
    refused = {
        str(c): int(n) for c, n in zip(seen.by_client["client"], seen.by_client["requests"], strict=True)
    }
    return Look(proof, seen.requests, refused, params.changes.max_refused_share)


def watch(
    clients: Clients,
    params: Params,
    after: TrustState,
    since: dt.datetime,
    progress: Progress | None = None,
    sleep: Callable[[float], None] | None = None,
) -> Watch:
    """Look every `changes.poll_seconds` for `changes.watch_seconds`; stop at the first failed look."""
    ch = params.changes
    counted = [0]

    def read() -> Look:
        counted[0] += 1
        return look(clients, params, after, since)

    def report(value: Look, elapsed: float) -> None:
        if progress:
            progress(f"watch {elapsed:.0f}/{ch.watch_seconds:.0f}s: {value.line()}", elapsed)

    options = {"sleep": sleep} if sleep else {}
    polled = poll(
        read, lambda v: v.failed, ch.watch_seconds, every=ch.poll_seconds, on_read=report, **options
    )
    return Watch(counted[0], polled.elapsed, polled.value)
