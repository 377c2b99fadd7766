"""Cloud DNS's rules for names and record sets, shared by the kit's cut-over and the sandbox's stand-in.

Cloud DNS writes every name fully qualified (a trailing dot) and keeps one record set per name and
type; a change's deletions must match a record set exactly. Both sides also need the sandbox's own
zone: the sandbox seeds it in every project it serves, and `params/sandbox*.yaml` name it, so the
sandbox's domains (`*.mtlskit.test`) can be published and cut over like a real project's.
"""

from __future__ import annotations

import ipaddress
from typing import Any

SANDBOX_ZONE = "mtlskit-test"
SANDBOX_DNS_NAME = "mtlskit.test."
# The record types a change may carry (Cloud DNS's list, less the DNSSEC and routing-only ones).
RECORD_TYPES = ("A", "AAAA", "CAA", "CNAME", "MX", "NS", "PTR", "SOA", "SPF", "SRV", "TXT")


def fqdn(name: str) -> str:
    """`api.example.com` as Cloud DNS spells it: lower case, with the trailing dot."""
    return name.lower().rstrip(".") + "."


def in_zone(name: str, dns_name: str) -> bool:
    """True when `name` is the zone's apex or below it (label-wise: `xexample.com.` is not in
    `example.com.`)."""
    name, dns_name = fqdn(name), fqdn(dns_name)
    return name == dns_name or name.endswith("." + dns_name)


def nameserver_address(value: str) -> tuple[str, int]:
    """`ip[:port]` (an IPv6 address without a port) as (ip, port); ValueError naming the form."""
    host, _, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"{value!r} must be an IP address with an optional :port (e.g. 8.8.8.8 or 127.0.0.1:5353)"
        ) from None
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"{value!r}: the port must be 1-65535")
    return host, int(port) if port else 53


def record_key(rrset: dict[str, Any]) -> tuple[str, str]:
    """A record set's identity in its zone: (name, type)."""
    return fqdn(str(rrset.get("name", ""))), str(rrset.get("type", ""))


def same_record_set(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Cloud DNS's test for a deletion: the same name, type, TTL and data (data in any order)."""
    return (
        record_key(a) == record_key(b)
        and int(a.get("ttl") or 0) == int(b.get("ttl") or 0)
        and sorted(a.get("rrdatas") or []) == sorted(b.get("rrdatas") or [])
    )
