"""The sandbox held to Google's published API contracts.

Every Google API method the sandbox serves is called through the real client libraries (plain HTTP
where a method has no client call); every answer the clients receive is recorded off the wire and
checked by `mtlskit.sandbox.contract` against the method's `response.$ref` schema in the discovery
document (types, enums, unknown and empty fields) and against the fields Google always returns.
Which methods the sandbox serves is not listed here: every method of every discovery document the
sandbox loads is probed, and any method that is not answered with Google's unknown-method 404 must
have been covered, so a method added to the sandbox fails this test until a case exercises it.
Error bodies, unknown routes and the load balancer's request log entries are checked the same way.
The first tests show that the checker itself fails on a missing, unknown or mistyped field.
"""

from __future__ import annotations

import copy
import io
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import requests
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import certificate_manager_v1 as cm
from google.cloud import compute_v1
from google.cloud import network_security_v1 as ns
from google.cloud.logging import Resource

from mtlskit.cloud import clients as clients_mod
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.pki import certs
from mtlskit.rules.dns import SANDBOX_DNS_NAME, SANDBOX_ZONE
from mtlskit.sandbox import contract, discovery
from mtlskit.sandbox.compute.lists import ZONE
from tests import test_dataplane
from tests.conftest import PROJECT
from tests.test_dataplane import ALLOW, REJECT, Plane, _listener, _ready, _until

P = PROJECT
LOC = f"projects/{P}/locations/global"
PROBE_NAME = "contract-probe-absent"


# ---- the checker fails when it should (no sandbox) --------------------------------------------------


def _policy(**overrides: Any) -> dict[str, Any]:
    body = {
        "kind": "compute#sslPolicy",
        "id": "123",
        "creationTimestamp": "2026-01-01T00:00:00.000-00:00",
        "name": "p",
        "selfLink": "https://www.googleapis.com/compute/v1/projects/p/global/sslPolicies/p",
        "profile": "MODERN",
        "minTlsVersion": "TLS_1_2",
        "fingerprint": "abc=",
    }
    return {**body, **overrides}


def test_checker_accepts_a_whole_resource() -> None:
    assert contract.problems("compute", "SslPolicy", _policy()) == []


@pytest.mark.parametrize("dropped", ["kind", "id", "creationTimestamp", "name", "selfLink", "fingerprint"])
def test_checker_reports_an_always_returned_field_removed(dropped: str) -> None:
    body = _policy()
    del body[dropped]
    assert contract.problems("compute", "SslPolicy", body) == [
        f"$.{dropped}: missing (Google always returns it)"
    ]


def test_checker_reports_unknown_fields_wrong_enums_types_and_empties() -> None:
    found = contract.problems(
        "compute", "SslPolicy", _policy(minTlsVersionn="TLS_1_2", profile="BOGUS", id=123, customFeatures=[])
    )
    assert "$.minTlsVersionn: unknown field" in found
    assert any(p.startswith("$.profile: 'BOGUS' not in enum") for p in found)
    assert "$.id: an int64 travels as a JSON string" in found
    assert "$.customFeatures: empty list (Google leaves empty fields out)" in found


def test_checker_follows_state_lists_operations_and_int_enums() -> None:
    op = {
        "kind": "compute#operation",
        "id": "1",
        "name": "operation-1",
        "operationType": "insert",
        "targetLink": "x",
        "targetId": "2",
        "status": "DONE",
        "user": "u",
        "progress": 100,
        "insertTime": "t",
        "startTime": "t",
        "selfLink": "s",
    }
    assert contract.problems("compute", "Operation", op) == ["$.endTime: missing (Google always returns it)"]
    listed = {"kind": "compute#operationList", "id": "projects/p/global/operations", "selfLink": "s"}
    assert contract.problems("compute", "OperationList", listed, items_expected=True) == [
        "$.items: missing (Google always returns it)"
    ]
    lro = {
        "name": "projects/p/locations/global/operations/o",
        "done": True,
        "metadata": {
            "@type": "type.googleapis.com/google.cloud.networksecurity.v1.OperationMetadata",
            "createTime": "t",
            "target": "x",
            "verb": "create",
            "apiVersion": "v1",
        },
    }
    assert contract.problems("networksecurity", "Operation", lro) == [
        "$.metadata.endTime: missing (Google always returns it)",
        "$.response: missing (Google always returns it)",
        "$.response.@type: missing (Google always returns it)",
    ]
    policy = {
        "name": "n",
        "createTime": "t",
        "updateTime": "t",
        "mtlsPolicy": {"clientValidationMode": "REJECT_INVALID"},
    }
    assert contract.problems("networksecurity", "ServerTlsPolicy", policy) == []
    as_names = contract.problems("networksecurity", "ServerTlsPolicy", policy, enums_as_int=True)
    assert as_names == [
        "$.mtlsPolicy.clientValidationMode: 'REJECT_INVALID' as a name: the client asked for integer enums"
    ]


def test_log_checker_knows_the_load_balancer_fields() -> None:
    entry = {
        "logName": "projects/p/logs/requests",
        "resource": {"type": "http_load_balancer", "labels": {"zone": "global", "rack": "1"}},
        "timestamp": "t",
        "receiveTimestamp": "t",
        "insertId": "i",
        "httpRequest": {"status": 200, "protocol": "HTTP/1.1"},
        "jsonPayload": {"@type": contract.LB_PAYLOAD_TYPE, "mtls": {"clientCertColour": "red"}, "x": 1},
    }
    assert contract.log_entry_problems(entry) == [
        "$.resource.labels.rack: not a label of http_load_balancer",
        "$.httpRequest.protocol: not populated for http_load_balancer",
        "$.jsonPayload.statusDetails: missing (Google always returns it)",
        "$.jsonPayload.x: not a documented field",
        "$.jsonPayload.mtls.clientCertColour: not a documented field",
    ]


