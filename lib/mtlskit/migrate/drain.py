"""Has the old frontend drained? Requests per minute on each frontend, from the load balancer's own
request logs, keyed by forwarding rule.

After a DNS cut-over, clients move as their resolvers' caches expire; some (pinned IPs, long-lived
resolvers, forgotten batch jobs) never do. The split frontend may be retired only once its rate has
stayed at or below `migration.drained_requests_per_minute` for `migration.drain_window_seconds`: the
window is judged on the logs, so what counts is what reached the load balancer, not what DNS says.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from google.cloud import logging as cloud_logging

from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.rules.logentry import PAYLOAD_TYPE, RESOURCE_TYPE
from mtlskit.verify.logs import entry_to_dict, parse_time, rfc3339


@dataclass(frozen=True)
class Rates:
    """One read of both frontends' request logs over the trailing window."""

    old_rule: str
    new_rule: str
    old_requests: int  # entries on the old rule inside the window
    new_requests: int
    window_seconds: float  # the span the counts cover (shorter than the window while still watching)
    watched_seconds: float  # since the watch started

    @property
    def old_per_minute(self) -> float:
        return self.old_requests * 60.0 / self.window_seconds if self.window_seconds > 0 else 0.0

    @property
    def new_per_minute(self) -> float:
        return self.new_requests * 60.0 / self.window_seconds if self.window_seconds > 0 else 0.0

    def line(self) -> str:
        return (
            f"{self.old_rule}: {self.old_per_minute:.1f}/min ({self.old_requests}), "
            f"{self.new_rule}: {self.new_per_minute:.1f}/min ({self.new_requests}) "
            f"over the last {self.window_seconds:.0f}s"
        )


def rule_filter(project: str, rule: str, since: dt.datetime) -> str:
    """The Logging query for one forwarding rule's request entries since `since`."""
    return " AND ".join(
        [
            f'resource.type="{RESOURCE_TYPE}"',
            f'resource.labels.forwarding_rule_name="{rule}"',
            f'jsonPayload.@type="{PAYLOAD_TYPE}"',
            f'timestamp>="{rfc3339(since)}"',
        ]
    )


def fetch_times(
    clients: Clients, rule: str, since: dt.datetime, max_entries: int = 100_000
) -> list[dt.datetime]:
    """The timestamps of one forwarding rule's request entries since `since` (a read, safe to retry)."""

    def pull() -> list[dt.datetime]:
        entries = clients.logging.list_entries(
            resource_names=[f"projects/{clients.project}"],
            filter_=rule_filter(clients.project, rule, since),
            order_by=cloud_logging.DESCENDING,
            page_size=1000,
            max_results=max_entries,
        )
        return [parse_time(str(entry_to_dict(e)["timestamp"])) for e in entries]

    return list(clients.retry(pull)())


def count_in(times: Iterable[dt.datetime], start: dt.datetime, end: dt.datetime) -> int:
    return sum(1 for t in times if start < t <= end)


def rates(
    times: Mapping[str, list[dt.datetime]],
    old_rule: str,
    new_rule: str,
    watch_started: dt.datetime,
    now: dt.datetime,
    window_seconds: float,
) -> Rates:
    """Both rules' counts over the last `window_seconds` (never before the watch started)."""
    start = max(watch_started, now - dt.timedelta(seconds=window_seconds))
    return Rates(
        old_rule,
        new_rule,
        count_in(times.get(old_rule, []), start, now),
        count_in(times.get(new_rule, []), start, now),
        (now - start).total_seconds(),
        (now - watch_started).total_seconds(),
    )


def drained(r: Rates, params: Params) -> bool:
    """The old frontend has stayed at or below the threshold for a whole window."""
    m = params.migration
    return r.watched_seconds >= m.drain_window_seconds and r.old_per_minute <= m.drained_requests_per_minute


def reader(
    clients: Clients,
    params: Params,
    old_rule: str,
    new_rule: str,
    watch_started: dt.datetime,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> Callable[[], Rates]:
    """A read for the poll loop: pull both rules' entries since the watch began, then count."""

    def read() -> Rates:
        now = clock()
        times: dict[str, Any] = {r: fetch_times(clients, r, watch_started) for r in (old_rule, new_rule)}
        return rates(times, old_rule, new_rule, watch_started, now, params.migration.drain_window_seconds)

    return read
