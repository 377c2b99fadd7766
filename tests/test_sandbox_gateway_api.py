"""The Gateway API and GKE's policies on the sandbox's cluster, through the official `kubernetes`
client and the real kubectl: CRDs readable through apiextensions, GatewayClasses seeded with their
features, server-side apply with the kit's field manager, and what an older bundle or a cluster without
the Gateway API does with the same manifests (`sandbox.gateway_api`, changed on the running sandbox as
`process.start` does when the params change)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k
from kubernetes.client.exceptions import ApiException

from mtlskit.cloud.clients import Clients, build_clients
from mtlskit.config.params import Params
from mtlskit.rules import gateway as gw
from mtlskit.sandbox import process
from tests.conftest import gateway_spec, sandbox_params
from tests.test_kubectl import kubectl, write
from tests.test_sandbox_gateway import until as poll_until

pytestmark = pytest.mark.e2e

Env = tuple[Params, Clients, Path]
MANAGER = "mtlskit"
APPLY = "application/apply-patch+yaml"
NS = "gateway-infra"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    state = tmp_path_factory.mktemp("gateway-api-sandbox")
    params = sandbox_params(state, stack="gateway-api-test", sandbox={"gateway_api": "v1.5"})
    clients = build_clients(params)
    info = process.SandboxInfo.read(state)
    assert info is not None
    clients.kube.core.create_namespace({"metadata": {"name": NS}})
    yield params, clients, Path(info.kubeconfig)
    process.stop(state)


@pytest.fixture
def bundle(env: Env) -> Iterator[Any]:
    """Switch the running sandbox's CRD bundle for one test; v1.5 again afterwards."""
    info = process.SandboxInfo.read(env[0].state_dir)
    assert info is not None
    yield lambda name: process.set_gateway_api(info, name)
    process.set_gateway_api(info, "v1.5")


def gateway(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{gw.GROUP}/v1",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": NS},
        "spec": gateway_spec(mode=gw.ALLOW_VALID_ONLY, **spec),
    }


def route(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{gw.GROUP}/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "parentRefs": [{"name": name}],
            "hostnames": ["api.mtlskit.test"],
            "rules": [
                {
                    "filters": [
                        {
                            "type": "RequestHeaderModifier",
                            "requestHeaderModifier": {
                                "add": [{"name": "X-Client-Cert-Present", "value": "{client_cert_present}"}]
                            },
                        }
                    ],
                    "backendRefs": [{"name": "web", "port": 80}],
                }
            ],
        },
    }


def apply(clients: Clients, plural: str, body: dict[str, Any], **kw: Any) -> tuple[Any, int, Any]:
    """Server-side apply through CustomObjectsApi, as the kit does: (object, status, headers)."""
    group, version = body["apiVersion"].split("/")
    return clients.kube.custom.patch_namespaced_custom_object_with_http_info(
        group,
        version,
        NS,
        plural,
        body["metadata"]["name"],
        body,
        field_manager=MANAGER,
        _content_type=APPLY,
        **kw,
    )


def read(clients: Clients, plural: str, name: str, group: str = gw.GROUP, version: str = "v1") -> Any:
    return clients.kube.custom.get_namespaced_custom_object(group, version, NS, plural, name)


def test_crds_are_readable_through_apiextensions(env: Env) -> None:
    ext = k.ApiextensionsV1Api(env[1].kube.api)
    names = {c.metadata.name for c in ext.list_custom_resource_definition().items}
    assert {
        "gateways.gateway.networking.k8s.io",
        "httproutes.gateway.networking.k8s.io",
        "gcpbackendpolicies.networking.gke.io",
        "backendconfigs.cloud.google.com",
    } <= names
    crd = ext.read_custom_resource_definition("gateways.gateway.networking.k8s.io")
    assert crd.metadata.annotations[gw.BUNDLE_VERSION_ANNOTATION] == "v1.5.0"
    assert crd.metadata.annotations[gw.CHANNEL_ANNOTATION] == "standard"
    version, beta = crd.spec.versions
    assert (version.name, version.storage, beta.name, beta.storage) == ("v1", True, "v1beta1", False)
    frontend = version.schema.open_apiv3_schema.properties["spec"].properties["tls"].properties["frontend"]
    assert frontend.required == ["default"]
    assert {c.type for c in crd.status.conditions} == {"Established", "NamesAccepted"}
    policy = ext.read_custom_resource_definition("healthcheckpolicies.networking.gke.io")
    assert policy.metadata.labels == {gw.POLICY_LABEL: "Direct"}
    with pytest.raises(ApiException) as info:
        ext.delete_custom_resource_definition("gateways.gateway.networking.k8s.io")
    assert info.value.status == 405 and "sandbox.gateway_api" in info.value.body


