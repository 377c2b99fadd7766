"""Compute emulation, driven only through google-cloud-compute."""

from __future__ import annotations

import base64
import math
import time
import uuid
from typing import Any

import pytest
import requests
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

from mtlskit.cloud.clients import Clients
from mtlskit.cloud.operations import wait
from mtlskit.core.errors import OperationFailed
from mtlskit.pki import certs
from tests.conftest import PROJECT, sandbox_call

P = PROJECT


def _backend(clients: Clients, name: str) -> str:
    op = clients.compute.backend_services.insert(
        project=P,
        backend_service_resource=compute_v1.BackendService(name=name, load_balancing_scheme="EXTERNAL"),
    )
    wait(clients, op, f"create {name}")
    return clients.compute.backend_services.get(project=P, backend_service=name).self_link


def _self_managed_cert(clients: Clients, name: str) -> str:
    leaf = certs.issue("api.mtlskit.test", dns_names=["api.mtlskit.test"])
    from cryptography.hazmat.primitives import serialization

    key = leaf.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    op = clients.compute.ssl_certificates.insert(
        project=P,
        ssl_certificate_resource=compute_v1.SslCertificate(
            name=name, certificate=certs.pem(leaf.cert), private_key=key
        ),
    )
    wait(clients, op, name)
    return clients.compute.ssl_certificates.get(project=P, ssl_certificate=name).self_link


def _backend_and_url_map(clients: Clients, prefix: str) -> str:
    """Backend service <prefix>-bs and URL map <prefix>-um pointing at it; returns the backend link."""
    bs = _backend(clients, f"{prefix}-bs")
    op = clients.compute.url_maps.insert(
        project=P, url_map_resource=compute_v1.UrlMap(name=f"{prefix}-um", default_service=bs)
    )
    wait(clients, op, f"create {prefix}-um")
    return bs


def https_chain(clients: Clients, prefix: str) -> str:
    """Backend service <- URL map <- target HTTPS proxy, named <prefix>-bs/-um/-px; returns the backend link."""
    bs = _backend_and_url_map(clients, prefix)
    cert = _self_managed_cert(clients, f"{prefix}-cert")
    wait(
        clients,
        clients.compute.target_https_proxies.insert(
            project=P,
            target_https_proxy_resource=compute_v1.TargetHttpsProxy(
                name=f"{prefix}-px", url_map=f"global/urlMaps/{prefix}-um", ssl_certificates=[cert]
            ),
        ),
        "px",
    )
    return bs


def test_operations_go_pending_to_done_and_wait_returns_done(clients: Clients, unique: str) -> None:
    op = clients.compute.addresses.insert(project=P, address_resource=compute_v1.Address(name=unique))
    first = clients.compute.operations.get(project=P, operation=op.name)
    assert first.status in (compute_v1.Operation.Status.PENDING, compute_v1.Operation.Status.RUNNING)
    done = clients.compute.operations.wait(project=P, operation=op.name)
    assert done.status == compute_v1.Operation.Status.DONE
    # the default poller is redirected to the sandbox too, so result() works offline
    op2 = clients.compute.addresses.delete(project=P, address=unique)
    assert op2.result(timeout=30) is None


def test_address_gets_a_loopback_ip_and_lists_and_deletes(clients: Clients, unique: str) -> None:
    wait(
        clients,
        clients.compute.addresses.insert(project=P, address_resource=compute_v1.Address(name=unique)),
        "addr",
    )
    addr = clients.compute.addresses.get(project=P, address=unique)
    assert addr.address.startswith("127.") and addr.status == "RESERVED"
    assert unique in [a.name for a in clients.compute.addresses.list(project=P)]
    wait(clients, clients.compute.addresses.delete(project=P, address=unique), "del")
    with pytest.raises(gexc.NotFound):
        clients.compute.addresses.get(project=P, address=unique)


def test_creating_an_existing_name_is_a_conflict(clients: Clients, unique: str) -> None:
    res = compute_v1.SslPolicy(name=unique, profile="MODERN", min_tls_version="TLS_1_2")
    wait(clients, clients.compute.ssl_policies.insert(project=P, ssl_policy_resource=res), "pol")
    with pytest.raises(gexc.Conflict, match="already exists"):
        clients.compute.ssl_policies.insert(project=P, ssl_policy_resource=res)