# ---- recording what the real clients receive ------------------------------------------------------


@dataclass
class Answer:
    api: str
    http: str
    path: str
    query: str
    status: int
    content_type: str
    body: Any
    method_id: str = ""
    response_ref: str | None = None


@dataclass
class Recorder:
    """A `requests` response hook on every session the clients use: the answers exactly as they
    arrived, before any library parsed them."""

    answers: list[Answer] = field(default_factory=list)
    hooked: list[tuple[requests.Session, Callable[..., Any]]] = field(default_factory=list)

    def attach(self, session: requests.Session, api: str) -> None:
        def on_response(resp: requests.Response, *_: Any, **__: Any) -> None:
            url = urlsplit(resp.request.url or "")
            ctype = resp.headers.get("Content-Type", "")
            media = "alt=media" in url.query  # an object's bytes, whatever their type
            body = resp.json() if resp.content and "json" in ctype and not media else resp.content
            method = discovery.api(api).find(resp.request.method or "", url.path)
            if method is None and "upload_id=" in url.query:  # a resumable session's chunk, a PUT
                method = discovery.api(api).find("POST", url.path)
            self.answers.append(
                Answer(
                    api,
                    resp.request.method or "",
                    url.path,
                    url.query,
                    resp.status_code,
                    ctype,
                    body,
                    method.id if method else "",
                    method.response_ref if method else None,
                )
            )

        session.hooks["response"].append(on_response)
        self.hooked.append((session, on_response))

    def detach(self) -> None:
        for session, hook in self.hooked:
            session.hooks["response"].remove(hook)

    @property
    def covered(self) -> set[str]:
        return {a.method_id for a in self.answers if 200 <= a.status < 300 and a.method_id}


def _sessions(client: Any) -> list[requests.Session]:
    """The HTTP sessions of a GAPIC REST client: its own, and its long-running operations client's."""
    transport = client._transport
    found = [transport._session]
    ops = getattr(transport, "_operations_client", None)
    if ops is not None:
        found.append(ops._transport._session)
    return found


def _options(clients: Clients) -> dict[str, Any]:
    return {
        "credentials": AnonymousCredentials(),
        "client_options": ClientOptions(api_endpoint=clients.endpoint),
        "transport": "rest",
    }


@dataclass
class World:
    clients: Clients
    rec: Recorder
    extra: dict[str, Any]
    u: str
    seconds: float = 0.0


@pytest.fixture(scope="module")
def world(clients: Clients, params: Params) -> Iterator[World]:
    rec = Recorder()
    extra = {
        "addresses": compute_v1.AddressesClient(**_options(clients)),
        "forwarding_rules": compute_v1.ForwardingRulesClient(**_options(clients)),
        "zone_operations": compute_v1.ZoneOperationsClient(**_options(clients)),
        "storage": clients_mod.storage_client(params),
    }
    compute = [v for k, v in extra.items() if k != "storage"]
    for client in [*vars(clients.compute).values(), *compute]:
        for s in _sessions(client):
            rec.attach(s, "compute")
    for s in _sessions(clients.network_security):
        rec.attach(s, "networksecurity")
    for s in _sessions(clients.certificate_manager):
        rec.attach(s, "certificatemanager")
    rec.attach(clients.logging._http, "logging")
    rec.attach(extra["storage"]._http, "storage")  # google-auth's AuthorizedSession, a requests.Session
    rec.attach(clients.dns._http, "dns")  # google-cloud-dns: the same kind of session
    w = World(clients, rec, extra, "c" + str(int(time.time() * 1000))[-9:])
    started = time.monotonic()
    _exercise(w)
    w.seconds = time.monotonic() - started
    yield w
    rec.detach()


# ---- the calls ------------------------------------------------------------------------------------


def _pem_pair() -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization

    leaf = certs.issue("api.contract.test", dns_names=["api.contract.test"])
    key = leaf.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return certs.pem(leaf.cert), key


def _resource_manager(w: World) -> None:
    """testIamPermissions over plain HTTP: the kit's client (google-api-python-client) talks httplib2,
    which the recorder cannot hook."""
    session = requests.Session()
    w.rec.attach(session, "cloudresourcemanager")
    asked = {"permissions": ["compute.urlMaps.create", "certificatemanager.trustconfigs.create"]}
    url = f"{w.clients.endpoint}/v1/projects/{P}:testIamPermissions"
    assert session.post(url, json=asked, timeout=30).json() == asked


def _exercise(w: World) -> None:
    _resource_manager(w)
    _compute_backend(w)
    _compute_frontend(w)
    _compute_reads_and_operations(w)
    _locations(w)
    _logging(w)
    _compute_teardown(w)
    _storage(w)
    _dns(w)


