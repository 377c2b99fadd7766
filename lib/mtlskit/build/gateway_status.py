"""What the cluster made of the applied Gateway: the controller's conditions and address, the
listener conditions with their GEP-91 reasons, the policies' Attached, and the read-back of
`spec.tls.frontend` (a schema without it prunes the field silently and the load balancer comes up
without mTLS). Reads only; the wait is `core.poll`'s loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mtlskit.build import gateway, gateway_api
from mtlskit.build import gateway_kube as kube
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core.checks import Check, Status
from mtlskit.core.poll import poll
from mtlskit.rules import gateway as gw

# On GKE the controller programs the load balancer in minutes; Google says 10-15 for the first time.
GATEWAY_TIMEOUT_SECONDS = 1200.0
# The sandbox's controller answers within seconds; a wait that long there means it is not answering.
SANDBOX_GATEWAY_TIMEOUT_SECONDS = 120.0


def gateway_timeout(params: Params) -> float:
    return SANDBOX_GATEWAY_TIMEOUT_SECONDS if params.target == "sandbox" else GATEWAY_TIMEOUT_SECONDS


@dataclass(frozen=True)
class GatewayState:
    """One read of the Gateway: its top-level conditions, addresses and listeners."""

    exists: bool
    accepted: dict[str, Any] = field(default_factory=dict)
    programmed: dict[str, Any] = field(default_factory=dict)
    addresses: list[str] = field(default_factory=list)
    listeners: list[dict[str, Any]] = field(default_factory=list)
    frontend: dict[str, Any] | None = None  # spec.tls.frontend as stored
    conditions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return (
            self.accepted.get("status") == "True"
            and self.programmed.get("status") == "True"
            and bool(self.addresses)
        )

    def summary(self) -> str:
        if not self.exists:
            return "no Gateway"
        parts = [
            f"{c}={(getattr(self, c.lower()) or {}).get('status', '?')}" for c in ("Accepted", "Programmed")
        ]
        return ", ".join([*parts, f"address {', '.join(self.addresses) or 'none yet'}"])


def state_of(obj: dict[str, Any] | None) -> GatewayState:
    if obj is None:
        return GatewayState(False)
    status = obj.get("status") or {}
    return GatewayState(
        True,
        accepted=gateway_api.condition(obj, "Accepted"),
        programmed=gateway_api.condition(obj, "Programmed"),
        addresses=[str(a.get("value")) for a in status.get("addresses") or [] if a.get("value")],
        listeners=list(status.get("listeners") or []),
        frontend=((obj.get("spec") or {}).get("tls") or {}).get("frontend"),
        conditions=list(status.get("conditions") or []),
    )


def read_state(clients: Clients, params: Params) -> GatewayState:
    return state_of(gateway.read_object(clients, params, "Gateway"))


def wait_for_gateway(
    clients: Clients,
    params: Params,
    timeout: float,
    on_progress: Callable[[GatewayState, float], None] | None = None,
) -> GatewayState:
    """Read the Gateway until Accepted and Programmed are True and it has an address, or time is up;
    returns the last read either way (the checks say what is missing). A Gateway that is not there
    is not waited for."""
    return poll(
        lambda: read_state(clients, params),
        lambda s: s.ready or not s.exists,
        timeout,
        every=0.2,
        growth=1.5,
        longest=10.0,
        on_read=on_progress,
    ).value


def listener_rows(state: GatewayState) -> list[dict[str, str]]:
    """One row per listener condition, as the controller wrote it (GEP-91 reasons included)."""
    rows = []
    for listener in state.listeners:
        for c in listener.get("conditions") or []:
            rows.append(
                {
                    "listener": str(listener.get("name", "")),
                    "condition": str(c.get("type", "")),
                    "status": str(c.get("status", "")),
                    "reason": str(c.get("reason", "")),
                    "message": str(c.get("message", "")),
                }
            )
    for c in state.conditions:
        rows.append(
            {
                "listener": "(Gateway)",
                "condition": str(c.get("type", "")),
                "status": str(c.get("status", "")),
                "reason": str(c.get("reason", "")),
                "message": str(c.get("message", "")),
            }
        )
    return rows


def _condition_check(name: str, cond: dict[str, Any], what: str, unreported: Status = "fail") -> Check:
    """A condition that must be True; `unreported` is the status while the controller has not set it."""
    if cond.get("status") == "True":
        return Check(name, "pass", f"True ({cond.get('reason', '')})")
    if not cond:
        return Check(name, unreported, "not reported by the controller yet", what)
    shown = f"{cond.get('status', 'not set')} {cond.get('reason', '')}: {cond.get('message', '')}".strip(": ")
    return Check(name, "fail", shown, what)


def gateway_checks(clients: Clients, params: Params, state: GatewayState) -> list[Check]:
    """The Gateway after the wait: conditions, address, listeners (GEP-91 reasons named), the
    read-back of spec.tls.frontend, and each policy's Attached condition."""
    g = params.gateway
    where = f"kubectl describe gateway {g.name} -n {params.gateway_namespace}"
    if not state.exists:
        return [
            Check(
                "Gateway exists",
                "fail",
                f"no Gateway {params.gateway_namespace}/{g.name}",
                "run gw20_gateway with apply=True",
            )
        ]
    checks = [readback_check(params, state.frontend)]
    checks.append(
        _condition_check("Gateway Accepted", state.accepted, f"read the conditions and events: {where}")
    )
    checks.append(
        _condition_check("Gateway Programmed", state.programmed, f"read the conditions and events: {where}")
    )
    checks.append(
        Check("Gateway address", "pass", ", ".join(state.addresses))
        if state.addresses
        else Check(
            "Gateway address", "fail", "status.addresses is empty", f"wait longer or read the events: {where}"
        )
    )
    checks.append(listener_check(state, where))
    insecure = [
        c
        for c in state.conditions
        if c.get("type") == gw.INSECURE_MODE_CONDITION and c.get("status") == "True"
    ]
    if insecure:
        checks.append(
            Check(
                "frontend validation mode",
                "warn",
                f"{gw.INSECURE_MODE_CONDITION}=True: clients without a valid certificate are let through",
                f"set mtls.validation_mode: REJECT_INVALID ({gw.ALLOW_VALID_ONLY})",
            )
        )
    checks += policy_checks(clients, params)
    return checks