def test_managed_certificate_moves_from_provisioning_to_active(clients: Clients, unique: str) -> None:
    res = compute_v1.SslCertificate(
        name=unique,
        type_="MANAGED",
        managed=compute_v1.SslCertificateManagedSslCertificate(domains=["a.mtlskit.test"]),
    )
    wait(clients, clients.compute.ssl_certificates.insert(project=P, ssl_certificate_resource=res), "c")
    assert (
        clients.compute.ssl_certificates.get(project=P, ssl_certificate=unique).managed.status
        == "PROVISIONING"
    )
    time.sleep(1.1)
    cert = clients.compute.ssl_certificates.get(project=P, ssl_certificate=unique)
    assert cert.managed.status == "ACTIVE"
    assert cert.managed.domain_status["a.mtlskit.test"] == "ACTIVE"


def test_self_managed_certificate_never_returns_its_private_key(clients: Clients, unique: str) -> None:
    _self_managed_cert(clients, unique)
    cert = clients.compute.ssl_certificates.get(project=P, ssl_certificate=unique)
    assert cert.type_ == "SELF_MANAGED" and not cert.private_key
    assert cert.subject_alternative_names == ["api.mtlskit.test"] and cert.expire_time


def test_self_managed_certificate_with_someone_elses_key_is_refused(clients: Clients, unique: str) -> None:
    from cryptography.hazmat.primitives import serialization

    leaf = certs.issue("api.mtlskit.test", dns_names=["api.mtlskit.test"])
    other = certs.new_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(gexc.BadRequest, match="does not match the certificate"):
        clients.compute.ssl_certificates.insert(
            project=P,
            ssl_certificate_resource=compute_v1.SslCertificate(
                name=unique, certificate=certs.pem(leaf.cert), private_key=other.decode()
            ),
        )
    with pytest.raises(gexc.NotFound):
        clients.compute.ssl_certificates.get(project=P, ssl_certificate=unique)


def test_url_map_with_missing_backend_service_is_refused(clients: Clients, unique: str) -> None:
    with pytest.raises(gexc.BadRequest, match="was not found"):
        clients.compute.url_maps.insert(
            project=P,
            url_map_resource=compute_v1.UrlMap(
                name=unique, default_service=f"projects/{P}/global/backendServices/nope-{unique}"
            ),
        )


def test_proxy_patch_needs_current_fingerprint_and_setters_work(clients: Clients, unique: str) -> None:
    bs = https_chain(clients, unique)
    wait(
        clients,
        clients.compute.ssl_policies.insert(
            project=P,
            ssl_policy_resource=compute_v1.SslPolicy(
                name=f"{unique}-pol", profile="MODERN", min_tls_version="TLS_1_2"
            ),
        ),
        "pol",
    )
    wait(
        clients,
        clients.compute.target_https_proxies.set_ssl_policy(
            project=P,
            target_https_proxy=f"{unique}-px",
            ssl_policy_reference_resource=compute_v1.SslPolicyReference(
                ssl_policy=f"global/sslPolicies/{unique}-pol"
            ),
        ),
        "setSslPolicy",
    )
    proxy = clients.compute.target_https_proxies.get(project=P, target_https_proxy=f"{unique}-px")
    assert proxy.ssl_policy.endswith(f"/sslPolicies/{unique}-pol")
    stale = proxy.fingerprint
    wait(
        clients,
        clients.compute.target_https_proxies.patch(
            project=P,
            target_https_proxy=f"{unique}-px",
            target_https_proxy_resource=compute_v1.TargetHttpsProxy(fingerprint=stale, description="v2"),
        ),
        "patch",
    )
    with pytest.raises(gexc.PreconditionFailed):
        clients.compute.target_https_proxies.patch(
            project=P,
            target_https_proxy=f"{unique}-px",
            target_https_proxy_resource=compute_v1.TargetHttpsProxy(fingerprint=stale, description="v3"),
        )
    assert (
        clients.compute.target_https_proxies.get(project=P, target_https_proxy=f"{unique}-px").description
        == "v2"
    )
    # setUrlMap lives outside /global/ in the v1 API
    wait(
        clients,
        clients.compute.url_maps.insert(
            project=P, url_map_resource=compute_v1.UrlMap(name=f"{unique}-um2", default_service=bs)
        ),
        "um2",
    )
    wait(
        clients,
        clients.compute.target_https_proxies.set_url_map(
            project=P,
            target_https_proxy=f"{unique}-px",
            url_map_reference_resource=compute_v1.UrlMapReference(url_map=f"global/urlMaps/{unique}-um2"),
        ),
        "setUrlMap",
    )
    assert clients.compute.target_https_proxies.get(
        project=P, target_https_proxy=f"{unique}-px"
    ).url_map.endswith(f"{unique}-um2")


