"""backend: the Ingress's backend service is found by the Service and port the controller recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.cloud import compute_v1

from mtlskit.build import backend, k8s
from mtlskit.cloud.clients import Clients
from mtlskit.core.errors import BackendNotFound, IngressNotReady
from tests.test_frontend import own_stack


def _bs(description: str, **fields: object) -> compute_v1.BackendService:
    return compute_v1.BackendService(name="k8s1-x", description=description, **fields)


def test_describe_reads_service_port_logging_and_headers() -> None:
    desc = json.dumps({"kubernetes.io/service-name": "default/web", "kubernetes.io/service-port": "80"})
    found = backend.describe(
        _bs(
            desc,
            load_balancing_scheme="EXTERNAL",
            log_config=compute_v1.BackendServiceLogConfig(enable=True, sample_rate=0.5),
            custom_request_headers=["X-Client-Cert-Present:{client_cert_present}"],
            backends=[compute_v1.Backend(group="projects/p/zones/z1/networkEndpointGroups/neg-1")],
        ),
        "HEALTHY",
    )
    assert (found.service, found.service_port, found.scheme, found.health) == (
        "default/web",
        "80",
        "EXTERNAL",
        "HEALTHY",
    )
    assert (found.log_enable, found.log_sample_rate) == (True, 0.5)
    assert found.custom_request_headers == ["X-Client-Cert-Present:{client_cert_present}"]
    assert found.backends == ["z1/neg-1"]


@pytest.mark.parametrize("description", ["", "not json", '["list"]'])
def test_describe_tolerates_descriptions_the_controller_did_not_write(description: str) -> None:
    found = backend.describe(_bs(description))
    assert (found.service, found.service_port) == ("", "")


def test_sample_rate_is_zero_when_logging_is_off() -> None:
    off = _bs("", log_config=compute_v1.BackendServiceLogConfig(enable=False, sample_rate=1.0))
    assert backend.describe(off).log_sample_rate == 0.0


@pytest.mark.e2e
def test_locate_finds_the_controllers_backend_service(clients: Clients, state_dir: Path, unique: str) -> None:
    p = own_stack(state_dir, unique)
    with pytest.raises(IngressNotReady):
        backend.locate_backend_service(clients, p)
    k8s.apply_ingress(clients, p, k8s.plan_ingress(clients, p))
    k8s.wait_for_backends(clients, p, timeout=30)
    found = backend.locate_backend_service(clients, p)
    assert (found.service, found.service_port) == (
        f"default/{p.kubernetes.service}",
        str(p.kubernetes.service_port),
    )
    assert unique in p.kubernetes.service  # the stack's own Service, not the default one
    assert found.name.startswith("k8s1-")
    other_port = p.model_copy(update={"kubernetes": p.kubernetes.model_copy(update={"service_port": 8081})})
    with pytest.raises(BackendNotFound, match="kubernetes.service_port"):
        backend.locate_backend_service(clients, other_port)
