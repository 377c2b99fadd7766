"""The nightly image, built from deploy/Dockerfile and run the way deploy/k8s runs it (`make image-test`).

`make image-test` builds the image with podman on a bookworm base made from the distribution's packages
and sets MTLSKIT_IMAGE; without it the tests that need the image are skipped (`make test` does not build
images). Each container runs as the CronJob's pod does: its user and group, a read-only root filesystem
with only the manifests' volumes writable, no privilege escalation, no capabilities, the params, the
certificates, the kubeconfig and the probe's key mounted where the manifests mount them, the image's
ENTRYPOINT with the container's args, and JOB_COMPLETION_INDEX set. The sandbox runs on the host (host
network; host PID namespace too, because the kit finds a running sandbox by the pid in its state folder;
only the three files it reads of that folder are mounted).

The secret scan reads every file of every layer of `podman save`: a key deleted in a later layer still
ships in the earlier one.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import pytest
import yaml

from mtlskit.runner.results import EXIT_BAD_PARAMS, EXIT_CHECK_FAILED, EXIT_OK
from tests.test_deploy import (
    CONTAINER_SECURITY,
    K8S,
    _configmap_by_env,
    _dockerfile,
    _one,
    _pod,
    _policy_action,
    _render,
    job_name,
    pod_env_and_args,
)
from tests.test_fleet import _point_url_map_elsewhere, built_environments

IMAGE = os.environ.get("MTLSKIT_IMAGE", "")
OUT = "/tmp/out"  # the run's --out in the pod: under its /tmp volume (the host's scratch folder)
needs_image = pytest.mark.skipif(
    not IMAGE, reason="needs the built image: `make image-test` builds it and sets MTLSKIT_IMAGE"
)

# ---------------------------------------------------------------- secret scan (also without an image)

# A PEM private key with its body (library code names the marker alone), a service account's key file,
# and the shapes of Google, AWS and GitHub tokens.
SECRET_CONTENT = {
    "PEM private key": re.compile(
        rb"-----BEGIN [A-Z ]*PRIVATE KEY-----\r?\n(?:[A-Za-z-]+: [^\r\n]*\r?\n)*\r?\n?[A-Za-z0-9+/]{40}"
    ),
    "service account key": re.compile(rb'"type"\s*:\s*"service_account"[\s\S]{0,4000}"private_key"\s*:'),
    "Google OAuth access token": re.compile(rb"\bya29\.[0-9A-Za-z_-]{30,}"),
    "AWS access key id": re.compile(rb"\bAKIA[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(rb"\bgh[pousr]_[A-Za-z0-9]{36}\b"),
}
# Keys that are published test vectors of the distribution's own libraries, compiled into them: not a
# secret of anyone's, and not the kit's to remove. Each is named with why; nothing else is let through.
KNOWN_PUBLIC = {
    re.compile(r"usr/lib/[^/]+/libgnutls\.so[.0-9]*$"): "GnuTLS's self-test keys (FIPS known-answer tests)",
}
SECRET_NAMES = re.compile(
    r"(^|/)(\.sandbox/|id_(rsa|ecdsa|ed25519)$|\.netrc$|\.git-credentials$|\.pypirc$|\.docker/config\.json$"
    r"|application_default_credentials\.json$|credentials\.db$|[^/]*\.key$)"
)


def _scan_tar(stream: IO[bytes], where: str) -> Iterator[str]:
    """Each secret in a tar stream, as 'where: path: what'; tars inside it (image layers) are opened."""
    with tarfile.open(fileobj=stream, mode="r|*") as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if SECRET_NAMES.search(name) and not member.isdir():
                yield f"{where}: {name}: a file named like a key or credential"
            if not member.isfile():
                continue
            data = tar.extractfile(member)
            assert data is not None  # a tarfile.ExFileObject: a BufferedReader, so it can be peeked at
            if (name.endswith(".tar") or name.startswith("blobs/")) and data.peek(262)[257:262] == b"ustar":
                yield from _scan_tar(data, f"{where}{' ' if where else ''}{name}")
                continue
            if any(path.search(name) for path in KNOWN_PUBLIC):
                continue
            content = data.read()
            for what, pattern in SECRET_CONTENT.items():
                if pattern.search(content):
                    yield f"{where}: {name}: {what}"


def _tar_of(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_the_secret_scan_finds_a_key_inside_a_layer_and_passes_library_code_that_names_the_marker() -> None:
    """The scan can fail: a private key in a layer of a saved image is found, by content and by name."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    code = b'MARKER = "-----BEGIN PRIVATE KEY-----"\nif line == MARKER:\n    parse()\n'
    markers = (
        b"-----BEGIN RSA PRIVATE KEY-----\n-----BEGIN DSA PRIVATE KEY-----\nBEGIN ENCRYPTED PRIVATE KEY\n"
    )
    clean = _tar_of(
        {
            "opt/venv/lib/pem.py": code,
            "usr/lib/x86_64-linux-gnu/libcrypto.so.3": markers,
            "usr/lib/x86_64-linux-gnu/libgnutls.so.30.34.3": key,  # a known test vector
            "etc/ssl/certs/ca.pem": b"-----BEGIN CERTIFICATE-----\n",
        }
    )
    dirty = _tar_of(
        {
            "opt/mtlskit/params/probe.pem": key,
            "home/mtlskit/.netrc": b"machine x",
            "usr/lib/x86_64-linux-gnu/libcrypto.so.3": key,  # not a known test vector: found
        }
    )
    image = _tar_of({"manifest.json": b"[]", "aaa/layer.tar": clean, "bbb/layer.tar": dirty})
    found = list(_scan_tar(io.BytesIO(image), ""))
    assert found == [
        "bbb/layer.tar: opt/mtlskit/params/probe.pem: PEM private key",
        "bbb/layer.tar: home/mtlskit/.netrc: a file named like a key or credential",
        "bbb/layer.tar: usr/lib/x86_64-linux-gnu/libcrypto.so.3: PEM private key",
    ]
    assert list(_scan_tar(io.BytesIO(_tar_of({"aaa/layer.tar": clean})), "")) == []