def _compute_backend(w: World) -> None:
    c, u, wait = w.clients.compute, w.u, w.clients.wait
    wait(
        c.health_checks.insert(
            project=P, health_check_resource=compute_v1.HealthCheck(name=f"{u}-hc", type_="HTTP")
        ),
        "hc",
    )
    hc = c.health_checks.get(project=P, health_check=f"{u}-hc")
    wait(
        c.health_checks.patch(
            project=P, health_check=hc.name, health_check_resource=compute_v1.HealthCheck(description="p")
        ),
        "hc patch",
    )
    wait(
        c.health_checks.update(
            project=P,
            health_check=hc.name,
            health_check_resource=compute_v1.HealthCheck(name=hc.name, type_="HTTP"),
        ),
        "hc update",
    )
    neg = compute_v1.NetworkEndpointGroup(
        name=f"{u}-neg", network_endpoint_type="GCE_VM_IP_PORT", default_port=80
    )
    zone_ops = w.extra["zone_operations"]
    op = c.network_endpoint_groups.insert(project=P, zone=ZONE, network_endpoint_group_resource=neg)
    zone_ops.get(project=P, zone=ZONE, operation=op.name)
    assert zone_ops.wait(project=P, zone=ZONE, operation=op.name).status == compute_v1.Operation.Status.DONE
    list(zone_ops.list(project=P, zone=ZONE))
    zone_ops.delete(project=P, zone=ZONE, operation=op.name)
    c.network_endpoint_groups.get(project=P, zone=ZONE, network_endpoint_group=neg.name)
    list(c.network_endpoint_groups.list(project=P, zone=ZONE))
    bs = compute_v1.BackendService(name=f"{u}-bs", load_balancing_scheme="EXTERNAL")
    wait(c.backend_services.insert(project=P, backend_service_resource=bs), "bs")
    got = c.backend_services.get(project=P, backend_service=bs.name)
    patch = compute_v1.BackendService(fingerprint=got.fingerprint, description="patched")
    wait(
        c.backend_services.patch(project=P, backend_service=bs.name, backend_service_resource=patch),
        "bs patch",
    )
    got = c.backend_services.get(project=P, backend_service=bs.name)
    full = compute_v1.BackendService(
        name=bs.name, fingerprint=got.fingerprint, load_balancing_scheme="EXTERNAL"
    )
    wait(
        c.backend_services.update(project=P, backend_service=bs.name, backend_service_resource=full),
        "bs update",
    )
    c.backend_services.get_health(
        project=P,
        backend_service=bs.name,
        resource_group_reference_resource=compute_v1.ResourceGroupReference(),
    )


def _compute_frontend(w: World) -> None:
    c, u, wait = w.clients.compute, w.u, w.clients.wait
    bs = f"projects/{P}/global/backendServices/{u}-bs"
    wait(
        c.url_maps.insert(project=P, url_map_resource=compute_v1.UrlMap(name=f"{u}-um", default_service=bs)),
        "um",
    )
    wait(
        c.url_maps.insert(project=P, url_map_resource=compute_v1.UrlMap(name=f"{u}-um2", default_service=bs)),
        "um2",
    )
    um = c.url_maps.get(project=P, url_map=f"{u}-um")
    wait(
        c.url_maps.patch(
            project=P,
            url_map=um.name,
            url_map_resource=compute_v1.UrlMap(fingerprint=um.fingerprint, description="p"),
        ),
        "um patch",
    )
    um = c.url_maps.get(project=P, url_map=um.name)
    whole = compute_v1.UrlMap(name=um.name, default_service=bs, fingerprint=um.fingerprint)
    wait(c.url_maps.update(project=P, url_map=um.name, url_map_resource=whole), "um update")
    pem, key = _pem_pair()
    cert = compute_v1.SslCertificate(name=f"{u}-cert", certificate=pem, private_key=key)
    wait(c.ssl_certificates.insert(project=P, ssl_certificate_resource=cert), "cert")
    managed = compute_v1.SslCertificate(
        name=f"{u}-managed",
        type_="MANAGED",
        managed=compute_v1.SslCertificateManagedSslCertificate(domains=["api.contract.test"]),
    )
    wait(c.ssl_certificates.insert(project=P, ssl_certificate_resource=managed), "managed")
    c.ssl_certificates.get(project=P, ssl_certificate=managed.name)  # PROVISIONING
    policy = compute_v1.SslPolicy(name=f"{u}-pol", profile="MODERN", min_tls_version="TLS_1_2")
    wait(c.ssl_policies.insert(project=P, ssl_policy_resource=policy), "pol")
    pol = c.ssl_policies.get(project=P, ssl_policy=policy.name)
    wait(
        c.ssl_policies.patch(
            project=P,
            ssl_policy=pol.name,
            ssl_policy_resource=compute_v1.SslPolicy(fingerprint=pol.fingerprint, min_tls_version="TLS_1_1"),
        ),
        "pol patch",
    )
    certs_ = [f"projects/{P}/global/sslCertificates/{u}-cert"]
    proxy = compute_v1.TargetHttpsProxy(
        name=f"{u}-px", url_map=f"global/urlMaps/{u}-um", ssl_certificates=certs_
    )
    wait(c.target_https_proxies.insert(project=P, target_https_proxy_resource=proxy), "px")
    px = c.target_https_proxies.get(project=P, target_https_proxy=proxy.name)
    wait(
        c.target_https_proxies.patch(
            project=P,
            target_https_proxy=px.name,
            target_https_proxy_resource=compute_v1.TargetHttpsProxy(
                fingerprint=px.fingerprint, description="p"
            ),
        ),
        "px patch",
    )
    wait(
        c.target_https_proxies.set_ssl_policy(
            project=P,
            target_https_proxy=px.name,
            ssl_policy_reference_resource=compute_v1.SslPolicyReference(
                ssl_policy=f"global/sslPolicies/{u}-pol"
            ),
        ),
        "setSslPolicy",
    )
    wait(
        c.target_https_proxies.set_url_map(
            project=P,
            target_https_proxy=px.name,
            url_map_reference_resource=compute_v1.UrlMapReference(url_map=f"global/urlMaps/{u}-um2"),
        ),
        "setUrlMap",
    )
    wait(
        c.target_https_proxies.set_ssl_certificates(
            project=P,
            target_https_proxy=px.name,
            target_https_proxies_set_ssl_certificates_request_resource=compute_v1.TargetHttpsProxiesSetSslCertificatesRequest(
                ssl_certificates=certs_
            ),
        ),
        "setSslCertificates",
    )
    http_proxy = compute_v1.TargetHttpProxy(name=f"{u}-hpx", url_map=f"global/urlMaps/{u}-um")
    wait(c.target_http_proxies.insert(project=P, target_http_proxy_resource=http_proxy), "hpx")
    hpx = c.target_http_proxies.get(project=P, target_http_proxy=http_proxy.name)
    wait(
        c.target_http_proxies.patch(
            project=P,
            target_http_proxy=hpx.name,
            target_http_proxy_resource=compute_v1.TargetHttpProxy(
                fingerprint=hpx.fingerprint, description="p"
            ),
        ),
        "hpx patch",
    )
    wait(c.addresses.insert(project=P, address_resource=compute_v1.Address(name=f"{u}-ip")), "ip")
    c.addresses.get(project=P, address=f"{u}-ip")
    rule = compute_v1.ForwardingRule(
        name=f"{u}-fr",
        I_p_address=f"global/addresses/{u}-ip",
        port_range="443",
        target=f"global/targetHttpsProxies/{u}-px",
    )
    wait(c.forwarding_rules.insert(project=P, forwarding_rule_resource=rule), "fr")
    fr = c.forwarding_rules.get(project=P, forwarding_rule=rule.name)
    wait(
        c.forwarding_rules.patch(
            project=P,
            forwarding_rule=fr.name,
            forwarding_rule_resource=compute_v1.ForwardingRule(fingerprint=fr.fingerprint, description="p"),
        ),
        "fr patch",
    )
    wait(
        c.forwarding_rules.set_target(
            project=P,
            forwarding_rule=fr.name,
            target_reference_resource=compute_v1.TargetReference(target=f"global/targetHttpsProxies/{u}-px"),
        ),
        "setTarget",
    )
    c.addresses.get(project=P, address=f"{u}-ip")  # IN_USE now


