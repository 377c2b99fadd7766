"""deploy/: the lock files cover pyproject.toml, the manifests validate against Kubernetes' own schema
and say what the nightly verification needs, the podFailurePolicy follows the kit's exit codes, and the
container's entry command (the CronJob's args on the image's ENTRYPOINT) verifies the environment at
each completion index against a sandbox (e2e)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zoneinfo
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from mtlskit.config import paths
from mtlskit.config.params import sandbox_default
from mtlskit.runner.results import (
    EXIT_BAD_PARAMS,
    EXIT_CHECK_FAILED,
    EXIT_CRASHED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
)
from tests.conftest import free_port

ROOT = paths.repo_root()
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
LOCK, DEV_LOCK = DEPLOY / "requirements.lock", DEPLOY / "requirements-dev.lock"
STALE = "the lock is out of date with pyproject.toml: run `make lock` and commit deploy/*.lock"

# ---------------------------------------------------------------- lock files


# The container's securityContext: what `make image-test` runs the image with (tests/test_image.py
# maps it to podman's flags).
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


def _locked(lock: Path) -> dict[str, tuple[Requirement, list[str]]]:
    """Each pinned requirement of a pip-compile lock with its hashes, by canonical name."""
    logical = re.sub(r"\\\n", " ", lock.read_text())
    entries: dict[str, tuple[Requirement, list[str]]] = {}
    for line in logical.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        requirement, *hashes = line.split(" --hash=")
        req = Requirement(requirement)
        entries[canonicalize_name(req.name)] = (req, [h.strip() for h in hashes])
    return entries


def _pyproject_requirements(extra: str | None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = list(project["dependencies"])
    if extra:
        names += project["optional-dependencies"][extra]
    return [r for r in map(Requirement, names) if r.marker is None or r.marker.evaluate()]


def _lock_problems(lock: Path, extra: str | None) -> list[str]:
    """What keeps `lock` from installing exactly what pyproject.toml asks for, each with the fix."""
    locked = _locked(lock)
    problems = []
    wanted = _pyproject_requirements(extra)
    # --strip-extras locks what an extra pulls in under its own name: the extra's requirements, by name
    for req in list(wanted):
        for extra_name in req.extras:
            for dep in map(Requirement, importlib.metadata.requires(req.name) or []):
                if dep.marker and dep.marker.evaluate({"extra": extra_name}):
                    wanted.append(dep)
    for req in wanted:
        name = canonicalize_name(req.name)
        if name not in locked:
            problems.append(f"{req} is not in {lock.name}: {STALE}")
            continue
        pin = locked[name][0]
        version = next((s.version for s in pin.specifier if s.operator == "=="), None)
        if version is None or not req.specifier.contains(version, prereleases=True):
            problems.append(f"{lock.name} pins {pin}, which pyproject.toml's {req} does not allow: {STALE}")
    for name, (pin, hashes) in locked.items():
        if [s.operator for s in pin.specifier] != ["=="]:
            problems.append(f"{lock.name}: {pin} is not an exact pin: {STALE}")
        if not hashes or not all(h.startswith("sha256:") for h in hashes):
            problems.append(f"{lock.name}: {name} has no sha256 hash: {STALE}")
    return problems


@pytest.mark.parametrize(("lock", "extra"), [(LOCK, None), (DEV_LOCK, "dev")], ids=["runtime", "dev"])
def test_each_lock_pins_every_pyproject_dependency_exactly_with_hashes(lock: Path, extra: str | None) -> None:
    assert _lock_problems(lock, extra) == []


def test_the_runtime_lock_names_the_same_versions_as_the_dev_lock() -> None:
    """The image (runtime lock) runs what the tests ran (dev lock)."""
    runtime, dev = _locked(LOCK), _locked(DEV_LOCK)
    differ = {n: (str(r), str(dev[n][0]) if n in dev else None) for n, (r, _) in runtime.items()}
    assert {n: v for n, v in differ.items() if v[0] != v[1]} == {}, STALE


def test_every_locked_release_installs_on_the_oldest_python_the_image_may_be_built_on() -> None:
    """Debian bookworm's python3 is 3.11.2 (the base `make image-test` builds on): a pin whose release
    requires a later patch release fails the image build, so deploy/python-floor.txt holds it back.
    Read from the releases installed here, which are the dev lock's (a superset of the runtime lock's)."""
    from packaging.specifiers import SpecifierSet

    refused = {}
    for name, (pin, _) in _locked(DEV_LOCK).items():
        try:
            requires = importlib.metadata.metadata(name).get("Requires-Python")
        except importlib.metadata.PackageNotFoundError:
            continue  # not for this platform (a marker) or not installed here
        assert pin.specifier.contains(importlib.metadata.version(name)), f"the venv is not the lock: {pin}"
        if requires and not SpecifierSet(requires).contains("3.11.2"):
            refused[str(pin)] = requires
    assert refused == {}, f"add these to deploy/python-floor.txt and run `make lock`: {refused}"


def test_a_lock_behind_pyproject_is_caught_and_told_to_run_make_lock(tmp_path: Path) -> None:
    """The check can fail: a dependency missing from the lock, a loose pin and a lost hash are named."""
    text = LOCK.read_text()
    stale = tmp_path / "requirements.lock"
    text = re.sub(r"(?m)^papermill==.*(\n    .*)*\n", "", text)
    text = re.sub(r"(?m)^pyyaml==", "pyyaml>=", text)
    text = re.sub(r"(?m)^(click==\S+) \\\n(    --hash=\S+ \\\n)*    --hash=\S+\n", r"\1\n", text)
    stale.write_text(text)
    problems = _lock_problems(stale, None)
    assert any(p.startswith("papermill>=") and "not in requirements.lock" in p for p in problems), problems
    assert any("pyyaml>=" in p and "not an exact pin" in p for p in problems), problems
    assert any("click has no sha256 hash" in p for p in problems), problems
    assert all(p.endswith(STALE) for p in problems)


# ---------------------------------------------------------------- manifests


def _kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def _render() -> list[dict[str, Any]]:
    """`kubectl kustomize deploy/k8s`, as `kubectl apply -k` builds it. Without kubectl (a CI image may
    lack it) the plain files listed in kustomization.yaml are read instead, with ConfigMaps made from
    its generator's files under their plain names: the fields checked here are the same either way."""
    kubectl = shutil.which("kubectl")
    if kubectl:
        out = subprocess.run(
            [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=True
        ).stdout
        return [d for d in yaml.safe_load_all(out) if d]
    kz = _kustomization()
    docs = [yaml.safe_load((K8S / f).read_text()) for f in kz["resources"]]
    for gen in kz.get("configMapGenerator", []):
        data = {}
        for entry in gen.get("files", []):
            key, _, path = entry.rpartition("=")
            data[key or Path(path).name] = (K8S / path).read_text()
        data.update(dict(lit.split("=", 1) for lit in gen.get("literals", [])))
        docs.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]}, "data": data}
        )
    for d in docs:
        if d["kind"] != "Namespace":
            d["metadata"]["namespace"] = kz["namespace"]
    return docs


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return _render()


