"""Find the backend service the GKE Ingress controller made for our Service, and describe it.

The kit reads this resource and points its URL map at it, but never changes it: Kubernetes owns
it, and any edit made here would be overwritten on the controller's next sync.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from google.cloud import compute_v1

from mtlskit.build.k8s import BACKENDS_ANNOTATION, backends_annotation
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core.errors import BackendNotFound, IngressNotReady


@dataclass
class BackendService:
    name: str
    self_link: str
    scheme: str
    protocol: str
    service: str
    service_port: str
    health: str
    log_enable: bool
    log_sample_rate: float
    custom_request_headers: list[str]
    backends: list[str] = field(default_factory=list)
    fingerprint: str = ""

    def rows(self) -> list[dict[str, Any]]:
        return [{"field": k, "value": v} for k, v in self.__dict__.items()]


def locate_backend_service(clients: Clients, params: Params) -> BackendService:
    """The backend service for params' Service and port, among those the anchor Ingress names."""
    k = params.kubernetes
    health = backends_annotation(clients, params)
    if health is None:
        raise IngressNotReady(
            f"Ingress {k.namespace}/{k.ingress} has no {BACKENDS_ANNOTATION} annotation yet: the controller "
            "has not created the backend service (wait for it in notebook 10_ingress)"
        )
    wanted = (f"{k.namespace}/{k.service}", str(k.service_port))
    seen = []
    for name, state in health.items():
        bs = clients.find(clients.compute.backend_services.get, project=clients.project, backend_service=name)
        if bs is None:
            seen.append(f"{name} (named on the Ingress but missing in Compute)")
            continue
        found = describe(bs, state)
        if (found.service, found.service_port) == wanted:
            return found
        seen.append(f"{name} -> {found.service}:{found.service_port}")
    raise BackendNotFound(
        f"none of the backend services on Ingress {k.namespace}/{k.ingress} serves Service {wanted[0]} port "
        f"{wanted[1]} (found: {', '.join(seen) or 'none'}); check kubernetes.service and "
        "kubernetes.service_port in the params"
    )


def describe(bs: compute_v1.BackendService, health: str = "") -> BackendService:
    """The fields the runbook shows and checks, with the Service and port the controller made it for."""
    try:  # the controller records which Service port it made the backend service for
        desc = json.loads(bs.description or "{}")
    except ValueError:
        desc = {}
    if not isinstance(desc, dict):
        desc = {}
    return BackendService(
        name=bs.name,
        self_link=bs.self_link,
        scheme=bs.load_balancing_scheme,
        protocol=bs.protocol,
        service=desc.get("kubernetes.io/service-name", ""),
        service_port=desc.get("kubernetes.io/service-port", ""),
        health=health,
        log_enable=bool(bs.log_config.enable),
        log_sample_rate=float(bs.log_config.sample_rate) if bs.log_config.enable else 0.0,
        custom_request_headers=list(bs.custom_request_headers),
        backends=[b.group.rsplit("/", 3)[-3] + "/" + b.group.rsplit("/", 1)[-1] for b in bs.backends],
        fingerprint=bs.fingerprint,
    )
