"""The whole build (Ingress, trust, frontend) in one call, for scripts, benchmarks and tests that need
a running load balancer rather than the step-by-step runbook."""

from __future__ import annotations

from mtlskit.build import backend, frontend, k8s, trust
from mtlskit.build.backend import BackendService
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params


def build(clients: Clients, params: Params, timeout: float = 300.0) -> BackendService:
    """Apply every step in runbook order (each idempotent); returns the Ingress's backend service."""
    k8s.apply_ingress(clients, params, k8s.plan_ingress(clients, params))
    k8s.wait_for_backends(clients, params, timeout)
    trust.apply_trust(clients, params, trust.plan_trust(clients, params))
    bs = backend.locate_backend_service(clients, params)
    frontend.apply_frontend(clients, params, frontend.plan_frontend(clients, params, bs), bs)
    return bs
