"""A migration rehearsed on a sandbox of its own: params/sandbox.yaml's split stack built and published
in the sandbox's DNS zone, and params/sandbox-gateway.yaml as the migration's one params file.

The migration test and bench/migration.py start from exactly what a user runs (the committed params
files' names, the demo PKI), moved into a state directory of their own, with TTLs and a drain window
short enough to take seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtlskit.build import dns, frontend, stack
from mtlskit.cloud.clients import Clients, build_clients
from mtlskit.config import params as params_mod
from mtlskit.config import paths
from mtlskit.core.errors import PrerequisiteMissing
from mtlskit.migrate.state import split_ip
from mtlskit.rules.dns import SANDBOX_ZONE

# Seconds, so a whole migration takes well under a minute.
FAST = {
    "dns": {"managed_zone": SANDBOX_ZONE, "ttl_seconds": 2, "cutover_ttl_seconds": 1},
    "migration": {
        "drain_window_seconds": 2,
        "poll_seconds": 0.5,
        "watch_timeout_seconds": 30,
        "gateway_timeout_seconds": 30,
    },
}


@dataclass
class Rehearsal:
    split: params_mod.Params  # params/sandbox.yaml, moved
    params: params_mod.Params  # params/sandbox-gateway.yaml, moved: the migration's
    clients: Clients  # built from the migration's params
    old_ip: str


def moved(name: str, state_dir: Path, overrides: dict[str, dict[str, Any]]) -> params_mod.Params:
    """A committed sandbox params file in `state_dir`, applying, `overrides` merged per section."""
    data = params_mod.sandbox_default(state_dir, paths.repo_root() / "params" / name)
    data["apply"] = True
    for key, value in overrides.items():
        data[key] = {**data.get(key, {}), **value}
    return params_mod.parse(data, name)


def live_split_stack(state_dir: Path, **overrides: dict[str, Any]) -> Rehearsal:
    """Build the split stack, wait for its certificate, publish its IP for every domain; the
    migration's params get `FAST` and then `overrides` (e.g. gateway={"address": "named_address"})."""
    split = moved("sandbox.yaml", state_dir, {"sandbox": {"operation_delay_seconds": 0.05}})
    sections = {**FAST, **overrides, "sandbox": {"operation_delay_seconds": 0.05}}
    params = moved("sandbox-gateway.yaml", state_dir, sections)
    clients = build_clients(split)
    stack.build(clients, split)
    frontend.wait_for_certificate(clients, split, 30, poll_seconds=0.2)
    clients = build_clients(params)
    ip = split_ip(clients, params)
    if ip is None:
        raise PrerequisiteMissing(
            "the split stack built on the sandbox has no IP: no forwarding rule, no address"
        )
    dns.apply(clients, params, dns.plan_records(clients, params, ip))
    return Rehearsal(split, params, clients, ip)
