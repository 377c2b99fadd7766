"""The sandbox's GKE Gateway controller behind the real clients: server-side apply of a ConfigMap,
Gateway, HTTPRoute and GKE policies through the `kubernetes` client, the load balancer read back with
google-cloud-compute, network-security and certificate-manager, and real TLS requests to the
Gateway's address with the demo PKI's client certificate."""

from __future__ import annotations

import base64
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from google.api_core import exceptions as gexc
from google.cloud import compute_v1
from kubernetes.dynamic import DynamicClient

from mtlskit.cloud.clients import Clients, build_clients
from mtlskit.pki import certs
from mtlskit.rules import gateway as gw
from mtlskit.rules.gateway import DATA_PLANE
from tests.conftest import PROJECT, ResolveAdapter, free_port, sandbox_call, sandbox_params

pytestmark = pytest.mark.e2e  # starts a sandbox of its own

NS = "shop"
DOMAIN = "gw.mtlskit.test"
MANAGER = "mtlskit-test"
HEADERS = {
    "X-Client-Cert-Present": "{client_cert_present}",
    "X-Client-Cert-Chain-Verified": "{client_cert_chain_verified}",
    "X-Client-Cert-Error": "{client_cert_error}",
    "X-Client-Cert-Hash": "{client_cert_sha256_fingerprint}",
}


@dataclass
class Stack:
    clients: Clients
    dyn: DynamicClient
    pki: Path
    server_ca: Path
    port: int
    work: Path

    def apply(self, body: dict[str, Any]) -> Any:
        resource = self.dyn.resources.get(api_version=body["apiVersion"], kind=body["kind"])
        return self.dyn.server_side_apply(resource, body=body, namespace=NS, field_manager=MANAGER)

    def gateway(self, name: str = "gw") -> dict[str, Any]:
        return self.clients.kube.custom.get_namespaced_custom_object(
            gw.GROUP, gw.VERSION, NS, "gateways", name
        )

    def session(self, with_certificate: bool = True) -> requests.Session:
        ctx = ssl.create_default_context(cafile=str(self.server_ca))
        if with_certificate:
            ctx.load_cert_chain(str(self.pki / "client.pem"), str(self.pki / "client.key"))
        s = requests.Session()
        s.mount("https://", ResolveAdapter(ctx, DOMAIN))
        s.headers["Host"] = DOMAIN
        return s

    def url(self, ip: str, path: str = "/") -> str:
        return f"https://{ip}:{self.port}{path}"


def until(check: Callable[[], Any], seconds: float = 15) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, "condition not reached"
            return value
        time.sleep(0.05)


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), None)


def gateway_manifest(name: str, configmap: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{gw.GROUP}/{gw.VERSION}",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "gatewayClassName": gw.DEFAULT_CLASS,
            "listeners": [
                {
                    "name": "https",
                    "port": 443,
                    "protocol": "HTTPS",
                    "tls": {"mode": "Terminate", "options": {gw.PRE_SHARED_CERTS_OPTION: "gw-cert"}},
                }
            ],
            "tls": {
                "frontend": {
                    "default": {
                        "validation": {
                            "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": configmap}],
                            "mode": gw.ALLOW_VALID_ONLY,
                        }
                    }
                }
            },
        },
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("gateway")
    state = work / "state"
    pki = state / "pki"
    certs.generate_demo_pki(pki)
    port = free_port()
    params = sandbox_params(
        state,
        sandbox={"state_dir": str(state), "data_plane_port": port, "operation_delay_seconds": 0.05},
    )
    clients = build_clients(params)
    # the listener's certificate: a self-managed one for DOMAIN, from a CA the test clients trust
    server_ca = certs.issue("gateway test server CA", ca=True)
    leaf = certs.issue(DOMAIN, issuer=server_ca, dns_names=[DOMAIN])
    (work / "server-ca.pem").write_text(certs.pem(server_ca.cert))
    key = leaf.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    clients.compute.ssl_certificates.insert(
        project=PROJECT,
        ssl_certificate_resource=compute_v1.SslCertificate(
            name="gw-cert", certificate=certs.pem(leaf.cert), private_key=key
        ),
    ).result()
    core = clients.kube.core
    core.create_namespace({"metadata": {"name": NS}})
    core.create_namespaced_service(NS, {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 8080}]}})
    s = Stack(clients, DynamicClient(clients.kube.api), pki, work / "server-ca.pem", port, work)
    bundle = (pki / "root.pem").read_text() + (pki / "intermediate.pem").read_text()
    s.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "client-ca", "namespace": NS},
            "data": {gw.CA_KEY: bundle},
        }
    )
    s.apply(gateway_manifest("gw", "client-ca"))
    s.apply(
        {
            "apiVersion": f"{gw.GROUP}/{gw.VERSION}",
            "kind": "HTTPRoute",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {
                "parentRefs": [{"name": "gw"}],
                "hostnames": [DOMAIN],
                "rules": [
                    {
                        "filters": [
                            {
                                "type": "RequestHeaderModifier",
                                "requestHeaderModifier": {
                                    "set": [{"name": k, "value": v} for k, v in HEADERS.items()]
                                },
                            }
                        ],
                        "backendRefs": [{"name": "web", "port": 8080}],
                    }
                ],
            },
        }
    )
    s.apply(
        {
            "apiVersion": f"{gw.POLICY_GROUP}/{gw.POLICY_VERSION}",
            "kind": "GCPBackendPolicy",
            "metadata": {"name": "web-logs", "namespace": NS},
            "spec": {
                "targetRef": {"group": "", "kind": "Service", "name": "web"},
                "default": {"logging": {"enabled": True, "sampleRate": 1000000}},
            },
        }
    )
    until(lambda: (condition(s.gateway(), "Programmed") or {}).get("status") == "True")
    ip = s.gateway()["status"]["addresses"][0]["value"]

    def serving() -> bool:  # the data plane follows the store on its own refresh
        listeners = sandbox_call(clients, "dataplane")["listeners"]
        return any(x["ip"] == ip and x["listening"] and x["certificates_served"] for x in listeners)

    until(serving)
    yield s
    from mtlskit.sandbox import process

    process.stop(state)


