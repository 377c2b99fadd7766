"""The simulated GKE Gateway controller's reconcile logic, over the sandbox's stores (no server): what it
builds from a Gateway, HTTPRoute, ConfigMap and policies, what it writes back, what it refuses (GEP-91
reasons) and what it deletes. The same controller behind the real clients: test_sandbox_gateway.py."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h11
import pytest
from cryptography import x509

from mtlskit.pki import certs
from mtlskit.rules import gateway as gw
from mtlskit.rules.gateway import DATA_PLANE
from mtlskit.sandbox import gateway_refs
from mtlskit.sandbox import gateway_translate as tr
from mtlskit.sandbox.compute.lists import ZONE
from mtlskit.sandbox.compute.resources import ComputeStore
from mtlskit.sandbox.controller import INGRESS, IngressController, neg_name
from mtlskit.sandbox.dataplane import Connection, DataPlane, Frontend, _header_actions, _rule_matches
from mtlskit.sandbox.env import Env, Settings
from mtlskit.sandbox.gateway_controller import (
    BACKEND_POLICY,
    CONFIG_MAP,
    EVENT,
    GATEWAY,
    GATEWAY_CLASS,
    GATEWAY_POLICY,
    HEALTH_POLICY,
    HTTP_ROUTE,
    REFERENCE_GRANT,
    SERVICE,
    GatewayController,
)
from mtlskit.sandbox.kube import API, KINDS, KubeObjects, key_of
from mtlskit.sandbox.locations import Locations

P = "mtlskit-sandbox"
NS = "shop"
CLASS = gw.DEFAULT_CLASS


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = certs.issue("gw test root", ca=True)
    inter = certs.issue("gw test intermediate", issuer=root, ca=True)
    other = certs.issue("gw other root", ca=True)
    return {
        "root": certs.pem(root.cert),
        "intermediate": certs.pem(inter.cert),
        "other": certs.pem(other.cert),
    }


@dataclass
class World:
    env: Env
    kube: KubeObjects
    compute: ComputeStore
    locations: Locations
    controller: GatewayController

    def create(self, kind: Any, body: dict[str, Any], ns: str | None = NS) -> dict[str, Any]:
        return self.kube.create(kind, ns, body)

    def gateway(self) -> dict[str, Any]:
        obj = self.kube.get(GATEWAY, NS, "gw")
        assert obj is not None
        return obj

    def cond(self, obj: dict[str, Any], type_: str) -> dict[str, Any]:
        return next(c for c in obj["status"]["conditions"] if c["type"] == type_)

    def listener_cond(self, type_: str) -> dict[str, Any]:
        listener = self.gateway()["status"]["listeners"][0]
        return next(c for c in listener["conditions"] if c["type"] == type_)

    def name(self) -> str:
        return tr.gateway_name(self.env.cluster_uid, NS, "gw")

    def get(self, coll: str, name: str | None = None) -> dict[str, Any] | None:
        return self.compute.get(P, coll, name or self.name())

    def located(self, coll: str) -> dict[str, Any] | None:
        api = "networksecurity" if coll == "serverTlsPolicies" else "certificatemanager"
        return self.env.store.get(api, coll, f"projects/{P}/locations/global/{coll}/{self.name()}")


def gateway_body(
    refs: list[dict[str, Any]] | None = None, mode: str = gw.ALLOW_VALID_ONLY, **spec: Any
) -> dict[str, Any]:
    refs = [{"group": "", "kind": "ConfigMap", "name": "client-ca"}] if refs is None else refs
    return {
        "metadata": {"name": "gw"},
        "spec": {
            "gatewayClassName": CLASS,
            "listeners": [
                {
                    "name": "https",
                    "port": 443,
                    "protocol": "HTTPS",
                    "tls": {"mode": "Terminate", "options": {gw.PRE_SHARED_CERTS_OPTION: "gw-cert"}},
                }
            ],
            "tls": {"frontend": {"default": {"validation": {"caCertificateRefs": refs, "mode": mode}}}},
            **spec,
        },
    }


ROUTE = {
    "metadata": {"name": "web"},
    "spec": {
        "parentRefs": [{"name": "gw"}],
        "hostnames": ["api.mtlskit.test"],
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "filters": [
                    {
                        "type": "RequestHeaderModifier",
                        "requestHeaderModifier": {
                            "set": [{"name": "X-Client-Cert-Present", "value": "{client_cert_present}"}],
                            "add": [
                                {"name": "X-Client-Cert-Hash", "value": "{client_cert_sha256_fingerprint}"}
                            ],
                        },
                    }
                ],
                "backendRefs": [{"name": "web", "port": 8080}],
            }
        ],
    },
}


@pytest.fixture
def world(tmp_path: Path, pki: dict[str, str]) -> Iterator[World]:
    env = Env.open(tmp_path, Settings(0.0, 0.0, 0), [P])
    kube = KubeObjects(env.store)
    kube.bootstrap(env.cluster_uid)
    compute = ComputeStore(env)
    locations = Locations(env)
    w = World(env, kube, compute, locations, GatewayController(env, kube, compute, locations))
    kube.create(KINDS[("", "namespaces")], None, {"metadata": {"name": NS}})
    for name in gw.CLASSES:  # as the cluster seeds them (GEP-2162 features as objects)
        features = [{"name": f} for f in gw.supported_features(name, "v1.5")]
        kube.create(
            GATEWAY_CLASS, None, {"metadata": {"name": name}, "spec": {"controllerName": gw.CONTROLLER_NAME}}
        )
        kube.patch(GATEWAY_CLASS, None, name, {"status": {"supportedFeatures": features}}, status_only=True)
    w.create(SERVICE, {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 8080, "targetPort": 8080}]}})
    w.create(
        CONFIG_MAP,
        {"metadata": {"name": "client-ca"}, "data": {gw.CA_KEY: pki["root"] + pki["intermediate"]}},
    )
    compute.create(
        P, "sslCertificates", {"name": "gw-cert", "type": "SELF_MANAGED", "certificate": pki["root"]}
    )
    yield w
    env.store.close()


def built(w: World, *extra: Any, **spec: Any) -> World:
    w.create(GATEWAY, gateway_body(*extra, **spec))
    w.create(HTTP_ROUTE, ROUTE)
    w.controller.reconcile()
    return w


def test_a_gateway_becomes_an_external_managed_load_balancer_with_mtls(
    world: World, pki: dict[str, str]
) -> None:
    w = built(world)
    name = w.name()
    assert name.startswith(f"gkegw1-{tr.cluster_tag(w.env.cluster_uid)}-{NS}-gw-") and len(name) <= 63
    rule = w.get("forwardingRules")
    proxy = w.get("targetHttpsProxies")
    assert rule and proxy
    assert rule["loadBalancingScheme"] == "EXTERNAL_MANAGED" and rule["portRange"] == "443-443"
    assert rule["IPAddress"] == w.get("addresses")["address"]  # type: ignore[index]
    assert proxy["sslCertificates"] == [w.compute.get(P, "sslCertificates", "gw-cert")["selfLink"]]  # type: ignore[index]
    stp, tc = w.located("serverTlsPolicies"), w.located("trustConfigs")
    assert stp and tc and proxy["serverTlsPolicy"].endswith(stp["name"])
    assert stp["mtlsPolicy"] == {
        "clientValidationMode": "REJECT_INVALID",
        "clientValidationTrustConfig": tc["name"],
    }
    store = tc["trustStores"][0]
    assert [a["pemCertificate"] for a in store["trustAnchors"]] == [pki["root"]]
    assert [a["pemCertificate"] for a in store["intermediateCas"]] == [pki["intermediate"]]
    # the route: its host, a route rule to the Service's backend, the header filter as a header action
    um = w.get("urlMaps")
    assert um and um["hostRules"] == [{"hosts": ["api.mtlskit.test"], "pathMatcher": "host0"}]
    route_rule = um["pathMatchers"][0]["routeRules"][0]
    backend = tr.backend_name(w.env.cluster_uid, NS, "web", 8080)
    assert route_rule["service"].endswith(f"/backendServices/{backend}")
    assert route_rule["headerAction"]["requestHeadersToAdd"] == [
        {"headerName": "X-Client-Cert-Present", "headerValue": "{client_cert_present}", "replace": True},
        {
            "headerName": "X-Client-Cert-Hash",
            "headerValue": "{client_cert_sha256_fingerprint}",
            "replace": False,
        },
    ]
    bs = w.get("backendServices", backend)
    assert bs and bs["loadBalancingScheme"] == "EXTERNAL_MANAGED" and bs["logConfig"]["enable"] is False
    assert bs["healthChecks"][0].endswith(f"/healthChecks/{backend}")
    assert bs["backends"][0]["group"].split("/")[-1].startswith("k8s1-")


def test_the_gateway_says_what_was_built(world: World) -> None:
    w = built(world)
    gateway = w.gateway()
    meta = gateway["metadata"]
    assert gw.FINALIZER in meta["finalizers"]
    ann = meta["annotations"]
    for key in ("addresses", "forwarding_rules", "target_https_proxies", "url_maps"):
        assert gw.split_paths(ann[gw.ANNOTATIONS[key]]) == [
            f"/projects/{P}/global/{_coll(key)}/{w.name()}"
        ], key
    backends = [gw.resource_name(p) for p in gw.split_paths(ann[gw.ANNOTATIONS["backend_services"]])]
    assert tr.backend_name(w.env.cluster_uid, NS, "web", 8080) in backends
    assert tr.serve404_name(w.env.cluster_uid, NS) in backends
    assert ann[gw.ANNOTATIONS["last_reconcile_time"]]
    ip = w.get("forwardingRules")["IPAddress"]  # type: ignore[index]
    assert gateway["status"]["addresses"] == [{"type": "IPAddress", "value": ip}]
    for type_ in ("Accepted", "Programmed", "Scheduled", "Ready"):
        assert w.cond(gateway, type_)["status"] == "True", type_
    listener = gateway["status"]["listeners"][0]
    assert listener["attachedRoutes"] == 1 and listener["supportedKinds"] == [
        {"group": gw.GROUP, "kind": "HTTPRoute"}
    ]
    assert {c["type"]: c["status"] for c in listener["conditions"]} == {
        "Accepted": "True",
        "Programmed": "True",
        "ResolvedRefs": "True",
    }
    route = w.kube.get(HTTP_ROUTE, NS, "web")
    parent = route["status"]["parents"][0]  # type: ignore[index]
    assert parent["controllerName"] == gw.CONTROLLER_NAME
    assert {c["type"]: c["status"] for c in parent["conditions"]} == {
        "Accepted": "True",
        "ResolvedRefs": "True",
    }
    events = [(e["reason"], e["message"], e["source"]["component"]) for e in w.kube.list(EVENT, NS)]
    assert ("ADD", f"{NS}/gw", gw.EVENT_COMPONENT) in events
    assert ("SYNC", f"SYNC on {NS}/gw was a success", gw.EVENT_COMPONENT) in events


def _coll(key: str) -> str:
    return {
        "addresses": "addresses",
        "forwarding_rules": "forwardingRules",
        "target_https_proxies": "targetHttpsProxies",
        "url_maps": "urlMaps",
    }[key]


def test_a_second_sync_changes_nothing(world: World) -> None:
    w = built(world)
    before = {coll: w.get(coll) for coll in ("forwardingRules", "targetHttpsProxies", "urlMaps")}
    tc = w.located("trustConfigs")
    rv = w.gateway()["metadata"]["resourceVersion"]
    w.controller.reconcile()
    assert {coll: w.get(coll) for coll in before} == before
    assert w.located("trustConfigs") == tc
    assert w.gateway()["metadata"]["resourceVersion"] == rv


def test_a_new_ca_updates_the_trust_config_in_place(world: World, pki: dict[str, str]) -> None:
    w = built(world)
    tc, proxy = w.located("trustConfigs"), w.get("targetHttpsProxies")
    w.kube.patch(CONFIG_MAP, NS, "client-ca", {"data": {gw.CA_KEY: pki["root"] + pki["other"]}})
    w.controller.reconcile()
    after = w.located("trustConfigs")
    assert after and tc and after["createTime"] == tc["createTime"] and after["etag"] != tc["etag"]
    anchors = [a["pemCertificate"] for a in after["trustStores"][0]["trustAnchors"]]
    assert anchors == [pki["root"], pki["other"]] and "intermediateCas" not in after["trustStores"][0]
    assert w.get("targetHttpsProxies")["id"] == proxy["id"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("refs", "reason"),
    [
        ([{"group": "", "kind": "ConfigMap", "name": "absent"}], "InvalidCACertificateRef"),
        ([{"group": "", "kind": "ConfigMap", "name": "no-key"}], "InvalidCACertificateRef"),
        ([{"group": "", "kind": "Secret", "name": "client-ca"}], "InvalidCACertificateKind"),
        ([{"group": "", "kind": "ConfigMap", "name": "client-ca", "namespace": "other"}], "RefNotPermitted"),
    ],
)
def test_invalid_ca_references_give_gep91_reasons_and_build_nothing(
    world: World, pki: dict[str, str], refs: list[dict[str, Any]], reason: str
) -> None:
    world.kube.create(KINDS[("", "namespaces")], None, {"metadata": {"name": "other"}})
    world.create(CONFIG_MAP, {"metadata": {"name": "client-ca"}, "data": {gw.CA_KEY: pki["root"]}}, "other")
    world.create(CONFIG_MAP, {"metadata": {"name": "no-key"}, "data": {"root.pem": pki["root"]}})
    w = built(world, refs)
    resolved, accepted = w.listener_cond("ResolvedRefs"), w.listener_cond("Accepted")
    assert (resolved["status"], resolved["reason"]) == ("False", reason)
    assert (accepted["status"], accepted["reason"]) == ("False", gw.NO_VALID_CA)
    assert w.cond(w.gateway(), "Programmed")["status"] == "False"
    assert w.get("targetHttpsProxies") is None and w.get("forwardingRules") is None
    warnings = [e["message"] for e in w.kube.list(EVENT, NS) if e["type"] == "Warning"]
    assert any(gw.NO_VALID_CA in m for m in warnings)


def test_a_reference_grant_permits_a_configmap_in_another_namespace(
    world: World, pki: dict[str, str]
) -> None:
    world.kube.create(KINDS[("", "namespaces")], None, {"metadata": {"name": "pki"}})
    world.create(CONFIG_MAP, {"metadata": {"name": "ca"}, "data": {gw.CA_KEY: pki["root"]}}, "pki")
    world.create(
        REFERENCE_GRANT,
        {
            "metadata": {"name": "gateways-read-ca"},
            "spec": {
                "from": [{"group": gw.GROUP, "kind": "Gateway", "namespace": NS}],
                "to": [{"group": "", "kind": "ConfigMap"}],
            },
        },
        "pki",
    )
    w = built(world, [{"group": "", "kind": "ConfigMap", "name": "ca", "namespace": "pki"}])
    assert w.listener_cond("ResolvedRefs")["status"] == "True"
    assert w.located("serverTlsPolicies") is not None


def test_a_reference_broken_later_leaves_validation_in_place(world: World) -> None:
    w = built(world)
    stp, proxy = w.located("serverTlsPolicies"), w.get("targetHttpsProxies")
    w.kube.delete(CONFIG_MAP, NS, "client-ca")
    w.controller.reconcile()
    assert w.listener_cond("ResolvedRefs")["reason"] == "InvalidCACertificateRef"
    assert w.located("serverTlsPolicies") == stp and w.get("targetHttpsProxies") == proxy
    # the address the load balancer still serves on stays reported
    assert w.gateway()["status"]["addresses"][0]["value"] == w.get("forwardingRules")["IPAddress"]  # type: ignore[index]


def test_insecure_fallback_on_a_class_that_does_not_claim_it_is_refused(world: World) -> None:
    w = built(world, None, gw.ALLOW_INSECURE_FALLBACK)
    accepted = w.cond(w.gateway(), "Accepted")
    assert (accepted["status"], accepted["reason"]) == ("False", gw.UNSUPPORTED_VALUE)
    assert gw.FEATURE_FALLBACK in accepted["message"]
    assert w.located("serverTlsPolicies") is None and w.get("forwardingRules") is None


def test_policies_set_logging_health_checks_and_the_ssl_policy(world: World) -> None:
    w = world
    w.compute.create(P, "sslPolicies", {"name": "modern", "profile": "MODERN", "minTlsVersion": "TLS_1_2"})
    target = {"group": "", "kind": "Service", "name": "web"}
    w.create(
        BACKEND_POLICY,
        {
            "metadata": {"name": "logs"},
            "spec": {"targetRef": target, "default": {"logging": {"enabled": True, "sampleRate": 500000}}},
        },
    )
    w.create(
        HEALTH_POLICY,
        {
            "metadata": {"name": "hc"},
            "spec": {
                "targetRef": target,
                "default": {
                    "checkIntervalSec": 15,
                    "config": {"type": "HTTP", "httpHealthCheck": {"requestPath": "/healthz"}},
                },
            },
        },
    )
    w.create(
        GATEWAY_POLICY,
        {
            "metadata": {"name": "tls"},
            "spec": {
                "targetRef": {"group": gw.GROUP, "kind": "Gateway", "name": "gw"},
                "default": {"sslPolicy": "modern"},
            },
        },
    )
    w.create(
        BACKEND_POLICY,
        {
            "metadata": {"name": "stray"},
            "spec": {"targetRef": {"group": "", "kind": "Service", "name": "absent"}, "default": {}},
        },
    )
    built(w)
    backend = tr.backend_name(w.env.cluster_uid, NS, "web", 8080)
    assert w.get("backendServices", backend)["logConfig"] == {"enable": True, "sampleRate": 0.5}  # type: ignore[index]
    hc = w.get("healthChecks", backend)
    assert hc and hc["checkIntervalSec"] == 15 and hc["httpHealthCheck"]["requestPath"] == "/healthz"
    assert w.get("targetHttpsProxies")["sslPolicy"].endswith("/sslPolicies/modern")  # type: ignore[index]
    for kind, name, reason in (
        (BACKEND_POLICY, "logs", "Attached"),
        (HEALTH_POLICY, "hc", "Attached"),
        (GATEWAY_POLICY, "tls", "Attached"),
        (BACKEND_POLICY, "stray", gw.POLICY_TARGET_NOT_FOUND),
    ):
        attached = w.kube.get(kind, NS, name)["status"]["conditions"][0]  # type: ignore[index]
        assert (attached["type"], attached["reason"]) == (gw.POLICY_CONDITION, reason), name
    # a policy change is applied in place
    bs_id = w.get("backendServices", backend)["id"]  # type: ignore[index]
    w.kube.patch(BACKEND_POLICY, NS, "logs", {"spec": {"default": {"logging": {"enabled": False}}}})
    w.controller.reconcile()
    after = w.get("backendServices", backend)
    assert after and after["id"] == bs_id and after["logConfig"]["enable"] is False


def test_a_missing_service_is_backend_not_found(world: World) -> None:
    w = world
    w.kube.delete(SERVICE, NS, "web")
    built(w)
    parent = w.kube.get(HTTP_ROUTE, NS, "web")["status"]["parents"][0]  # type: ignore[index]
    resolved = next(c for c in parent["conditions"] if c["type"] == "ResolvedRefs")
    assert (resolved["status"], resolved["reason"]) == ("False", gw.BACKEND_NOT_FOUND)
    assert "web" in resolved["message"]


def test_a_named_address_is_used_kept_and_its_clash_reported(world: World) -> None:
    w = world
    w.compute.create(P, "addresses", {"name": "kit-ip", "address": "127.9.9.9", "addressType": "EXTERNAL"})
    # another load balancer holds the IP on :443: Compute's conflict, reported on the Gateway
    w.compute.create(
        P, "forwardingRules", {"name": "kit-fr", "IPAddress": "127.9.9.9", "portRange": "443-443"}
    )
    built(w, None, gw.ALLOW_VALID_ONLY, addresses=[{"type": "NamedAddress", "value": "kit-ip"}])
    programmed = w.cond(w.gateway(), "Programmed")
    assert (programmed["status"], programmed["reason"]) == ("False", "AddressNotUsable")
    assert "Specified IP address is in-use and would result in a conflict" in programmed["message"]
    w.compute.delete(P, "forwardingRules", "kit-fr")
    w.kube.patch(GATEWAY, NS, "gw", {"metadata": {"labels": {"retry": "1"}}})
    w.controller.reconcile()
    assert w.get("forwardingRules")["IPAddress"] == "127.9.9.9"  # type: ignore[index]
    assert w.get("addresses") is None  # no address of its own
    assert gw.split_paths(w.gateway()["metadata"]["annotations"][gw.ANNOTATIONS["addresses"]]) == [
        f"/projects/{P}/global/addresses/kit-ip"
    ]
    w.kube.delete(GATEWAY, NS, "gw")
    w.controller.reconcile()
    assert w.compute.get(P, "addresses", "kit-ip") is not None  # the kit's address is never released


def test_deleting_the_gateway_deletes_what_it_built(world: World) -> None:
    w = built(world)
    backend = tr.backend_name(w.env.cluster_uid, NS, "web", 8080)
    w.kube.delete(GATEWAY, NS, "gw")
    assert w.kube.get(GATEWAY, NS, "gw") is not None  # held by the finalizer until the controller runs
    w.controller.reconcile()
    assert w.kube.get(GATEWAY, NS, "gw") is None
    for coll in ("forwardingRules", "targetHttpsProxies", "urlMaps", "addresses"):
        assert w.get(coll) is None, coll
    assert w.located("serverTlsPolicies") is None and w.located("trustConfigs") is None
    assert w.get("backendServices", backend) is None and w.get("healthChecks", backend) is None
    left = [b["name"] for b in w.compute.list(P, "backendServices")]
    assert not [n for n in left if n.startswith(gw.NAME_PREFIX)]


def test_names_are_trimmed_to_63_characters_and_stable() -> None:
    uid = "0123456789abcdef"
    long = tr.gateway_name(uid, "a-very-long-namespace-name-for-a-team", "an-even-longer-gateway-name-here")
    assert len(long) <= 63 and long == tr.gateway_name(
        uid, "a-very-long-namespace-name-for-a-team", "an-even-longer-gateway-name-here"
    )
    assert len(tr.backend_name(uid, "n" * 60, "s" * 60, 65535)) <= 63
    assert tr.gateway_name(uid, "ns", "a") != tr.gateway_name(uid, "ns", "b")


def test_trust_store_split_and_ports() -> None:
    root = certs.issue("root", ca=True)
    inter = certs.issue("inter", issuer=root, ca=True)
    assert gateway_refs.self_signed(root.cert) and not gateway_refs.self_signed(inter.cert)
    gateway = {
        "spec": {
            "tls": {
                "frontend": {
                    "default": {"validation": {"caCertificateRefs": [{"name": "a"}]}},
                    "perPort": [
                        {
                            "port": 443,
                            "tls": {
                                "validation": {
                                    "caCertificateRefs": [{"name": "b"}],
                                    "mode": gw.ALLOW_INSECURE_FALLBACK,
                                }
                            },
                        }
                    ],
                }
            }
        }
    }
    chosen = gateway_refs.validation_for_port(gateway)
    assert chosen and chosen.refs == ({"name": "b"},) and chosen.mode == gw.ALLOW_INSECURE_FALLBACK
    assert gateway_refs.validation_for_port(gateway, 8443).refs == ({"name": "a"},)  # type: ignore[union-attr]
    assert gateway_refs.validation_for_port({"spec": {}}) is None
    assert isinstance(x509.load_pem_x509_certificate(certs.pem(root.cert).encode()), x509.Certificate)


def test_the_data_plane_applies_header_actions_and_route_matches() -> None:
    values = {"client_cert_present": "true", "client_cert_sha256_fingerprint": "abc"}
    action = tr.header_action(ROUTE["spec"]["rules"][0]["filters"])  # type: ignore[index]
    added, removed = _header_actions([action or {}], values)
    assert added == [("X-Client-Cert-Present", "true", True), ("X-Client-Cert-Hash", "abc", False)]
    assert removed == set()
    assert _rule_matches({"prefixMatch": "/api"}, "/api/x", {})
    assert not _rule_matches({"fullPathMatch": "/api"}, "/api/x", {})
    assert _rule_matches(
        {"prefixMatch": "/", "headerMatches": [{"headerName": "X-A", "exactMatch": "1"}]}, "/", {"x-a": "1"}
    )
    assert not _rule_matches(
        {"prefixMatch": "/", "headerMatches": [{"headerName": "X-A", "exactMatch": "1"}]}, "/", {}
    )


def test_the_ingress_and_the_gateway_share_a_services_neg_until_neither_uses_it(world: World) -> None:
    """A migration deletes the anchor Ingress while the Gateway still routes to the same Service port."""
    w = world
    ingresses = IngressController(w.env, w.kube, w.compute)
    anchor = {
        "metadata": {"name": "anchor", "annotations": {"kubernetes.io/ingress.allow-http": "false"}},
        "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 8080}}}},
    }
    w.create(INGRESS, anchor)
    ingresses.reconcile()
    built(w)
    neg = neg_name(w.env.cluster_uid, NS, "web", 8080)
    gateway_bs = w.get("backendServices", tr.backend_name(w.env.cluster_uid, NS, "web", 8080))
    assert gateway_bs and gateway_bs["backends"][0]["group"].endswith(f"/networkEndpointGroups/{neg}")
    w.kube.delete(INGRESS, NS, "anchor")
    ingresses.reconcile()
    assert w.get("backendServices", neg) is None  # the Ingress's backend service is collected...
    assert w.compute.get(P, "networkEndpointGroups", neg, ZONE) is not None  # ...its NEG is still in use
    w.kube.delete(GATEWAY, NS, "gw")
    w.controller.reconcile()
    assert w.compute.get(P, "networkEndpointGroups", neg, ZONE) is None


def test_a_gateway_of_another_controllers_class_is_left_alone(world: World) -> None:
    w = world
    w.kube.create(
        GATEWAY_CLASS, None, {"metadata": {"name": "other"}, "spec": {"controllerName": "example.com/gw"}}
    )
    body = gateway_body()
    body["spec"]["gatewayClassName"] = "other"
    w.create(GATEWAY, body)
    w.controller.reconcile()
    assert "status" not in w.gateway() or not w.gateway()["status"].get("conditions")
    assert gw.FINALIZER not in (w.gateway()["metadata"].get("finalizers") or [])
    assert w.get("forwardingRules") is None


def test_a_class_that_claims_the_insecure_fallback_gets_allow_mode_and_says_so(world: World) -> None:
    w = world
    features = [{"name": f} for f in (gw.FEATURE_VALIDATION, gw.FEATURE_FALLBACK)]
    w.kube.patch(GATEWAY_CLASS, None, CLASS, {"status": {"supportedFeatures": features}}, status_only=True)
    built(w, None, gw.ALLOW_INSECURE_FALLBACK)
    stp = w.located("serverTlsPolicies")
    assert stp and stp["mtlsPolicy"]["clientValidationMode"] == "ALLOW_INVALID_OR_MISSING_CLIENT_CERT"
    insecure = w.cond(w.gateway(), gw.INSECURE_MODE_CONDITION)
    assert (insecure["status"], insecure["reason"]) == ("True", "ConfigurationChanged")


def test_a_namespace_being_deleted_goes_once_the_gateways_finalizer_ran(world: World) -> None:
    w = built(world)
    w.kube.mark_terminating(NS)
    for kind, obj in w.kube.contents(NS):
        w.kube.delete(kind, NS, obj["metadata"]["name"])
    assert not w.kube.settle(NS)  # the Gateway still holds it
    w.controller.reconcile()
    assert w.kube.get(KINDS[("", "namespaces")], None, NS) is None
    assert w.get("forwardingRules") is None


def test_a_gateway_gone_without_its_finalizer_leaves_nothing_behind(world: World) -> None:
    """Removing the Gateway API (its CRDs) takes the objects with it; the next sync collects the rest."""
    w = built(world)
    w.env.store.delete(API, GATEWAY.qualified, key_of(GATEWAY, NS, "gw"))
    w.controller.reconcile()
    for coll in ("forwardingRules", "targetHttpsProxies", "urlMaps", "addresses"):
        assert w.get(coll) is None, coll
    assert w.located("serverTlsPolicies") is None


def test_a_resource_the_apis_refuse_is_reported_and_the_next_gateway_still_syncs(
    world: World, pki: dict[str, str]
) -> None:
    """Certificate Manager refuses a PEM over 5 kB: the Gateway says so; other Gateways are unaffected."""
    w = world
    big = certs.issue("big root", ca=True, dns_names=[f"name-{i}.mtlskit.test" for i in range(300)])
    w.create(CONFIG_MAP, {"metadata": {"name": "big-ca"}, "data": {gw.CA_KEY: certs.pem(big.cert)}})
    body = gateway_body([{"group": "", "kind": "ConfigMap", "name": "big-ca"}])
    body["metadata"]["name"] = "big"
    w.create(GATEWAY, body)
    built(w)
    programmed = w.cond(w.kube.get(GATEWAY, NS, "big") or {}, "Programmed")
    assert (programmed["status"], programmed["reason"]) == ("False", "Invalid")
    assert "at most 5 kB" in programmed["message"]
    assert w.cond(w.gateway(), "Programmed")["status"] == "True"


@pytest.mark.parametrize("scheme", ["EXTERNAL", "EXTERNAL_MANAGED"])
def test_no_backend_to_pick_is_answered_by_scheme(world: World, scheme: str) -> None:
    """A backend service whose Service is gone: 502 from the classic load balancer, 503 from the managed."""
    w = world
    neg = w.compute.create(
        P,
        "networkEndpointGroups",
        {
            "name": "gone",
            "description": '{"namespace": "shop", "service-name": "gone"}',
            "_endpoints": [{"ip": "127.0.0.1", "port": 1}],
        },
        ZONE,
    )
    bs = w.compute.create(
        P,
        "backendServices",
        {"name": "gone", "loadBalancingScheme": scheme, "backends": [{"group": neg["selfLink"]}]},
    )
    um = w.compute.create(P, "urlMaps", {"name": "um", "defaultService": bs["selfLink"]})
    plane = DataPlane(w.env)
    frontend = Frontend(P, "127.0.0.1", "fr", "proxy", um["selfLink"], [], None, None, scheme)
    request = h11.Request(method="GET", target="/", headers=[("Host", "api.mtlskit.test")])
    status, *_ = plane._forward(Connection(frontend, "127.0.0.1"), request, b"")
    assert (
        status == DATA_PLANE[scheme].no_healthy_backend == {"EXTERNAL": 502, "EXTERNAL_MANAGED": 503}[scheme]
    )
