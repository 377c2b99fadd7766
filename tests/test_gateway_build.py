"""The Gateway topology's build as data: manifests from the params, the server-side-apply plan (what
counts as a change, which manager owns a changed field), the preflight's verdicts on what a cluster
says, the read-back and listener checks, and which notebooks a topology runs. No sandbox: the
end-to-end half is tests/test_gateway_build_e2e.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from mtlskit.build import (
    gateway,
    gateway_api,
    gateway_kube,
    gateway_lb,
    gateway_preflight,
    gateway_status,
    permissions,
)
from mtlskit.cloud import ownership
from mtlskit.config import params as params_mod
from mtlskit.config import paths
from mtlskit.config.params import Params
from mtlskit.pki import certs
from mtlskit.rules import gateway as gw
from mtlskit.runner import execute
from mtlskit.teach import byhand

LABELS = {"app.kubernetes.io/managed-by": "mtlskit", "mtlskit/stack": "gw"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    certs.generate_demo_pki(d)
    return d


def gateway_params(pki: Path, **overrides: Any) -> Params:
    data: dict[str, Any] = {
        "target": "sandbox",
        "project": "gw-project",
        "stack": "gw",
        "topology": "gateway",
        "frontend": {"domains": ["api.example.test"]},
        "mtls": {
            "trust_anchors": [str(pki / "root.pem")],
            "intermediates": [str(pki / "intermediate.pem")],
            "custom_headers": ["X-Client-Cert-Present:{client_cert_present}", "X-Odd: a:b "],
        },
        "logging": {"sample_rate": 0.57},
    }
    for key, value in overrides.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return params_mod.parse(data, "test")


def test_every_object_carries_the_stacks_labels_and_the_gateway_validates_clients_with_the_configmap(
    pki: Path,
) -> None:
    p = gateway_params(pki)
    objects = gateway.manifests(p)
    assert list(objects) == ["Service", "ConfigMap", *gateway.GATEWAY_KINDS]
    assert all(ownership.owns_kube(o["metadata"]["labels"], "gw") for o in objects.values())
    spec = objects["Gateway"]["spec"]
    validation = spec["tls"]["frontend"]["default"]["validation"]
    assert validation == {
        "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": p.gateway.ca_configmap}],
        "mode": gw.ALLOW_VALID_ONLY,
    }
    (listener,) = spec["listeners"]
    assert (listener["protocol"], listener["port"], listener["hostname"]) == (
        "HTTPS",
        443,
        "api.example.test",
    )
    assert listener["tls"] == {
        "mode": "Terminate",
        "options": {gw.PRE_SHARED_CERTS_OPTION: p.frontend.certificate},
    }
    assert "addresses" not in spec  # new_ip: the controller allocates one
    # the Service the split build applies, minus the BackendConfig a Gateway never reads
    service = objects["Service"]
    assert "cloud.google.com/backend-config" not in service["metadata"]["annotations"]
    assert service["spec"]["ports"][0]["port"] == p.kubernetes.service_port


def test_ca_bundle_is_the_anchors_then_the_intermediates(pki: Path) -> None:
    p = gateway_params(pki)
    bundle = gateway.manifests(p)["ConfigMap"]["data"][gw.CA_KEY]
    subjects = [c.subject.rfc4514_string() for c in x509.load_pem_x509_certificates(bundle.encode())]
    wanted = [
        x509.load_pem_x509_certificate(Path(f).read_bytes()).subject.rfc4514_string()
        for f in (*p.mtls.trust_anchors, *p.mtls.intermediates)
    ]
    assert subjects == wanted
    assert set(gateway_lb.fingerprints([bundle])) == set(
        gateway_lb.fingerprints([Path(f).read_text() for f in (*p.mtls.trust_anchors, *p.mtls.intermediates)])
    )


def test_route_rebuilds_the_headers_on_the_rule_and_policies_carry_logging_ssl_and_health(pki: Path) -> None:
    p = gateway_params(pki)
    objects = gateway.manifests(p)
    route = objects["HTTPRoute"]["spec"]
    assert route["hostnames"] == ["api.example.test"]
    assert (
        route["parentRefs"][0] | {"name": p.gateway.name, "sectionName": gateway.LISTENER}
        == route["parentRefs"][0]
    )
    (rule,) = route["rules"]
    assert rule["backendRefs"][0]["name"] == p.kubernetes.service
    (header_filter,) = rule["filters"]
    assert header_filter["requestHeaderModifier"]["add"] == [
        {"name": "X-Client-Cert-Present", "value": "{client_cert_present}"},
        {"name": "X-Odd", "value": "a:b"},  # split on the first ':' only
    ]
    assert objects["GCPBackendPolicy"]["spec"]["default"]["logging"] == {
        "enabled": True,
        "sampleRate": 570000,
    }
    assert objects["GCPGatewayPolicy"]["spec"] == {
        "default": {"sslPolicy": p.frontend.ssl_policy},
        "targetRef": {"group": gw.GROUP, "kind": "Gateway", "name": p.gateway.name},
    }
    assert objects["HealthCheckPolicy"]["spec"]["targetRef"]["kind"] == "Service"


def test_several_domains_no_hostname_certificate_map_and_named_address(pki: Path) -> None:
    p = gateway_params(
        pki,
        frontend={"domains": ["a.example.test", "b.example.test"]},
        gateway={"certificate": "certificate_map", "certificate_map": "my-map", "address": "named_address"},
    )
    g = gateway.gateway_manifest(p)
    (listener,) = g["spec"]["listeners"]
    assert "hostname" not in listener and "tls" not in listener
    assert g["metadata"]["annotations"] == {gw.CERTMAP_ANNOTATION: "my-map"}
    assert g["spec"]["addresses"] == [{"type": "NamedAddress", "value": p.frontend.address}]
    assert gateway.frontend.gateway_kinds(p) == ["Address", "SslPolicy"]


def test_route_in_another_namespace_than_the_gateway_is_allowed_by_selector(pki: Path) -> None:
    p = gateway_params(pki, gateway={"namespace": "edge"})
    (listener,) = gateway.gateway_manifest(p)["spec"]["listeners"]
    assert listener["allowedRoutes"]["namespaces"]["from"] == "Selector"
    assert gateway.manifests(p)["ConfigMap"]["metadata"]["namespace"] == "edge"
    assert gateway.manifests(p)["HTTPRoute"]["spec"]["parentRefs"][0]["namespace"] == "edge"


def test_plan_ignores_server_defaults_and_names_the_manager_that_owns_a_changed_field(pki: Path) -> None:
    p = gateway_params(pki)
    desired = gateway.http_route_manifest(p)
    stored = {
        **desired,
        "metadata": {**desired["metadata"], "uid": "u", "managedFields": []},
        "status": {"parents": []},
    }
    assert gateway_kube.plan_object(desired, stored, "cmd").action == "no change"
    # a default the server fills into a list element is not a change; another element count is
    stored["spec"] = {**desired["spec"], "parentRefs": [{**desired["spec"]["parentRefs"][0], "port": 443}]}
    assert gateway_kube.plan_object(desired, stored, "cmd").action == "no change"
    stored["spec"] = {**desired["spec"], "hostnames": ["other.example.test"]}
    stored["metadata"]["managedFields"] = [
        {"manager": "mtlskit", "operation": "Apply", "fieldsV1": {"f:spec": {"f:rules": {}}}},
        {"manager": "kubectl-edit", "operation": "Update", "fieldsV1": {"f:spec": {"f:hostnames": {}}}},
    ]
    change = gateway_kube.plan_object(desired, stored, "cmd")
    assert change.action == "update"
    assert change.fields == ["spec.hostnames (owned by kubectl-edit)"]
    assert gateway_kube.conflicted(change) == change.fields
    assert gateway_kube.plan_object(desired, None, "cmd").action == "create"


def test_preflight_names_the_upgrade_for_a_cluster_without_frontend_validation(pki: Path) -> None:
    p = gateway_params(pki)
    none = gateway_api.GatewaySchema(False, False, "", "", False, False)
    (served,) = gateway_preflight.schema_checks(p, none)
    assert (
        served.status == "fail"
        and "--gateway-api=standard" in served.fix
        and gw.FRONTEND_VALIDATION_GKE in served.fix
    )
    old = gateway_api.GatewaySchema(True, True, "v1.3.0", "standard", False, False)
    checks = gateway_preflight.schema_checks(p, old)
    assert [c.status for c in checks] == ["pass", "fail"]
    assert "v1.3.0" in checks[1].evidence and "spec.tls.frontend" in checks[1].evidence
    new = gateway_api.GatewaySchema(True, True, "v1.5.0", "standard", True, True)
    assert [c.status for c in gateway_preflight.schema_checks(p, new)] == ["pass", "pass"]


def test_preflight_judges_the_class_by_what_it_publishes(pki: Path) -> None:
    p = gateway_params(pki)
    name = p.gateway.class_name
    missing = gateway_preflight.class_checks(p, gateway_api.ClassState(name, False))
    assert [c.status for c in missing] == ["fail"] and "does not exist" in missing[0].evidence
    pending = gateway_preflight.class_checks(
        p, gateway_api.ClassState(name, True, accepted="Unknown", features=[])
    )
    assert [c.status for c in pending] == ["fail", "fail"]
    assert gw.FEATURE_VALIDATION in pending[1].evidence
    silent = gateway_preflight.class_checks(p, gateway_api.ClassState(name, True, accepted="True"))
    assert [c.status for c in silent] == ["pass", "warn"]  # no supportedFeatures published
    claims = gateway_preflight.class_checks(
        p, gateway_api.ClassState(name, True, accepted="True", features=[gw.FEATURE_VALIDATION])
    )
    assert [c.status for c in claims] == ["pass", "pass"]
    assert gateway_api.features_of({"supportedFeatures": [{"name": "A"}, "B"]}) == ["A", "B"]


def test_read_back_and_listener_checks_catch_a_pruned_field_and_gep91_reasons(pki: Path) -> None:
    p = gateway_params(pki)
    assert gateway_status.readback_check(p, None).status == "fail"
    applied = gateway.gateway_manifest(p)["spec"]["tls"]["frontend"]
    assert gateway_status.readback_check(p, applied).status == "pass"
    changed = {
        "default": {"validation": {**applied["default"]["validation"], "mode": gw.ALLOW_INSECURE_FALLBACK}}
    }
    assert gateway_status.readback_check(p, changed).status == "fail"
    obj = {
        "spec": {"tls": {"frontend": applied}},
        "status": {
            "listeners": [
                {
                    "name": "https",
                    "conditions": [
                        {"type": "Accepted", "status": "True"},
                        {"type": "ResolvedRefs", "status": "False", "reason": "InvalidCACertificateRef"},
                    ],
                }
            ]
        },
    }
    state = gateway_status.state_of(obj)
    check = gateway_status.listener_check(state, "kubectl describe gateway")
    assert check.status == "fail" and "InvalidCACertificateRef" in check.evidence and gw.CA_KEY in check.fix
    assert not state.ready and "address none yet" in state.summary()


def test_each_topology_runs_its_own_build_and_teardown_notebooks() -> None:
    from mtlskit import cli

    assert cli._notebook_names(False, True, (), "gateway") == [
        *execute.GATEWAY_BUILD,
        *execute.VERIFY,
        execute.GATEWAY_TEARDOWN,
    ]
    assert cli._notebook_names(True, False, (), "gateway") == execute.VERIFY
    for topology in ("split", "gateway"):
        names = [*execute.build_notebooks(topology), execute.teardown_notebook(topology)]
        assert all(execute.notebook_path(n).is_file() for n in names)
    assert execute.build_notebooks("split") == execute.BUILD
    assert "gw20_gateway" in execute.build_notebooks(
        "gateway"
    ) and "40_frontend" not in execute.build_notebooks("gateway")


def test_permissions_of_the_gateway_topology_are_the_kits_own_compute_resources(pki: Path) -> None:
    needs = permissions.needs(gateway_params(pki))
    asked = {n.permission for n in needs}
    assert "compute.sslPolicies.create" in asked and "compute.sslCertificates.create" in asked
    assert not {"compute.urlMaps.create", "certificatemanager.trustconfigs.create"} & asked
    assert {n.step for n in needs if n.permission.endswith(".delete")} == {permissions.GATEWAY_TEARDOWN}


def test_the_gateway_notebooks_refuse_split_params(pki: Path) -> None:
    split = gateway_params(pki, topology="split")
    with pytest.raises(gateway.PrerequisiteMissing, match="topology split"):
        gateway.require_gateway_topology(split)


@pytest.mark.parametrize("page", list(byhand.GATEWAY_STEPS))
def test_each_gateway_page_prints_its_by_hand_commands_with_the_params_names(pki: Path, page: str) -> None:
    import json

    cells = json.loads((paths.repo_root() / "notebooks" / f"{page}.ipynb").read_text())["cells"]
    calls = ["".join(c["source"]) for c in cells if "by_hand(" in "".join(c["source"])]
    assert calls == [f'print(runbook.by_hand(step.params, "{page}"))']
    p = gateway_params(pki, gateway={"namespace": "edge", "name": "my-gw"})
    text = str(byhand.by_hand(p, page))
    assert "web-gateway" not in text and "mtlskit-sandbox" not in text
    if page != "gw10_gateway_prereqs":
        assert "my-gw" in text or "-l mtlskit/stack=gw" in text


def test_the_schema_walk_follows_openapi_references() -> None:
    defs = {
        "Tls": {"properties": {"frontend": {"$ref": "#/components/schemas/Frontend"}}},
        "Frontend": {"properties": {"default": {"allOf": [{"$ref": "#/components/schemas/Default"}]}}},
        "Default": {"properties": {"validation": {"properties": {"caCertificateRefs": {"type": "array"}}}}},
    }
    gateway_schema = {"properties": {"spec": {"properties": {"tls": {"$ref": "#/components/schemas/Tls"}}}}}
    assert gateway_api._walk(gateway_schema, gateway_api.FRONTEND_PATH, defs) == {"type": "array"}
    assert gateway_api._walk(gateway_schema, (*gateway_api.FRONTEND_PATH[:-1], "mode"), defs) is None
    assert gateway_api.openapi_definition_name() == "io.k8s.networking.gateway.v1.Gateway"