def readback_check(params: Params, stored: dict[str, Any] | None) -> Check:
    """spec.tls.frontend as the server stored it equals what the kit applied."""
    want = gateway.gateway_manifest(params)["spec"]["tls"]["frontend"]
    if stored is None:
        return Check(
            "spec.tls.frontend read back",
            "fail",
            "the stored Gateway has no spec.tls.frontend: the server pruned it (its Gateway schema is older "
            "than the v1.5 standard CRDs), so the load balancer validates no client certificate",
            gateway_api.upgrade_fix(params),
        )
    diff = kube.differences(want, stored)
    if diff:
        return Check(
            "spec.tls.frontend read back",
            "fail",
            f"stored differently from what was applied at {', '.join(diff)}: {stored}",
            "re-run gw20_gateway with apply=True; if it persists, another manager changes it (kubectl get "
            "gateway -o yaml --show-managed-fields)",
        )
    validation = want["default"]["validation"]
    refs = ", ".join(r["name"] for r in validation["caCertificateRefs"])
    return Check("spec.tls.frontend read back", "pass", f"{validation['mode']} with ConfigMap {refs}")


def listener_check(state: GatewayState, where: str) -> Check:
    bad = []
    for listener in state.listeners:
        for c in listener.get("conditions") or []:
            wrong = c.get("status") != ("False" if c.get("type") == "Conflicted" else "True")
            if wrong and c.get("type") in ("Accepted", "Programmed", "ResolvedRefs", "Conflicted"):
                bad.append(f"{listener.get('name')}: {c.get('type')}={c.get('status')} {c.get('reason', '')}")
    if not state.listeners:
        return Check("Gateway listeners", "fail", "no listener status yet", f"read the events: {where}")
    if bad:
        ca = any(r in b for b in bad for r in (*gw.INVALID_CA_REASONS, gw.NO_VALID_CA))
        fix = (
            f"the CA reference is wrong: the ConfigMap {gw.CA_KEY} key must exist in the Gateway's namespace "
            "(run gw10_gateway_prereqs with apply=True)"
            if ca
            else f"read the listener conditions: {where}"
        )
        return Check("Gateway listeners", "fail", "; ".join(bad), fix)
    names = ", ".join(str(x.get("name")) for x in state.listeners)
    return Check("Gateway listeners", "pass", f"{names}: Accepted, Programmed, ResolvedRefs")


def policy_checks(clients: Clients, params: Params) -> list[Check]:
    """Each GKE policy (and the HTTPRoute) as its controller reports it."""
    out = []
    for kind in ("GCPGatewayPolicy", "GCPBackendPolicy", "HealthCheckPolicy"):
        obj = gateway.read_object(clients, params, kind)
        name = gateway.manifests(params)[kind]["metadata"]["name"]
        if obj is None:
            out.append(
                Check(
                    f"policy {kind} attached",
                    "fail",
                    f"{name} does not exist",
                    "run gw20_gateway with apply=True",
                )
            )
            continue
        cond = gateway_api.condition(obj, "Attached")
        out.append(
            _condition_check(
                f"policy {kind} attached", cond, f"kubectl describe {kind.lower()} {name}", "warn"
            )
        )
    route = gateway.read_object(clients, params, "HTTPRoute")
    parents = ((route or {}).get("status") or {}).get("parents") or []
    accepted = [c for p in parents for c in p.get("conditions") or [] if c.get("type") == "Accepted"]
    name = params.gateway.http_route
    if route is None:
        out.append(
            Check("HTTPRoute accepted", "fail", f"{name} does not exist", "run gw20_gateway with apply=True")
        )
    else:
        out.append(
            _condition_check(
                "HTTPRoute accepted", accepted[0] if accepted else {}, f"kubectl describe httproute {name}"
            )
        )
    return out
