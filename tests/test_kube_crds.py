"""The simulated cluster's custom resources without a server: which kinds each Gateway API bundle
serves, that the CRD objects, the OpenAPI documents and validation all come from one schema, and that
writes are pruned, defaulted and refused the way the API server's CRD handler does."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mtlskit.rules import gateway as gw
from mtlskit.sandbox import kube_crds, kube_openapi, kube_table
from mtlskit.sandbox import kube_discovery as discovery
from mtlskit.sandbox.kube import KINDS
from mtlskit.sandbox.web import ApiError
from tests.conftest import gateway_spec

GATEWAY = KINDS[(gw.GROUP, "gateways")]
HTTP_ROUTE = KINDS[(gw.GROUP, "httproutes")]
BACKEND_POLICY = KINDS[(gw.POLICY_GROUP, "gcpbackendpolicies")]
HEALTH_POLICY = KINDS[(gw.POLICY_GROUP, "healthcheckpolicies")]
GATEWAY_KINDS = {"GatewayClass", "Gateway", "HTTPRoute", "ReferenceGrant"}
POLICY_KINDS = {"GCPGatewayPolicy", "GCPBackendPolicy", "HealthCheckPolicy"}


def gateway(**spec: Any) -> dict[str, Any]:
    body = gateway_spec(**spec)
    return {"apiVersion": GATEWAY.api_version, "kind": "Gateway", "metadata": {"name": "web"}, "spec": body}


def node(schema: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The schema of a dotted field path (`[]` steps into list items), or None when it is not there."""
    for step in path.split("."):
        schema = kube_openapi.resolve(schema)
        schema = schema.get("items") if step == "[]" else (schema.get("properties") or {}).get(step)
        if schema is None:
            return None
    return schema


# ---- which kinds a bundle serves ------------------------------------------------------------------------


@pytest.mark.parametrize("bundle", ["v1.5", "v1.4", "v1.3"])
def test_an_enabled_gateway_api_serves_its_kinds_and_gkes_policies(bundle: str) -> None:
    served = kube_crds.served(bundle)
    kinds = {k.kind for k in served}
    assert GATEWAY_KINDS | POLICY_KINDS | {"BackendConfig", "CustomResourceDefinition", "Ingress"} <= kinds
    listed = discovery.api_resource_list(served, gw.GROUP, "v1")
    assert listed is not None
    names = {r["name"]: r for r in listed["resources"]}
    assert names["gateways"]["shortNames"] == ["gtw"] and names["gateways"]["categories"] == ["gateway-api"]
    assert names["gatewayclasses"]["namespaced"] is False and names["gatewayclasses"]["shortNames"] == ["gc"]
    assert {"gateways/status", "httproutes/status", "gatewayclasses/status"} <= names.keys()
    policies = discovery.api_resource_list(served, gw.POLICY_GROUP, gw.POLICY_VERSION)
    assert policies is not None
    plurals = ("gcpgatewaypolicies", "gcpbackendpolicies", "healthcheckpolicies")
    assert {r["name"] for r in policies["resources"]} == {*plurals, *(f"{p}/status" for p in plurals)}


def test_kinds_that_went_ga_are_also_served_at_v1beta1_as_the_bundles_crds_do() -> None:
    for bundle in ("v1.5", "v1.4", "v1.3"):
        beta = discovery.api_resource_list(kube_crds.served(bundle), gw.GROUP, "v1beta1")
        assert beta is not None
        assert {r["name"] for r in beta["resources"] if "/" not in r["name"]} == {
            "gatewayclasses",
            "gateways",
            "httproutes",
            "referencegrants",
        }
        group = discovery.api_group(kube_crds.served(bundle), gw.GROUP)
        assert group is not None and group["preferredVersion"]["version"] == "v1"
        assert [v["version"] for v in group["versions"]] == ["v1", "v1beta1"]
    grants = kube_crds.resource_of(KINDS[(gw.GROUP, "referencegrants")])
    assert grants is not None
    versions = kube_crds.crd_body(grants, "v1.5")["spec"]["versions"]
    assert [(v["name"], v["storage"]) for v in versions] == [("v1", False), ("v1beta1", True)]
    assert [k.version for k in grants.kinds("v1.4")] == ["v1beta1"]
    gateways = kube_crds.resource_of(GATEWAY)
    assert gateways is not None
    assert [(v["name"], v["storage"]) for v in kube_crds.crd_body(gateways, "v1.3")["spec"]["versions"]] == [
        ("v1", True),
        ("v1beta1", False),
    ]


