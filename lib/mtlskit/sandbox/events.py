"""Changes one part of the sandbox announces and another follows, without either importing the other.

The Kubernetes API publishes every accepted write; the Ingress controller subscribes and reconciles
before the response returns, as the real controller would soon after.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

KUBE_WRITE = "kube.write"  # payload: the Kind written and the object as stored

Listener = Callable[..., None]


class Events:
    def __init__(self) -> None:
        self._listeners: defaultdict[str, list[Listener]] = defaultdict(list)
        self._held = 0

    def subscribe(self, topic: str, listener: Listener) -> None:
        self._listeners[topic].append(listener)

    def publish(self, topic: str, *payload: Any) -> None:
        """Call every listener in order, synchronously: a write is answered only once followed."""
        if self._held:
            return
        for listener in self._listeners[topic]:
            listener(*payload)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Announce nothing while inside (a dry run's writes are not followed: they never happened).
        Callers hold the store's lock, which serialises every write."""
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
