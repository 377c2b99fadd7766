"""The Gateway topology built on one sandbox through the real clients: an older cluster is refused
with nothing written; gw10 + gw20 build, wait and check the controller's load balancer (trust config
equal to the ConfigMap by SHA-256); a second run sends no mutating call; another field manager's
change is reported, not overwritten; teardown deletes the Gateway first, waits for the controller's
resources to go, and leaves what the kit did not create."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mtlskit import runbook
from mtlskit.build import (
    frontend,
    gateway,
    gateway_kube,
    gateway_lb,
    gateway_status,
    gateway_teardown,
    lbnames,
    preflight,
)
from mtlskit.cloud import ownership
from mtlskit.cloud.clients import Clients, build_clients
from mtlskit.config import params as params_mod
from mtlskit.config import paths
from mtlskit.config.params import Params
from mtlskit.rules import gateway as gw
from mtlskit.sandbox import process
from tests.conftest import free_port, sandbox_call
from tests.test_runbook import mutating_calls

pytestmark = pytest.mark.e2e
GATEWAY_PARAMS = paths.repo_root() / "params" / "sandbox-gateway.yaml"


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    d = tmp_path_factory.mktemp("gateway-build")
    yield d
    process.stop(d)


def params_for(state: Path, **sandbox: Any) -> Params:
    data = params_mod.sandbox_default(state, GATEWAY_PARAMS)
    data["sandbox"].update(data_plane_port=_PORT, operation_delay_seconds=0.05, **sandbox)
    return params_mod.parse(data, "gateway-test")


_PORT = free_port()


def env(state: Path, **sandbox: Any) -> tuple[Params, Clients]:
    """The params and clients; building the clients sets the sandbox's Gateway API bundle."""
    p = params_for(state, **sandbox)
    return p, build_clients(p)


def build(p: Params, c: Clients) -> tuple[runbook.Step, runbook.Step]:
    prereqs = runbook.Step(p, c, apply=True)
    prereqs.run(gateway.plan_prerequisites, gateway.apply_prerequisites)
    main = runbook.Step(p, c, apply=True)
    main.run(gateway.plan_gateway, gateway.apply_gateway)
    return prereqs, main


def kube_objects(p: Params, c: Clients) -> dict[str, Any]:
    return {kind: gateway.read_object(c, p, kind) for kind in gateway.manifests(p)}


def test_an_older_cluster_is_refused_by_preflight_and_nothing_is_written(state: Path) -> None:
    p, c = env(state, gateway_api="v1.3")
    checks = {ch.name: ch for ch in preflight.topology_checks(c, p)}
    schema = checks["Gateway schema has spec.tls.frontend"]
    assert schema.status == "fail" and "--gateway-api=standard" in schema.fix, schema
    step = runbook.Step(p, c, apply=True)
    frame = step.run(gateway.plan_prerequisites, gateway.apply_prerequisites)
    assert (
        "GatewayApiUnsupported" not in str(frame) and step.blocked and "nothing was applied" in step.blocked
    )
    with pytest.raises(runbook.StepFailed, match="prerequisites"):
        step.finish(runbook.outcome_checks(step, "gateway prerequisites match params"))
    assert all(obj is None for obj in kube_objects(p, c).values())
    assert frontend.KINDS["SslPolicy"].get(c, p.frontend.ssl_policy) is None

    # applied past the kit's refusal, a v1.4 schema prunes the field silently: the read-back says so
    p14, c14 = env(state, gateway_api="v1.4")
    manifest = gateway.gateway_manifest(p14)
    manifest["metadata"] = {**manifest["metadata"], "name": "applied-by-hand"}
    stored = gateway_kube.apply(c14, manifest)
    check = gateway_status.readback_check(p14, gateway_status.state_of(stored).frontend)
    assert check.status == "fail" and "pruned" in check.evidence, check
    gateway_kube.delete(
        c14, gateway_kube.KUBE_KINDS["Gateway"], manifest["metadata"]["namespace"], "applied-by-hand"
    )