def test_without_the_gateway_api_no_gateway_or_policy_kind_is_served() -> None:
    served = kube_crds.served(gw.NO_GATEWAY_API)
    assert not {k.kind for k in served} & (GATEWAY_KINDS | POLICY_KINDS)
    assert discovery.api_group(served, gw.GROUP) is None
    groups = {g["name"] for g in discovery.api_group_list(served)["groups"]}
    assert "cloud.google.com" in groups and gw.GROUP not in groups and gw.POLICY_GROUP not in groups
    assert list(kube_openapi.v3_index(gw.NO_GATEWAY_API)["paths"]).count(f"apis/{gw.GROUP}/v1") == 0


# ---- one schema behind the CRD object, the OpenAPI documents and validation -----------------------------


@pytest.mark.parametrize("bundle", ["v1.5", "v1.4", "v1.3"])
def test_crd_objects_and_openapi_documents_publish_the_same_schema(bundle: str) -> None:
    for resource in kube_crds.installed(bundle):
        crd = kube_crds.crd_body(resource, bundle)
        assert crd["metadata"]["name"] == f"{resource.kind.plural}.{resource.kind.group}"
        assert crd["spec"]["scope"] == ("Namespaced" if resource.kind.namespaced else "Cluster")
        assert crd["status"]["storedVersions"] == [resource.kind.version]
        for kind, version in zip(resource.kinds(bundle), crd["spec"]["versions"], strict=True):
            assert version["name"] == kind.version and ("subresources" in version) is kind.has_status
            published = kube_openapi.v3_document(bundle, kind.group, kind.version)
            assert published is not None
            from_doc = copy.deepcopy(published["components"]["schemas"][kube_crds.definition_name(kind)])
            from_doc["properties"]["metadata"] = {"type": "object"}
            assert from_doc.pop("x-kubernetes-group-version-kind") == [
                {"group": kind.group, "kind": kind.kind, "version": kind.version}
            ]
            assert from_doc == version["schema"]["openAPIV3Schema"], kind
            v2 = kube_openapi.v2_document(bundle)["definitions"][kube_crds.definition_name(kind)]
            assert v2["properties"]["spec"] == from_doc["properties"]["spec"]
        if resource.gateway_api:
            assert crd["metadata"]["annotations"][gw.BUNDLE_VERSION_ANNOTATION] == gw.BUNDLE_VERSIONS[bundle]
            assert crd["metadata"]["annotations"][gw.CHANNEL_ANNOTATION] == "standard"
        if resource.gke_policy:
            assert crd["metadata"]["labels"] == {gw.POLICY_LABEL: "Direct"}


# The field paths the kit's Gateway build writes (Gateway API v1.5 standard CRDs, GKE's policy CRDs).
KIT_FIELDS = {
    GATEWAY: [
        "spec.gatewayClassName",
        "spec.listeners.[].name",
        "spec.listeners.[].hostname",
        "spec.listeners.[].tls.certificateRefs",
        "spec.listeners.[].tls.options",
        "spec.listeners.[].allowedRoutes.namespaces.from",
        "spec.addresses.[].type",
        "spec.addresses.[].value",
        "spec.tls.frontend.default.validation.caCertificateRefs.[].kind",
        "spec.tls.frontend.default.validation.mode",
        "spec.tls.frontend.perPort.[].tls.validation.mode",
        "status.listeners.[].conditions.[].reason",
        "status.addresses.[].value",
    ],
    HTTP_ROUTE: [
        "spec.parentRefs.[].sectionName",
        "spec.hostnames",
        "spec.rules.[].matches.[].path.value",
        "spec.rules.[].filters.[].requestHeaderModifier.add.[].value",
        "spec.rules.[].filters.[].requestHeaderModifier.set",
        "spec.rules.[].filters.[].requestHeaderModifier.remove",
        "spec.rules.[].backendRefs.[].weight",
        "status.parents.[].conditions",
    ],
    BACKEND_POLICY: ["spec.targetRef.kind", "spec.default.logging.sampleRate", "spec.default.timeoutSec"],
    HEALTH_POLICY: [
        "spec.default.checkIntervalSec",
        "spec.default.config.httpHealthCheck.requestPath",
        "spec.default.config.httpHealthCheck.portSpecification",
    ],
}


