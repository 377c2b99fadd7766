"""The domains' A records as the migration sees them, and the calls that read, change and resolve them.

The cut-over is a record change (lowered TTL first, then the new IP) made through the DNS cut-over's
own build, handed in as `DnsOps`; the migration only decides when, and checks what resolvers answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params


@dataclass(frozen=True)
class Record:
    """One domain's A record in the managed zone."""

    ips: tuple[str, ...]
    ttl: int


@dataclass(frozen=True)
class DnsOps:
    """Record reads and changes in `dns.managed_zone`, and a lookup as clients make it."""

    read: Callable[[Clients, Params, str], Record | None]
    change: Callable[[Clients, Params, str, list[str], int], Any]  # domain, ips, ttl: wait until done
    resolve: Callable[[Params, str], tuple[str, ...]]  # through dns.nameserver (or the system's)
    by_hand: Callable[[Params, str, list[str], int], str]  # the command to make the change oneself
