"""The domains' A records as the migration sees them, and the calls that move them.

The cut-over itself (lower the TTL, wait the old TTL, point the records at the new IP) and the TTL's
return are the DNS cut-over's own plans and applies, handed in as `DnsOps`; the migration decides
when, and proves by name that resolvers follow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mtlskit.build import dns
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Record:
    """One domain's A record in the managed zone."""

    ips: tuple[str, ...]
    ttl: int


@dataclass(frozen=True)
class DnsOps:
    """Record reads and changes in `dns.managed_zone`, and a lookup as clients make it."""

    records: Callable[[Clients, Params], dict[str, Record | None]]  # by domain; None: no A record
    cutover: Callable[[Clients, Params, str, Progress], list[str]]  # to this IP, TTL lowered first
    restore_ttl: Callable[[Clients, Params], list[str]]  # back to dns.ttl_seconds
    resolve: Callable[[Clients, str], tuple[str, ...]]  # through the clients' name server
    by_hand: Callable[[Clients, Params, str], list[str]]  # the commands, when no managed zone
    publish: Callable[[Clients, Params, str], list[str]]  # missing A records at this IP, usual TTL


def _records(clients: Clients, params: Params) -> dict[str, Record | None]:
    held = {r.domain: Record(tuple(sorted(r.rrdatas)), r.ttl) for r in dns.current_records(clients, params)}
    return {d: held.get(d.lower().rstrip(".")) for d in params.frontend.domains}


def _applied(clients: Clients, params: Params, plan: dns.DnsPlan, progress: Progress) -> list[str]:
    """Apply a record plan, its progress as lines; returns what changed, one line per record step."""
    dns.apply(clients, params, plan, on_progress=lambda line, elapsed: progress(f"{line} ({elapsed:.0f}s)"))
    return [f"{c.name}: {', '.join(c.fields)} ({c.kind})" for c in plan.changes()]


def _cutover(clients: Clients, params: Params, ip: str, progress: Progress) -> list[str]:
    return _applied(clients, params, dns.plan_cutover(clients, params, ip), progress)


def _restore_ttl(clients: Clients, params: Params) -> list[str]:
    return _applied(clients, params, dns.plan_ttl(clients, params), lambda _line: None)


def _resolve(clients: Clients, domain: str) -> tuple[str, ...]:
    answer = dns.resolve([domain], clients.nameserver)[domain]
    return answer if isinstance(answer, tuple) else ()


def _by_hand(clients: Clients, params: Params, ip: str) -> list[str]:
    return list(dns.plan_cutover(clients, params, ip).commands)


def _publish(clients: Clients, params: Params, ip: str) -> list[str]:
    return _applied(clients, params, dns.plan_records(clients, params, ip), lambda _line: None)


def dns_ops() -> DnsOps:
    """The DNS cut-over's plans and applies (`build.dns`), as the migration calls them."""
    return DnsOps(_records, _cutover, _restore_ttl, _resolve, _by_hand, _publish)