# ---------------------------------------------------------------- the image, as the pod runs it


def podman(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return _render()


@pytest.fixture(scope="module")
def container(rendered: list[dict[str, Any]]) -> dict[str, Any]:
    (one,) = _pod(_one(rendered, "CronJob"))["containers"]
    return one


def _security_flags(rendered: list[dict[str, Any]], container: dict[str, Any]) -> list[str]:
    """podman's words for the pod's and the container's securityContext, refusing anything unknown."""
    pod = _pod(_one(rendered, "CronJob"))["securityContext"]
    ctx = container["securityContext"]
    assert ctx == CONTAINER_SECURITY
    assert pod["runAsNonRoot"] is True and pod["seccompProfile"] == {"type": "RuntimeDefault"}
    return [
        f"--user={pod['runAsUser']}:{pod['runAsGroup']}",
        f"--group-add={pod['fsGroup']}",
        "--read-only",
        "--read-only-tmpfs=false",  # Kubernetes adds no tmpfs: only the volumes below are writable
        "--security-opt=no-new-privileges",
        "--cap-drop=ALL",
    ]


# What the kit reads of a running sandbox (where it listens, its kubeconfig, the data plane's CA), at the
# host's paths: the stand-in for Google's endpoints. Nothing else of its state folder (the demo PKI's keys)
# is in the pod.
SANDBOX_FILES = ("sandbox.json", "kubeconfig", "dataplane/ca.pem")

# The same two environments as the fleet's test: one as built, one whose URL map someone repointed.
ENVIRONMENTS = ["alpha", "charlie-drift"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[Path]]]:
    """Two environments built on one sandbox on the host, the second one drifted: its state folder and
    the environments' params files (as the host reads them)."""
    with built_environments(tmp_path_factory.mktemp("image"), ENVIRONMENTS) as (state, files):
        _point_url_map_elsewhere(files[1], files[0])
        yield state, files


def _mounts(container: dict[str, Any]) -> dict[str, str]:
    """Volume name -> where the container mounts it."""
    return {m["name"]: m["mountPath"] for m in container["volumeMounts"]}