def _one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _configmap(docs: list[dict[str, Any]], volume_name: str, pod: dict[str, Any]) -> dict[str, Any]:
    """The ConfigMap a pod volume mounts (kustomize gives generated ConfigMaps a hash suffix)."""
    (volume,) = [v for v in pod["volumes"] if v["name"] == volume_name]
    return _one(docs, "ConfigMap", volume["configMap"]["name"])


def _pod(cronjob: dict[str, Any]) -> dict[str, Any]:
    return cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def test_every_rendered_object_validates_strictly_against_the_newest_kubernetes_schema(
    rendered: list[dict[str, Any]],
) -> None:
    version = kubernetes_validate.latest_version()
    assert tuple(map(int, version.split(".")[:2])) >= (1, 33), "backoffLimitPerIndex is GA from 1.33"
    for doc in rendered:
        kubernetes_validate.validate(doc, version, strict=True)
    kinds = sorted(d["kind"] for d in rendered)
    assert kinds.count("CronJob") == 1 and "ServiceAccount" in kinds and "ConfigMap" in kinds, kinds
    # the validation is not a formality: a misspelt field fails it
    broken = json.loads(json.dumps(_one(rendered, "CronJob")))
    broken["spec"]["jobTemplate"]["spec"]["backoffLimitPerIndx"] = 1
    with pytest.raises(kubernetes_validate.ValidationError, match="backoffLimitPerIndx"):
        kubernetes_validate.validate(broken, version, strict=True)


