"""The whole runbook on a sandbox, as `mtlskit run` runs it: build 00 -> 40, then prove and watch the
frontend 50 -> 70 in REJECT and ALLOW mode; drift makes the scheduled verification exit 1; nbval over
the committed verification notebooks after a build."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mtlskit.cli import main
from mtlskit.cloud.clients import Clients, build_clients
from mtlskit.config import params as params_mod
from mtlskit.config import paths
from mtlskit.config.params import Params, load
from mtlskit.runner import execute, results
from mtlskit.sandbox import process
from mtlskit.verify import probe
from tests.conftest import run_nbval

pytestmark = pytest.mark.e2e
RUNBOOK = [*execute.BUILD, *execute.VERIFY]


def _params_file(directory: Path, **changes: dict[str, object]) -> Path:
    """The default sandbox params with a state directory (and demo PKI) of its own."""
    data = params_mod.sandbox_default(directory / "state")
    for section, values in changes.items():
        data[section].update(values)
    path = directory / "env.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def reject_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = _params_file(tmp_path_factory.mktemp("reject"))
    yield path
    process.stop(load(path).state_dir)


@pytest.fixture(scope="module")
def allow_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = _params_file(
        tmp_path_factory.mktemp("allow"),
        mtls={"validation_mode": "ALLOW_INVALID_OR_MISSING_CLIENT_CERT"},
    )
    yield path
    process.stop(load(path).state_dir)


def _summary(run: results.RunResult) -> dict[str, object]:
    return json.loads((run.out_dir / "summary.json").read_text())


def test_reject_mode_whole_runbook_passes_and_every_probe_is_in_the_logs(
    reject_env: Path, tmp_path: Path
) -> None:
    run = execute.run_notebooks(str(reject_env), RUNBOOK, apply=True, out_dir=tmp_path / "run")
    summary = _summary(run)
    statuses = {n["notebook"]: n["status"] for n in summary["notebooks"]}  # type: ignore[index]
    assert statuses == dict.fromkeys(RUNBOOK, "ok"), [c for c in run.check_rows() if c["status"] == "fail"]
    assert summary["exit_code"] == 0
    # every notebook's checks are in the summary, under its own name
    by_notebook = {c["notebook"] for c in summary["checks"]}  # type: ignore[union-attr]
    assert by_notebook == set(RUNBOOK) - {"00_design"}  # the design page only draws: no checks

    results = probe.load_results(load(reject_env))
    cases = {r.case: r for r in results}
    assert {"no certificate", "probe certificate"} <= set(cases), list(cases)
    refused = [r for r in results if r.expected != "ok"]
    assert refused and all(r.http_status is None for r in refused)  # closed in the handshake
    assert any(r.expected == "client_cert_not_provided" for r in refused)
    logs_checks = [c for c in run.check_rows() if c["notebook"] == "60_logs"]
    assert logs_checks and all(c["status"] == "pass" for c in logs_checks), logs_checks
    found = f"{len(results)}/{len(results)} probes have their log entry"  # 100 % matched
    assert any(c["evidence"] == found for c in logs_checks), logs_checks

    for nb in [*run.out_dir.glob("*.ipynb"), run.out_dir / "report.html"]:
        assert "PRIVATE KEY" not in nb.read_text(), nb.name
    # clean for a reader: nothing on stderr (warnings, IPython's own complaints), no traceback
    for nb in run.out_dir.glob("*.ipynb"):
        outputs = [o for c in json.loads(nb.read_text())["cells"] for o in c.get("outputs", [])]
        stderr = ["".join(o["text"]) for o in outputs if o.get("name") == "stderr"]
        assert not stderr, (nb.name, stderr)
        assert not [o for o in outputs if o["output_type"] == "error"], nb.name


def test_allow_mode_forwards_and_the_backend_sees_the_verdict(allow_env: Path, tmp_path: Path) -> None:
    run = execute.run_notebooks(str(allow_env), RUNBOOK, apply=True, out_dir=tmp_path / "run")
    assert run.exit_code == 0, [c for c in run.check_rows() if c["status"] == "fail"]
    results = probe.load_results(load(allow_env))
    invalid = [r for r in results if r.expected != "ok"]
    assert invalid, "ALLOW mode needs cases with invalid or missing certificates"
    for r in invalid:
        assert r.http_status == 200, r  # forwarded, not refused
        assert r.expected_status_details == "response_sent_by_backend", r
        headers = {k.lower(): v for k, v in r.backend_headers.items()}
        assert headers.get("x-client-cert-chain-verified") == "false", r
        if r.expected == "client_cert_not_provided":
            assert headers.get("x-client-cert-present") == "false", r
        else:
            assert headers.get("x-client-cert-error") == r.expected, r


def _delete_anchor(params: Params, clients: Clients) -> None:
    k = params.kubernetes
    clients.kube.networking.delete_namespaced_ingress(k.ingress, k.namespace)


def _detach_policy(params: Params, clients: Clients) -> None:
    from google.cloud import compute_v1

    name = params.frontend.target_proxy
    proxy = clients.compute.target_https_proxies.get(project=params.project, target_https_proxy=name)
    body = compute_v1.TargetHttpsProxy(server_tls_policy="", fingerprint=proxy.fingerprint)
    clients.compute.target_https_proxies.patch(
        project=params.project, target_https_proxy=name, target_https_proxy_resource=body
    ).result()


def _swap_trust_anchor(params: Params, clients: Clients) -> None:

    from mtlskit.build import trust
    from mtlskit.pki import certs

    other = certs.pem(certs.issue("someone else's root", ca=True).cert)
    name = trust.trust_config_name(clients, params)
    tc = clients.certificate_manager.get_trust_config(name=name)
    tc.trust_stores[0].trust_anchors[0].pem_certificate = other
    clients.certificate_manager.update_trust_config(
        trust_config=tc, update_mask={"paths": ["trust_stores"]}
    ).result()


@pytest.fixture(scope="module")
def built_reject_env(reject_env: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The REJECT stack built once for the drift cases (a no-op plan when an earlier test built it)."""
    out = tmp_path_factory.mktemp("build")
    run = execute.run_notebooks(str(reject_env), execute.BUILD, apply=True, out_dir=out, report=False)
    assert run.exit_code == 0, [n.summary() for n in run.notebooks]
    return reject_env


