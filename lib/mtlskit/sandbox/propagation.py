"""How long the load balancer takes to apply a change to who it lets in.

Google's load balancer applies a trust-config, server-TLS-policy or proxy change minutes after the
API call returned, and a runbook that verifies right after its PATCH still sees the old verdict.
The sandbox's data plane reproduces that: per frontend it keeps every mTLS setting the control
plane has held (`MtlsView`), each with the time it was first seen, and enforces the newest one seen
at least `delay` seconds ago. A frontend's first setting applies at once (a new load balancer is
not a change), and with no delay every change applies to the next connection, as before.

A connection keeps what was enforced at its handshake until it closes; that is the data plane's
doing (each connection holds its frontend), not this module's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from mtlskit.rules.verdict import TrustMaterial


@dataclass(frozen=True)
class MtlsView:
    """What a frontend enforces about client certificates: the server TLS policy's mode (None: no
    policy attached), the trust material, and the names they came from."""

    mode: str | None
    trust: TrustMaterial | None = None
    policy: str = ""  # the server TLS policy's relative name
    trust_config: str = ""  # the trust config's relative name
    trust_etag: str = ""  # changes with every update of the trust config

    @property
    def key(self) -> tuple[str | None, str, str]:
        """Two views with the same key judge every client alike."""
        return (self.mode, self.trust_config, self.trust_etag)

    def describe(self) -> dict[str, Any]:
        """JSON-safe, for the sandbox's status: certificates as lowercase hex SHA-256 of their DER."""
        trust = self.trust or TrustMaterial()
        return {
            "mode": self.mode or "off",
            "server_tls_policy": self.policy,
            "trust_config": self.trust_config,
            "trust_config_etag": self.trust_etag,
            "anchors": _fingerprints(trust.anchors),
            "intermediates": _fingerprints(trust.intermediates),
            "allowlisted": _fingerprints(trust.allowlisted),
        }


def _fingerprints(items: Iterable[x509.Certificate]) -> list[str]:
    return [c.fingerprint(hashes.SHA256()).hex() for c in items]


@dataclass(frozen=True)
class _Seen:
    view: MtlsView
    since: float  # when the control plane was first seen holding it


class Propagation:
    """The mTLS views of every frontend (by listener IP) over time, and which one is in force."""

    def __init__(self, delay_seconds: float, clock: Callable[[], float] = time.monotonic):
        self.delay = delay_seconds
        self._clock = clock
        self._history: dict[str, list[_Seen]] = {}
        self._lock = threading.Lock()

    def set_delay(self, seconds: float) -> None:
        """Changes already waiting keep the time they were seen; only the wait is new."""
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or not 0 <= seconds <= 600:
            raise ValueError(f"propagation_delay_seconds must be a number from 0 to 600, got {seconds!r}")
        self.delay = float(seconds)

    def enforced(self, ip: str, latest: MtlsView) -> MtlsView:
        """Record what the control plane holds now for this frontend; return what is in force."""
        now = self._clock()
        with self._lock:
            history = self._history.setdefault(ip, [])
            if not history:
                history.append(_Seen(latest, now - self.delay))  # a new frontend: in force at once
            elif history[-1].view.key != latest.key:
                history.append(_Seen(latest, now))
            elif history[-1].view != latest:
                history[-1] = _Seen(latest, history[-1].since)  # same setting, material re-read
            due = [i for i, seen in enumerate(history) if seen.since + self.delay <= now]
            current = due[-1] if due else 0
            del history[:current]  # what is older than the view in force can never apply again
            return history[0].view

    def pending(self, ip: str) -> list[dict[str, Any]]:
        """The changes seen but not yet in force, each with the seconds it still waits."""
        now = self._clock()
        with self._lock:
            return [
                {**s.view.describe(), "applies_in_seconds": round(max(s.since + self.delay - now, 0.0), 3)}
                for s in self._history.get(ip, [])[1:]
            ]

    def keep_only(self, ips: Iterable[str]) -> None:
        """Forget frontends that are gone: one built again later is new, in force at once."""
        alive = set(ips)
        with self._lock:
            for ip in list(self._history):
                if ip not in alive:
                    del self._history[ip]