def test_the_cronjob_runs_one_index_per_params_file_nightly_without_overlap(
    rendered: list[dict[str, Any]],
) -> None:
    cron = _one(rendered, "CronJob")
    spec, job = cron["spec"], cron["spec"]["jobTemplate"]["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    zoneinfo.ZoneInfo(spec["timeZone"])  # an IANA zone the controller can load
    assert spec["startingDeadlineSeconds"] > 0
    assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
    assert job["completionMode"] == "Indexed"
    assert job["backoffLimitPerIndex"] >= 1
    pod = _pod(cron)
    assert pod["restartPolicy"] == "Never", "podFailurePolicy and backoffLimitPerIndex need Never"
    params = _configmap(rendered, "params", pod)["data"]
    envs = sorted(n for n in params if n.endswith((".yaml", ".yml")))
    assert envs == sorted(Path(f).name for f in _kustomization()["configMapGenerator"][0]["files"])
    assert job["completions"] == len(envs), "one completion index per params file"
    assert 1 <= job["parallelism"] <= job["completions"]
    for text in params.values():
        assert yaml.safe_load(text)["target"] == "gcp"


def _policy_action(job: dict[str, Any], container: str, exit_code: int | None, conditions: set[str]) -> str:
    """What the Job controller does with a failed pod: the first matching rule's action, else Count."""
    for rule in job["podFailurePolicy"]["rules"]:
        on_exit = rule.get("onExitCodes")
        if on_exit and exit_code is not None and on_exit.get("containerName", container) == container:
            inside = exit_code in on_exit["values"]
            if inside == (on_exit["operator"] == "In"):
                return rule["action"]
        if any(c["type"] in conditions for c in rule.get("onPodConditions", [])):
            return rule["action"]
    return "Count"


def test_the_pod_failure_policy_follows_the_kit_s_exit_codes(rendered: list[dict[str, Any]]) -> None:
    job = _one(rendered, "CronJob")["spec"]["jobTemplate"]["spec"]
    (container,) = _pod(_one(rendered, "CronJob"))["containers"]
    name = container["name"]
    assert _policy_action(job, name, EXIT_CHECK_FAILED, set()) == "FailIndex"
    assert _policy_action(job, name, EXIT_BAD_PARAMS, set()) == "FailIndex"
    assert _policy_action(job, name, EXIT_CRASHED, set()) == "Count"  # retried, up to backoffLimitPerIndex
    # stopped by a signal: no verdict, never "a check failed"; a disruption is ignored, not counted
    for stopped in (EXIT_INTERRUPTED, EXIT_TERMINATED):
        assert _policy_action(job, name, stopped, set()) == "Count"
        assert _policy_action(job, name, stopped, {"DisruptionTarget"}) == "Ignore"
    assert _policy_action(job, name, None, {"DisruptionTarget"}) == "Ignore"
    assert _policy_action(job, name, 137, set()) == "Count"  # OOM-killed: retried
    codes = [c for r in job["podFailurePolicy"]["rules"] for c in r.get("onExitCodes", {}).get("values", [])]
    assert EXIT_OK not in codes
    if any(r["action"] == "FailIndex" for r in job["podFailurePolicy"]["rules"]):
        assert job.get("backoffLimitPerIndex") is not None, "FailIndex needs backoffLimitPerIndex"


def test_the_pod_runs_as_its_workload_identity_account_non_root_with_measured_resources(
    rendered: list[dict[str, Any]],
) -> None:
    cron = _one(rendered, "CronJob")
    pod = _pod(cron)
    sa = _one(rendered, "ServiceAccount", pod["serviceAccountName"])
    assert sa["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].endswith(
        ".iam.gserviceaccount.com"
    )
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    (container,) = pod["containers"]
    # what `make image-test` runs the image with (tests/test_image.py maps these to podman's flags)
    assert container["securityContext"] == CONTAINER_SECURITY
    resources = container["resources"]
    for key in ("cpu", "memory"):
        assert key in resources["requests"] and key in resources["limits"]
    # the measured figures are written beside the numbers
    assert re.search(r"peak RSS \d+ MiB", (K8S / "cronjob.yaml").read_text())
    # the probe's key is mounted from a Secret the manifests do not contain
    (key_volume,) = [v for v in pod["volumes"] if "secret" in v]
    assert not [d for d in rendered if d["kind"] == "Secret"]
    assert key_volume["secret"]["secretName"]


def _dockerfile() -> tuple[str, list[str], list[str]]:
    """The FROM image (a build argument's default resolved), ENTRYPOINT and CMD of deploy/Dockerfile
    (both in exec form, JSON arrays)."""
    text = (DEPLOY / "Dockerfile").read_text()
    instructions = dict(re.findall(r"(?m)^(FROM|ENTRYPOINT|CMD)\s+(.+)$", text))
    defaults = dict(re.findall(r"(?m)^ARG\s+(\w+)=(\S+)$", text))
    base = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], instructions["FROM"])
    return base, json.loads(instructions["ENTRYPOINT"]), json.loads(instructions["CMD"])