def names(stack: Stack, key: str) -> list[str]:
    ann = stack.gateway()["metadata"]["annotations"]
    return [gw.resource_name(p) for p in gw.split_paths(ann[gw.ANNOTATIONS[key]])]


def test_the_load_balancer_reads_back_through_googles_clients(stack: Stack) -> None:
    c = stack.clients
    [rule_name] = names(stack, "forwarding_rules")
    assert rule_name.startswith(gw.NAME_PREFIX)
    rule = c.compute.forwarding_rules.get(project=PROJECT, forwarding_rule=rule_name)
    assert rule.load_balancing_scheme == "EXTERNAL_MANAGED" and rule.port_range.startswith("443")
    assert stack.gateway()["status"]["addresses"] == [{"type": "IPAddress", "value": rule.I_p_address}]
    [proxy_name] = names(stack, "target_https_proxies")
    proxy = c.compute.target_https_proxies.get(project=PROJECT, target_https_proxy=proxy_name)
    policy = c.network_security.get_server_tls_policy(
        name=proxy.server_tls_policy.split("//networksecurity.googleapis.com/")[-1]
    )
    assert policy.mtls_policy.client_validation_mode.name == "REJECT_INVALID"
    trust = c.certificate_manager.get_trust_config(name=policy.mtls_policy.client_validation_trust_config)

    def sha(pem: str) -> str:
        return x509.load_pem_x509_certificate(pem.encode()).fingerprint(hashes.SHA256()).hex()

    store = trust.trust_stores[0]
    assert [sha(a.pem_certificate) for a in store.trust_anchors] == [
        sha((stack.pki / "root.pem").read_text())
    ]
    assert [sha(i.pem_certificate) for i in store.intermediate_cas] == [
        sha((stack.pki / "intermediate.pem").read_text())
    ]
    [backend] = [n for n in names(stack, "backend_services") if "serve404" not in n]
    bs = c.compute.backend_services.get(project=PROJECT, backend_service=backend)
    assert (
        bs.load_balancing_scheme == "EXTERNAL_MANAGED"
        and bs.log_config.enable
        and bs.log_config.sample_rate == 1.0
    )
    assert stack.gateway()["metadata"]["finalizers"] == [gw.FINALIZER]


def test_a_valid_client_gets_the_route_filters_headers(stack: Stack) -> None:
    ip = stack.gateway()["status"]["addresses"][0]["value"]
    response = stack.session().get(
        stack.url(ip, "/hello"),
        headers={"X-Forwarded-For": "203.0.113.7", "X-Client-Cert-Chain-Verified": "forged"},
        timeout=5,
    )
    assert response.status_code == 200
    seen: dict[str, list[str]] = {}
    for k, v in response.json()["headers"]:
        seen.setdefault(k.lower(), []).append(v)
    assert seen["x-client-cert-present"] == ["true"]
    assert seen["x-client-cert-chain-verified"] == ["true"]  # `set` replaced the forged value
    assert seen["x-client-cert-error"] == [""]
    leaf = x509.load_pem_x509_certificate((stack.pki / "client.pem").read_bytes())
    digest = base64.b64encode(leaf.fingerprint(hashes.SHA256())).decode().rstrip("=")
    assert seen["x-client-cert-hash"] == [digest]  # the certificate the connection presented
    delimiter = DATA_PLANE["EXTERNAL_MANAGED"].forwarded_for_delimiter
    assert seen["x-forwarded-for"][0].startswith(f"203.0.113.7{delimiter}127.")
    # the request log entry names the Gateway's resources (GCPBackendPolicy turned logging on)
    [rule_name] = names(stack, "forwarding_rules")
    flt = f'resource.labels.forwarding_rule_name="{rule_name}" httpRequest.requestUrl:"/hello"'
    entry = until(lambda: list(stack.clients.logging.list_entries(filter_=flt)))[0]
    labels = entry.resource.labels
    assert labels["target_proxy_name"] == names(stack, "target_https_proxies")[0]
    assert labels["url_map_name"] == names(stack, "url_maps")[0]
    assert labels["backend_service_name"].startswith(gw.NAME_PREFIX)
    assert entry.payload["statusDetails"] == "response_sent_by_backend"