# Each case names the build steps that own what it changed: the repair re-runs only those, as an
# on-call engineer would.
@pytest.mark.parametrize(
    ("drift", "check", "repair"),
    [
        (_delete_anchor, "anchor Ingress names the backend service", execute.BUILD),
        (_detach_policy, "server TLS policy attached", ["40_frontend"]),
        (_swap_trust_anchor, "trust config holds the params' certificates", ["30_trust"]),
        ("expiry_horizon_days", "certificates far from expiry", []),
    ],
)
def test_drift_fails_the_scheduled_verification_with_exit_code_1(
    built_reject_env: Path, tmp_path: Path, drift: object, check: str, repair: list[str]
) -> None:
    reject_env = built_reject_env
    params = load(reject_env)
    clients = build_clients(params)
    verified = reject_env
    if callable(drift):
        drift(params, clients)
    else:  # a certificate inside the horizon: the same stack, watched with a wider horizon
        data = yaml.safe_load(reject_env.read_text())
        data[drift] = 3000
        verified = tmp_path / "wide-horizon.yaml"
        verified.write_text(yaml.safe_dump(data))
    try:
        result = CliRunner().invoke(
            main, ["run", "--params", str(verified), "--verify", "--out", str(tmp_path / "v")]
        )
        assert result.exit_code == 1, result.output
        assert f"70_drift: check failed: {check}" in result.stderr, result.stderr
        summary = json.loads((tmp_path / "v" / "summary.json").read_text())
        failed = [c for c in summary["checks"] if c["status"] == "fail" and c["notebook"] == "70_drift"]
        assert check in [c["check"] for c in failed], failed
        assert summary["exit_code"] == 1
    finally:  # the kit repairs what it owns; the next case starts from a clean stack
        if repair:
            fixed = execute.run_notebooks(
                str(reject_env), repair, apply=True, out_dir=tmp_path / "fix", report=False
            )
            assert fixed.exit_code == 0, [n.summary() for n in fixed.notebooks]


def test_committed_verification_notebooks_pass_nbval_after_a_build(tmp_path: Path) -> None:
    """As committed (default params), in a root of their own so the repository's sandbox is untouched."""
    root = tmp_path / "root"
    for folder in ("params", "notebooks"):
        shutil.copytree(paths.repo_root() / folder, root / folder)
    env = {**os.environ, "MTLSKIT_ROOT": str(root)}
    try:
        built = subprocess.run(
            [sys.executable, "-m", "mtlskit.cli", "run", "--apply", *execute.BUILD],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
        result = run_nbval([root / "notebooks" / f"{n}.ipynb" for n in execute.VERIFY], root, env)
        assert result.returncode == 0, result.stdout[-3000:]
        assert " passed" in result.stdout
    finally:
        process.stop(root / ".sandbox")