def test_gke_gateway_classes_are_accepted_and_list_their_features(env: Env) -> None:
    classes = env[1].kube.custom.list_cluster_custom_object(gw.GROUP, "v1", "gatewayclasses")["items"]
    assert {c["metadata"]["name"] for c in classes} == set(gw.CLASSES)
    for c in classes:
        assert c["spec"]["controllerName"] == gw.CONTROLLER_NAME
        (accepted,) = c["status"]["conditions"]
        assert (accepted["type"], accepted["status"]) == ("Accepted", "True")
        features = [f["name"] for f in c["status"]["supportedFeatures"]]
        assert gw.FEATURE_VALIDATION in features and gw.FEATURE_FALLBACK not in features


def test_server_side_apply_creates_defaults_and_owns_the_gateway_route_and_policies(env: Env) -> None:
    clients = env[1]
    # a class no controller claims: the status stays the CRD's defaults ("Waiting for controller")
    unclaimed = gateway("ssa", gatewayClassName="unclaimed")
    assert apply(clients, "gateways", unclaimed)[1] == 201
    stored = read(clients, "gateways", "ssa")
    assert stored["spec"]["tls"]["frontend"]["default"]["validation"]["mode"] == gw.ALLOW_VALID_ONLY
    assert [c["status"] for c in stored["status"]["conditions"]] == ["Unknown", "Unknown"]
    assert [(m["manager"], m["operation"]) for m in stored["metadata"]["managedFields"]] == [
        (MANAGER, "Apply")
    ]
    again, status, _ = apply(clients, "gateways", unclaimed)
    assert status == 200 and again["metadata"]["generation"] == 1

    assert apply(clients, "httproutes", route("ssa"))[1] == 201
    rule = read(clients, "httproutes", "ssa")["spec"]["rules"][0]
    assert rule["filters"][0]["requestHeaderModifier"]["add"][0]["value"] == "{client_cert_present}"
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]

    policy = {
        "apiVersion": f"{gw.POLICY_GROUP}/v1",
        "kind": "GCPBackendPolicy",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {
            "targetRef": {"group": "", "kind": "Service", "name": "web"},
            "default": {"logging": {"enabled": True, "sampleRate": 1_000_000}},
        },
    }
    assert apply(clients, "gcpbackendpolicies", policy)[1] == 201
    policy["spec"]["default"]["logging"]["sampleRate"] = 1_000_001
    with pytest.raises(ApiException) as info:
        apply(clients, "gcpbackendpolicies", policy)
    assert info.value.status == 422 and "spec.default.logging.sampleRate" in info.value.body
    got = read(clients, "gcpbackendpolicies", "web", gw.POLICY_GROUP)
    assert got["spec"]["default"]["logging"]["sampleRate"] == 1_000_000