def test_the_v15_schemas_carry_every_field_the_kit_writes_and_older_bundles_lack_spec_tls() -> None:
    for kind, paths in KIT_FIELDS.items():
        for path in paths:
            assert node(kube_openapi.schema_of(kind, "v1.5"), path) is not None, (kind.kind, path)
    mode = node(kube_openapi.schema_of(GATEWAY, "v1.5"), "spec.tls.frontend.default.validation.mode")
    assert mode is not None and mode["enum"] == [gw.ALLOW_VALID_ONLY, gw.ALLOW_INSECURE_FALLBACK]
    for bundle in ("v1.4", "v1.3"):
        schema = kube_openapi.schema_of(GATEWAY, bundle)
        assert node(schema, "spec.tls") is None and node(schema, "spec.listeners.[].tls.mode") is not None
        # v1.3's listener-level frontendValidation was experimental only: not in the standard schema
        assert node(schema, "spec.listeners.[].tls.frontendValidation") is None


# ---- writes as the CRD handler takes them ---------------------------------------------------------------


def test_an_older_bundle_prunes_spec_tls_with_a_warning_or_refuses_it_when_strict() -> None:
    kept, warnings = kube_openapi.validate(GATEWAY, gateway(), None, "v1.5")
    assert kept["spec"]["tls"] and warnings == []
    pruned, warnings = kube_openapi.validate(GATEWAY, gateway(), "Warn", "v1.4")
    assert "tls" not in pruned["spec"] and warnings == ['unknown field "spec.tls"']
    _, silent = kube_openapi.validate(GATEWAY, gateway(), "Ignore", "v1.3")
    assert silent == []
    with pytest.raises(ApiError) as info:
        kube_openapi.validate(GATEWAY, gateway(), "Strict", "v1.4")
    assert info.value.status == 400
    assert 'strict decoding error: unknown field "spec.tls"' in info.value.body["message"]


def test_defaults_are_filled_in_as_the_crds_declare_them() -> None:
    admitted = kube_openapi.admit(GATEWAY, gateway(), "v1.5")
    validation = admitted["spec"]["tls"]["frontend"]["default"]["validation"]
    assert validation["mode"] == gw.ALLOW_VALID_ONLY
    assert admitted["spec"]["listeners"][0]["allowedRoutes"] == {"namespaces": {"from": "Same"}}
    assert [c["reason"] for c in admitted["status"]["conditions"]] == ["Pending", "Pending"]
    route = {"apiVersion": HTTP_ROUTE.api_version, "kind": "HTTPRoute", "metadata": {"name": "r"}, "spec": {}}
    rules = kube_openapi.admit(HTTP_ROUTE, route, "v1.5")["spec"]["rules"]
    assert rules == [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}]


