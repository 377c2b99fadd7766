"""The whole Gateway topology build (gw10, gw20 and the wait) in one call, for scripts, benchmarks
and tests that need a running Gateway load balancer rather than the step-by-step runbook."""

from __future__ import annotations

from mtlskit.build import gateway, gateway_status
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core.errors import GatewayNotReady


def build(clients: Clients, params: Params, timeout: float = 300.0) -> gateway_status.GatewayState:
    """Apply gw10 and gw20 (each idempotent) and wait until the Gateway is Programmed with an address;
    raises `GatewayNotReady` with the Gateway's state when it is not within `timeout`."""
    gateway.apply_prerequisites(clients, params, gateway.plan_prerequisites(clients, params))
    gateway.apply_gateway(clients, params, gateway.plan_gateway(clients, params))
    state = gateway_status.wait_for_gateway(clients, params, timeout)
    if not state.ready:
        raise GatewayNotReady(
            f"Gateway {params.gateway_namespace}/{params.gateway.name} not ready after {timeout:.0f}s: "
            f"{state.summary()}"
        )
    return state