def test_forwarding_rule_scheme_must_match_backend_service(clients: Clients, unique: str) -> None:
    https_chain(clients, unique)  # its backend service is EXTERNAL, like one made by a GKE Ingress
    rule = compute_v1.ForwardingRule(
        name=f"{unique}-fr",
        target=f"global/targetHttpsProxies/{unique}-px",
        port_range="443",
        load_balancing_scheme="EXTERNAL_MANAGED",
    )
    with pytest.raises(gexc.BadRequest, match="must match the backend service"):
        clients.compute.forwarding_rules.insert(project=P, forwarding_rule_resource=rule)
    rule.load_balancing_scheme = "EXTERNAL"
    wait(clients, clients.compute.forwarding_rules.insert(project=P, forwarding_rule_resource=rule), "fr")
    assert clients.compute.forwarding_rules.get(
        project=P, forwarding_rule=f"{unique}-fr"
    ).I_p_address.startswith("127.")


def test_deleting_a_referenced_resource_is_refused(clients: Clients, unique: str) -> None:
    _backend_and_url_map(clients, unique)
    with pytest.raises(gexc.BadRequest, match="already being used") as info:
        clients.compute.backend_services.delete(project=P, backend_service=f"{unique}-bs")
    assert info.value.errors[0]["reason"] == "resourceInUseByAnotherResource"
    wait(clients, clients.compute.url_maps.delete(project=P, url_map=f"{unique}-um"), "del um")
    wait(clients, clients.compute.backend_services.delete(project=P, backend_service=f"{unique}-bs"), "d")


def test_unknown_field_is_rejected_by_the_discovery_schema(clients: Clients, unique: str) -> None:
    # The typed client cannot send an unknown field, so speak REST the way an older client might.
    r = requests.post(
        f"{clients.endpoint}/compute/v1/projects/{P}/global/sslPolicies",
        json={"name": unique, "profile": "MODERN", "minTlsVersionn": "TLS_1_2"},
        timeout=10,
    )
    assert r.status_code == 400 and r.json()["error"]["message"] == (
        "Invalid JSON payload received. Unknown name \"minTlsVersionn\" at 'resource': Cannot find field."
    )
    r = requests.post(
        f"{clients.endpoint}/compute/v1/projects/{P}/global/sslPolicies",
        json={"name": unique, "profile": "BOGUS"},
        timeout=10,
    )
    assert r.status_code == 400 and r.json()["error"]["message"].startswith(
        "Invalid value at 'resource.profile'"
    )
    assert r.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_request_id_makes_a_retried_insert_safe(clients: Clients, unique: str) -> None:
    request = compute_v1.InsertGlobalAddressRequest(
        project=P, address_resource=compute_v1.Address(name=unique), request_id=str(uuid.uuid4())
    )
    first = clients.compute.addresses.insert(request=request)
    again = clients.compute.addresses.insert(request=request)
    assert first.name == again.name
    with pytest.raises(gexc.Conflict):  # without the id, a second insert is a conflict
        clients.compute.addresses.insert(project=P, address_resource=compute_v1.Address(name=unique))


