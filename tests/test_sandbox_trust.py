"""Network Security and Certificate Manager emulation, through their official clients."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.api_core import exceptions as gexc
from google.cloud import certificate_manager_v1 as cm
from google.cloud import compute_v1
from google.cloud import network_security_v1 as ns
from google.protobuf import field_mask_pb2

from mtlskit.cloud.clients import Clients
from mtlskit.cloud.operations import wait
from mtlskit.pki import certs
from tests.conftest import PROJECT

LOC = f"projects/{PROJECT}/locations/global"


def _pem(name: str) -> str:
    return certs.pem(certs.issue(name, ca=True, eku=certs.CLIENT_AUTH).cert)


def _trust_config(clients: Clients, tc_id: str, anchors: int = 1) -> cm.TrustConfig:
    tc = cm.TrustConfig(
        trust_stores=[
            cm.TrustConfig.TrustStore(
                trust_anchors=[
                    cm.TrustConfig.TrustAnchor(pem_certificate=_pem(f"root {i}")) for i in range(anchors)
                ]
            )
        ]
    )
    return clients.certificate_manager.create_trust_config(
        parent=LOC, trust_config_id=tc_id, trust_config=tc
    ).result(timeout=30)


def _policy(clients: Clients, policy_id: str, mode: str, tc: str | None) -> ns.ServerTlsPolicy:
    policy = ns.ServerTlsPolicy(
        mtls_policy=ns.ServerTlsPolicy.MTLSPolicy(
            client_validation_mode=mode, client_validation_trust_config=tc or ""
        )
    )
    return clients.network_security.create_server_tls_policy(
        parent=LOC, server_tls_policy_id=policy_id, server_tls_policy=policy
    ).result(timeout=30)


def test_trust_config_lifecycle(clients: Clients, unique: str) -> None:
    created = _trust_config(clients, unique)
    assert created.name == f"{LOC}/trustConfigs/{unique}" and created.etag
    got = clients.certificate_manager.get_trust_config(name=created.name)
    assert "BEGIN CERTIFICATE" in got.trust_stores[0].trust_anchors[0].pem_certificate
    assert unique in [
        t.name.rsplit("/", 1)[-1] for t in clients.certificate_manager.list_trust_configs(parent=LOC)
    ]
    got.allowlisted_certificates.append(
        cm.TrustConfig.AllowlistedCertificate(pem_certificate=_pem("allowed"))
    )
    with pytest.raises(gexc.BadRequest, match="updateMask"):
        clients.certificate_manager.update_trust_config(trust_config=got)
    updated = clients.certificate_manager.update_trust_config(
        trust_config=got, update_mask=field_mask_pb2.FieldMask(paths=["allowlisted_certificates"])
    ).result(timeout=30)
    assert len(updated.allowlisted_certificates) == 1 and updated.etag != created.etag
    clients.certificate_manager.delete_trust_config(name=created.name).result(timeout=30)
    with pytest.raises(gexc.NotFound):
        clients.certificate_manager.get_trust_config(name=created.name)


def test_trust_config_rules(clients: Clients, unique: str) -> None:
    with pytest.raises(gexc.BadRequest, match="at most 200"):
        _trust_config(clients, unique, anchors=201)
    bad = cm.TrustConfig(
        trust_stores=[
            cm.TrustConfig.TrustStore(
                trust_anchors=[
                    cm.TrustConfig.TrustAnchor(pem_certificate="-----BEGIN CERTIFICATE-----\nnope\n")
                ]
            )
        ]
    )
    with pytest.raises(gexc.BadRequest, match="parseable"):
        clients.certificate_manager.create_trust_config(parent=LOC, trust_config_id=unique, trust_config=bad)
    two = cm.TrustConfig(trust_stores=[cm.TrustConfig.TrustStore(), cm.TrustConfig.TrustStore()])
    with pytest.raises(gexc.BadRequest, match="one trust store"):
        clients.certificate_manager.create_trust_config(parent=LOC, trust_config_id=unique, trust_config=two)
    _trust_config(clients, unique)
    with pytest.raises(gexc.Conflict):
        _trust_config(clients, unique)


def test_server_tls_policy_lifecycle_with_integer_enums(clients: Clients, unique: str) -> None:
    tc = _trust_config(clients, f"{unique}-tc")
    policy = _policy(clients, unique, "REJECT_INVALID", tc.name)
    assert (
        policy.mtls_policy.client_validation_mode
        == ns.ServerTlsPolicy.MTLSPolicy.ClientValidationMode.REJECT_INVALID
    )
    got = clients.network_security.get_server_tls_policy(name=f"{LOC}/serverTlsPolicies/{unique}")
    assert got.mtls_policy.client_validation_trust_config == tc.name
    got.mtls_policy.client_validation_mode = "ALLOW_INVALID_OR_MISSING_CLIENT_CERT"
    updated = clients.network_security.update_server_tls_policy(server_tls_policy=got).result(timeout=30)
    assert updated.mtls_policy.client_validation_mode.name == "ALLOW_INVALID_OR_MISSING_CLIENT_CERT"
    with pytest.raises(gexc.BadRequest, match="already being used"):  # the policy uses the trust config
        clients.certificate_manager.delete_trust_config(name=tc.name)
    clients.network_security.delete_server_tls_policy(name=got.name).result(timeout=30)
    clients.certificate_manager.delete_trust_config(name=tc.name).result(timeout=30)


def test_alb_policy_rules(clients: Clients, unique: str) -> None:
    with pytest.raises(gexc.BadRequest, match="REJECT_INVALID"):
        _policy(clients, unique, "REJECT_INVALID", None)
    with pytest.raises(gexc.BadRequest, match="not found"):
        _policy(clients, unique, "REJECT_INVALID", f"{LOC}/trustConfigs/absent-{unique}")
    with pytest.raises(gexc.BadRequest, match="Traffic Director"):
        clients.network_security.create_server_tls_policy(
            parent=LOC, server_tls_policy_id=unique, server_tls_policy=ns.ServerTlsPolicy(allow_open=True)
        )
    assert _policy(clients, unique, "ALLOW_INVALID_OR_MISSING_CLIENT_CERT", None).name.endswith(unique)


def _proxy_without_policy(clients: Clients, unique: str) -> compute_v1.TargetHttpsProxy:
    """Backend service, URL map and managed certificate named after `unique`, and the proxy (not yet
    inserted) that would serve them."""
    c = clients.compute
    wait(
        clients,
        c.backend_services.insert(
            project=PROJECT, backend_service_resource=compute_v1.BackendService(name=f"{unique}-bs")
        ),
        "bs",
    )
    wait(
        clients,
        c.url_maps.insert(
            project=PROJECT,
            url_map_resource=compute_v1.UrlMap(
                name=f"{unique}-um", default_service=f"global/backendServices/{unique}-bs"
            ),
        ),
        "um",
    )
    wait(
        clients,
        c.ssl_certificates.insert(
            project=PROJECT,
            ssl_certificate_resource=compute_v1.SslCertificate(
                name=f"{unique}-crt",
                type_="MANAGED",
                managed=compute_v1.SslCertificateManagedSslCertificate(domains=["x.mtlskit.test"]),
            ),
        ),
        "cert",
    )
    return compute_v1.TargetHttpsProxy(
        name=f"{unique}-px",
        url_map=f"global/urlMaps/{unique}-um",
        ssl_certificates=[f"global/sslCertificates/{unique}-crt"],
    )


def test_policy_attached_to_a_proxy_cannot_be_deleted(clients: Clients, unique: str, state_dir: Path) -> None:
    tc = _trust_config(clients, f"{unique}-tc")
    policy = _policy(clients, f"{unique}-stp", "REJECT_INVALID", tc.name)
    c = clients.compute
    proxy = _proxy_without_policy(clients, unique)
    proxy.server_tls_policy = f"//networksecurity.googleapis.com/{LOC}/serverTlsPolicies/absent"
    with pytest.raises(gexc.BadRequest, match="serverTlsPolicy"):
        c.target_https_proxies.insert(project=PROJECT, target_https_proxy_resource=proxy)
    proxy.server_tls_policy = f"//networksecurity.googleapis.com/{policy.name}"
    wait(clients, c.target_https_proxies.insert(project=PROJECT, target_https_proxy_resource=proxy), "px")
    with pytest.raises(gexc.BadRequest, match="already being used"):
        clients.network_security.delete_server_tls_policy(name=policy.name)


POLICY_FORMS = [
    "{name}",  # the relative name
    "//networksecurity.googleapis.com/{name}",  # the full resource name Google documents
    "https://networksecurity.googleapis.com/v1/{name}",  # what gcloud sends against Google
    "http://127.0.0.1:8080/v1/{name}",  # what gcloud sends with an endpoint override
]


@pytest.mark.parametrize("form", POLICY_FORMS)
def test_proxy_accepts_every_form_of_policy_reference(clients: Clients, unique: str, form: str) -> None:
    """Each form is kept as the full resource name, so readers see one spelling whatever was sent."""
    tc = _trust_config(clients, f"{unique}-tc")
    policy = _policy(clients, f"{unique}-stp", "REJECT_INVALID", tc.name)
    proxy = _proxy_without_policy(clients, unique)
    proxy.server_tls_policy = form.format(name=policy.name)
    c = clients.compute
    wait(clients, c.target_https_proxies.insert(project=PROJECT, target_https_proxy_resource=proxy), "px")
    stored = c.target_https_proxies.get(project=PROJECT, target_https_proxy=proxy.name)
    assert stored.server_tls_policy == f"//networksecurity.googleapis.com/{policy.name}"


@pytest.mark.parametrize(
    "form",
    [
        "https://example.com/v1/{name}",
        "//certificatemanager.googleapis.com/{name}",
        "serverTlsPolicies/{id}",
    ],
)
def test_proxy_refuses_malformed_policy_references(clients: Clients, unique: str, form: str) -> None:
    tc = _trust_config(clients, f"{unique}-tc")
    policy = _policy(clients, f"{unique}-stp", "REJECT_INVALID", tc.name)
    proxy = _proxy_without_policy(clients, unique)
    proxy.server_tls_policy = form.format(name=policy.name, id=f"{unique}-stp")
    with pytest.raises(gexc.BadRequest, match="malformed"):
        clients.compute.target_https_proxies.insert(project=PROJECT, target_https_proxy_resource=proxy)


@pytest.mark.parametrize(
    "form",
    [
        "{name}",
        "//certificatemanager.googleapis.com/{name}",
        "https://certificatemanager.googleapis.com/v1/{name}",
        "http://localhost:8080/v1/{name}",
    ],
)
def test_policy_accepts_every_form_of_trust_config_reference(
    clients: Clients, unique: str, form: str
) -> None:
    tc = _trust_config(clients, f"{unique}-tc")
    policy = _policy(clients, unique, "REJECT_INVALID", form.format(name=tc.name))
    assert policy.mtls_policy.client_validation_trust_config == form.format(name=tc.name)
    with pytest.raises(gexc.BadRequest, match="already being used"):
        clients.certificate_manager.delete_trust_config(name=tc.name)


def test_unknown_project_is_refused(clients: Clients) -> None:
    with pytest.raises(gexc.Forbidden):
        clients.network_security.get_server_tls_policy(
            name="projects/other-project-1/locations/global/serverTlsPolicies/x"
        )
