"""Kubernetes API emulation, through the official kubernetes client and the sandbox's kubeconfig."""

from __future__ import annotations

import pytest
from kubernetes import client as k
from kubernetes.client.exceptions import ApiException

from mtlskit.cloud.clients import Clients


@pytest.fixture
def ns(clients: Clients, unique: str) -> str:
    clients.kube.core.create_namespace({"metadata": {"name": unique}})
    return unique


def test_create_get_list_and_conflicts(clients: Clients, ns: str) -> None:
    core = clients.kube.core
    svc = core.create_namespaced_service(
        ns,
        {
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    assert svc.metadata.uid and svc.metadata.resource_version and svc.metadata.creation_timestamp
    assert svc.kind == "Service" and svc.api_version == "v1" and svc.spec.cluster_ip
    with pytest.raises(ApiException) as info:
        core.create_namespaced_service(ns, {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}})
    assert info.value.status == 409 and "AlreadyExists" in info.value.body
    with pytest.raises(ApiException) as info:
        core.read_namespaced_service("absent", ns)
    assert info.value.status == 404 and '"reason": "NotFound"' in info.value.body.replace('":"', '": "')
    assert [s.metadata.name for s in core.list_namespaced_service(ns, label_selector="app=web").items] == [
        "web"
    ]
    with pytest.raises(ApiException) as info:
        core.create_namespaced_service("no-such-namespace", {"metadata": {"name": "x"}, "spec": {}})
    assert info.value.status == 404


def test_replace_checks_resource_version(clients: Clients, ns: str) -> None:
    net = clients.kube.networking
    body = {
        "metadata": {"name": "ing"},
        "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}},
    }
    ing = net.create_namespaced_ingress(ns, body)
    ing.metadata.annotations = {"kubernetes.io/ingress.class": "nginx"}
    updated = net.replace_namespaced_ingress("ing", ns, ing)
    assert int(updated.metadata.resource_version) > int(ing.metadata.resource_version)
    with pytest.raises(ApiException) as info:
        net.replace_namespaced_ingress("ing", ns, ing)  # stale resourceVersion
    assert info.value.status == 409 and "Conflict" in info.value.body


def test_patches_merge_and_null_removes(clients: Clients, ns: str) -> None:
    net = clients.kube.networking
    net.create_namespaced_ingress(
        ns,
        {
            "metadata": {"name": "ing", "annotations": {"a": "1", "b": "2"}},
            "spec": {"ingressClassName": "other"},
        },
    )
    patched = net.patch_namespaced_ingress("ing", ns, {"metadata": {"annotations": {"a": None, "c": "3"}}})
    assert patched.metadata.annotations == {"b": "2", "c": "3"}
    status = net.patch_namespaced_ingress_status(
        "ing", ns, {"status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}}
    )
    assert status.status.load_balancer.ingress[0].ip == "1.2.3.4"


def test_backendconfig_custom_object_create_returns_201_body(clients: Clients, ns: str) -> None:
    co = clients.kube.custom
    bc = {
        "apiVersion": "cloud.google.com/v1",
        "kind": "BackendConfig",
        "metadata": {"name": "bc"},
        "spec": {"logging": {"enable": True}},
    }
    created = co.create_namespaced_custom_object("cloud.google.com", "v1", ns, "backendconfigs", bc)
    assert created is not None and created["metadata"]["uid"]
    co.patch_namespaced_custom_object(
        "cloud.google.com", "v1", ns, "backendconfigs", "bc", {"spec": {"logging": {"sampleRate": 0.5}}}
    )
    got = co.get_namespaced_custom_object("cloud.google.com", "v1", ns, "backendconfigs", "bc")
    assert got["spec"]["logging"] == {"enable": True, "sampleRate": 0.5}
    co.delete_namespaced_custom_object("cloud.google.com", "v1", ns, "backendconfigs", "bc")
    with pytest.raises(ApiException):
        co.get_namespaced_custom_object("cloud.google.com", "v1", ns, "backendconfigs", "bc")


def test_delete_waits_for_finalizers(clients: Clients, ns: str) -> None:
    core = clients.kube.core
    core.create_namespaced_config_map(
        ns, k.V1ConfigMap(metadata=k.V1ObjectMeta(name="cm", finalizers=["x/y"]))
    )
    core.delete_namespaced_config_map("cm", ns)
    pending = core.read_namespaced_config_map("cm", ns)
    assert pending.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("cm", ns, {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as info:
        core.read_namespaced_config_map("cm", ns)
    assert info.value.status == 404


def test_chunked_request_body_is_read_whole(clients: Clients, ns: str) -> None:
    """kubectl streams `-f` files chunked; the body must arrive whole and the connection stay usable."""
    import http.client
    import json
    from urllib.parse import urlparse

    url = urlparse(clients.endpoint)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    body = json.dumps({"metadata": {"name": "chunked"}, "data": {"k": "v"}}).encode()
    conn.putrequest("POST", f"/api/v1/namespaces/{ns}/configmaps")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.putheader("Content-Type", "application/json")
    conn.endheaders()
    for piece in (body[:7], body[7:]):
        conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
    conn.send(b"0\r\n\r\n")
    created = conn.getresponse()
    assert created.status == 201 and json.loads(created.read())["data"] == {"k": "v"}
    conn.request("GET", f"/api/v1/namespaces/{ns}/configmaps/chunked")
    assert conn.getresponse().status == 200
    conn.close()


def test_namespace_status_is_the_namespace_not_a_kind_inside_it(clients: Clients, ns: str) -> None:
    """`namespaces/NAME/status` (advertised by discovery) names the Namespace's own status."""
    status = clients.kube.core.read_namespace_status(ns)
    assert status.metadata.name == ns and status.kind == "Namespace"
    with pytest.raises(ApiException) as err:
        clients.kube.core.read_namespace_status(f"{ns}-absent")
    assert err.value.status == 404