def test_list_pages_through_results(clients: Clients, unique: str) -> None:
    for i in range(3):
        clients.compute.health_checks.insert(
            project=P, health_check_resource=compute_v1.HealthCheck(name=f"{unique}-{i}", type_="HTTP")
        )
    sandbox_call(clients, "counters", "DELETE")
    request = compute_v1.ListHealthChecksRequest(project=P, max_results=2)
    names = [h.name for h in clients.compute.health_checks.list(request=request)]
    assert {f"{unique}-{i}" for i in range(3)} <= set(names)
    # two per page: the pager had to follow nextPageToken
    assert sandbox_call(clients, "counters")["counts"]["compute.healthChecks.list"] == math.ceil(
        len(names) / 2
    )


def test_unknown_project_is_not_found(clients: Clients) -> None:
    with pytest.raises(gexc.NotFound, match="projects/some-other-project"):
        clients.compute.addresses.get(project="some-other-project", address="x")


def test_fault_switch_and_counter(clients: Clients, unique: str, no_faults: None) -> None:
    sandbox_call(clients, "counters", "DELETE")
    sandbox_call(clients, "faults", "POST", {"error_rate": 1.0, "statuses": [503]})
    with pytest.raises(gexc.ServiceUnavailable):
        clients.compute.addresses.get(project=P, address="x", retry=None)
    sandbox_call(clients, "faults", "POST", {"error_rate": 0.0, "operation_error_rate": 1.0})
    op = clients.compute.addresses.insert(project=P, address_resource=compute_v1.Address(name=unique))
    with pytest.raises(OperationFailed) as info:
        wait(clients, op, "faulty insert")
    assert isinstance(info.value.cause, gexc.ServiceUnavailable)
    sandbox_call(clients, "faults", "POST", {"operation_error_rate": 0.0})
    with pytest.raises(gexc.NotFound):  # the failed operation changed nothing
        clients.compute.addresses.get(project=P, address=unique)
    counts = sandbox_call(clients, "counters")["counts"]
    assert counts["compute.globalAddresses.get"] >= 2 and counts["compute.globalAddresses.insert"] == 1


def _rest(clients: Clients, method: str, path: str, body: Any = None) -> requests.Response:
    """Compute over plain REST, for what the typed client cannot send (another alphabet, a URL form)."""
    return requests.request(
        method, f"{clients.endpoint}/compute/v1/projects/{P}/{path}", json=body, timeout=10
    )


def _done(clients: Clients, response: requests.Response) -> None:
    assert response.status_code == 200, response.text
    done = clients.compute.operations.wait(project=P, operation=response.json()["name"])
    assert done.status == compute_v1.Operation.Status.DONE and not done.error.errors, done


def test_aggregated_lists_key_resources_by_scope(clients: Clients, unique: str) -> None:
    """What `gcloud compute <group> list` asks for without a scope flag: `items` keyed by scope."""
    bs = _backend(clients, f"{unique}-bs")
    neg = compute_v1.NetworkEndpointGroup(name=f"{unique}-neg", network_endpoint_type="GCE_VM_IP_PORT")
    op = clients.compute.network_endpoint_groups.insert(
        project=P, zone="us-central1-a", network_endpoint_group_resource=neg
    )
    zone_ops = compute_v1.ZoneOperationsClient(
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": clients.endpoint},
        transport="rest",
    )
    # a zonal resource's insert is a zonal operation, polled under its zone
    assert (
        zone_ops.wait(project=P, zone="us-central1-a", operation=op.name).status
        == compute_v1.Operation.Status.DONE
    )
    scopes = dict(clients.compute.backend_services.aggregated_list(project=P))
    assert bs in [s.self_link for s in scopes["global"].backend_services]
    negs = dict(clients.compute.network_endpoint_groups.aggregated_list(project=P))
    assert f"{unique}-neg" in [n.name for n in negs["zones/us-central1-a"].network_endpoint_groups]
    assert "global" not in negs  # a zonal resource is listed under its zone only
    body = _rest(clients, "GET", "aggregated/backendServices?maxResults=1").json()
    assert body["kind"] == "compute#backendServiceAggregatedList"
    assert body["id"] == f"projects/{P}/aggregated/backendServices" and "nextPageToken" in body
    assert list(body["items"]) == ["global"] and len(body["items"]["global"]["backendServices"]) == 1
    assert _rest(clients, "GET", "aggregated/noSuchThings").status_code == 404