def test_schema_violations_are_422_invalid_with_one_cause_per_field() -> None:
    bad = gateway(gatewayClassName=None)
    del bad["spec"]["gatewayClassName"]
    bad["spec"]["listeners"] = [
        {"name": "https", "port": 70000, "protocol": "HTTPS"},
        {"name": "https", "port": 443, "protocol": "HTTPS"},
    ]
    bad["spec"]["tls"]["frontend"]["default"]["validation"]["mode"] = "AllowAll"
    with pytest.raises(ApiError) as info:
        kube_openapi.admit(GATEWAY, bad, "v1.5")
    body = info.value.body
    assert info.value.status == 422 and body["reason"] == "Invalid"
    assert body["message"].startswith('Gateway.gateway.networking.k8s.io "web" is invalid: [')
    causes = {c["field"]: c for c in body["details"]["causes"]}
    assert causes["spec.gatewayClassName"]["reason"] == "FieldValueRequired"
    assert causes["spec.listeners[0].port"]["message"].endswith("should be less than or equal to 65535")
    assert causes["spec.listeners[1]"]["reason"] == "FieldValueDuplicate"
    mode = causes["spec.tls.frontend.default.validation.mode"]
    assert mode["reason"] == "FieldValueNotSupported"
    assert (
        mode["message"]
        == 'Unsupported value: "AllowAll": supported values: "AllowValidOnly", "AllowInsecureFallback"'
    )

    policy = {
        "apiVersion": BACKEND_POLICY.api_version,
        "kind": "GCPBackendPolicy",
        "metadata": {"name": "p"},
        "spec": {
            "targetRef": {"group": "", "kind": "Service"},
            "default": {"logging": {"sampleRate": "all"}},
        },
    }
    with pytest.raises(ApiError) as info:
        kube_openapi.validate(BACKEND_POLICY, policy, None, "v1.5")
    assert info.value.status == 422
    assert info.value.body["details"]["causes"][0]["field"] == "spec.default.logging.sampleRate"
    policy["spec"]["default"]["logging"]["sampleRate"] = 2_000_000
    with pytest.raises(ApiError) as info:
        kube_openapi.admit(BACKEND_POLICY, policy, "v1.5")
    fields = {c["field"] for c in info.value.body["details"]["causes"]}
    assert fields == {"spec.targetRef.name", "spec.default.logging.sampleRate"}


def test_built_in_kinds_keep_their_decoding_errors_and_no_schema_checks() -> None:
    service = KINDS[("", "services")]
    with pytest.raises(ApiError) as info:
        kube_openapi.validate(service, {"metadata": {"name": "s"}, "spec": {"ports": "80"}}, None, "v1.5")
    assert info.value.status == 400
    body = {"metadata": {"name": "s"}, "spec": {"ports": [{"protocol": "TCP"}]}}
    assert kube_openapi.admit(service, body, "v1.5") == body


# ---- GatewayClass features and printer columns -----------------------------------------------------------


def test_classes_claim_frontend_validation_only_where_the_schema_has_it() -> None:
    for name in gw.CLASSES:
        assert gw.FEATURE_VALIDATION in gw.supported_features(name, "v1.5")
        assert gw.FEATURE_FALLBACK not in gw.supported_features(name, "v1.5")
        older = gw.supported_features(name, "v1.4")
        assert gw.FEATURE_VALIDATION not in older and {"Gateway", "HTTPRoute"} <= set(older)
        assert gw.supported_features(name, "v1.3") == []  # its GatewayClass has no supportedFeatures
    gateway_class = KINDS[(gw.GROUP, "gatewayclasses")]
    assert node(kube_openapi.schema_of(gateway_class, "v1.4"), "status.supportedFeatures.[].name") is not None
    assert node(kube_openapi.schema_of(gateway_class, "v1.3"), "status.supportedFeatures") is None
    assert [gw.frontend_in_standard(b) for b in ("v1.5", "v1.4", "v1.3", "none")] == [
        True,
        False,
        False,
        False,
    ]


