"""The domains' A records as the migration sees them, and the calls that move them.

The cut-over itself (lower the TTL, wait the old TTL, point the records at the new IP) and the TTL's
return are the DNS cut-over's own plans and applies, handed in as `DnsOps`; the migration decides
when, and proves by name that resolvers follow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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
    resolve: Callable[[Params, str], tuple[str, ...]]  # through dns.nameserver (or the system's)
    by_hand: Callable[[Clients, Params, str], list[str]]  # the commands, when no managed zone