@pytest.mark.parametrize(
    "form",
    [
        "https://www.googleapis.com/compute/v1/projects/{p}/global/urlMaps/{name}",
        "https://compute.googleapis.com/compute/v1/projects/{p}/global/urlMaps/{name}",
        "https://www.googleapis.com/compute/beta/projects/{p}/global/urlMaps/{name}",
        "http://127.0.0.1:8080/compute/v1/projects/{p}/global/urlMaps/{name}",  # gcloud, endpoint override
        "projects/{p}/global/urlMaps/{name}",
        "global/urlMaps/{name}",
    ],
)
def test_every_compute_reference_form_resolves(clients: Clients, unique: str, form: str) -> None:
    _backend_and_url_map(clients, unique)
    cert = _self_managed_cert(clients, f"{unique}-cert")
    url_map = form.format(p=P, name=f"{unique}-um")
    proxy = {"name": f"{unique}-px", "urlMap": url_map, "sslCertificates": [cert]}
    _done(clients, _rest(clients, "POST", "global/targetHttpsProxies", proxy))
    stored = clients.compute.target_https_proxies.get(project=P, target_https_proxy=f"{unique}-px")
    assert stored.url_map == f"https://www.googleapis.com/compute/v1/projects/{P}/global/urlMaps/{unique}-um"


@pytest.mark.parametrize(
    "form",
    [
        "https://example.com/compute/v1/projects/{p}/global/urlMaps/{name}",
        "urlMaps/{name}",
        "https://www.googleapis.com/compute/v1/projects/{p}/global/sslPolicies/{name}",
    ],
)
def test_malformed_or_foreign_compute_references_are_refused(
    clients: Clients, unique: str, form: str
) -> None:
    _backend_and_url_map(clients, unique)
    cert = _self_managed_cert(clients, f"{unique}-cert")
    proxy = {
        "name": f"{unique}-px",
        "urlMap": form.format(p=P, name=f"{unique}-um"),
        "sslCertificates": [cert],
    }
    r = _rest(clients, "POST", "global/targetHttpsProxies", proxy)
    assert r.status_code == 400 and "resource.urlMap" in r.json()["error"]["message"], r.text


def _spelled(fingerprint: str, alphabet: str) -> str:
    """The same bytes in another base64 spelling."""
    raw = base64.b64decode(fingerprint)
    text = (base64.urlsafe_b64encode if alphabet.startswith("url-safe") else base64.b64encode)(raw).decode()
    return text.rstrip("=") if alphabet.endswith("unpadded") else text


@pytest.mark.parametrize("alphabet", ["standard", "standard, unpadded", "url-safe", "url-safe, unpadded"])
def test_fingerprints_compare_as_bytes_in_either_base64_alphabet(
    clients: Clients, unique: str, alphabet: str
) -> None:
    """gcloud decodes the byte-typed fingerprint it read and sends it back URL-safe; any spelling of
    the current bytes is the current fingerprint, and any other bytes are not."""
    policy = {"name": unique, "profile": "MODERN", "minTlsVersion": "TLS_1_2"}
    _done(clients, _rest(clients, "POST", "global/sslPolicies", policy))
    read = _rest(clients, "GET", f"global/sslPolicies/{unique}").json()["fingerprint"]
    patch = {"fingerprint": _spelled(read, alphabet), "description": "v2"}
    _done(clients, _rest(clients, "PATCH", f"global/sslPolicies/{unique}", patch))
    stale = _rest(clients, "PATCH", f"global/sslPolicies/{unique}", {**patch, "description": "v3"})
    assert stale.status_code == 412 and stale.json()["error"]["errors"][0]["reason"] == "conditionNotMet"
    current = _rest(clients, "GET", f"global/sslPolicies/{unique}").json()
    assert current["description"] == "v2" and current["fingerprint"] != read
    for wrong in ["not base64!", base64.urlsafe_b64encode(b"other bytes").decode(), None]:
        r = _rest(
            clients, "PATCH", f"global/sslPolicies/{unique}", {"fingerprint": wrong, "description": "x"}
        )
        assert r.status_code == 412, (wrong, r.text)
