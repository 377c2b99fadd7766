"""What exists now, on both sides, and which phase that means.

A migration runbook must survive being stopped anywhere and run again: it never records its progress
anywhere but in the world itself. The Gateway exists and is programmed, the records point at its IP,
the split frontend's forwarding rule is gone: each fact ends a phase, so a re-run starts at the first
phase whose result is missing, and no change is made twice. Gates that only read (the probes on the
new IP) are judged again before the phase they guard.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mtlskit.build import frontend, k8s, teardown
from mtlskit.build.frontend import KINDS
from mtlskit.build.plan import Change
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.migrate.dns_side import DnsOps, Record, dns_ops
from mtlskit.migrate.gateway_side import GatewayOps, GatewayView, gateway_ops

# new_ip: side by side, clients move by DNS; named_address: the Gateway takes the kit's address, so
# the kit's forwarding rule must go first (one IP cannot serve two load balancers on :443).
PHASES = {
    "new_ip": ("build", "verify", "cutover", "drain", "retire"),
    "named_address": ("switch", "verify", "retire"),
}
DONE = "done"


@dataclass(frozen=True)
class Ops:
    """The calls the migration makes on each side."""

    gateway: GatewayOps
    dns: DnsOps


@dataclass
class MigrationState:
    """Both frontends and the records, as read now."""

    strategy: str
    split_rule: bool  # the split frontend's forwarding rule exists
    split_ip: str | None  # the IP clients reach the split frontend on
    retire: list[Change]  # the split side's resources still to remove, in order
    gateway: GatewayView
    records: dict[str, Record | None] = field(default_factory=dict)

    def records_at(self, ip: str | None) -> bool:
        """Every domain's A record holds exactly `ip`."""
        return bool(ip) and all(r is not None and r.ips == (ip,) for r in self.records.values())

    @property
    def split_left(self) -> list[str]:
        return [f"{c.kind} {c.name}" for c in self.retire]


def kept_kinds(params: Params) -> set[str]:
    """Split resources the Gateway goes on using, so retirement keeps them: the Gateway topology's own
    Compute resources (the SSL policy its GCPGatewayPolicy names, the managed certificate when the
    listener takes it pre-shared, the address when the Gateway took it over)."""
    return set(frontend.gateway_kinds(params))


def retirement_plan(clients: Clients, params: Params) -> list[Change]:
    """The split frontend's resources that still exist and go, in teardown order (forwarding rule
    first), then the anchor Ingress and its BackendConfig last. Someone else's resources are kept
    (teardown's ownership rule) and are not listed as left to do."""
    rows = teardown.plan_teardown(clients, params, delete_anchor=True)
    kept = kept_kinds(params)
    out = [c for c in rows if c.action == "delete" and c.kind not in kept]
    bc = k8s.read(clients, "BackendConfig", params)
    if bc is not None and teardown.ownership.owns_kube(bc["metadata"].get("labels"), params.stack):
        command = (
            f"kubectl delete backendconfig {params.kubernetes.backend_config} {k8s.kubectl_target(params)}"
        )
        out.append(Change("BackendConfig", params.kubernetes.backend_config, "delete", [], command))
    return out


def split_ip(clients: Clients, params: Params) -> str | None:
    """The split frontend's IP: its forwarding rule's, else its reserved address's."""
    fr = KINDS["ForwardingRule"].get(clients, params.frontend.forwarding_rule)
    if fr is not None:
        return str(fr.I_p_address)
    address = KINDS["Address"].get(clients, params.frontend.address)
    return str(address.address) if address is not None else None


def read_state(clients: Clients, params: Params, ops: Ops) -> MigrationState:
    records = {} if params.dns.managed_zone is None else ops.dns.records(clients, params)
    return MigrationState(
        strategy=params.gateway.address,
        split_rule=KINDS["ForwardingRule"].get(clients, params.frontend.forwarding_rule) is not None,
        split_ip=split_ip(clients, params),
        retire=retirement_plan(clients, params),
        gateway=ops.gateway.read(clients, params),
        records=records,
    )


def next_phase(params: Params, state: MigrationState, passed: set[str] = frozenset()) -> str:  # type: ignore[assignment]
    """The first phase whose result is missing. `passed` holds the read-only gates already passed
    in this run (verify), which the world does not record."""
    gw_ready = state.gateway.ready
    if state.strategy == "named_address":
        if not gw_ready:
            return "switch"
        if state.split_left or _ttl_to_restore(params, state):
            return "retire" if "verify" in passed else "verify"
        return DONE
    if state.split_rule:
        if not gw_ready:
            return "build"
        if not state.records_at(state.gateway.ip):
            return "cutover" if "verify" in passed else "verify"
        return "drain" if "drain" not in passed else "retire"
    if state.split_left or _ttl_to_restore(params, state):
        return "retire"
    return DONE


def _ttl_to_restore(params: Params, state: MigrationState) -> bool:
    return any(r is not None and r.ttl != params.dns.ttl_seconds for r in state.records.values())


def kit_ops() -> Ops:
    """The kit's own Gateway build and DNS cut-over, as a migration uses them."""
    return Ops(gateway_ops(), dns_ops())
