"""The one poll loop, on a fake clock: it stops when done, reads once more at the time limit, grows its
pause as asked, and reports every read."""

from __future__ import annotations

from mtlskit.core.poll import poll


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def test_stops_at_the_first_read_that_is_done() -> None:
    clock = FakeClock()
    values = iter([None, None, "ready", "later"])
    seen: list[tuple[object, float]] = []
    result = poll(
        lambda: next(values),
        lambda v: v is not None,
        60,
        every=2,
        on_read=lambda v, t: seen.append((v, t)),
        sleep=clock.sleep,
        clock=clock,
    )
    assert (result.value, result.done, result.elapsed) == ("ready", True, 4.0)
    assert seen == [(None, 0.0), (None, 2.0), ("ready", 4.0)]


def test_a_wait_that_times_out_reads_once_at_the_limit_and_says_not_done() -> None:
    clock = FakeClock()
    result = poll(lambda: clock.now, lambda v: False, 5, every=2, sleep=clock.sleep, clock=clock)
    assert not result.done
    assert result.value == 5.0  # the last read is at the limit, not before it
    assert clock.pauses == [2, 2, 1]


def test_the_pause_grows_up_to_its_longest() -> None:
    clock = FakeClock()
    poll(lambda: 0, lambda v: False, 100, every=1, growth=2, longest=5, sleep=clock.sleep, clock=clock)
    assert clock.pauses[:5] == [1, 2, 4, 5, 5]