def _compute_reads_and_operations(w: World) -> None:
    c = w.clients.compute
    for client in vars(c).values():
        if isinstance(client, compute_v1.NetworkEndpointGroupsClient):
            pass  # zonal: listed above with its zone
        elif isinstance(client, compute_v1.GlobalOperationsClient):
            _two_pages(client.list(request={"project": P, "max_results": 2}))
        elif isinstance(client, compute_v1.ProjectsClient):
            client.get(project=P)  # the project with its quotas, which preflight reads
        else:
            list(client.list(project=P))
        if hasattr(client, "aggregated_list"):
            dict(client.aggregated_list(project=P))
    for client in w.extra.values():
        if hasattr(client, "aggregated_list"):
            dict(client.aggregated_list(project=P))
    _two_pages(c.operations.aggregated_list(request={"project": P, "max_results": 1}))
    op = c.addresses.insert(project=P, address_resource=compute_v1.Address(name=f"{w.u}-ip2"))
    c.operations.get(project=P, operation=op.name)
    c.operations.wait(project=P, operation=op.name)
    c.operations.delete(project=P, operation=op.name)
    deadline = time.monotonic() + 30  # the managed certificate turns ACTIVE after the configured delay
    while c.ssl_certificates.get(project=P, ssl_certificate=f"{w.u}-managed").managed.status != "ACTIVE":
        assert time.monotonic() < deadline, "managed certificate never turned ACTIVE"
        time.sleep(0.2)


def _two_pages(pager: Any) -> None:
    """The first two pages only: the second is asked for with the first's nextPageToken (a whole
    test session leaves many operations behind)."""
    pages = pager.pages
    next(pages)
    next(pages)


def _locations(w: World) -> None:
    root = certs.issue("Contract Root", ca=True)
    tc = cm.TrustConfig(
        trust_stores=[
            cm.TrustConfig.TrustStore(
                trust_anchors=[cm.TrustConfig.TrustAnchor(pem_certificate=certs.pem(root.cert))]
            )
        ]
    )
    cmc, nsc, u = w.clients.certificate_manager, w.clients.network_security, w.u
    tc_op = cmc.create_trust_config(parent=LOC, trust_config_id=f"{u}-tc", trust_config=tc)
    tc_op.result()
    got = cmc.get_trust_config(name=f"{LOC}/trustConfigs/{u}-tc")
    got.description = "updated"
    cmc.update_trust_config(trust_config=got, update_mask={"paths": ["description"]}).result()
    # a day-2 change: the trust store replaced in place, named by the mask
    second = certs.issue("Contract Root 2", ca=True)
    got = cmc.get_trust_config(name=f"{LOC}/trustConfigs/{u}-tc")  # its etag changed with the update
    got.trust_stores[0].trust_anchors.append(
        cm.TrustConfig.TrustAnchor(pem_certificate=certs.pem(second.cert))
    )
    cmc.update_trust_config(trust_config=got, update_mask={"paths": ["trust_stores"]}).result()
    list(cmc.list_trust_configs(parent=LOC))
    policy = ns.ServerTlsPolicy(
        name=f"{LOC}/serverTlsPolicies/{u}-stp",
        mtls_policy=ns.ServerTlsPolicy.MTLSPolicy(
            client_validation_mode="REJECT_INVALID",
            client_validation_trust_config=f"{LOC}/trustConfigs/{u}-tc",
        ),
    )
    op = nsc.create_server_tls_policy(parent=LOC, server_tls_policy_id=f"{u}-stp", server_tls_policy=policy)
    op.result()
    nsc.get_server_tls_policy(name=policy.name)
    policy.description = "updated"
    nsc.update_server_tls_policy(server_tls_policy=policy).result()
    mode_only = ns.ServerTlsPolicy(
        name=policy.name,
        mtls_policy=ns.ServerTlsPolicy.MTLSPolicy(
            client_validation_mode="ALLOW_INVALID_OR_MISSING_CLIENT_CERT"
        ),
    )
    nsc.update_server_tls_policy(
        server_tls_policy=mode_only, update_mask={"paths": ["mtls_policy.client_validation_mode"]}
    ).result()
    list(nsc.list_server_tls_policies(parent=LOC))
    list(nsc.list_server_tls_policies(request={"parent": LOC, "page_size": 1}))
    nsc.get_operation(request={"name": op.operation.name})
    nsc.list_operations(request={"name": LOC})
    nsc.list_operations(request={"name": LOC, "page_size": 1})
    cmc.list_operations(request={"name": LOC})
    cmc.get_operation(request={"name": tc_op.operation.name})
    nsc.cancel_operation(request={"name": op.operation.name})
    cmc.cancel_operation(request={"name": tc_op.operation.name})
    nsc.delete_operation(request={"name": op.operation.name})
    cmc.delete_operation(request={"name": tc_op.operation.name})
    px = w.clients.compute.target_https_proxies.get(project=P, target_https_proxy=f"{u}-px")
    attach = compute_v1.TargetHttpsProxy(
        fingerprint=px.fingerprint, server_tls_policy=f"//networksecurity.googleapis.com/{policy.name}"
    )
    w.clients.wait(
        w.clients.compute.target_https_proxies.patch(
            project=P, target_https_proxy=px.name, target_https_proxy_resource=attach
        ),
        "attach",
    )
    # a day-2 break-glass: detached ("" is what the typed client sends for a cleared reference), and back
    for reference in ("", attach.server_tls_policy):
        px = w.clients.compute.target_https_proxies.get(project=P, target_https_proxy=px.name)
        w.clients.wait(
            w.clients.compute.target_https_proxies.patch(
                project=P,
                target_https_proxy=px.name,
                target_https_proxy_resource=compute_v1.TargetHttpsProxy(
                    fingerprint=px.fingerprint, server_tls_policy=reference
                ),
            ),
            "detach" if not reference else "attach again",
        )