def test_a_v1beta1_manifest_is_stored_once_and_read_at_either_version(env: Env) -> None:
    clients = env[1]
    beta = gateway("beta")
    beta["apiVersion"] = f"{gw.GROUP}/v1beta1"
    _, status, _ = apply(clients, "gateways", beta)
    assert status == 201
    as_v1 = read(clients, "gateways", "beta")
    assert as_v1["apiVersion"] == f"{gw.GROUP}/v1" and as_v1["spec"]["tls"]["frontend"]
    as_beta = read(clients, "gateways", "beta", version="v1beta1")
    assert (
        as_beta["apiVersion"] == f"{gw.GROUP}/v1beta1"
        and as_beta["metadata"]["uid"] == as_v1["metadata"]["uid"]
    )
    listed = clients.kube.custom.list_namespaced_custom_object(gw.GROUP, "v1beta1", NS, "gateways")
    assert listed["apiVersion"] == f"{gw.GROUP}/v1beta1"
    assert {i["apiVersion"] for i in listed["items"]} == {f"{gw.GROUP}/v1beta1"}
    custom = clients.kube.custom
    with pytest.raises(ApiException) as info:  # the version in the body must be the one in the path
        custom.patch_namespaced_custom_object(
            gw.GROUP,
            "v1beta1",
            NS,
            "gateways",
            "beta",
            gateway("beta"),
            field_manager=MANAGER,
            _content_type=APPLY,
        )
    assert info.value.status == 400 and "does not match the expected API version" in info.value.body


def test_an_older_bundle_prunes_spec_tls_or_refuses_it_under_strict(env: Env, bundle: Any) -> None:
    clients = env[1]
    bundle("v1.4")
    _, _, headers = apply(clients, "gateways", gateway("old"))
    assert headers["Warning"] == '299 - "unknown field \\"spec.tls\\""'
    assert "tls" not in read(clients, "gateways", "old")["spec"]
    with pytest.raises(ApiException) as info:
        apply(clients, "gateways", gateway("old"), field_validation="Strict")
    assert (
        info.value.status == 400 and 'strict decoding error: unknown field \\"spec.tls\\"' in info.value.body
    )
    ext = k.ApiextensionsV1Api(clients.kube.api)
    crd = ext.read_custom_resource_definition("gateways.gateway.networking.k8s.io")
    assert crd.metadata.annotations[gw.BUNDLE_VERSION_ANNOTATION] == "v1.4.0"
    assert all(
        "tls" not in v.schema.open_apiv3_schema.properties["spec"].properties for v in crd.spec.versions
    )
    classes = clients.kube.custom.list_cluster_custom_object(gw.GROUP, "v1", "gatewayclasses")["items"]
    assert all(
        gw.FEATURE_VALIDATION not in {f["name"] for f in c["status"]["supportedFeatures"]} for c in classes
    )


