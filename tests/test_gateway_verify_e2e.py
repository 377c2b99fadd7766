"""50_verify, 60_logs and 70_drift's library calls on a Gateway built on a sandbox of its own: the
load balancer is found from the Gateway's annotations, a valid certificate gets 200 with the mTLS
headers, no certificate and an untrusted one are refused, every probe has its log entry, drift
passes; then a header filter removed and a CA bundle changed behind the kit's back are named."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mtlskit.build import frontend, gateway, lbnames, stack_gateway
from mtlskit.build import gateway_kube as kube
from mtlskit.cloud.clients import Clients, build_clients
from mtlskit.config.params import Params
from mtlskit.core.checks import Check
from mtlskit.core.poll import poll
from mtlskit.rules import gateway as gw
from mtlskit.sandbox import process
from mtlskit.verify import drift, gatewaydrift, logs, probe
from tests.conftest import sandbox_call, sandbox_params

pytestmark = pytest.mark.e2e  # starts a sandbox of its own

DOMAIN = "api.gwverify.test"


@dataclass
class Env:
    params: Params
    clients: Clients


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    state = tmp_path_factory.mktemp("gwverify") / "state"
    pki = state / "pki"
    params = sandbox_params(
        state,
        topology="gateway",
        probe={"client_cert": str(pki / "client.pem"), "client_key": str(pki / "client.key")},
        frontend={"domains": [DOMAIN]},
    )
    clients = build_clients(params)
    stack_gateway.build(clients, params, 60.0)
    frontend.wait_for_certificate(clients, params, 30.0)  # the pre-shared managed certificate
    yield Env(params, clients)
    process.stop(state)


def resolver_to(ip: str) -> drift.Resolver:
    return lambda domain: drift.Resolution(domain, (ip,))


def failing(checks: list[Check]) -> dict[str, str]:
    return {c.name: c.evidence for c in checks if c.status != "pass"}


def wait_for(read: Any, done: Any, what: str) -> Any:
    polled = poll(read, done, 20.0, every=0.2)
    assert polled.done, f"{what}: {polled.value}"
    return polled.value


def test_probes_logs_and_drift_pass_on_the_gateway_then_drift_names_what_changed(env: Env) -> None:
    params, clients = env.params, env.clients
    names = lbnames.load_balancer_names(clients, params)
    assert names.topology == "gateway" and names.scheme == "EXTERNAL_MANAGED"
    assert names.forwarding_rule.startswith(gw.NAME_PREFIX) and names.target_proxy.startswith(gw.NAME_PREFIX)
    assert names.server_tls_policy and names.trust_config and names.ip
    # The split frontend of the same params file is not built: asking for it names what is missing.
    assert (
        lbnames.load_balancer_names(clients, params, "split").forwarding_rule
        == params.frontend.forwarding_rule
    )

    # 50_verify
    # The data plane opens a new forwarding rule's listener on its next refresh.
    target = wait_for(
        lambda: probe.locate_frontend(clients, params, names), lambda t: t.answering, "answering"
    )
    assert target.forwarding_rule == names.forwarding_rule
    results = probe.send_probes(clients, params, target)
    by_case = {r.case: r for r in results}
    valid = by_case[probe.PROBE_CERTIFICATE]
    assert (valid.verdict, valid.http_status) == ("pass", 200), valid
    assert valid.backend_headers.get("X-Client-Cert-Chain-Verified") == "true"
    assert (
        by_case[probe.NO_CERTIFICATE].http_status is None and by_case[probe.NO_CERTIFICATE].verdict == "pass"
    )
    untrusted = by_case["demo/untrusted-client"]
    assert untrusted.http_status is None and untrusted.verdict == "pass", untrusted
    assert by_case["demo/allowlisted-client"].expected == "client_cert_validation_failed"
    assert [r.case for r in results if r.verdict != "pass"] == []
    assert all(r.topology == "gateway" and r.forwarding_rule == names.forwarding_rule for r in results)

    # 60_logs
    pull = logs.wait_for_probe_entries(clients, params, results, timeout=30.0, poll_seconds=0.5, names=names)
    assert pull.ended == "all found" and pull.probes_found == len(results)
    assert pull.backend_logging is not None and pull.backend_logging.backend_service in names.backend_services
    matched = logs.match_probes(results, logs.entries_frame(pull.entries))
    assert failing(logs.checks(clients, params, matched, pull)) == {}

    # 70_drift, each object read once
    sandbox_call(clients, "counters", "DELETE")
    assert failing(drift.drift_checks(clients, params, resolver_to(names.ip))) == {}
    counts = sandbox_call(clients, "counters")["counts"]
    print(f"\nAPI calls per Gateway drift run: {sum(counts.values())} {counts}")
    assert all(n == 1 for n in counts.values()), counts

    # Behind the kit's back: the route's header filter removed.
    route_kind = kube.KUBE_KINDS["HTTPRoute"]
    route = gateway.read_object(clients, params, "HTTPRoute")
    assert route is not None
    route["metadata"].pop("managedFields", None)
    original = copy.deepcopy(route)

    def replace_route(body: dict[str, Any]) -> None:
        meta = body["metadata"]
        current = gateway.read_object(clients, params, "HTTPRoute") or {}
        body = {**body, "metadata": {**meta, "resourceVersion": current["metadata"]["resourceVersion"]}}
        clients.call(
            clients.kube.custom.replace_namespaced_custom_object,
            route_kind.group,
            route_kind.version,
            meta["namespace"],
            route_kind.plural,
            meta["name"],
            body,
        )

    route["spec"]["rules"][0].pop("filters")
    replace_route(route)
    checks = drift.drift_checks(clients, params, resolver_to(names.ip))
    assert set(failing(checks)) == {gatewaydrift.HEADER_FILTER}
    assert "rule 0 has no RequestHeaderModifier filter" in failing(checks)[gatewaydrift.HEADER_FILTER]
    # ... and the probe sees it: accepted, without the headers.
    seen = wait_for(
        lambda: probe.probe(
            target, probe.probe_cases(params)[0], probe.mtls_header_names(params), Path("/tmp")
        ),
        lambda r: r.verdict == "warn",
        "a valid probe without the headers",
    )
    assert "RequestHeaderModifier" in seen.detail

    # The CA bundle changed: the root alone, the intermediate gone (the route put back first).
    replace_route(original)
    configmap = gateway.read_object(clients, params, "ConfigMap")
    assert configmap is not None
    root = Path(params.mtls.trust_anchors[0]).read_text()
    clients.call(
        clients.kube.core.patch_namespaced_config_map,
        configmap["metadata"]["name"],
        configmap["metadata"]["namespace"],
        {"data": {gw.CA_KEY: root}},
    )
    checks = wait_for(
        lambda: drift.drift_checks(clients, params, resolver_to(names.ip)),
        lambda cs: drift.TRUST in failing(cs),
        "the controller rebuilding the trust config from the changed ca.crt",
    )
    problems = failing(checks)
    assert set(problems) == {gatewaydrift.CA_BUNDLE, drift.TRUST}
    assert "missing mtls.intermediates[0] intermediate.pem" in problems[gatewaydrift.CA_BUNDLE]
    # Put back by the same manager that changed it (an apply by the kit's manager would report the
    # field as another manager's: a conflict, not an overwrite).
    clients.call(
        clients.kube.core.patch_namespaced_config_map,
        configmap["metadata"]["name"],
        configmap["metadata"]["namespace"],
        {"data": {gw.CA_KEY: gateway.ca_bundle(params)}},
    )
    wait_for(
        lambda: drift.drift_checks(clients, params, resolver_to(names.ip)),
        lambda cs: not failing(cs),
        "drift passing once the bundle is restored",
    )