def _logging(w: World) -> None:
    logger = w.clients.logging.logger("requests")
    logger.log_struct(
        {"@type": contract.LB_PAYLOAD_TYPE, "statusDetails": "response_sent_by_backend"},
        resource=Resource(
            type="http_load_balancer",
            labels={"forwarding_rule_name": f"{w.u}-fr", "project_id": P, "zone": "global"},
        ),
        http_request={"requestMethod": "GET", "status": 200},
    )
    list(
        w.clients.logging.list_entries(
            filter_=f'resource.labels.forwarding_rule_name="{w.u}-fr"', page_size=1
        )
    )


def _compute_teardown(w: World) -> None:
    c, u, wait = w.clients.compute, w.u, w.clients.wait
    px = f"//networksecurity.googleapis.com/{LOC}/serverTlsPolicies/{u}-stp"
    steps: list[tuple[Any, dict[str, Any]]] = [
        (c.forwarding_rules.delete, {"forwarding_rule": f"{u}-fr"}),
        (c.addresses.delete, {"address": f"{u}-ip"}),
        (c.addresses.delete, {"address": f"{u}-ip2"}),
        (c.target_https_proxies.delete, {"target_https_proxy": f"{u}-px"}),
        (c.target_http_proxies.delete, {"target_http_proxy": f"{u}-hpx"}),
        (c.ssl_policies.delete, {"ssl_policy": f"{u}-pol"}),
        (c.ssl_certificates.delete, {"ssl_certificate": f"{u}-cert"}),
        (c.ssl_certificates.delete, {"ssl_certificate": f"{u}-managed"}),
        (c.url_maps.delete, {"url_map": f"{u}-um"}),
        (c.url_maps.delete, {"url_map": f"{u}-um2"}),
        (c.backend_services.delete, {"backend_service": f"{u}-bs"}),
        (c.health_checks.delete, {"health_check": f"{u}-hc"}),
    ]
    for method, kwargs in steps:
        wait(method(project=P, **kwargs), str(kwargs))
    op = c.network_endpoint_groups.delete(project=P, zone=ZONE, network_endpoint_group=f"{u}-neg")
    w.extra["zone_operations"].wait(project=P, zone=ZONE, operation=op.name)
    w.clients.network_security.delete_server_tls_policy(
        name=px.split("//networksecurity.googleapis.com/")[1]
    ).result()
    w.clients.certificate_manager.delete_trust_config(name=f"{LOC}/trustConfigs/{u}-tc").result()


def _storage(w: World) -> None:
    """What the kit's `gs://` writes and reads do (google-cloud-storage, which gcsfs mirrors), and the
    bucket calls around them: a bucket of its own, uploads by every protocol, reads, lists that page
    and fold prefixes, a patch, deletes."""
    client = w.extra["storage"]
    list(client.list_buckets(project=P))
    bucket = client.create_bucket(f"{w.u}-contract")
    client.get_bucket(bucket.name)
    bucket.blob("runs/a/summary.json").upload_from_string(b'{"ok": true}', content_type="application/json")
    bucket.blob("runs/b/report.html").upload_from_string(b"<p>ok</p>", content_type="text/html")
    chunked = bucket.blob("runs/c/big.bin", chunk_size=256 * 1024)  # a resumable session, two chunks
    chunked.upload_from_file(io.BytesIO(b"x" * (256 * 1024 + 7)))  # size unknown: resumable, not multipart
    blob = bucket.get_blob("runs/a/summary.json")
    assert blob is not None and blob.download_as_bytes() == b'{"ok": true}'
    assert chunked.download_as_bytes(start=1, end=4) == b"xxxx"
    assert [b.name for b in client.list_blobs(bucket, prefix="runs/", page_size=1)] == [
        "runs/a/summary.json",
        "runs/b/report.html",
        "runs/c/big.bin",
    ]
    folders = client.list_blobs(bucket, prefix="runs/", delimiter="/")
    assert list(folders) == [] and folders.prefixes == {"runs/a/", "runs/b/", "runs/c/"}
    blob.metadata = {"run": w.u}
    blob.patch()
    for name in ("runs/a/summary.json", "runs/b/report.html", "runs/c/big.bin"):
        bucket.blob(name).delete()
    bucket.delete()


