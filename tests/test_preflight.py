"""Real-target readiness in 00_preflight: IAM permissions asked with testIamPermissions, quota headroom
from Compute's projects.get, and a machine without credentials or kube context reported as failed
checks with the commands that fix them, never a crash.

The sandbox withholds permissions and exhausts quotas on request (params `sandbox.withhold_permissions`
and `sandbox.exhaust_quota`) and enforces both on the calls themselves, so a test can show preflight
failing with no write sent, and the 403 that apply meets when preflight is skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from google.cloud import compute_v1
from google.cloud import network_security_v1 as ns

from mtlskit.build import frontend, permissions, quotas
from mtlskit.cloud.clients import Clients, build_clients
from mtlskit.config import params as params_mod
from mtlskit.config import paths
from mtlskit.core import errors
from mtlskit.core.checks import Check
from mtlskit.pki import certs
from mtlskit.rules import iam
from mtlskit.runner import execute, results
from mtlskit.sandbox import access, process
from tests.conftest import PROJECT, sandbox_call, sandbox_params

WITHHELD = "compute.targetHttpsProxies.create"
EXHAUSTED = "FORWARDING_RULES"
MUTATING_VERBS = ("insert", "patch", "update", "delete", "create", "setUrlMap", "setSslPolicy", "setTarget")


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


# ---- the tables and the derivation (no sandbox) ----------------------------------------------------------


def test_the_needed_permissions_come_from_what_the_steps_write_and_each_has_a_role(tmp_path: Path) -> None:
    params = sandbox_params(tmp_path)
    needs = permissions.needs(params)
    needed = {n.permission for n in needs}
    # one create per frontend kind, the `.use` permissions of what each write refers to
    for kind in frontend.KINDS.values():
        assert f"compute.{iam.COMPUTE_IAM_TYPE[kind.collection]}.create" in needed
    assert {
        "compute.urlMaps.use",
        "compute.sslPolicies.use",
        "compute.targetHttpsProxies.use",
        "compute.globalAddresses.use",
        "compute.backendServices.use",
        "compute.sslCertificates.get",
        "networksecurity.serverTlsPolicies.use",
        "certificatemanager.trustconfigs.use",
        "networksecurity.serverTlsPolicies.create",
        "certificatemanager.trustconfigs.create",
        "compute.globalOperations.get",
        "logging.logEntries.list",
        "compute.projects.get",
    } <= needed
    assert not iam.unknown_permissions(sorted(needed)), "every needed permission has a role in rules.iam"
    proxy = [n for n in needs if n.permission == WITHHELD]
    assert proxy == [permissions.Need(WITHHELD, "40_frontend", "create TargetHttpsProxy mtls-proxy")]
    # SslPolicy can change in place, so its update is needed (and granted by the security admin role)
    assert iam.role_for("compute.sslPolicies.update") == "roles/compute.securityAdmin"
    assert all(n.step == permissions.TEARDOWN for n in needs if n.permission.endswith(".delete"))


def test_missing_permissions_name_the_role_and_teardown_only_ones_warn() -> None:
    needs = [
        permissions.Need(WITHHELD, "40_frontend", "create TargetHttpsProxy p"),
        permissions.Need("logging.logEntries.list", "60_logs", "read logs"),
        permissions.Need(
            "certificatemanager.trustconfigs.delete", permissions.TEARDOWN, "delete TrustConfig t"
        ),
    ]
    report = permissions.PermissionReport("p1", needs, granted={"logging.logEntries.list"})
    checks = by_name(report.checks())
    build = checks["IAM permissions"]
    assert build.status == "fail"
    assert WITHHELD in build.evidence and "roles/compute.loadBalancerAdmin" in build.evidence
    assert "40_frontend create TargetHttpsProxy p" in build.evidence
    assert "logging" not in build.evidence
    assert "gcloud projects add-iam-policy-binding p1" in build.fix
    assert "--role=roles/compute.loadBalancerAdmin" in build.fix
    teardown = checks["IAM permissions for teardown"]
    assert teardown.status == "warn" and "roles/certificatemanager.owner" in teardown.evidence
    rows = {r["permission"]: r for r in report.rows()}
    assert rows[WITHHELD]["granted"] == "NO" and rows["logging.logEntries.list"]["granted"] == "yes"

    granted = permissions.PermissionReport("p1", needs, granted={n.permission for n in needs})
    assert [c.status for c in granted.checks()] == ["pass"]


@pytest.mark.parametrize(
    ("needed", "limit", "usage", "status"),
    [(1, 15.0, 14.0, "pass"), (1, 15.0, 15.0, "fail"), (2, 15.0, 14.0, "fail"), (0, 15.0, 15.0, "pass")],
)
def test_quota_headroom_fails_when_the_room_is_less_than_the_plan_creates(
    needed: int, limit: float, usage: float, status: str
) -> None:
    report = quotas.QuotaReport("p1", [quotas.Headroom(EXHAUSTED, "ForwardingRule fr", needed, limit, usage)])
    [check] = report.checks()
    assert check.status == status
    if status == "fail":
        assert f"{EXHAUSTED}: the plan creates {needed}" in check.evidence
        assert f"limit {limit:g} - usage {usage:g} = {limit - usage:g}" in check.evidence
        assert (
            "quota increase" in check.fix
            and "console.cloud.google.com/iam-admin/quotas?project=p1" in check.fix
        )


def test_a_403_names_the_role_and_a_quota_error_the_fix() -> None:
    denied = errors.ApiError(
        "google",
        "POST",
        "/compute/v1/projects/p1/global/targetHttpsProxies",
        403,
        f"Required '{WITHHELD}' permission for 'projects/p1/global/targetHttpsProxies/x'",
    )
    assert "granted by roles/compute.loadBalancerAdmin" in str(denied)
    assert "gcloud projects add-iam-policy-binding p1" in str(denied)
    located = errors.access_hint(
        "Permission 'networksecurity.serverTlsPolicies.create' denied on resource "
        "'//networksecurity.googleapis.com/projects/p2/locations/global/serverTlsPolicies/x'"
    )
    assert "roles/networksecurity.admin" in located and "add-iam-policy-binding p2" in located
    quota = errors.access_hint("Quota 'FORWARDING_RULES' exceeded.  Limit: 15.0 globally.", "/projects/p3/x")
    assert "quota FORWARDING_RULES exhausted" in quota and "project=p3" in quota
    assert errors.access_hint("The resource 'x' already exists") == ""


def test_params_refuse_unknown_permissions_and_metrics_by_field(tmp_path: Path) -> None:
    with pytest.raises(params_mod.ParamsError) as err:
        sandbox_params(
            tmp_path,
            sandbox={
                "withhold_permissions": ["compute.targetHttpsProxies.creat"],
                "exhaust_quota": ["FORWARDING"],
            },
        )
    text = str(err.value)
    assert "sandbox.withhold_permissions: unknown permission 'compute.targetHttpsProxies.creat'" in text
    assert "compute.targetHttpsProxies.create" in text  # the list of what is allowed
    assert "sandbox.exhaust_quota: unknown quota metric 'FORWARDING'" in text
    with pytest.raises(params_mod.ParamsError, match="only act on the sandbox"):
        params_mod.parse(
            {
                **yaml.safe_load(params_mod.params_file().read_text()),
                "target": "gcp",
                "sandbox": {"exhaust_quota": [EXHAUSTED]},
            }
        )


@pytest.mark.parametrize(
    ("method_id", "permission"),
    [
        ("compute.targetHttpsProxies.insert", "compute.targetHttpsProxies.create"),
        ("compute.globalForwardingRules.delete", "compute.globalForwardingRules.delete"),
        ("compute.targetHttpsProxies.setUrlMap", "compute.targetHttpsProxies.update"),
        ("compute.sslPolicies.patch", "compute.sslPolicies.update"),
        (
            "networksecurity.projects.locations.serverTlsPolicies.create",
            "networksecurity.serverTlsPolicies.create",
        ),
        (
            "certificatemanager.projects.locations.trustConfigs.patch",
            "certificatemanager.trustconfigs.update",
        ),
        ("logging.entries.list", "logging.logEntries.list"),
    ],
)
def test_the_sandbox_maps_each_method_to_googles_permission(method_id: str, permission: str) -> None:
    assert access.permission_of(method_id) == permission


# ---- on the sandbox -------------------------------------------------------------------------------------


def _refusing_params(tmp_path: Path, state_dir: Path | None = None, **sandbox: Any) -> Path:
    """The committed sandbox params in a state directory of their own, with the refusals given."""
    data = params_mod.sandbox_default(state_dir or tmp_path / "state")
    data["sandbox"].update(sandbox)
    tmp_path.mkdir(parents=True, exist_ok=True)
    file = tmp_path / "params.yaml"
    file.write_text(yaml.safe_dump(data))
    return file


@pytest.fixture(scope="module")
def refusing(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A sandbox of its own that withholds the proxy's create permission and has no forwarding-rule
    quota left."""
    tmp = tmp_path_factory.mktemp("refusing")
    file = _refusing_params(tmp, withhold_permissions=[WITHHELD], exhaust_quota=[EXHAUSTED])
    params = params_mod.load(file)
    yield file, params, build_clients(params)
    process.stop(params.state_dir)


