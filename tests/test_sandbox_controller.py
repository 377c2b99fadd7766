"""The simulated GKE Ingress controller, observed only through the kubernetes and compute clients."""

from __future__ import annotations

import hashlib
import json

import pytest
from google.api_core import exceptions as gexc
from google.cloud import compute_v1
from kubernetes.client.exceptions import ApiException

from mtlskit.build import backend, k8s
from mtlskit.cloud.clients import Clients
from mtlskit.cloud.operations import wait
from mtlskit.config.params import Params
from tests.conftest import PROJECT, sandbox_params


def expected_neg_name(uid: str, namespace: str, service: str, port: int) -> str:
    """ingress-gce's NEG naming, written out again here independently of the sandbox."""
    fields = [namespace, service, str(port)]
    total = sum(map(len, fields))
    if total > 38:
        excess = total - 38
        lengths = [len(f) - len(f) * excess // total - 1 for f in fields]
        for i in range(38 - sum(lengths)):
            lengths[i] += 1
        fields = [f[:n] for f, n in zip(fields, lengths, strict=True)]
    digest = hashlib.sha256(f"{uid[:8]};{namespace};{service};{port}".encode()).hexdigest()[:8]
    return f"k8s1-{uid[:8]}-{fields[0]}-{fields[1]}-{fields[2]}-{digest}"


def cluster_uid(clients: Clients) -> str:
    return clients.kube.core.read_namespaced_config_map("ingress-uid", "kube-system").data["uid"]


def setup_ingress(clients: Clients, params: Params) -> dict[str, str]:
    k8s.apply_ingress(clients, params, k8s.plan_ingress(clients, params))
    return k8s.wait_for_backends(clients, params, timeout=10)


@pytest.fixture
def env(state_dir, unique: str) -> Params:
    return sandbox_params(state_dir, kubernetes={"namespace": unique, "service": "web", "service_port": 8080})


@pytest.mark.parametrize(
    ("namespace", "service", "port"),
    [
        ("short", "web", 80),
        ("a-rather-long-namespace-name-for-tests", "an-even-longer-service-name-for-trimming", 31337),
    ],
)
def test_backend_service_is_named_like_ingress_gce(
    clients: Clients, state_dir, unique: str, namespace: str, service: str, port: int
) -> None:
    ns = f"{namespace[:50]}-{unique}"
    params = sandbox_params(state_dir, kubernetes={"namespace": ns, "service": service, "service_port": port})
    backends = setup_ingress(clients, params)
    expected = expected_neg_name(cluster_uid(clients), ns, service, port)
    assert list(backends) == [expected] and len(expected) <= 63
    bs = clients.compute.backend_services.get(project=PROJECT, backend_service=expected)
    assert bs.load_balancing_scheme == "EXTERNAL"
    assert bs.health_checks[0].endswith(f"/healthChecks/{expected}")
    assert bs.backends[0].group.endswith(f"/networkEndpointGroups/{expected}")
    located = backend.locate_backend_service(clients, params)
    assert located.name == expected and located.service == f"{ns}/{service}"


def test_backendconfig_is_applied_and_wins_over_out_of_band_edits(clients: Clients, env: Params) -> None:
    setup_ingress(clients, env)
    bs = backend.locate_backend_service(clients, env)
    assert bs.log_enable and bs.log_sample_rate == 1.0
    assert bs.custom_request_headers == list(env.mtls.custom_headers)
    # someone edits the backend service by hand...
    wait(
        clients,
        clients.compute.backend_services.patch(
            project=PROJECT,
            backend_service=bs.name,
            backend_service_resource=compute_v1.BackendService(
                fingerprint=bs.fingerprint, custom_request_headers=["X-Hand-Edit:1"]
            ),
        ),
        "hand edit",
    )
    assert backend.locate_backend_service(clients, env).custom_request_headers == ["X-Hand-Edit:1"]
    # ...and the next sync (any change to the BackendConfig) replaces the whole list again
    clients.kube.custom.patch_namespaced_custom_object(
        "cloud.google.com",
        "v1",
        env.kubernetes.namespace,
        "backendconfigs",
        env.kubernetes.backend_config,
        {"spec": {"logging": {"enable": False}}},
    )
    after = backend.locate_backend_service(clients, env)
    assert after.custom_request_headers == list(env.mtls.custom_headers)
    assert not after.log_enable


def test_anchor_exposes_no_frontend_but_a_plain_ingress_does(clients: Clients, env: Params) -> None:
    setup_ingress(clients, env)
    ns = env.kubernetes.namespace
    anchor = clients.kube.networking.read_namespaced_ingress(env.kubernetes.ingress, ns)
    assert not any(a.startswith("ingress.kubernetes.io/url-map") for a in anchor.metadata.annotations)
    assert not anchor.status.load_balancer.ingress
    plain = {
        "metadata": {"name": "plain", "annotations": {"kubernetes.io/ingress.class": "gce"}},
        "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 8080}}}},
    }
    clients.kube.networking.create_namespaced_ingress(ns, plain)
    got = clients.kube.networking.read_namespaced_ingress("plain", ns)
    ann = got.metadata.annotations
    fr = clients.compute.forwarding_rules.get(
        project=PROJECT, forwarding_rule=ann["ingress.kubernetes.io/forwarding-rule"]
    )
    assert fr.port_range.startswith("80") and fr.load_balancing_scheme == "EXTERNAL"
    assert got.status.load_balancer.ingress[0].ip == fr.I_p_address
    um = clients.compute.url_maps.get(project=PROJECT, url_map=ann["ingress.kubernetes.io/url-map"])
    assert um.default_service.endswith(json.loads(ann["ingress.kubernetes.io/backends"]).popitem()[0])
    # deleting it removes its frontend but keeps the backend service the anchor still uses
    clients.kube.networking.delete_namespaced_ingress("plain", ns)
    with pytest.raises(gexc.NotFound):
        clients.compute.forwarding_rules.get(
            project=PROJECT, forwarding_rule=ann["ingress.kubernetes.io/forwarding-rule"]
        )
    assert backend.locate_backend_service(clients, env).name


def test_deleting_the_only_ingress_garbage_collects_its_backend_service(
    clients: Clients, env: Params
) -> None:
    name = next(iter(setup_ingress(clients, env)))
    clients.kube.networking.delete_namespaced_ingress(env.kubernetes.ingress, env.kubernetes.namespace)
    with pytest.raises(gexc.NotFound):
        clients.compute.backend_services.get(project=PROJECT, backend_service=name)
    with pytest.raises(gexc.NotFound):
        clients.compute.health_checks.get(project=PROJECT, health_check=name)
    events = [e.reason for e in clients.kube.core.list_namespaced_event(env.kubernetes.namespace).items]
    assert "GarbageCollection" in events


def test_deleting_the_anchor_under_a_live_url_map_orphans_the_backend_service(
    clients: Clients, env: Params, unique: str
) -> None:
    name = next(iter(setup_ingress(clients, env)))
    wait(
        clients,
        clients.compute.url_maps.insert(
            project=PROJECT,
            url_map_resource=compute_v1.UrlMap(
                name=f"{unique}-kit-um", default_service=f"global/backendServices/{name}"
            ),
        ),
        "kit url map",
    )
    ns = env.kubernetes.namespace
    clients.kube.networking.delete_namespaced_ingress(env.kubernetes.ingress, ns)
    with pytest.raises(ApiException) as gone:
        clients.kube.networking.read_namespaced_ingress(env.kubernetes.ingress, ns)
    assert gone.value.status == 404
    kept = clients.compute.backend_services.get(project=PROJECT, backend_service=name)  # GC failed: in use
    warnings = [e.message for e in clients.kube.core.list_namespaced_event(ns).items if e.type == "Warning"]
    assert any("already being used" in m and name in m for m in warnings)
    # ...and Kubernetes changes no longer reach it
    clients.kube.custom.patch_namespaced_custom_object(
        "cloud.google.com",
        "v1",
        ns,
        "backendconfigs",
        env.kubernetes.backend_config,
        {"spec": {"customRequestHeaders": {"headers": ["X-New:1"]}}},
    )
    assert (
        clients.compute.backend_services.get(project=PROJECT, backend_service=name).custom_request_headers
        == kept.custom_request_headers
    )


def test_missing_service_is_reported_as_an_event(clients: Clients, env: Params) -> None:
    ns = env.kubernetes.namespace
    clients.kube.core.create_namespace({"metadata": {"name": ns}})
    ing = k8s.manifests(env)["Ingress"]
    clients.kube.networking.create_namespaced_ingress(ns, ing)
    events = clients.kube.core.list_namespaced_event(ns).items
    assert any(e.type == "Warning" and "not found" in e.message for e in events)
    with pytest.raises(k8s.IngressNotReady, match="has not written"):
        k8s.wait_for_backends(clients, env, timeout=0.5)


def test_closing_the_anchor_frontend_clears_its_address_from_status(clients: Clients, env: Params) -> None:
    import time

    setup_ingress(clients, env)
    k = env.kubernetes
    ing = clients.kube.networking

    def address() -> object:
        lb = ing.read_namespaced_ingress(k.ingress, k.namespace).status.load_balancer
        return lb.ingress if lb else None

    def wait_for(predicate: object) -> object:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            value = address()
            if predicate(value):  # type: ignore[operator]
                return value
            time.sleep(0.1)
        return address()

    ing.patch_namespaced_ingress(
        k.ingress, k.namespace, {"metadata": {"annotations": {"kubernetes.io/ingress.allow-http": "true"}}}
    )
    assert wait_for(bool), "an anchor serving HTTP has an address"
    ing.patch_namespaced_ingress(
        k.ingress, k.namespace, {"metadata": {"annotations": {"kubernetes.io/ingress.allow-http": "false"}}}
    )
    assert not wait_for(lambda v: not v), "the closed anchor still shows an address"