def _dns(w: World) -> None:
    """What a cut-over does through the kit's client (google-cloud-dns: zones, record sets, changes),
    and the record-set methods `gcloud dns record-sets create|update|delete` use, over plain HTTP."""
    client = w.clients.dns
    zone = client.zone(SANDBOX_ZONE)
    zone.reload()
    assert [z.name for z in client.list_zones()] == [SANDBOX_ZONE]
    name = f"{w.u}.{SANDBOX_DNS_NAME}"
    change = zone.changes()
    change.add_record_set(zone.resource_record_set(name, "A", 300, ["192.0.2.10"]))
    change.create()
    change.reload()
    assert [c.name for c in zone.list_changes()][:1] == ["0"]  # the change that made the zone
    assert {r.record_type for r in zone.list_resource_record_sets()} >= {"SOA", "NS", "A"}
    session = requests.Session()
    w.rec.attach(session, "dns")
    rrsets = f"{w.clients.endpoint}/dns/v1/projects/{P}/managedZones/{SANDBOX_ZONE}/rrsets"
    other = f"www.{name}"
    created = {"name": other, "type": "A", "ttl": 60, "rrdatas": ["192.0.2.11"]}
    assert session.post(rrsets, json=created, timeout=10).json()["rrdatas"] == ["192.0.2.11"]
    assert session.get(f"{rrsets}/{other}/A", timeout=10).json()["ttl"] == 60
    patched = session.patch(f"{rrsets}/{other}/A", json={"ttl": 30}, timeout=10).json()
    assert patched["ttl"] == 30 and patched["rrdatas"] == ["192.0.2.11"]
    assert session.get(rrsets, params={"name": other, "type": "A"}, timeout=10).json()["rrsets"] == [patched]
    changes = f"{w.clients.endpoint}/dns/v1/projects/{P}/managedZones/{SANDBOX_ZONE}/changes"
    first = session.get(changes, params={"maxResults": 1, "sortOrder": "descending"}, timeout=10).json()
    assert len(first["changes"]) == 1 and "nextPageToken" in first
    for gone in (other, name):
        assert session.delete(f"{rrsets}/{gone}/A", timeout=10).json() == {}


# ---- the contract ---------------------------------------------------------------------------------


def test_every_answer_matches_its_discovery_schema_and_always_returned_fields(world: World) -> None:
    bad = []
    for a in world.rec.answers:
        if not (200 <= a.status < 300) or not a.response_ref or not isinstance(a.body, dict):
            continue
        found = contract.problems(a.api, a.response_ref, a.body, enums_as_int=_int_enums(a))
        bad += [f"{a.method_id} {a.http} {a.path}: {p}" for p in found]
    assert not bad, "\n".join(bad)


def _int_enums(a: Answer) -> bool:
    return "enum-encoding=int" in unquote(a.query)


def test_lists_page_and_carry_their_items(world: World) -> None:
    by_method: dict[str, list[Answer]] = {}
    for a in world.rec.answers:
        by_method.setdefault(a.method_id, []).append(a)
    ops = [a.body for a in by_method["compute.globalOperations.list"] if "maxResults=2" in a.query]
    assert len(ops) >= 2 and "nextPageToken" in ops[0] and len(ops[0]["items"]) == 2
    pages = [
        a.body for a in by_method["compute.globalOperations.aggregatedList"] if "maxResults=1" in a.query
    ]
    assert len(pages) >= 2 and all(len(p["items"]["global"]["operations"]) == 1 for p in pages)
    assert "nextPageToken" in pages[0]
    for method_id in (
        "compute.urlMaps.list",
        "compute.sslPolicies.list",
        "compute.globalForwardingRules.list",
    ):
        assert not contract.problems(
            "compute",
            by_method[method_id][0].response_ref or "",
            by_method[method_id][0].body,
            items_expected=True,
        )
    stps = [
        a.body
        for a in by_method["networksecurity.projects.locations.serverTlsPolicies.list"]
        if "pageSize=1" in a.query
    ]
    assert stps and len(stps[0]["serverTlsPolicies"]) == 1
    ops = [
        a.body
        for a in by_method["networksecurity.projects.locations.operations.list"]
        if "pageSize=1" in a.query
    ]
    assert ops and len(ops[0]["operations"]) == 1 and "nextPageToken" in ops[0]
    negs = by_method["compute.networkEndpointGroups.aggregatedList"][0].body["items"]
    assert list(negs) == [f"zones/{ZONE}"]


def test_storage_lists_page_and_fold_prefixes(world: World) -> None:
    listed = [a for a in world.rec.answers if a.method_id == "storage.objects.list"]
    pages = [a.body for a in listed if "maxResults=1" in a.query]
    assert len(pages) == 3 and all(len(p["items"]) == 1 for p in pages)
    assert ["nextPageToken" in p for p in pages] == [True, True, False]
    folded = [a.body for a in listed if "delimiter=" in a.query]
    assert folded and folded[0]["prefixes"] == ["runs/a/", "runs/b/", "runs/c/"] and "items" not in folded[0]
    for a in [*listed, *(a for a in world.rec.answers if a.method_id == "storage.buckets.list")]:
        assert not contract.problems(
            "storage", a.response_ref or "", a.body, items_expected="items" in a.body
        )
    started = [a for a in world.rec.answers if "uploadType=resumable" in a.query and a.http == "POST"]
    assert started and started[0].body == b""  # a session start is headers only
    chunks = [a for a in world.rec.answers if "upload_id=" in a.query]
    assert [a.status for a in chunks] == [308, 200] and chunks[1].body["size"] == str(256 * 1024 + 7)