def _mutations(clients: Clients) -> dict[str, int]:
    counts = sandbox_call(clients, "counters")["counts"]
    return {k: v for k, v in counts.items() if k.rsplit(".", 1)[-1] in MUTATING_VERBS}


@pytest.mark.e2e
def test_preflight_fails_naming_the_permission_its_role_and_the_quota_with_no_write(refusing: Any) -> None:
    file, params, clients = refusing
    sandbox_call(clients, "counters", "DELETE")
    run = execute.run_notebooks(
        str(file), ["00_preflight"], apply=False, out_dir=file.parent / "run", report=False
    )
    [notebook] = run.notebooks
    assert run.exit_code == results.EXIT_CHECK_FAILED, notebook.error
    checks = by_name(notebook.checks)
    iam_check = checks["IAM permissions"]
    assert iam_check.status == "fail"
    assert WITHHELD in iam_check.evidence and "roles/compute.loadBalancerAdmin" in iam_check.evidence
    assert "--role=roles/compute.loadBalancerAdmin" in iam_check.fix
    quota = checks["quota headroom"]
    assert quota.status == "fail" and f"{EXHAUSTED}: the plan creates 1" in quota.evidence
    assert "limit 0 - usage 0 = 0" in quota.evidence and "quota increase" in quota.fix
    assert {c.name for c in notebook.checks if c.status == "fail"} == {"IAM permissions", "quota headroom"}
    counts = sandbox_call(clients, "counters")["counts"]
    assert counts.get("cloudresourcemanager.projects.testIamPermissions") == 1
    assert counts.get("compute.projects.get") == 1
    assert _mutations(clients) == {}, "preflight sent a write"


