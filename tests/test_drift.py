"""Drift checks against a sandbox of their own: a clean stack passes, and each drift that splits the
Kubernetes half from the kit's half (injected through the official clients) is named by the right
check with status fail, then repaired by applying the kit again."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import hashes
from google.cloud import certificate_manager_v1 as cm
from google.cloud import compute_v1
from google.protobuf import field_mask_pb2

from mtlskit.build import k8s, stack, trust
from mtlskit.cloud.clients import Clients, build_clients
from mtlskit.cloud.operations import wait
from mtlskit.config import params as params_mod
from mtlskit.config.params import Params
from mtlskit.core.checks import Check
from mtlskit.pki import certs
from mtlskit.runner import execute, results
from mtlskit.sandbox import process
from mtlskit.verify import drift
from tests.conftest import PROJECT, sandbox_call, sandbox_params

pytestmark = pytest.mark.e2e  # starts a sandbox of its own and runs 70_drift in a kernel

DOMAIN = "api.drift.test"  # .test never resolves: the DNS check is an honest warn on the sandbox


CHECK_ORDER = [
    drift.ANCHOR,
    drift.ANCHOR_CLOSED,
    drift.URL_MAP,
    drift.BACKEND_CONFIG,
    drift.WIRING,
    drift.TLS_POLICY,
    drift.TRUST,
    drift.EXPIRY,
    drift.SUCCESSOR,
    drift.HALF_DONE,
    drift.MANAGED_CERT,
    drift.DNS,
]


@dataclass
class Env:
    params: Params
    clients: Clients
    params_file: Path


def env_params(state: Path, **overrides: object) -> Params:
    pki = state / "pki"
    base: dict[str, object] = {
        "mtls": {"allowlisted": [str(pki / "allowlisted-client.pem")]},
        "probe": {"client_cert": str(pki / "client.pem"), "client_key": str(pki / "client.key")},
        "frontend": {"domains": [DOMAIN]},
    }
    for key, value in overrides.items():
        current = base.get(key)
        base[key] = {**current, **value} if isinstance(current, dict) and isinstance(value, dict) else value
    return sandbox_params(state, **base)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    d = tmp_path_factory.mktemp("drift")
    state = d / "state"
    params = env_params(state)
    params_file = d / "drift.yaml"
    params_file.write_text(yaml.safe_dump(params.model_dump(mode="json")))
    clients = build_clients(params)
    stack.build(clients, params)
    yield Env(params, clients, params_file)
    process.stop(state)


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def failing(checks: list[Check]) -> dict[str, str]:
    return {c.name: c.evidence for c in checks if c.status == "fail"}


def assert_clean(env: Env) -> list[Check]:
    """Applied again through the kit (idempotent), the stack has no failing check."""
    stack.build(env.clients, env.params)
    checks = drift.drift_checks(env.clients, env.params)
    assert failing(checks) == {}
    return checks


@pytest.fixture
def restore(env: Env) -> Iterator[None]:
    yield
    assert_clean(env)


def test_a_clean_stack_has_no_failing_check(env: Env) -> None:
    checks = by_name(assert_clean(env))
    assert list(checks) == CHECK_ORDER
    assert checks[drift.DNS].status == "warn"
    assert checks[drift.DNS].fix.startswith(f"create an A record {DOMAIN} -> 127.")
    for name in (drift.ANCHOR, drift.URL_MAP, drift.TLS_POLICY, drift.TRUST, drift.EXPIRY):
        assert checks[name].status == "pass", checks[name]
    assert "k8s1-" in checks[drift.URL_MAP].evidence
    assert "1 trust anchor, 1 intermediate, 1 allowlisted" in checks[drift.TRUST].evidence


def test_api_calls_per_run_stay_few_and_do_not_grow_with_unrelated_resources(env: Env, unique: str) -> None:
    def calls() -> dict[str, int]:
        sandbox_call(env.clients, "counters", "DELETE")
        drift.drift_checks(env.clients, env.params)
        return sandbox_call(env.clients, "counters")["counts"]

    before = calls()
    print(f"\nAPI calls per drift run: {sum(before.values())} {before}")
    assert sum(before.values()) <= 12
    assert all(n == 1 for n in before.values()), before  # each resource read once
    # another team's Ingress (and so another backend service), a URL map and a trust config
    other = env_params(
        env.params.state_dir,
        kubernetes={"namespace": unique, "ingress": "other"},
        mtls={"trust_config": f"{unique}-trust", "server_tls_policy": f"{unique}-policy"},
    )
    k8s.apply_ingress(env.clients, other, k8s.plan_ingress(env.clients, other))
    trust.apply_trust(env.clients, other, trust.plan_trust(env.clients, other))
    wait(
        env.clients,
        env.clients.compute.url_maps.insert(
            project=PROJECT,
            url_map_resource=compute_v1.UrlMap(
                name=f"{unique}-um",
                default_service=f"global/backendServices/{next(iter(k8s.wait_for_backends(env.clients, other, 10)))}",
            ),
        ),
        "unrelated url map",
    )
    assert calls() == before


def test_deleted_anchor_is_named_first(env: Env, restore: None) -> None:
    k = env.params.kubernetes
    env.clients.kube.networking.delete_namespaced_ingress(k.ingress, k.namespace)
    checks = by_name(drift.drift_checks(env.clients, env.params))
    anchor = checks[drift.ANCHOR]
    assert anchor.status == "fail"
    assert f"Ingress {k.namespace}/{k.ingress} does not exist" in anchor.evidence
    assert "10_ingress with apply=True" in anchor.fix and "never delete the anchor" in anchor.fix
    # the URL map still points at the backend service, which nothing syncs any more
    assert checks[drift.URL_MAP].status == "fail"
    assert checks[drift.ANCHOR_CLOSED].status == "pass"


def test_anchor_serving_traffic_of_its_own(env: Env, restore: None) -> None:
    k = env.params.kubernetes
    env.clients.kube.networking.patch_namespaced_ingress(
        k.ingress, k.namespace, {"metadata": {"annotations": {"kubernetes.io/ingress.allow-http": "true"}}}
    )
    checks = drift.drift_checks(env.clients, env.params)
    assert set(failing(checks)) == {drift.ANCHOR_CLOSED}
    assert "ingress.kubernetes.io/forwarding-rule=k8s2-fr-" in failing(checks)[drift.ANCHOR_CLOSED]


def test_service_port_change_leaves_the_url_map_on_the_old_backend_service(env: Env, restore: None) -> None:
    old = by_name(drift.drift_checks(env.clients, env.params))[drift.URL_MAP].evidence
    moved = env_params(env.params.state_dir, kubernetes={"service_port": 8080})
    k8s.apply_ingress(env.clients, moved, k8s.plan_ingress(env.clients, moved))  # Service + anchor: new port
    new_name = next(iter(k8s.wait_for_backends(env.clients, moved, 10)))
    assert new_name not in old

    # the params follow the new port: the anchor is fine, the URL map is not
    checks = by_name(drift.drift_checks(env.clients, moved))
    assert checks[drift.ANCHOR].status == "pass"
    url_map = checks[drift.URL_MAP]
    assert url_map.status == "fail"
    assert f"anchor names {new_name}" in url_map.evidence and "default/web:80" in url_map.evidence
    assert "40_frontend with apply=True" in url_map.fix and f"--default-service={new_name}" in url_map.fix
    # the params still say port 80: the anchor no longer names a backend service for it
    stale = by_name(drift.drift_checks(env.clients, env.params))[drift.ANCHOR]
    assert stale.status == "fail" and "none for Service default/web port 80" in stale.evidence


def test_url_map_pointing_elsewhere(env: Env, unique: str, restore: None) -> None:
    c = env.clients.compute
    wait(
        env.clients,
        c.backend_services.insert(
            project=PROJECT,
            backend_service_resource=compute_v1.BackendService(
                name=f"{unique}-bs", load_balancing_scheme="EXTERNAL", protocol="HTTP"
            ),
        ),
        "other backend service",
    )
    um = c.url_maps.get(project=PROJECT, url_map=env.params.frontend.url_map)
    wait(
        env.clients,
        c.url_maps.patch(
            project=PROJECT,
            url_map=um.name,
            url_map_resource=compute_v1.UrlMap(
                default_service=f"global/backendServices/{unique}-bs", fingerprint=um.fingerprint
            ),
        ),
        "repoint url map",
    )
    checks = drift.drift_checks(env.clients, env.params)
    assert set(failing(checks)) == {drift.URL_MAP}
    assert f"-> {unique}-bs" in failing(checks)[drift.URL_MAP]


def test_detached_server_tls_policy_fails_the_check_and_the_notebook(
    env: Env, tmp_path: Path, restore: None
) -> None:
    clean = run_drift_notebook(env.params_file, tmp_path / "clean")
    assert clean.status == "ok", clean.error
    assert [c.name for c in clean.checks] == CHECK_ORDER and failing(clean.checks) == {}
    c = env.clients.compute.target_https_proxies
    name = env.params.frontend.target_proxy
    proxy = c.get(project=PROJECT, target_https_proxy=name)
    wait(
        env.clients,
        c.patch(
            project=PROJECT,
            target_https_proxy=name,
            target_https_proxy_resource=compute_v1.TargetHttpsProxy(
                server_tls_policy="", fingerprint=proxy.fingerprint
            ),
        ),
        "detach server TLS policy",
    )
    checks = drift.drift_checks(env.clients, env.params)
    assert set(failing(checks)) == {drift.TLS_POLICY}
    check = by_name(checks)[drift.TLS_POLICY]
    assert f"proxy {name} has no server TLS policy" in check.evidence
    assert "--server-tls-policy=" in check.fix

    drifted = run_drift_notebook(env.params_file, tmp_path / "drifted")
    assert drifted.status == "failed" and drifted.error.startswith("StepFailed"), drifted.error
    assert set(failing(drifted.checks)) == {drift.TLS_POLICY}


def run_drift_notebook(params_file: Path, out: Path) -> results.NotebookResult:
    """A headless run of 70_drift, as `mtlskit run` executes it (checks read back from the notebook)."""
    result = execute.run_notebooks(str(params_file), ["70_drift"], apply=False, out_dir=out, report=False)
    [notebook] = result.notebooks
    return notebook


def test_swapped_trust_anchor_names_what_was_added_and_what_is_missing(env: Env, restore: None) -> None:
    other_root = certs.issue("drift swapped-in root CA", ca=True, eku=certs.CLIENT_AUTH)
    name = trust.trust_config_name(env.clients, env.params)
    tc = env.clients.certificate_manager.get_trust_config(name=name)
    tc.trust_stores[0].trust_anchors[0].pem_certificate = certs.pem(other_root.cert)
    env.clients.certificate_manager.update_trust_config(
        trust_config=cm.TrustConfig(name=name, trust_stores=tc.trust_stores),
        update_mask=field_mask_pb2.FieldMask(paths=["trust_stores"]),
    ).result(timeout=30)
    checks = drift.drift_checks(env.clients, env.params)
    assert set(failing(checks)) == {drift.TRUST}
    evidence = failing(checks)[drift.TRUST]
    assert "missing from the trust config: mtls.trust_anchors[0] root.pem" in evidence
    assert "drift swapped-in root CA" in evidence and "not in mtls.trust_anchors" in evidence
    assert "30_trust with apply=True" in by_name(checks)[drift.TRUST].fix


def test_certificate_inside_the_expiry_horizon(env: Env) -> None:
    wide = env_params(env.params.state_dir, expiry_horizon_days=400)  # the demo PKI lives 365 days
    check = by_name(drift.drift_checks(env.clients, wide))[drift.EXPIRY]
    assert check.status == "fail"
    assert "inside the 400-day horizon" in check.evidence
    assert (
        "mtls.trust_anchors[0] root.pem" in check.evidence
        and "probe.client_cert client.pem" in check.evidence
    )
    assert f"expires {dt.date.today().year + 1}-" in check.evidence
    # an allowlisted certificate alone would be a warning: the load balancer accepts it expired
    only_allowlisted = drift.check_expiry(
        env_params(
            env.params.state_dir,
            expiry_horizon_days=400,
            mtls={"trust_anchors": [], "intermediates": []},
            probe={"client_cert": None, "client_key": None},
        ),
        dt.datetime.now(dt.UTC),
    )
    assert only_allowlisted.status == "warn"


def test_backend_config_intent(env: Env, restore: None) -> None:
    # the params ask for a sample rate the BackendConfig (and so the backend service) does not have
    half = env_params(env.params.state_dir, logging={"sample_rate": 0.5})
    check = by_name(drift.drift_checks(env.clients, half))[drift.BACKEND_CONFIG]
    assert check.status == "fail"
    assert "sampleRate 1 (params 0.5)" in check.evidence and "10_ingress with apply=True" in check.fix

    # the BackendConfig is right but someone edited the backend service by hand
    ours = drift.read_state(env.clients, env.params).ours(env.params)
    assert ours is not None
    bs = ours.name
    c = env.clients.compute.backend_services
    current = c.get(project=PROJECT, backend_service=bs)
    edit = compute_v1.BackendService(
        fingerprint=current.fingerprint, custom_request_headers=["X-Hand-Edit:1"]
    )
    wait(env.clients, c.patch(project=PROJECT, backend_service=bs, backend_service_resource=edit), "edit")
    check = by_name(drift.drift_checks(env.clients, env.params))[drift.BACKEND_CONFIG]
    assert check.status == "fail" and "the controller has not applied it" in check.evidence
    assert "extra ['X-Hand-Edit']" in check.evidence
    # the controller puts it right on its next sync; here, the original headers go back by hand
    current = c.get(project=PROJECT, backend_service=bs)
    back = compute_v1.BackendService(
        fingerprint=current.fingerprint, custom_request_headers=list(env.params.mtls.custom_headers)
    )
    wait(env.clients, c.patch(project=PROJECT, backend_service=bs, backend_service_resource=back), "undo")


def test_dns_answers(env: Env) -> None:
    state = drift.read_state(env.clients, env.params, lambda d: drift.Resolution(d, ("203.0.113.7",)))
    check = drift.check_dns(env.params, state)
    assert check.status == "fail" and f"{DOMAIN} -> 203.0.113.7, not 127." in check.evidence
    assert check.fix.startswith(f"change the A record {DOMAIN} -> 127.")
    ip = state.address.address if state.address else ""
    state.dns = [drift.Resolution(DOMAIN, (ip,))]
    assert drift.check_dns(env.params, state).status == "pass"
    state.dns = drift.resolve_all([DOMAIN], lambda d: drift.Resolution(d, (), "no such name"))
    assert drift.check_dns(env.params, state).status == "warn"


def test_missing_resources_are_failing_checks_not_exceptions(env: Env, unique: str) -> None:
    names = params_mod.another_stack({"target": "sandbox"}, unique)
    nowhere = env_params(
        env.params.state_dir,
        kubernetes={"namespace": unique},
        frontend=names["frontend"],
        mtls=names["mtls"],
    )
    checks = by_name(drift.drift_checks(env.clients, nowhere))
    for name in (
        drift.ANCHOR,
        drift.URL_MAP,
        drift.BACKEND_CONFIG,
        drift.WIRING,
        drift.TLS_POLICY,
        drift.TRUST,
        drift.MANAGED_CERT,
        drift.DNS,
    ):
        assert checks[name].status == "fail", checks[name]
        assert "does not exist" in checks[name].evidence or "no backend service" in checks[name].evidence
        assert checks[name].fix


def test_a_trust_config_mid_rotation_warns_with_its_record_instead_of_failing(
    env: Env, restore: None, tmp_path: Path
) -> None:
    """Phase 1 of a rotation applied on the sandbox (a new root beside the old, in place) and recorded
    20 days ago: the trust check says so as a warning, and the rotation is half done past 14 days."""
    from mtlskit.verify import changedrift, changerecords
    from tests.recordstates import record

    new_root = certs.issue("drift next root CA", ca=True)
    name = trust.trust_config_name(env.clients, env.params)
    tc = env.clients.certificate_manager.get_trust_config(name=name)
    tc.trust_stores[0].trust_anchors.append(
        cm.TrustConfig.TrustAnchor(pem_certificate=certs.pem(new_root.cert))
    )
    env.clients.certificate_manager.update_trust_config(
        trust_config=cm.TrustConfig(name=name, trust_stores=tc.trust_stores),
        update_mask=field_mask_pb2.FieldMask(paths=["trust_stores"]),
    ).result(timeout=30)
    params = env_params(env.params.state_dir, changes={"records": str(tmp_path / "records")})
    live = changedrift.live_certificates(env.clients.certificate_manager.get_trust_config(name=name))
    after = {"certs": [{"role": role, "sha256": sha} for role, sha in sorted(live)], "mode": "REJECT_INVALID"}
    before = {
        "certs": [
            c for c in after["certs"] if c["sha256"] != new_root.cert.fingerprint(hashes.SHA256()).hex()
        ]
    }
    when = dt.datetime.now(dt.UTC) - dt.timedelta(days=20)
    one = record("rotation", 1, before, after, finished=when, stack=changerecords.stack_of(params))
    changerecords.write_record(params, one)

    checks = by_name(drift.drift_checks(env.clients, params))
    assert failing(list(checks.values())) == {}
    assert checks[drift.TRUST].status == "warn"
    assert checks[drift.TRUST].evidence.startswith(f"rotation phase 1 of 2 since {when:%Y-%m-%d %H:%M} UTC")
    assert checks[drift.HALF_DONE].status == "warn" and "warned after 14" in checks[drift.HALF_DONE].evidence
