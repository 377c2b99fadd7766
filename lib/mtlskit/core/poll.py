"""The one poll loop: read, report, stop when done or when time is up.

Every wait of the kit (an operation, the Ingress controller's annotation, the managed certificate,
request-log ingestion, the sandbox's data plane in the labs) is this loop with its own read and its
own idea of done. The loop never raises on time-out: it returns what it last read and whether that
was done, so each caller says in its own words what did not happen and what to do.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Polled(Generic[T]):
    value: T  # the last read
    elapsed: float  # seconds from the first read's start to the last read's end
    done: bool  # False: time ran out first


def poll(
    read: Callable[[], T],
    done: Callable[[T], bool],
    timeout: float,
    *,
    every: float,
    growth: float = 1.0,
    longest: float | None = None,
    on_read: Callable[[T, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Polled[T]:
    """Call `read` until `done(value)` or until `timeout` seconds have passed, pausing `every` seconds
    between reads (growing by `growth` up to `longest`); `on_read(value, elapsed)` after each read.

    The last pause is cut short so that one read lands at the time limit itself: a wait of 120 s
    looks at the world at 120 s, not at 117 s.
    """
    started = clock()
    pause = every
    while True:
        value = read()
        elapsed = clock() - started
        if on_read:
            on_read(value, elapsed)
        if done(value):
            return Polled(value, elapsed, True)
        if elapsed >= timeout:
            return Polled(value, elapsed, False)
        sleep(min(pause, max(0.0, timeout - elapsed)))
        pause = pause * growth if longest is None else min(pause * growth, longest)