@pytest.mark.e2e
def test_the_sandbox_answers_and_enforces_what_it_withholds(refusing: Any) -> None:
    _, params, clients = refusing
    report = permissions.check_permissions(clients, params)
    assert report.missing() == [WITHHELD]
    granted = clients.resource_manager.projects().testIamPermissions(
        resource=PROJECT, body={"permissions": [WITHHELD, "compute.urlMaps.create"]}
    )
    assert granted.execute() == {"permissions": ["compute.urlMaps.create"]}

    proxy = compute_v1.TargetHttpsProxy(name="p", url_map=f"projects/{PROJECT}/global/urlMaps/none")
    with pytest.raises(errors.ApiError) as denied:
        clients.call(
            clients.compute.target_https_proxies.insert, project=PROJECT, target_https_proxy_resource=proxy
        )
    assert denied.value.status == 403
    text = str(denied.value)
    assert f"Required '{WITHHELD}' permission for 'projects/{PROJECT}/global/targetHttpsProxies/p'" in text
    assert "granted by roles/compute.loadBalancerAdmin" in text
    assert getattr(denied.value.cause, "reason", None) == "IAM_PERMISSION_DENIED"

    rule = compute_v1.ForwardingRule(name="fr", target=f"projects/{PROJECT}/global/targetHttpsProxies/p")
    with pytest.raises(errors.ApiError) as exhausted:
        clients.call(clients.compute.forwarding_rules.insert, project=PROJECT, forwarding_rule_resource=rule)
    assert exhausted.value.status == 403 and "Quota 'FORWARDING_RULES' exceeded" in str(exhausted.value)
    assert getattr(exhausted.value.cause, "reason", None) == "QUOTA_EXCEEDED"
    assert "request a quota increase for FORWARDING_RULES" in str(exhausted.value)