def _pod_folders(root: Path, state: Path, files: list[Path], container: dict[str, Any]) -> dict[str, Path]:
    """Each volume's content on the host, as the manifests fill them: params files naming ../certs,
    ../secret and ../kube (deploy/k8s/params does the same), the public certificates, the kubeconfig,
    the probe's key readable by the pod's group only (the Secret's defaultMode 0440 with fsGroup), and
    empty writable folders owned by the pod's user."""
    at = _mounts(container)
    folders = {name: root / name for name in at}
    for folder in folders.values():
        folder.mkdir(parents=True)
    pki = state / "pki"
    for name in ("root.pem", "intermediate.pem", "allowlisted-client.pem", "client.pem"):
        shutil.copy(pki / name, folders["certs"] / name)
    shutil.copy(K8S / "kube" / "config", folders["kube"] / "config")
    key = folders["probe-key"] / "client.key"
    shutil.copy(pki / "client.key", key)
    os.chown(key, 0, 10001)
    key.chmod(0o440)
    certs, secret = Path("..") / Path(at["certs"]).name, Path("..") / Path(at["probe-key"]).name
    for f in files:
        data = yaml.safe_load(f.read_text())
        data["sandbox"]["demo_pki"] = False  # the pod gets certificates; it never makes a PKI
        data["mtls"].update(
            trust_anchors=[str(certs / "root.pem")],
            intermediates=[str(certs / "intermediate.pem")],
            allowlisted=[str(certs / "allowlisted-client.pem")],
        )
        data["probe"] = {
            "client_cert": str(certs / "client.pem"),
            "client_key": str(secret / "client.key"),
            "demo_cases": False,  # the demo PKI's other certificates and keys are not in the pod
        }
        data["changes"] = {"proof_clients": []}
        (folders["params"] / f.name).write_text(yaml.safe_dump(data))
    for name in ("scratch", "home", "runs"):
        os.chown(folders[name], 10001, 10001)
    return folders