def test_build_waits_reads_back_checks_the_load_balancer_and_a_rerun_changes_nothing(state: Path) -> None:
    p, c = env(state)
    assert all(ch.status == "pass" for ch in preflight.topology_checks(c, p))
    prereqs, main = build(p, c)
    assert runbook.outcome_checks(prereqs, "x")[0].status == "pass"
    assert runbook.outcome_checks(main, "x")[0].status == "pass"
    state_ = gateway_status.wait_for_gateway(c, p, 60)
    assert state_.ready, state_.summary()
    lb = gateway_lb.check_load_balancer(c, p)
    checks = gateway_status.gateway_checks(c, p, state_) + lb.checks
    assert [ch for ch in checks if ch.status != "pass"] == []
    assert {"spec.tls.frontend read back", "trust config equals the ConfigMap"} <= {ch.name for ch in checks}
    # the trust config the controller built holds exactly the params' anchors and intermediates
    names = lbnames.gateway_names(c, p)
    assert names.forwarding_rule.startswith(gw.NAME_PREFIX) and names.ssl_policy == p.frontend.ssl_policy
    trust = c.certificate_manager.get_trust_config(name=names.trust_config)
    stored = [a.pem_certificate for s in trust.trust_stores for a in [*s.trust_anchors, *s.intermediate_cas]]
    files = [Path(f).read_text() for f in (*p.mtls.trust_anchors, *p.mtls.intermediates)]
    assert set(gateway_lb.fingerprints(stored)) == set(gateway_lb.fingerprints(files))
    # every object is the kit's, applied by its field manager
    for kind, obj in kube_objects(p, c).items():
        assert ownership.owns_kube(obj["metadata"]["labels"], p.stack), kind
        managers = {m["manager"] for m in obj["metadata"].get("managedFields") or []}
        assert ownership.FIELD_MANAGER in managers, (kind, managers)

    sandbox_call(c, "counters", "DELETE")
    again, again_main = build(p, c)
    counts = sandbox_call(c, "counters")["counts"]
    assert mutating_calls(counts) == {}, mutating_calls(counts)
    assert all(ch.action == "no change" for ch in [*again.outcome, *again_main.outcome])


def test_another_managers_field_is_reported_not_overwritten(state: Path) -> None:
    p, c = env(state)
    build(p, c)
    policy = gateway.gateway_manifests(p)["GCPBackendPolicy"]
    theirs = {
        "apiVersion": policy["apiVersion"],
        "kind": policy["kind"],
        "metadata": {"name": policy["metadata"]["name"], "namespace": policy["metadata"]["namespace"]},
        "spec": {"default": {"logging": {"enabled": True, "sampleRate": 1000}}},
    }
    c.call(
        c.kube.custom.patch_namespaced_custom_object,
        gw.POLICY_GROUP, gw.POLICY_VERSION, policy["metadata"]["namespace"], "gcpbackendpolicies",
        policy["metadata"]["name"], theirs, field_manager="someone-else", force=True,
        _content_type=gateway_kube.APPLY_CONTENT_TYPE,
    )  # fmt: skip
    step = runbook.Step(p, c, apply=True)
    step.run(gateway.plan_gateway, gateway.apply_gateway)
    conflicts = runbook.conflict_checks(step)
    assert [ch.status for ch in conflicts] == ["fail"]
    assert "someone-else" in conflicts[0].evidence and "--force-conflicts" in conflicts[0].fix
    stored = gateway.read_object(c, p, "GCPBackendPolicy")
    assert stored["spec"]["default"]["logging"]["sampleRate"] == 1000  # left as the other manager set it
    gateway_kube.apply(c, policy, force=True)  # taken back on purpose
    assert gateway.plan_gateway(c, p)[3].action == "no change"


def test_teardown_deletes_the_gateway_first_and_keeps_what_the_kit_did_not_create(state: Path) -> None:
    p, c = env(state)
    build(p, c)
    assert gateway_status.wait_for_gateway(c, p, 60).ready
    built = lbnames.gateway_names(c, p)
    # someone else's HealthCheckPolicy of the same name: not the kit's to delete
    health = gateway.gateway_manifests(p)["HealthCheckPolicy"]
    meta = health["metadata"]
    c.call(
        c.kube.custom.patch_namespaced_custom_object,
        gw.POLICY_GROUP, gw.POLICY_VERSION, meta["namespace"], "healthcheckpolicies", meta["name"],
        {"metadata": {"labels": {ownership.KUBE_MANAGED_BY: "someone-else"}}},
        _content_type="application/merge-patch+json",
    )  # fmt: skip
    changes = gateway_teardown.plan_gateway_teardown(c, p)
    assert changes[0].kind == "Gateway" and changes[0].action == "delete"
    assert {ch.kind: ch.action for ch in changes}["HealthCheckPolicy"] == "keep"
    step = runbook.Step(p, c, apply=True)
    step.run(gateway_teardown.plan_gateway_teardown, gateway_teardown.apply_gateway_teardown)
    assert runbook.outcome_checks(step, "removed")[0].status == "pass"
    # the controller's load balancer went with the Gateway, the kit's Compute resources after it
    assert frontend.KINDS["ForwardingRule"].get(c, built.forwarding_rule) is None
    assert frontend.KINDS["TargetHttpsProxy"].get(c, built.target_proxy) is None
    assert frontend.KINDS["SslPolicy"].get(c, p.frontend.ssl_policy) is None
    assert frontend.KINDS["SslCertificate"].get(c, p.frontend.certificate) is None
    left = {kind for kind, obj in kube_objects(p, c).items() if obj is not None}
    assert left == {"Service", "HealthCheckPolicy"}  # the Service is never deleted; the other is not ours

    sandbox_call(c, "counters", "DELETE")
    again = runbook.Step(p, c, apply=True)
    again.run(gateway_teardown.plan_gateway_teardown, gateway_teardown.apply_gateway_teardown)
    assert mutating_calls(sandbox_call(c, "counters")["counts"]) == {}
    assert [ch.action for ch in again.outcome or []] == ["keep"]