@pytest.mark.e2e
def test_quota_usage_counts_the_sandboxs_resources_and_settings_change_while_it_runs(refusing: Any) -> None:
    file, params, clients = refusing
    before = {q.metric: q for q in clients.compute.projects.get(project=PROJECT).quotas}
    assert before[EXHAUSTED].limit == before[EXHAUSTED].usage
    op = clients.call(
        clients.compute.addresses.insert, project=PROJECT, address_resource=compute_v1.Address(name="counted")
    )
    clients.wait(op, "create Address counted")
    after = {q.metric: q for q in clients.compute.projects.get(project=PROJECT).quotas}
    assert after["STATIC_ADDRESSES"].usage == before["STATIC_ADDRESSES"].usage + 1
    assert after["STATIC_ADDRESSES"].limit > after["STATIC_ADDRESSES"].usage

    # the running sandbox takes a params file's lists when the kit next builds its clients
    build_clients(params_mod.load(_refusing_params(file.parent / "other", params.state_dir)))
    try:
        assert sandbox_call(clients, "access") == {"withhold_permissions": [], "exhaust_quota": []}
        assert permissions.check_permissions(clients, params).missing() == []
        policy = ns.ServerTlsPolicy(
            mtls_policy=ns.ServerTlsPolicy.MTLSPolicy(
                client_validation_mode="ALLOW_INVALID_OR_MISSING_CLIENT_CERT"
            )
        )
        sandbox_call(
            clients, "access", "POST", {"withhold_permissions": ["networksecurity.serverTlsPolicies.create"]}
        )
        with pytest.raises(errors.ApiError) as denied:
            clients.call(
                clients.network_security.create_server_tls_policy,
                parent=clients.location,
                server_tls_policy_id="denied",
                server_tls_policy=policy,
            )
        assert "Permission 'networksecurity.serverTlsPolicies.create' denied" in str(denied.value)
        assert "granted by roles/networksecurity.admin" in str(denied.value)
    finally:
        sandbox_call(
            clients, "access", "POST", {"withhold_permissions": [WITHHELD], "exhaust_quota": [EXHAUSTED]}
        )


@pytest.mark.e2e
def test_a_403_during_apply_names_the_permission_and_the_role(refusing: Any) -> None:
    """Preflight skipped: the step stops on the write, and its message still says which role to ask for."""
    from mtlskit.runner.step import Step

    _, params, clients = refusing
    step = Step(params, clients, apply=True)

    def create_proxy(c: Clients, p: params_mod.Params) -> Any:
        proxy = compute_v1.TargetHttpsProxy(
            name=p.frontend.target_proxy, url_map="projects/x/global/urlMaps/y"
        )
        return c.call(
            c.compute.target_https_proxies.insert, project=c.project, target_https_proxy_resource=proxy
        )

    with pytest.raises(errors.ApiCallFailed) as stopped:
        step.call(create_proxy)
    text = str(stopped.value)
    assert "create_proxy stopped" in text and WITHHELD in text
    assert "granted by roles/compute.loadBalancerAdmin" in text and "re-run this notebook" in text