def test_the_image_is_pinned_installs_the_lock_and_runs_as_a_user() -> None:
    base, entrypoint, _ = _dockerfile()
    assert re.fullmatch(r"python:3\.11\.\d+-slim-(bookworm|trixie)(@sha256:[0-9a-f]{64})?", base), base
    text = (DEPLOY / "Dockerfile").read_text()
    assert "--require-hashes -r /tmp/requirements.lock" in text and "COPY deploy/requirements.lock" in text
    assert "ipykernel install" in text and "--name mtlskit" in text
    (user,) = re.findall(r"(?m)^USER\s+(\S+)$", text)
    assert user.split(":")[0] not in ("0", "root")
    assert entrypoint == ["mtlskit"]


# ---------------------------------------------------------------- e2e: the entry command, per index


def _sandbox_env_file(directory: Path, name: str, state: Path, port: int, **overrides: Any) -> Path:
    """params/sandbox.yaml on a sandbox of the test's own (its state dir and data-plane port)."""
    data = sandbox_default(state)
    data["sandbox"].update(data_plane_port=port, operation_delay_seconds=0.1)
    data.update(overrides)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# Two environments on one built stack, told apart by what verification reads: the second one's
# certificate horizon (ten years) puts every certificate inside it, so its expiry check fails.
ENVIRONMENTS = {"a-nightly": {}, "b-ten-year-horizon": {"expiry_horizon_days": 3650}}


@pytest.fixture(scope="module")
def params_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from mtlskit.build import stack
    from mtlskit.cloud.clients import build_clients
    from mtlskit.config.params import load
    from mtlskit.sandbox import process

    root = tmp_path_factory.mktemp("deploy")
    state, port, envs = root / "state", free_port(), root / "params"
    envs.mkdir()
    files = [_sandbox_env_file(envs, n, state, port, **o) for n, o in ENVIRONMENTS.items()]
    try:
        p = load(files[0])
        stack.build(build_clients(p), p, timeout=60)
        yield envs
    finally:
        process.stop(state)


def job_name(rendered: list[dict[str, Any]]) -> str:
    """The name the CronJob controller gives one of its Jobs (the CronJob's, a minute's suffix)."""
    return f"{_one(rendered, 'CronJob')['metadata']['name']}-29000000"


def pod_env_and_args(
    rendered: list[dict[str, Any]], index: int, settings: dict[str, str]
) -> tuple[dict[str, str], list[str]]:
    """The container's environment and args as the kubelet builds them: the Job controller's
    JOB_COMPLETION_INDEX and job-name label, values from the container's env (a ConfigMap key from
    `settings`), and `$(VAR)` in the args expanded from that environment."""
    (container,) = _pod(_one(rendered, "CronJob"))["containers"]
    labels = {"batch.kubernetes.io/job-name": job_name(rendered)}
    env = {"JOB_COMPLETION_INDEX": str(index)}
    for var in container.get("env", []):
        source = var.get("valueFrom", {})
        if "value" in var:
            env[var["name"]] = var["value"]
        elif "configMapKeyRef" in source:
            env[var["name"]] = settings[source["configMapKeyRef"]["key"]]
        elif "fieldRef" in source:
            key = re.fullmatch(r"metadata\.labels\['(.+)'\]", source["fieldRef"]["fieldPath"])
            assert key, source
            env[var["name"]] = labels[key.group(1)]
    args = container.get("args") or _dockerfile()[2]
    return env, [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a) for a in args]


