"""Verification in the Gateway topology, over plain dicts: the load balancer names resolved from what a
Gateway controller writes, the class-aware probe judgments, the request-log query, and 70_drift's
Gateway checks, each failing on the drift it names (a rule without the header filter, a changed
ca.crt, a bad CA reference, a pruned spec.tls.frontend, a policy not attached)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from google.cloud import certificate_manager_v1 as cm
from google.cloud import compute_v1
from google.cloud import network_security_v1 as ns

from mtlskit.build import lbnames
from mtlskit.build.backend import BackendService
from mtlskit.config.params import Params
from mtlskit.core.errors import GatewayNotReady
from mtlskit.pki import certs
from mtlskit.rules import gateway as gw
from mtlskit.verify import drift, gatewaydrift, logs, probe
from mtlskit.verify.gatewaydrift import GatewayDriftState
from tests.conftest import PROJECT, gateway_spec, sandbox_params

NS = "default"
PREFIX = "/projects/123456789/global"
FR, PROXY, UM = (
    "gkegw1-ab12-default-web-gateway-x1y2z3a4b5c6",
    "gkegw1-ab12-default-web-gateway-p0q9",
    "gkegw1-um",
)
BS = "gkegw1-ab12-default-web-80-k3j4"
SERVE404 = "gkegw1-ab12-default-gw-serve404-80-zz"


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = tmp_path_factory.mktemp("gwverify")
    certs.ensure_demo_pki(certs.DemoPki.in_state_dir(state).directory)
    return state


@pytest.fixture(scope="module")
def params(state: Path) -> Params:
    pki = state / "pki"
    return sandbox_params(
        state,
        topology="gateway",
        probe={"client_cert": str(pki / "client.pem"), "client_key": str(pki / "client.key")},
        frontend={"domains": ["api.gw.test"]},
    )


def gateway_object(**annotations: str) -> dict[str, Any]:
    """A Gateway as the controller leaves it once Programmed."""
    notes = {
        gw.ANNOTATIONS["forwarding_rules"]: f"{PREFIX}/forwardingRules/{FR}",
        gw.ANNOTATIONS["target_https_proxies"]: f"{PREFIX}/targetHttpsProxies/{PROXY}",
        gw.ANNOTATIONS["url_maps"]: f"{PREFIX}/urlMaps/{UM}",
        gw.ANNOTATIONS["addresses"]: f"{PREFIX}/addresses/gkegw1-addr",
        gw.ANNOTATIONS[
            "backend_services"
        ]: f"{PREFIX}/backendServices/{SERVE404}, {PREFIX}/backendServices/{BS}",
        **annotations,
    }
    ok = [{"type": t, "status": "True", "reason": t} for t in ("ResolvedRefs", "Accepted", "Programmed")]
    return {
        "metadata": {"name": "web-gateway", "namespace": NS, "annotations": notes},
        "spec": gateway_spec("web-client-ca", gw.ALLOW_VALID_ONLY),
        "status": {
            "addresses": [{"type": "IPAddress", "value": "127.1.0.9"}],
            "conditions": [
                {"type": "Accepted", "status": "True", "reason": "Accepted"},
                {"type": "Programmed", "status": "True", "reason": "Programmed"},
            ],
            "listeners": [{"name": "https", "conditions": ok}],
        },
    }


def route_object(params: Params, rules: int = 2) -> dict[str, Any]:
    headers = [
        {"name": h.partition(":")[0], "value": h.partition(":")[2]} for h in params.mtls.custom_headers
    ]
    rule = {
        "backendRefs": [{"name": "web", "port": 80}],
        "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": headers}}],
    }
    return {
        "spec": {
            "parentRefs": [{"name": "web-gateway"}],
            "rules": [copy.deepcopy(rule) for _ in range(rules)],
        },
        "status": {
            "parents": [
                {
                    "parentRef": {"name": "web-gateway"},
                    "conditions": [
                        {"type": "Accepted", "status": "True"},
                        {"type": "ResolvedRefs", "status": "True"},
                    ],
                }
            ]
        },
    }


def bundle(params: Params) -> str:
    return "".join(Path(f).read_text() for f in [*params.mtls.trust_anchors, *params.mtls.intermediates])


def names(**changes: Any) -> lbnames.LoadBalancerNames:
    base = lbnames.LoadBalancerNames(
        topology="gateway",
        scheme="EXTERNAL_MANAGED",
        forwarding_rule=FR,
        target_proxy=PROXY,
        url_map=UM,
        address="gkegw1-addr",
        ip="127.1.0.9",
        backend_services=(SERVE404, BS),
        server_tls_policy=f"projects/{PROJECT}/locations/global/serverTlsPolicies/gkegw1-stp",
        trust_config=f"projects/{PROJECT}/locations/global/trustConfigs/gkegw1-tc",
        ssl_policy="mtls-ssl",
        certificates=("mtls-cert",),
        gateway=f"{NS}/web-gateway",
    )
    return lbnames.LoadBalancerNames(**{**base.__dict__, **changes})


def clean_state(params: Params) -> GatewayDriftState:
    """What a healthy Gateway stack reads as: every object as the build and the controller leave it."""
    attached = {"status": {"conditions": [{"type": "Attached", "status": "True", "reason": "Attached"}]}}
    trust_config = cm.TrustConfig(
        trust_stores=[
            cm.TrustConfig.TrustStore(
                trust_anchors=[
                    cm.TrustConfig.TrustAnchor(pem_certificate=Path(f).read_text())
                    for f in [*params.mtls.trust_anchors, *params.mtls.intermediates]
                ]
            )
        ]
    )
    policy = ns.ServerTlsPolicy(
        mtls_policy=ns.ServerTlsPolicy.MTLSPolicy(
            client_validation_mode="REJECT_INVALID",
            client_validation_trust_config="projects/p/x/trustConfigs/gkegw1-tc",
        )
    )
    state = GatewayDriftState(
        gateway=gateway_object(),
        route=route_object(params),
        configmap={"data": {gw.CA_KEY: bundle(params)}},
        policies={kind: copy.deepcopy(attached) for kind in gatewaydrift.POLICY_KINDS},
        names=names(),
        problem="",
        url_map=compute_v1.UrlMap(name=UM),
        proxy=compute_v1.TargetHttpsProxy(
            name=PROXY,
            url_map=f"https://compute/{PREFIX}/urlMaps/{UM}",
            ssl_certificates=[f"https://compute/{PREFIX}/sslCertificates/mtls-cert"],
            ssl_policy=f"https://compute/{PREFIX}/sslPolicies/mtls-ssl",
            server_tls_policy="//networksecurity.googleapis.com/projects/p/locations/global/serverTlsPolicies/gkegw1-stp",
        ),
        forwarding_rule=compute_v1.ForwardingRule(
            name=FR,
            I_p_address="127.1.0.9",
            port_range="443-443",
            target=f"{PREFIX}/targetHttpsProxies/{PROXY}",
        ),
        ssl_policy=compute_v1.SslPolicy(name="mtls-ssl", profile="MODERN", min_tls_version="TLS_1_2"),
        certificate=compute_v1.SslCertificate(
            name="mtls-cert",
            type_="MANAGED",
            managed=compute_v1.SslCertificateManagedSslCertificate(domains=["api.gw.test"], status="ACTIVE"),
        ),
        policy=policy,
        trust_config=trust_config,
        dns=[drift.Resolution("api.gw.test", ("127.1.0.9",))],
        looked_up=gatewaydrift.looked_up(params),
    )
    return state


def by_name(checks: list[Any]) -> dict[str, Any]:
    return {c.name: c for c in checks}


# ---- the resolver ----------------------------------------------------------------------------------------


def test_annotation_paths_name_the_resources_the_controller_built() -> None:
    g = gateway_object()
    assert [p.name for p in lbnames.annotation_paths(g, "backend_services")] == [SERVE404, BS]
    assert lbnames.annotation_paths(g, "forwarding_rules") == [lbnames.ResourcePath(FR)]
    g["metadata"]["annotations"][gw.ANNOTATIONS["ssl_certificates"]] = ""
    assert lbnames.annotation_paths(g, "ssl_certificates") == []
    regional = gateway_object(
        **{gw.ANNOTATIONS["forwarding_rules"]: "/projects/1/regions/europe-west1/forwardingRules/r"}
    )
    assert lbnames.annotation_paths(regional, "forwarding_rules") == [
        lbnames.ResourcePath("r", "europe-west1")
    ]


def test_a_gateway_not_programmed_is_named_with_its_conditions_and_what_to_do(params: Params) -> None:
    assert "does not exist" in lbnames.readiness_problem(params, None)
    pending = gateway_object()
    pending["metadata"]["annotations"] = {}
    pending["status"]["conditions"] = [
        {"type": "Accepted", "status": "True", "reason": "Accepted"},
        {"type": "Programmed", "status": "False", "reason": "Pending", "message": "waiting for the address"},
    ]
    problem = lbnames.readiness_problem(params, pending)
    assert "Gateway default/web-gateway" in problem
    assert "Programmed=False (Pending: waiting for the address)" in problem
    assert (
        gw.ANNOTATIONS["forwarding_rules"] in problem
        and "kubectl describe gateway web-gateway -n default" in problem
    )
    assert lbnames.readiness_problem(params, gateway_object()) == ""
    regional = gateway_object(
        **{gw.ANNOTATIONS["forwarding_rules"]: "/projects/1/regions/r1/forwardingRules/r"}
    )
    assert "regional" in lbnames.readiness_problem(params, regional)


def test_split_names_are_the_params_and_a_gateway_needs_a_read(params: Params) -> None:
    split = params.model_copy(update={"topology": "split"})
    names_ = lbnames.split_names(split)
    assert (names_.forwarding_rule, names_.target_proxy, names_.scheme) == (
        "mtls-fr",
        "mtls-proxy",
        "EXTERNAL",
    )
    assert names_.server_tls_policy_id == "mtls-policy" and names_.trust_config_id == "mtls-trust"
    assert lbnames.known_names(split, None) == names_
    assert lbnames.known_names(params, None) is None
    assert lbnames.known_names(params, names()) == names()
    assert names().data_plane.no_healthy_backend == 503 and names_.data_plane.no_healthy_backend == 502


def _bs(name: str, service: str = "", port: str = "") -> BackendService:
    return BackendService(name, "", "EXTERNAL_MANAGED", "HTTP", service, port, "", True, 1.0, [])


def test_the_backend_service_for_the_service_is_picked_not_the_default_404() -> None:
    found = [_bs(SERVE404), _bs(BS)]
    assert lbnames.pick_backend(found, "default/web", "80", names()).name == BS
    described = [_bs(SERVE404), _bs("other", "default/other", "80"), _bs(BS, "default/web", "80")]
    assert lbnames.pick_backend(described, "default/web", "80", names()).name == BS
    with pytest.raises(GatewayNotReady, match="serves Service default/web port 80"):
        lbnames.pick_backend([_bs(SERVE404)], "default/web", "80", names())


# ---- class-aware probes and logs --------------------------------------------------------------------------


def test_no_backend_is_judged_by_the_scheme_and_the_topology() -> None:
    case = probe.Case("probe certificate", "ok")
    attempt = probe.Attempt("http", "HTTP 503", 503, {})
    verdict, detail, fix = probe.judge(case, "REJECT_INVALID", attempt, {}, names())
    assert verdict == "fail" and "HTTP 503 is what an EXTERNAL_MANAGED load balancer answers" in detail
    assert "HTTPRoute" in fix
    split = lbnames.LoadBalancerNames(**{**names().__dict__, "topology": "split", "scheme": "EXTERNAL"})
    _, detail, fix = probe.judge(
        case, "REJECT_INVALID", probe.Attempt("http", "HTTP 502", 502, {}), {}, split
    )
    assert "HTTP 502 is what an EXTERNAL load balancer answers" in detail and "anchor" in fix
    _, detail, _ = probe.judge(case, "REJECT_INVALID", attempt, {}, split)
    assert "answered HTTP 503" in detail  # not the classic load balancer's no-backend answer


def test_an_invalid_certificate_accepted_by_a_gateway_points_at_its_ca_bundle() -> None:
    case = probe.Case("demo/untrusted-client", "client_cert_validation_failed")
    attempt = probe.Attempt("http", "HTTP 200", 200, {})
    _, _, fix = probe.judge(case, "REJECT_INVALID", attempt, {}, names())
    assert gw.CA_KEY in fix and gw.ALLOW_VALID_ONLY in fix


def test_x_forwarded_for_is_split_by_the_schemes_delimiter() -> None:
    managed, classic = gw.DATA_PLANE["EXTERNAL_MANAGED"], gw.DATA_PLANE["EXTERNAL"]
    assert probe.forwarded_for_hops("203.0.113.5,34.1.2.3", managed) == ["203.0.113.5", "34.1.2.3"]
    assert probe.forwarded_for_hops("203.0.113.5, 34.1.2.3", classic) == ["203.0.113.5", "34.1.2.3"]
    assert probe.forwarded_for_note("203.0.113.5,34.1.2.3", managed) == "; client IP seen 203.0.113.5"
    assert "not joined with ', '" in probe.forwarded_for_note("203.0.113.5,34.1.2.3", classic)
    names_ = {probe.VERIFIED: "X-V"}
    attempt = probe.Attempt(
        "http", "HTTP 200", 200, {"x-v": "true", "x-forwarded-for": "203.0.113.5,34.1.2.3"}
    )
    verdict, detail, _ = probe.judge(probe.Case("c", "ok"), "REJECT_INVALID", attempt, names_, names())
    assert verdict == "pass" and "client IP seen 203.0.113.5" in detail


def test_demo_cases_expect_what_a_gateway_does(params: Params) -> None:
    cases = {c.name: c.expected for c in probe.demo_cases(params)}
    assert cases["demo/allowlisted-client"] == "client_cert_validation_failed"  # no allowlist on a Gateway
    assert cases["demo/client-no-chain"] == "ok"  # the intermediate is in the CA bundle
    assert cases["demo/client"] == "ok"


def test_request_logs_are_read_by_the_gateways_forwarding_rule(params: Params) -> None:
    assert f'forwarding_rule_name="{FR}"' in logs.api_filter(
        params, logs.parse_time("2026-01-01T00:00:00Z"), names()
    )
    text = logs.by_hand(params)
    assert logs.GATEWAY_FORWARDING_RULE in text and "kubectl get gateway web-gateway -n default" in text
    assert FR in logs.by_hand(params, names())
    assert FR in logs.bigquery_sql(params, None, "1min", names())["by_status_details"]
    assert "HTTPRoute" in logs.mismatch_fix({"failed_to_pick_backend"}, "gateway")
    assert "anchor" in logs.mismatch_fix({"failed_to_pick_backend"})


def test_probes_of_a_gateway_are_kept_apart_from_the_split_frontends(params: Params) -> None:
    split = params.model_copy(update={"topology": "split"})
    assert probe.results_file(params) != probe.results_file(split)
    assert probe.results_file(params, "split") == probe.results_file(split)  # a migration's split probes


# ---- 70_drift's Gateway checks ----------------------------------------------------------------------------


def test_a_clean_gateway_stack_passes_every_check(params: Params) -> None:
    checks = drift.evaluate(params, clean_state(params))
    assert [c.name for c in checks if c.status != "pass"] == []
    assert {gatewaydrift.GATEWAY_READY, gatewaydrift.HEADER_FILTER, gatewaydrift.CA_BUNDLE, drift.TRUST} <= {
        c.name for c in checks
    }
    assert "yes" in set(drift.certificates_frame(params, clean_state(params))["in trust config"])
    assert "NO" not in set(drift.certificates_frame(params, clean_state(params))["in trust config"])


def test_a_rule_without_the_header_filter_is_named(params: Params) -> None:
    s = clean_state(params)
    assert s.route is not None
    s.route["spec"]["rules"][1]["filters"] = []
    check = by_name(drift.evaluate(params, s))[gatewaydrift.HEADER_FILTER]
    assert check.status == "fail" and "rule 1 has no RequestHeaderModifier filter" in check.evidence
    s = clean_state(params)
    assert s.route is not None
    s.route["spec"]["rules"][0]["filters"][0]["requestHeaderModifier"]["add"].pop(0)
    check = by_name(drift.evaluate(params, s))[gatewaydrift.HEADER_FILTER]
    assert check.status == "fail" and "rule 0 lacks x-client-cert-present" in check.evidence


def test_a_changed_ca_bundle_names_what_is_missing(params: Params) -> None:
    s = clean_state(params)
    s.configmap = {"data": {gw.CA_KEY: Path(params.mtls.trust_anchors[0]).read_text()}}
    check = by_name(drift.evaluate(params, s))[gatewaydrift.CA_BUNDLE]
    assert check.status == "fail" and "missing mtls.intermediates[0] intermediate.pem" in check.evidence
    s.configmap = None
    assert "does not exist" in by_name(drift.evaluate(params, s))[gatewaydrift.CA_BUNDLE].evidence


def test_a_bad_ca_reference_names_the_gep91_reason_and_its_fix(params: Params) -> None:
    s = clean_state(params)
    assert s.gateway is not None
    s.gateway["status"]["listeners"][0]["conditions"][0] = {
        "type": "ResolvedRefs",
        "status": "False",
        "reason": "InvalidCACertificateRef",
        "message": "ConfigMap default/web-client-ca not found",
    }
    check = by_name(drift.evaluate(params, s))[gatewaydrift.GATEWAY_READY]
    assert check.status == "fail"
    assert "listener https: ResolvedRefs=False (InvalidCACertificateRef" in check.evidence
    assert check.fix.startswith("InvalidCACertificateRef: the CA ConfigMap")
    s = clean_state(params)
    assert s.gateway is not None
    s.gateway["status"]["conditions"].append({"type": gw.INSECURE_MODE_CONDITION, "status": "True"})
    assert by_name(drift.evaluate(params, s))[gatewaydrift.GATEWAY_READY].status == "fail"


def test_a_pruned_frontend_validation_or_another_mode_fails(params: Params) -> None:
    s = clean_state(params)
    assert s.gateway is not None
    del s.gateway["spec"]["tls"]
    check = by_name(drift.evaluate(params, s))[gatewaydrift.FRONTEND_VALIDATION]
    assert check.status == "fail" and "no spec.tls.frontend.default.validation" in check.evidence
    s = clean_state(params)
    assert s.gateway is not None
    validation = s.gateway["spec"]["tls"]["frontend"]["default"]["validation"]
    validation["mode"] = gw.ALLOW_INSECURE_FALLBACK
    validation["caCertificateRefs"][0]["name"] = "other"
    check = by_name(drift.evaluate(params, s))[gatewaydrift.FRONTEND_VALIDATION]
    assert "mode AllowInsecureFallback, params ask AllowValidOnly" in check.evidence
    assert "ConfigMap default/other" in check.evidence


def test_a_policy_not_attached_and_a_route_sent_elsewhere_are_named(params: Params) -> None:
    s = clean_state(params)
    s.policies["GCPBackendPolicy"] = {
        "status": {"conditions": [{"type": "Attached", "status": "False", "reason": "TargetNotFound"}]}
    }
    s.policies["HealthCheckPolicy"] = None
    check = by_name(drift.evaluate(params, s))[gatewaydrift.POLICIES]
    assert "GCPBackendPolicy default/web-backend-policy: Attached=False (TargetNotFound)" in check.evidence
    assert "HealthCheckPolicy default/web-health-check does not exist" in check.evidence
    assert s.route is not None
    s.route["spec"]["rules"][0]["backendRefs"] = [{"name": "web", "port": 8080}]
    check = by_name(drift.evaluate(params, s))[gatewaydrift.ROUTE]
    assert check.status == "fail" and "rule 0 sends to web:8080, not Service web:80" in check.evidence


def test_the_controllers_load_balancer_is_judged_like_the_split_frontend(params: Params) -> None:
    s = clean_state(params)
    assert s.policy is not None and s.proxy is not None
    s.policy.mtls_policy.client_validation_mode = (
        ns.ServerTlsPolicy.MTLSPolicy.ClientValidationMode.ALLOW_INVALID_OR_MISSING_CLIENT_CERT
    )
    s.trust_config = cm.TrustConfig(
        trust_stores=[
            cm.TrustConfig.TrustStore(
                trust_anchors=[
                    cm.TrustConfig.TrustAnchor(pem_certificate=Path(params.mtls.trust_anchors[0]).read_text())
                ]
            )
        ]
    )
    s.proxy.ssl_policy = ""
    checks = by_name(drift.evaluate(params, s))
    assert (
        "policy mode ALLOW_INVALID_OR_MISSING_CLIENT_CERT, params ask REJECT_INVALID"
        in checks[drift.TLS_POLICY].evidence
    )
    assert "missing mtls.intermediates[0]" in checks[drift.TRUST].evidence
    assert "SSL policy (none), not mtls-ssl" in checks[drift.WIRING].evidence
    s.proxy.server_tls_policy = ""
    s.names = names(server_tls_policy="", trust_config="")
    s.policy = None
    assert "asks no client for a certificate" in by_name(drift.evaluate(params, s))[drift.TLS_POLICY].evidence


def test_dns_must_point_at_the_gateways_address(params: Params) -> None:
    s = clean_state(params)
    s.dns = [drift.Resolution("api.gw.test", ("34.1.1.1",))]
    check = by_name(drift.evaluate(params, s))[drift.DNS]
    assert check.status == "fail" and "not the Gateway's 127.1.0.9" in check.evidence
    assert list(drift.dns_frame(params, s)["A record wanted"]) == ["127.1.0.9"]


def test_a_gateway_naming_no_load_balancer_fails_without_an_exception(params: Params) -> None:
    s = clean_state(params)
    s.names, s.problem = None, "Gateway default/web-gateway does not name its load balancer yet"
    s.proxy = s.forwarding_rule = s.policy = s.trust_config = None
    checks = by_name(drift.evaluate(params, s))
    assert (
        checks[drift.WIRING].status == "fail"
        and "does not name its load balancer" in checks[drift.WIRING].evidence
    )
    assert checks[drift.DNS].status == "fail"
    assert len(s.rows()) == 13


def test_a_gateway_that_forwards_no_mtls_headers_is_a_warning() -> None:
    header_names = {probe.VERIFIED: "X-Client-Cert-Chain-Verified"}
    attempt = probe.Attempt("http", "HTTP 200", 200, {"x-mtlskit-probe": "id"})
    verdict, detail, fix = probe.judge(
        probe.Case("c", "ok"), "REJECT_INVALID", attempt, header_names, names()
    )
    assert verdict == "warn" and "RequestHeaderModifier" in detail and "header filter" in fix
    split = lbnames.LoadBalancerNames(**{**names().__dict__, "topology": "split", "scheme": "EXTERNAL"})
    assert probe.judge(probe.Case("c", "ok"), "REJECT_INVALID", attempt, header_names, split)[0] == "pass"


def test_by_hand_commands_read_the_gateways_load_balancer(params: Params) -> None:
    from mtlskit.teach import byhand

    unresolved = str(byhand.by_hand(params, "70_drift"))
    assert "GATEWAY_FORWARDING_RULE" in unresolved and "kubectl describe gateway web-gateway" in unresolved
    assert "mtls-fr" not in unresolved and "ingress" not in unresolved
    resolved = byhand.by_hand(params, "70_drift", clean_state(params))
    assert not resolved.placeholders
    lines = "\n".join(resolved.reads("gcloud"))
    assert f"forwarding-rules describe {FR}" in lines and "server-tls-policies describe gkegw1-stp" in lines
    assert "trust-configs describe gkegw1-tc" in lines
    split = params.model_copy(update={"topology": "split"})
    assert "forwarding-rules describe mtls-fr" in "\n".join(byhand.by_hand(split, "70_drift").reads("gcloud"))


def test_a_route_the_controller_did_not_accept_and_a_gateway_not_programmed_are_named(params: Params) -> None:
    s = clean_state(params)
    assert s.route is not None and s.gateway is not None
    s.route["status"]["parents"][0]["conditions"][1] = {
        "type": "ResolvedRefs",
        "status": "False",
        "reason": "BackendNotFound",
        "message": "Service default/web not found",
    }
    s.gateway["status"]["conditions"][1] = {"type": "Programmed", "status": "False", "reason": "Pending"}
    checks = by_name(drift.evaluate(params, s))
    assert (
        "ResolvedRefs=False (BackendNotFound: Service default/web not found)"
        in checks[gatewaydrift.ROUTE].evidence
    )
    ready = checks[gatewaydrift.GATEWAY_READY]
    assert ready.status == "fail" and "Programmed=False (Pending)" in ready.evidence
    assert "kubectl describe gateway web-gateway -n default" in ready.fix