def test_every_served_method_is_covered(world: World) -> None:
    """Probe every method of every discovery document the sandbox loads: a method not answered with
    Google's unknown-method 404 is served, and must have had a case above."""
    served = set()
    probe = requests.Session()
    for api_name in discovery.DOCS:
        doc = discovery._load_doc(discovery.DOCS[api_name])
        base = "/" + doc.get("servicePath", "").strip("/")
        for m in discovery._walk_methods(doc):
            url = world.clients.endpoint + re.sub(
                r"/+", "/", base + "/" + _fill(m.get("flatPath") or m["path"])
            )
            r = probe.request(
                m["httpMethod"],
                url,
                json={} if m["httpMethod"] in ("POST", "PUT", "PATCH") else None,
                timeout=30,
            )
            if not _is_unknown_method(r):
                served.add(m["id"])
    uncovered = sorted(served - world.rec.covered)
    assert not uncovered, f"served without a contract case: {uncovered}"
    per_api = {name: sum(m.startswith(name + ".") for m in served) for name in discovery.DOCS}
    print(
        f"\ncontract: {len(served)} methods served {per_api}, all covered; exercise took {world.seconds:.1f}s"
    )


def _fill(path: str) -> str:
    def value(m: re.Match[str]) -> str:
        name = m[1].lstrip("+")
        return {"project": P, "projectsId": P, "locationsId": "global", "zone": ZONE}.get(name, PROBE_NAME)

    return re.sub(r"\{([^}]+)\}", value, path)


def _is_unknown_method(r: requests.Response) -> bool:
    return (
        r.status_code == 404
        and r.headers.get("Content-Type", "").startswith("text/html")
        and "was not found on this server" in r.text
    )


# ---- unknown routes and error bodies -------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", f"/compute/v1/projects/{P}/global/urlMaps/x"),  # only GET, PATCH, PUT, DELETE there
        ("POST", f"/compute/v1/projects/{P}/global/urlMaps/x/unknownVerb"),
        ("POST", f"/compute/v1/projects/{P}/global/urlMaps/x/invalidateCache"),  # Google's, not served
        (
            "GET",
            f"/compute/v1/projects/{P}/global/sslPolicies/listAvailableFeatures",
        ),  # not a get of that name
        ("GET", f"/compute/v1/projects/{P}/global/networks"),
        ("POST", f"/compute/v1/projects/{P}/targetHttpProxies/x/setUrlMap"),
        ("GET", f"/compute/v1/projects/{P}/regions/us-central1/operations"),  # no regional resources
        ("GET", f"/v1/{LOC}/serverTlsPolicies/x:getIamPolicy"),
        ("PUT", f"/v1/{LOC}/trustConfigs/x"),
        ("GET", f"/v1/{LOC}/operations/x:wait"),
        ("GET", f"/v2/projects/{P}/logs"),
        ("GET", "/v3/nothing"),
        ("POST", f"/storage/v1/b/{P}-mtlskit/o/x/compose"),  # Cloud Storage's, not served
        ("GET", f"/storage/v1/b/{P}-mtlskit/iam"),
        ("PUT", f"/storage/v1/b/{P}-mtlskit/o/x"),  # objects.update: patch is served, update is not
        ("GET", f"/storage/v1/b/{P}-mtlskit/o/x/acl"),
        ("GET", "/storage/v1/nothing"),
        ("GET", f"/upload/storage/v1/b/{P}-mtlskit/o"),  # uploads are POSTs
        ("POST", f"/upload/storage/v1/b/{P}-mtlskit/o/x"),  # to the bucket's o, not an object
        ("GET", f"/download/storage/v1/b/{P}-mtlskit/o"),  # only objects.get downloads
        ("POST", f"/dns/v1/projects/{P}/managedZones"),  # Cloud DNS's, not served: the zone is seeded
        ("GET", f"/dns/v1/projects/{P}/policies"),
        ("PUT", f"/dns/v1/projects/{P}/managedZones/mtlskit-test"),
    ],
)
def test_a_method_the_sandbox_does_not_serve_is_googles_not_found(
    clients: Clients, method: str, path: str
) -> None:
    r = requests.request(
        method, f"{clients.endpoint}{path}", json={} if method != "GET" else None, timeout=10
    )
    assert _is_unknown_method(r), (r.status_code, r.text[:300])
    assert f"<code>{path}</code>" in r.text


def _compute_error(r: requests.Response, status: int, reason: str, message: str) -> None:
    body = r.json()
    assert r.status_code == status and set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "errors"}, body
    assert body["error"]["code"] == status and body["error"]["message"] == message
    assert body["error"]["errors"] == [{"message": message, "domain": "global", "reason": reason}]


def test_compute_errors_in_googles_shape_and_wording(clients: Clients, unique: str) -> None:
    base = f"{clients.endpoint}/compute/v1/projects/{P}/global"
    r = requests.get(f"{base}/urlMaps/{unique}", timeout=10)
    _compute_error(r, 404, "notFound", f"The resource 'projects/{P}/global/urlMaps/{unique}' was not found")
    r = requests.post(f"{base}/addresses", json={"name": "Bad_Name"}, timeout=10)
    _compute_error(
        r,
        400,
        "invalid",
        "Invalid value for field 'resource.name': 'Bad_Name'. Must be a match of regex "
        "'(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'",
    )
    assert requests.post(f"{base}/addresses", json={"name": unique}, timeout=10).status_code == 200
    r = requests.post(f"{base}/addresses", json={"name": unique}, timeout=10)
    _compute_error(
        r, 409, "alreadyExists", f"The resource 'projects/{P}/global/addresses/{unique}' already exists"
    )
    clients.wait(clients.compute.addresses.delete(project=P, address=unique), "cleanup")