def _entry_command(
    rendered: list[dict[str, Any]], index: int, mounts: dict[str, Path], settings: dict[str, str]
) -> tuple[list[str], dict[str, str]]:
    """The pod's command line and environment as the kubelet would build them: the image's ENTRYPOINT
    (no `command` in the pod) with the container's args (`pod_env_and_args`), and each mount path
    mapped to a local directory."""
    (container,) = _pod(_one(rendered, "CronJob"))["containers"]
    command = container.get("command") or _dockerfile()[1]
    env, expanded = pod_env_and_args(rendered, index, settings)
    for mount in container["volumeMounts"]:
        local = mounts.get(mount["mountPath"])
        if local:
            expanded = [
                str(local) + a[len(mount["mountPath"]) :] if a.startswith(mount["mountPath"]) else a
                for a in expanded
            ]
    binary = shutil.which(command[0], path=str(Path(sys.executable).parent))
    assert binary, f"{command[0]} is not installed beside {sys.executable}"
    return [binary, *command[1:], *expanded], env


@pytest.mark.e2e
def test_each_completion_index_verifies_its_own_params_file_and_an_index_beyond_them_exits_3(
    rendered: list[dict[str, Any]], params_dir: Path, tmp_path: Path
) -> None:
    pod = _pod(_one(rendered, "CronJob"))
    (params_mount,) = [m["mountPath"] for m in pod["containers"][0]["volumeMounts"] if m["name"] == "params"]
    settings = dict(_configmap_by_env(rendered, pod, "MTLSKIT_OUT"))
    assert settings["out"].startswith("gs://")
    settings["out"] = str(tmp_path / "out")  # Cloud Storage output is tested in test_fleet
    files = sorted(params_dir.glob("*.yaml"))
    job = _one(rendered, "CronJob")["spec"]["jobTemplate"]["spec"]

    def run(index: int) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
        command, env = _entry_command(rendered, index, {params_mount: params_dir}, settings)
        proc = subprocess.run(
            command, env={**os.environ, **env}, capture_output=True, text=True, timeout=240, cwd=tmp_path
        )
        return proc, env

    with ThreadPoolExecutor(len(files)) as pool:  # the Job's parallelism: every index at once
        results = list(pool.map(run, range(len(files))))
    expected = {0: EXIT_OK, 1: EXIT_CHECK_FAILED}
    for index, (proc, env) in enumerate(results):
        where = f"index {index}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        assert proc.returncode == expected[index], where
        folder = Path(env["MTLSKIT_OUT"]) / env["JOB_NAME"] / files[index].stem
        summary = json.loads((folder / "summary.json").read_text())
        assert Path(summary["params_file"]).name == files[index].name, where
        assert summary["exit_code"] == proc.returncode
        assert [n["notebook"] for n in summary["notebooks"]] == ["50_verify", "60_logs", "70_drift"]
    failed = json.loads(
        (
            Path(results[1][1]["MTLSKIT_OUT"]) / results[1][1]["JOB_NAME"] / files[1].stem / "summary.json"
        ).read_text()
    )
    assert [c for c in failed["checks"] if c["status"] == "fail" and "3650-day horizon" in c["evidence"]]
    name = pod["containers"][0]["name"]
    assert _policy_action(job, name, results[1][0].returncode, set()) == "FailIndex"

    beyond, _ = run(len(files))
    assert beyond.returncode == EXIT_BAD_PARAMS, beyond.stdout + beyond.stderr
    assert f"JOB_COMPLETION_INDEX={len(files)} is outside" in beyond.stderr
    assert _policy_action(job, name, beyond.returncode, set()) == "FailIndex"


def _configmap_by_env(rendered: list[dict[str, Any]], pod: dict[str, Any], variable: str) -> dict[str, str]:
    """The data of the ConfigMap that the container's `variable` is read from."""
    (var,) = [v for v in pod["containers"][0]["env"] if v["name"] == variable]
    return _one(rendered, "ConfigMap", var["valueFrom"]["configMapKeyRef"]["name"])["data"]