def test_without_the_gateway_api_its_kinds_are_not_served(env: Env, bundle: Any) -> None:
    clients = env[1]
    apply(clients, "gateways", gateway("gone"))
    bundle(gw.NO_GATEWAY_API)
    with pytest.raises(ApiException) as info:
        clients.kube.custom.list_namespaced_custom_object(gw.GROUP, "v1", NS, "gateways")
    assert info.value.status == 404
    groups = {g.name for g in k.ApisApi(clients.kube.api).get_api_versions().groups}
    assert gw.GROUP not in groups and gw.POLICY_GROUP not in groups and "cloud.google.com" in groups
    crds = k.ApiextensionsV1Api(clients.kube.api).list_custom_resource_definition().items
    assert [c.metadata.name for c in crds] == ["backendconfigs.cloud.google.com"]
    bundle("v1.5")  # enabled again: the CRDs and classes are back, the objects went with their CRD
    assert clients.kube.custom.list_namespaced_custom_object(gw.GROUP, "v1", NS, "gateways")["items"] == []
    assert len(clients.kube.custom.list_cluster_custom_object(gw.GROUP, "v1", "gatewayclasses")["items"]) == 2


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs the kubectl binary on PATH")
def test_kubectl_applies_gets_describes_and_explains_gateways(env: Env, bundle: Any, tmp_path: Path) -> None:
    cache = ("--cache-dir", str(tmp_path / "cache"))  # discovery changes with the bundle below
    manifest = write(tmp_path, "gateway.yaml", [gateway("web"), route("web")])
    out = kubectl(env, *cache, "apply", "-f", manifest).stdout
    assert (
        "gateway.gateway.networking.k8s.io/web created" in out
        and "httproute.gateway.networking.k8s.io/web created" in out
    )

    # the Gateway controller answers after its delay: the CA ConfigMap is missing, so not programmed
    def judged() -> bool:
        conditions = read(env[1], "gateways", "web").get("status", {}).get("conditions", [])
        return any(c["type"] == "Programmed" and c["status"] != "Unknown" for c in conditions)

    poll_until(judged)
    listed = kubectl(env, *cache, "get", "gateways,httproutes", "-A").stdout.splitlines()
    assert listed[0].split() == ["NAMESPACE", "NAME", "CLASS", "ADDRESS", "PROGRAMMED", "AGE"]
    assert listed[1].split()[:4] == [NS, "gateway.gateway.networking.k8s.io/web", gw.DEFAULT_CLASS, "False"]
    assert any(
        line.split()[:3] == [NS, "httproute.gateway.networking.k8s.io/web", '["api.mtlskit.test"]']
        for line in listed
    )
    classes = kubectl(env, *cache, "get", "gatewayclass").stdout.splitlines()
    assert classes[0].split() == ["NAME", "CONTROLLER", "ACCEPTED", "AGE"]
    assert {tuple(line.split()[:3]) for line in classes[1:]} == {
        (name, gw.CONTROLLER_NAME, "True") for name in gw.CLASSES
    }
    described = kubectl(env, *cache, "describe", "gateway", "web", "-n", NS).stdout
    assert "Ca Certificate Refs:" in described and "Mode:     AllowValidOnly" in described
    assert gw.NO_VALID_CA in described and gw.EVENT_COMPONENT in described  # conditions and events
    explained = kubectl(env, *cache, "explain", "gateway.spec.tls.frontend").stdout
    assert "default\t<Object> -required-" in explained and "perPort" in explained
    beta = kubectl(
        env, *cache, "get", f"gateways.v1beta1.{gw.GROUP}", "web", "-n", NS, "-o", "jsonpath={.apiVersion}"
    )
    assert beta.stdout == f"{gw.GROUP}/v1beta1"
    again = kubectl(env, *cache, "apply", "--server-side", "-f", manifest).stdout
    assert again.count("serverside-applied") == 2

    # a dry run (kubectl diff, --dry-run=server) is checked like a write and changes nothing
    fallback = gateway("web")
    fallback["spec"]["tls"]["frontend"]["default"]["validation"]["mode"] = gw.ALLOW_INSECURE_FALLBACK
    changed = write(tmp_path, "fallback.yaml", [fallback, route("web")])
    before = env[1].kube.custom.get_namespaced_custom_object(gw.GROUP, "v1", NS, "gateways", "web")
    diff = kubectl(env, *cache, "diff", "--server-side", "--force-conflicts", "-f", changed, check=False)
    assert diff.returncode == 1 and "-          mode: AllowValidOnly" in diff.stdout
    assert "+          mode: AllowInsecureFallback" in diff.stdout and "httproutes" not in diff.stdout
    dry = kubectl(env, *cache, "delete", "gateway", "web", "-n", NS, "--dry-run=server").stdout
    assert dry.strip() == 'gateway.gateway.networking.k8s.io "web" deleted (server dry run)'
    after = env[1].kube.custom.get_namespaced_custom_object(gw.GROUP, "v1", NS, "gateways", "web")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]

    bundle("v1.4")
    refused = kubectl(
        env, *cache, "apply", "-f", write(tmp_path, "old.yaml", [gateway("old-cluster")]), check=False
    )
    assert refused.returncode == 1 and 'strict decoding error: unknown field "spec.tls"' in refused.stderr
    warned = kubectl(env, *cache, "apply", "--validate=warn", "-f", manifest)
    assert (
        'Warning: unknown field "spec.tls"' in warned.stderr
        and "gateway.gateway.networking.k8s.io/web configured" in warned.stdout
    )
    missing = kubectl(env, *cache, "explain", "gateway.spec.tls", check=False)
    assert missing.returncode == 1 and 'field "tls" does not exist' in missing.stderr

    bundle(gw.NO_GATEWAY_API)
    absent = kubectl(env, "--cache-dir", str(tmp_path / "fresh"), "get", "gateways", "-A", check=False)
    assert absent.returncode == 1 and 'the server doesn\'t have a resource type "gateways"' in absent.stderr