@pytest.mark.e2e
def test_building_without_preflight_stops_at_the_withheld_write_naming_the_role(refusing: Any) -> None:
    """10 -> 40 applied with preflight skipped: 40_frontend stops at the proxy's insert, and the
    message the reader gets names the permission and the role (the frontend before it is in place)."""
    file, _, clients = refusing
    sandbox_call(clients, "counters", "DELETE")
    steps = ["10_ingress", "20_backend_service", "30_trust", "40_frontend"]
    run = execute.run_notebooks(str(file), steps, apply=True, out_dir=file.parent / "apply", report=False)
    built, frontend_step = run.notebooks[:3], run.notebooks[3]
    assert [n.status for n in built] == ["ok", "ok", "ok"], [n.error for n in built]
    assert frontend_step.status == "crashed" and frontend_step.error.startswith("ApiCallFailed"), (
        frontend_step.error
    )
    assert f"Required '{WITHHELD}' permission" in frontend_step.error
    assert "granted by roles/compute.loadBalancerAdmin" in frontend_step.error
    assert "--role=roles/compute.loadBalancerAdmin" in frontend_step.error
    assert _mutations(clients).get("compute.targetHttpsProxies.insert") == 1  # refused, not retried
    assert clients.find(clients.compute.url_maps.get, project=PROJECT, url_map="mtls-urlmap") is not None


# ---- a real target on a machine that is not set up ------------------------------------------------------


def _gcp_params(tmp_path: Path) -> Path:
    pki = tmp_path / "pki"
    certs.ensure_demo_pki(pki)
    data = yaml.safe_load((paths.repo_root() / "params" / "example-gcp.yaml").read_text())
    data["mtls"]["trust_anchors"] = [str(pki / "root.pem")]
    data["mtls"]["intermediates"] = [str(pki / "intermediate.pem")]
    data["probe"].update(client_cert=str(pki / "client.pem"), client_key=str(pki / "client.key"))
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "other", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "other", "user": {"token": "x"}}],
                "contexts": [{"name": "other", "context": {"cluster": "other", "user": "other"}}],
                "current-context": "other",
            }
        )
    )
    data["kubernetes"]["kubeconfig"] = str(kubeconfig)
    file = tmp_path / "gcp.yaml"
    file.write_text(yaml.safe_dump(data))
    return file


def _no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A new user's machine: no ADC file, no key variable, not on Google Cloud (no metadata server)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(home / "gcloud"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "KUBECONFIG"):
        monkeypatch.delenv(name, raising=False)


def test_clients_for_gcp_build_without_credentials_and_say_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _no_credentials(monkeypatch, tmp_path)
    params = params_mod.load(_gcp_params(tmp_path))
    clients = build_clients(params)
    problems = {p.what: p for p in clients.setup_problems}
    assert set(problems) == {"Application Default Credentials", "kube context"}
    assert problems["Application Default Credentials"].fix == "gcloud auth application-default login"
    assert "gcloud container clusters get-credentials CLUSTER --region REGION --project my-project-id" in (
        problems["kube context"].fix
    )
    assert "gke_my-project-id_us-central1_my-cluster" in problems["kube context"].detail
    with pytest.raises(errors.SetupMissing):  # a call raises the problem; nothing is sent
        clients.call(clients.compute.ssl_policies.list, project=params.project)
    with pytest.raises(errors.SetupMissing):
        clients.kube.core.read_namespace("default")
    report = quotas.check_quotas(clients, params)
    assert report.checks()[0].fix == "gcloud auth application-default login"


@pytest.mark.e2e
def test_00_preflight_on_gcp_without_credentials_ends_with_failed_checks_not_a_crash(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _no_credentials(monkeypatch, tmp_path)
    file = _gcp_params(tmp_path)
    run = execute.run_notebooks(
        str(file), ["00_preflight"], apply=False, out_dir=tmp_path / "run", report=False
    )
    [notebook] = run.notebooks
    assert notebook.status == "failed", notebook.error
    assert run.exit_code == results.EXIT_CHECK_FAILED == 1
    checks = by_name(notebook.checks)
    assert checks["Application Default Credentials"].status == "fail"
    assert checks["Application Default Credentials"].fix == "gcloud auth application-default login"
    assert checks["kube context"].status == "fail"
    assert checks["kube context"].fix.startswith(
        "gcloud container clusters get-credentials CLUSTER --region REGION"
    )
    for name in ("Compute API", "Kubernetes API", "IAM permissions", "quota headroom"):
        assert checks[name].status == "fail" and "missing" in checks[name].evidence, checks[name]