def _run_pod(
    rendered: list[dict[str, Any]],
    container: dict[str, Any],
    folders: dict[str, Path],
    state: Path,
    index: int,
    image: str = IMAGE,
    leave_out: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """One pod of the Indexed Job: `podman run` with the pod's user, securityContext, volumes,
    environment and the image's ENTRYPOINT with the container's args ($(VAR) expanded as the kubelet
    does). `leave_out` names volumes the pod does not get."""
    settings = {**_configmap_by_env(rendered, _pod(_one(rendered, "CronJob")), "MTLSKIT_OUT"), "out": OUT}
    env, args = pod_env_and_args(rendered, index, settings)
    read_only = {m["name"]: m.get("readOnly", False) for m in container["volumeMounts"]}
    volumes = [
        f"--volume={folders[name]}:{path}:{'ro' if read_only[name] else 'rw'}"
        for name, path in _mounts(container).items()
        if name not in leave_out
    ]
    command = [
        "run",
        "--rm",
        "--network=host",
        "--pid=host",
        *_security_flags(rendered, container),
        *volumes,
        *[f"--volume={state / f}:{state / f}:ro" for f in SANDBOX_FILES],
        *[f"--env={k}={v}" for k, v in env.items()],
        image,
        *args,
    ]
    return podman(*command, timeout=600)


@pytest.fixture(scope="module")
def pod(
    rendered: list[dict[str, Any]],
    container: dict[str, Any],
    stack: tuple[Path, list[Path]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Any:
    state, files = stack

    def run(index: int, image: str = IMAGE, leave_out: tuple[str, ...] = (), name: str = "pod") -> Any:
        root = tmp_path_factory.mktemp(f"{name}-{index}")
        folders = _pod_folders(root, state, files, container)
        return _run_pod(rendered, container, folders, state, index, image, leave_out), folders

    return run


@needs_image
@pytest.mark.e2e
def test_each_index_verifies_its_environment_a_drift_fails_it_and_past_the_end_exits_3(
    rendered: list[dict[str, Any]], container: dict[str, Any], pod: Any
) -> None:
    job = _one(rendered, "CronJob")["spec"]["jobTemplate"]["spec"]
    assert _configmap_by_env(rendered, _pod(_one(rendered, "CronJob")), "MTLSKIT_OUT")["out"].startswith(
        "gs://"
    )
    started = time.monotonic()
    with ThreadPoolExecutor(job["parallelism"]) as pool:  # the Job's parallelism
        results = list(pool.map(pod, range(len(ENVIRONMENTS))))
    beyond, _ = pod(len(ENVIRONMENTS))
    codes = {i: proc.returncode for i, (proc, _) in enumerate(results)} | {
        len(ENVIRONMENTS): beyond.returncode
    }
    print(f"\nimage {IMAGE}: exit code by JOB_COMPLETION_INDEX {codes} ({time.monotonic() - started:.0f} s)")
    expected = {0: EXIT_OK, 1: EXIT_CHECK_FAILED, 2: EXIT_BAD_PARAMS}
    for index, (proc, folders) in enumerate(results):
        where = f"index {index}: {proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        assert proc.returncode == expected[index], where
        folder = folders["scratch"] / "out" / job_name(rendered)
        summary = json.loads((folder / Path(ENVIRONMENTS[index]).stem / "summary.json").read_text())
        assert summary["exit_code"] == proc.returncode
        assert [n["notebook"] for n in summary["notebooks"]] == ["50_verify", "60_logs", "70_drift"], where
        # the probe record went to the runs volume, not the read-only root
        assert list((folders["runs"] / "probes").glob("*.json")), where
    drifted = json.loads(
        next((results[1][1]["scratch"] / "out").glob("*/charlie-drift/summary.json")).read_text()
    )
    failed = [c["check"] for c in drifted["checks"] if c["status"] == "fail"]
    assert "URL map points at today's backend service" in failed, failed
    assert beyond.returncode == expected[2], beyond.stdout + beyond.stderr
    assert f"JOB_COMPLETION_INDEX={len(ENVIRONMENTS)} is outside" in beyond.stderr
    name = container["name"]
    assert [_policy_action(job, name, c, set()) for c in (codes[1], codes[2])] == ["FailIndex", "FailIndex"]


@needs_image
@pytest.mark.e2e
def test_a_folder_the_read_only_root_leaves_unwritable_or_an_unreadable_key_is_named_before_anything_runs(
    pod: Any,
) -> None:
    """Without the home volume, $HOME is on the read-only root: the Jupyter runtime folder is named."""
    proc, _ = pod(0, leave_out=("home",), name="no-home")
    assert proc.returncode == EXIT_BAD_PARAMS, proc.stdout + proc.stderr
    assert re.search(
        r"Jupyter runtime folder /home/mtlskit/\S*: not writable by uid 10001 \(Read-only file system\)",
        proc.stderr,
    ), proc.stderr
    assert "verifying" not in proc.stdout  # nothing ran
    proc, _ = pod(0, leave_out=("scratch",), name="no-tmp")
    assert proc.returncode == EXIT_BAD_PARAMS, proc.stdout + proc.stderr
    assert "temporary folder /tmp: not writable by uid 10001 (Read-only file system)" in proc.stderr, (
        proc.stderr
    )


@pytest.fixture(scope="module")
def image_without_a_notebook() -> Iterator[str]:
    """The image with one notebook the entry command runs removed (a broken COPY, a bad .dockerignore)."""
    name = f"{IMAGE}-without-60-logs"
    containerfile = f"FROM {IMAGE}\nUSER 0\nRUN rm /opt/mtlskit/notebooks/60_logs.ipynb\nUSER 10001:10001\n"
    built = subprocess.run(
        ["podman", "build", "--network=host", "-t", name, "-f", "-", "."],
        input=containerfile,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=K8S,
    )
    assert built.returncode == 0, built.stderr
    yield name
    podman("rmi", "--force", name)


@needs_image
@pytest.mark.e2e
def test_a_file_missing_from_the_image_is_named_before_anything_runs(
    pod: Any, image_without_a_notebook: str
) -> None:
    proc, _ = pod(0, image=image_without_a_notebook, name="no-notebook")
    assert proc.returncode == EXIT_BAD_PARAMS, proc.stdout + proc.stderr
    assert "notebook 60_logs /opt/mtlskit/notebooks/60_logs.ipynb: missing; rebuild the image" in proc.stderr


@needs_image
def test_the_image_runs_as_a_user_holds_no_secret_in_any_layer_and_its_size_is_printed(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    (inspect,) = json.loads(podman("image", "inspect", IMAGE).stdout)
    user = inspect["Config"]["User"]
    assert user.split(":")[0] not in ("", "0", "root"), user
    _, entrypoint, cmd = _dockerfile()
    assert inspect["Config"]["Entrypoint"] == entrypoint and inspect["Config"]["Cmd"] == cmd
    saved = tmp_path_factory.mktemp("saved") / "image.tar"
    done = podman("save", "--format=docker-archive", "-o", str(saved), IMAGE)
    assert done.returncode == 0, done.stderr
    layers = len(inspect["RootFS"]["Layers"])
    print(f"\nimage {IMAGE}: {inspect['Size'] / 1e6:.0f} MB, {layers} layers, user {user}")
    with saved.open("rb") as stream:
        found = list(_scan_tar(stream, ""))
    assert found == [], "\n".join(found)