def test_headers_over_the_limit_get_the_managed_load_balancers_431(stack: Stack) -> None:
    ip = stack.gateway()["status"]["addresses"][0]["value"]
    response = stack.session().get(stack.url(ip), headers={"X-Big": "a" * 70_000}, timeout=5)
    assert response.status_code == DATA_PLANE["EXTERNAL_MANAGED"].header_too_large == 431


def test_a_client_without_a_certificate_is_refused_in_the_handshake(stack: Stack) -> None:
    ip = stack.gateway()["status"]["addresses"][0]["value"]
    with pytest.raises(requests.exceptions.ConnectionError):
        stack.session(with_certificate=False).get(stack.url(ip), timeout=5)
    # logged under the route's backend service for the SNI name, whose policy turned logging on
    [rule_name] = names(stack, "forwarding_rules")
    flt = f'resource.labels.forwarding_rule_name="{rule_name}" jsonPayload.statusDetails="client_cert_not_provided"'
    assert until(lambda: list(stack.clients.logging.list_entries(filter_=flt)))


def test_a_bad_ca_reference_gives_gep91_reasons_and_no_load_balancer(stack: Stack) -> None:
    stack.apply(gateway_manifest("gw-bad", "absent-ca"))

    def listener() -> dict[str, Any] | None:
        status = stack.gateway("gw-bad").get("status") or {}
        return (status.get("listeners") or [None])[0]

    found = until(listener)
    conds = {c["type"]: (c["status"], c["reason"]) for c in found["conditions"]}
    assert conds["ResolvedRefs"] == ("False", "InvalidCACertificateRef")
    assert conds["Accepted"] == ("False", gw.NO_VALID_CA)
    assert (condition(stack.gateway("gw-bad"), "Programmed") or {})["status"] == "False"
    ann = stack.gateway("gw-bad")["metadata"].get("annotations") or {}
    assert gw.split_paths(ann.get(gw.ANNOTATIONS["forwarding_rules"])) == []
    events = stack.clients.kube.core.list_namespaced_event(NS).items
    assert any(
        e.involved_object.name == "gw-bad"
        and e.source.component == gw.EVENT_COMPONENT
        and gw.NO_VALID_CA in e.message
        for e in events
    )


def test_deleting_the_gateway_deletes_what_it_built(stack: Stack) -> None:
    c = stack.clients
    [rule_name] = names(stack, "forwarding_rules")
    [proxy_name] = names(stack, "target_https_proxies")
    proxy = c.compute.target_https_proxies.get(project=PROJECT, target_https_proxy=proxy_name)
    [backend] = [n for n in names(stack, "backend_services") if "serve404" not in n]
    c.kube.custom.delete_namespaced_custom_object(gw.GROUP, gw.VERSION, NS, "gateways", "gw")

    def gone(name: str) -> bool:
        try:
            stack.gateway(name)
        except Exception as err:  # the API server's 404 once the finalizer is removed
            return getattr(err, "status", None) == 404
        return False

    until(lambda: gone("gw"))
    with pytest.raises(gexc.NotFound):
        c.compute.forwarding_rules.get(project=PROJECT, forwarding_rule=rule_name)
    with pytest.raises(gexc.NotFound):
        c.compute.target_https_proxies.get(project=PROJECT, target_https_proxy=proxy_name)
    with pytest.raises(gexc.NotFound):
        c.network_security.get_server_tls_policy(
            name=proxy.server_tls_policy.split("//networksecurity.googleapis.com/")[-1]
        )
    with pytest.raises(gexc.NotFound):
        c.compute.backend_services.get(project=PROJECT, backend_service=backend)
    # the namespace's default 404 backend stays while another Gateway there uses it
    if not gone("gw-bad"):
        c.kube.custom.delete_namespaced_custom_object(gw.GROUP, gw.VERSION, NS, "gateways", "gw-bad")
        until(lambda: gone("gw-bad"))
    left = [b.name for b in c.compute.backend_services.list(project=PROJECT)]
    assert not [n for n in left if n.startswith(gw.NAME_PREFIX)]
