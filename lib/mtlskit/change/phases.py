"""The phases a trust change still needs, read from what exists: never from a progress file.

A client-CA rotation that swaps the old CA for the new one in one step refuses every client still
holding an old certificate, and every client that got a new one too early. The safe order, Google's
and everyone's, is: trust old and new side by side (phase 1), move the clients, then remove the old
(phase 2, possibly days later). Which phase a stack is in follows from the live trust state and the
params' target: a live state that already holds the target's certificates beside others is between
the phases, so a re-run goes on to phase 2 and never repeats phase 1. A change that only adds (a
partner CA or allowlisted certificate) or only removes (a revocation) is one phase.
"""

from __future__ import annotations

from dataclasses import dataclass

from mtlskit.change.state import TrustedCert, TrustState

ADD, REMOVE, SWITCH = "add beside", "remove", "switch"


@dataclass(frozen=True)
class Phase:
    """One step of a change: the state it starts from and the one it leaves."""

    action: str  # add beside | remove | switch (mode or proxy only)
    number: int  # 1-based, within the phases planned from `before`
    of: int
    before: TrustState
    after: TrustState

    @property
    def added(self) -> tuple[TrustedCert, ...]:
        return tuple(c for c in self.after.certs if c.key not in self.before.cert_keys())

    @property
    def removed(self) -> tuple[TrustedCert, ...]:
        return tuple(c for c in self.before.certs if c.key not in self.after.cert_keys())

    @property
    def label(self) -> str:
        return f"phase {self.number} of {self.of}: {self.action}"

    def describe(self) -> str:
        parts = [f"add {c.label()}" for c in self.added] + [f"remove {c.label()}" for c in self.removed]
        if self.before.mode != self.after.mode:
            parts.append(f"mode {self.before.mode} -> {self.after.mode}")
        if self.before.attached != self.after.attached:
            parts.append("attach the policy" if self.after.attached else "detach the policy")
        return f"{self.label}: " + ("; ".join(parts) or "nothing")

    def row(self) -> dict[str, str]:
        return {
            "phase": f"{self.number} of {self.of}",
            "action": self.action,
            "adds": ", ".join(c.label() for c in self.added),
            "removes": ", ".join(c.label() for c in self.removed),
            "mode after": str(self.after.mode),
            "fingerprint before -> after": f"{self.before.fingerprint()} -> {self.after.fingerprint()}",
        }


def trust_phases(live: TrustState, target: TrustState) -> list[Phase]:
    """The phases left to move `live` to `target`. Additions come first, beside what is there (the
    mode and the proxy keep their live values); removals, the mode and the proxy follow in the last
    phase. An empty list: the live state is the target."""
    if live == target:
        return []
    adds = tuple(c for c in target.certs if c.key not in live.cert_keys())
    removes = tuple(c for c in live.certs if c.key not in target.cert_keys())
    if adds and removes:
        beside = TrustState((*live.certs, *adds), live.mode, live.attached)
        return [Phase(ADD, 1, 2, live, beside), Phase(REMOVE, 2, 2, beside, target)]
    action = ADD if adds else (REMOVE if removes else SWITCH)
    return [Phase(action, 1, 1, live, target)]


def between_phases(live: TrustState, target: TrustState) -> bool:
    """True when the live trust holds every certificate of the target beside others: a rotation's
    phase 1 is done and its phase 2 (the removal) is what is left."""
    return bool(target.certs) and target.cert_keys() < live.cert_keys()