def test_printer_columns_read_the_object_as_the_crds_jsonpaths_say() -> None:
    resource = kube_crds.resource_of(GATEWAY)
    assert resource is not None
    obj = kube_openapi.admit(GATEWAY, gateway(), "v1.5")
    obj["metadata"]["creationTimestamp"] = "2000-01-01T00:00:00Z"
    obj["status"]["addresses"] = [{"type": "IPAddress", "value": "203.0.113.7"}]
    obj["status"]["conditions"][1].update(status="True", reason="Programmed")
    table = kube_table.table(resource.columns, [obj], "7")
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name",
        "Class",
        "Address",
        "Programmed",
        "Age",
    ]
    (row,) = table["rows"]
    assert row["cells"][:4] == ["web", gw.DEFAULT_CLASS, "203.0.113.7", "True"]
    assert row["cells"][4].endswith("y") and row["object"]["metadata"]["name"] == "web"
    assert kube_table.find({"a": [{"v": 1}, {"v": 2}]}, ".a[*].v") == [1, 2]
    assert kube_table.wants_table("application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
    assert not kube_table.wants_table("application/json")


def refused(kind: Any, obj: dict[str, Any]) -> dict[str, str]:
    """{field: message} of the causes an object is refused with."""
    with pytest.raises(ApiError) as info:
        kube_openapi.admit(kind, obj, "v1.5")
    assert info.value.status == 422
    return {c["field"]: c["message"] for c in info.value.body["details"]["causes"]}


def test_the_crds_validation_rules_refuse_what_the_api_server_would() -> None:
    terminate = gateway()
    terminate["spec"]["listeners"][0]["tls"] = {"mode": "Terminate"}
    assert refused(GATEWAY, terminate) == {
        "spec.listeners[0].tls": 'Invalid value: "object": certificateRefs or options must be specified when mode is Terminate'
    }
    terminate["spec"]["listeners"][0]["tls"]["options"] = {gw.PRE_SHARED_CERTS_OPTION: "web-cert"}
    assert (
        kube_openapi.admit(GATEWAY, terminate, "v1.5")["spec"]["listeners"][0]["tls"]["mode"] == "Terminate"
    )
    plain = gateway()
    plain["spec"]["listeners"] = [
        {"name": "http", "port": 80, "protocol": "HTTP", "tls": {"options": {"a": "b"}}}
    ]
    assert (
        "tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']"
        in refused(GATEWAY, plain)["spec.listeners"]
    )

    route = {
        "apiVersion": HTTP_ROUTE.api_version,
        "kind": "HTTPRoute",
        "metadata": {"name": "r"},
        "spec": {
            "rules": [
                {
                    "filters": [{"type": "RequestHeaderModifier"}],
                    "backendRefs": [{"name": "web"}],
                }
            ]
        },
    }
    assert refused(HTTP_ROUTE, route) == {
        "spec.rules[0].filters[0]": 'Invalid value: "object": filter.requestHeaderModifier must be specified '
        "for RequestHeaderModifier filter.type",
        "spec.rules[0].backendRefs[0]": 'Invalid value: "object": Must have port for Service reference',
    }
    route["spec"]["rules"][0] = {
        "filters": [
            {
                "type": "RequestHeaderModifier",
                "requestHeaderModifier": {"add": [{"name": "X-A", "value": "1"}]},
            }
        ],
        "backendRefs": [{"name": "web", "port": 80}],
    }
    assert kube_openapi.admit(HTTP_ROUTE, route, "v1.5")["spec"]["rules"][0]["backendRefs"][0]["weight"] == 1

    health = {
        "apiVersion": HEALTH_POLICY.api_version,
        "kind": "HealthCheckPolicy",
        "metadata": {"name": "h"},
        "spec": {
            "targetRef": {"group": "", "kind": "Service", "name": "web"},
            "default": {"timeoutSec": 10, "config": {"type": "HTTP", "httpHealthCheck": {"port": 8080}}},
        },
    }
    assert set(refused(HEALTH_POLICY, health).values()) == {
        'Invalid value: "object": when checkIntervalSec is unspecified, timeOutSec cannot exceed 5, which is '
        "the default value of checkIntervalSec",
        'Invalid value: "object": port and portName must be unset for portSpecification being USE_SERVING_PORT '
        "(which is the default)",
    }
    health["spec"]["default"] = {
        "checkIntervalSec": 15,
        "timeoutSec": 10,
        "config": {"type": "HTTP", "httpHealthCheck": {"portSpecification": "USE_FIXED_PORT", "port": 8080}},
    }
    kube_openapi.admit(HEALTH_POLICY, health, "v1.5")