@pytest.mark.parametrize(
    ("path", "body", "field", "message"),
    [
        (
            f"/compute/v1/projects/{P}/global/sslPolicies",
            {"name": "x", "colour": "red"},
            "resource",
            "Invalid JSON payload received. Unknown name \"colour\" at 'resource': Cannot find field.",
        ),
        (
            f"/compute/v1/projects/{P}/global/backendServices",
            {"name": "x", "logConfig": {"enable": True, "sampleRatio": 1}},
            "resource.log_config",
            "Invalid JSON payload received. Unknown name \"sampleRatio\" at 'resource.log_config': Cannot find field.",
        ),
        (
            f"/v1/{LOC}/serverTlsPolicies?serverTlsPolicyId=x",
            {"mtlsPolicy": {"clientValidationMode": "REJECT_INVALID", "tier": "GOLD"}},
            "server_tls_policy.mtls_policy",
            "Invalid JSON payload received. Unknown name \"tier\" at 'server_tls_policy.mtls_policy': Cannot find field.",
        ),
    ],
)
def test_unknown_request_field_is_invalid_argument_with_field_violations(
    clients: Clients, path: str, body: dict[str, Any], field: str, message: str
) -> None:
    r = requests.post(f"{clients.endpoint}{path}", json=body, timeout=10)
    error = r.json()["error"]
    assert r.status_code == 400 and error["code"] == 400 and error["status"] == "INVALID_ARGUMENT"
    assert error["message"] == message
    assert error["details"] == [
        {
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [{"field": field, "description": message}],
        }
    ]


def test_location_api_errors_carry_a_status_name(clients: Clients, unique: str) -> None:
    name = f"{LOC}/trustConfigs/{unique}"
    r = requests.get(f"{clients.endpoint}/v1/{name}", timeout=10)
    assert r.status_code == 404
    assert r.json() == {
        "error": {"code": 404, "message": f"Resource '{name}' was not found", "status": "NOT_FOUND"}
    }
    r = requests.post(f"{clients.endpoint}/v1/{LOC}/trustConfigs?trustConfigId=Bad_Id", json={}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"
    root = certs.pem(certs.issue("Contract Root", ca=True).cert)
    body = {"trustStores": [{"trustAnchors": [{"pemCertificate": root}]}]}
    create = f"{clients.endpoint}/v1/{LOC}/trustConfigs?trustConfigId={unique}"
    assert requests.post(create, json=body, timeout=10).status_code == 200
    r = requests.post(create, json=body, timeout=10)
    assert r.status_code == 409
    assert r.json() == {
        "error": {"code": 409, "message": f"Resource '{name}' already exists", "status": "ALREADY_EXISTS"}
    }
    clients.wait(clients.certificate_manager.delete_trust_config(name=name), "cleanup")


def test_int_enums_come_back_as_numbers_when_asked(world: World) -> None:
    asked = [a for a in world.rec.answers if _int_enums(a) and a.method_id.endswith("serverTlsPolicies.get")]
    assert asked and asked[0].body["mtlsPolicy"]["clientValidationMode"] == 2  # REJECT_INVALID


def test_a_copy_with_a_field_removed_fails_the_contract(world: World) -> None:
    """The recorded answers pass; each with one always-returned field taken out does not."""
    checked: dict[str, int] = {}
    for a in world.rec.answers:
        tables = {
            "compute": contract.ALWAYS,
            "storage": contract.STORAGE_ALWAYS,
            "dns": contract.DNS_ALWAYS,
        }.get(a.api, {})
        if a.status != 200 or not isinstance(a.body, dict) or a.body.get("kind") not in tables:
            continue
        for f in tables[a.body["kind"]]:
            broken = copy.deepcopy(a.body)
            broken.pop(f, None)
            assert f"$.{f}: missing (Google always returns it)" in contract.problems(
                a.api, a.response_ref or "", broken
            ), (a.method_id, f)
            checked[a.api] = checked.get(a.api, 0) + 1
    assert checked["compute"] > 50 and checked["storage"] > 50 and checked["dns"] > 10


# ---- the load balancer's request log ---------------------------------------------------------------


# The data plane test's own load balancer (a sandbox with a data plane port, the demo PKI, the stack).
plane = test_dataplane.plane


def _lb_entries(plane: Plane, rec: Recorder) -> list[dict[str, Any]]:
    """The raw entries of this load balancer, as google-cloud-logging (HTTP path) received them."""
    rec.answers.clear()
    parsed = plane.entries()
    assert parsed and all(e.resource.type == "http_load_balancer" for e in parsed)
    raw = [e for a in rec.answers if a.method_id == "logging.entries.list" for e in a.body.get("entries", [])]
    assert len(raw) == len(parsed)
    return raw


@pytest.mark.e2e
def test_load_balancer_log_entries_carry_only_documented_fields(plane: Plane) -> None:
    """Real TLS requests in both modes (forwarded, forwarded with a failed check, refused), then every
    entry the data plane wrote, read back through the logging client, against the LogEntry schema and
    the load balancer's documented fields (gcp-mtls.md section 4)."""
    _ready(plane)
    rec = Recorder()
    rec.attach(plane.clients.logging._http, "logging")
    try:
        plane.set_mode(ALLOW)
        assert _until(lambda: _listener(plane.clients).get("mtls") == ALLOW, 5)
        for case in ("client", "untrusted-client", "none"):
            assert plane.session(case).get(plane.url(f"/contract-{case}"), timeout=5).status_code == 200
        plane.set_mode(REJECT)
        assert _until(lambda: _listener(plane.clients).get("mtls") == REJECT, 5)
        with pytest.raises(requests.exceptions.ConnectionError):
            plane.session("none").get(plane.url("/contract-refused"), timeout=5)
        before = len(plane.entries())
        plane.entry_where(lambda e: e.http_request.get("status") == 0, max(before - 1, 0))
        entries = _lb_entries(plane, rec)
    finally:
        rec.detach()
    bad = []
    for i, entry in enumerate(entries):
        bad += contract.problems("logging", "ListLogEntriesResponse", {"entries": [entry]})
        bad += [p.replace("$", f"entries[{i}]", 1) for p in contract.log_entry_problems(entry)]
    assert not bad, "\n".join(bad)
    details = {e["jsonPayload"]["statusDetails"] for e in entries}
    assert {"response_sent_by_backend", "client_cert_not_provided"} <= details
    assert any("mtls" in e["jsonPayload"] for e in entries)
