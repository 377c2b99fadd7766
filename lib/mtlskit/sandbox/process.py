"""Start, find and stop the sandbox as a background process tied to a state directory.

`sandbox.json` in the state directory says where a running sandbox listens; it is written only once
the server answers, and removed when it stops, so a stale file (a killed process) is detected by
pid and health check rather than trusted.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict, Unpack

from mtlskit.sandbox import shell

INFO = "sandbox.json"
KUBECONFIG = "kubeconfig"
LOG = "sandbox.log"
KUBE_CONTEXT = "mtlskit-sandbox"


class SandboxError(RuntimeError):
    pass


@dataclass(frozen=True)
class SandboxInfo:
    pid: int
    port: int
    endpoint: str
    kubeconfig: str
    state_dir: str
    # The DNS responder's UDP and TCP port (`mtlskit.sandbox.dnsserver`); 0: it could not listen.
    dns_port: int = 0

    @property
    def nameserver(self) -> str | None:
        """`127.0.0.1:PORT`, the responder a resolver asks for the sandbox's zones."""
        return f"127.0.0.1:{self.dns_port}" if self.dns_port else None

    @classmethod
    def read(cls, state_dir: Path) -> SandboxInfo | None:
        path = Path(state_dir) / INFO
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def healthy(endpoint: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/_sandbox/healthz", timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def status(state_dir: Path) -> SandboxInfo | None:
    """The running sandbox for this state directory, or None."""
    info = SandboxInfo.read(state_dir)
    if info and _alive(info.pid) and healthy(info.endpoint):
        return info
    return None


def shell_exports(info: SandboxInfo, project: str) -> str:
    """The exports that point a shell's gcloud and kubectl at this running sandbox (see
    `mtlskit.sandbox.shell`); the kit reaches the sandbox only through this module."""
    gcloud_config = shell.write_gcloud_config(Path(info.state_dir), info.endpoint, project)
    storage = [f"export {name}={shlex.quote(value)}" for name, value in storage_variables(info).items()]
    return "\n".join([shell.exports(gcloud_config, info.kubeconfig, info.endpoint, info.dns_port), *storage])


def storage_variables(info: SandboxInfo) -> dict[str, str]:
    """What points Cloud Storage clients at the sandbox: `STORAGE_EMULATOR_HOST` for
    google-cloud-storage and gcsfs (both read it; google-cloud-storage then sends no credentials),
    gcsfs made anonymous too (fsspec's `FSSPEC_GS_TOKEN`: otherwise it would send the person's
    Application Default Credentials to the sandbox), gcsfs's gRPC bucket-layout probe off (the
    sandbox serves the JSON API only; the probe would fail and warn on every call), and
    `gcloud storage`'s endpoint, which must name the `storage/v1/` path (Google Cloud CLI 528)."""
    return {
        "STORAGE_EMULATOR_HOST": info.endpoint,
        "FSSPEC_GS_TOKEN": "anon",
        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE": f"{info.endpoint}/storage/v1/",
    }


def write_kubeconfig(state_dir: Path, endpoint: str) -> Path:
    path = Path(state_dir) / KUBECONFIG
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": KUBE_CONTEXT, "cluster": {"server": endpoint}}],
        "users": [{"name": KUBE_CONTEXT, "user": {"token": "sandbox"}}],
        "contexts": [
            {
                "name": KUBE_CONTEXT,
                "context": {"cluster": KUBE_CONTEXT, "user": KUBE_CONTEXT, "namespace": "default"},
            }
        ],
        "current-context": KUBE_CONTEXT,
    }
    path.write_text(json.dumps(config, indent=2))
    return path


class ServerSettings(TypedDict):
    """The settings every start names explicitly; their defaults live in the kit's params only."""

    projects: list[str]
    operation_delay: float
    managed_cert_delay: float
    data_plane_port: int
    dns_port: int
    withhold_permissions: list[str]
    exhaust_quota: list[str]
    gateway_api: str
    propagation_delay: float


def server_args(state_dir: Path, port: int, **settings: Unpack[ServerSettings]) -> list[str]:
    """The command line of `python -m mtlskit.sandbox`, for the background start and `--foreground`."""
    args = [
        "--state-dir",
        str(state_dir),
        "--port",
        str(port),
        "--operation-delay",
        str(settings["operation_delay"]),
        "--managed-cert-delay",
        str(settings["managed_cert_delay"]),
        "--data-plane-port",
        str(settings["data_plane_port"]),
        "--dns-port",
        str(settings["dns_port"]),
        "--propagation-delay",
        str(settings["propagation_delay"]),
    ]
    for p in settings["projects"]:
        args += ["--project", p]
    for permission in settings["withhold_permissions"]:
        args += ["--withhold-permission", permission]
    for metric in settings["exhaust_quota"]:
        args += ["--exhaust-quota", metric]
    return [*args, "--gateway-api", settings["gateway_api"]]


def start(
    state_dir: Path, port: int, timeout: float = 30.0, **settings: Unpack[ServerSettings]
) -> SandboxInfo:
    """Start a sandbox in the background unless one already runs for this state directory."""
    state_dir = Path(state_dir).resolve()
    running = status(state_dir)
    if running:
        # A running sandbox takes the params' refusals, CRD bundle and propagation delay as they are
        # now, so editing `sandbox.withhold_permissions`, `sandbox.exhaust_quota`,
        # `sandbox.gateway_api` or `sandbox.propagation_delay_seconds` needs no restart.
        set_access(running, settings["withhold_permissions"], settings["exhaust_quota"])
        set_gateway_api(running, settings["gateway_api"])
        set_propagation_delay(running, settings["propagation_delay"])
        return running
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / INFO).unlink(missing_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "mtlskit.sandbox",
        *server_args(state_dir, port, **settings),
    ]
    with open(state_dir / LOG, "ab") as logfile:
        proc = subprocess.Popen(
            cmd,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (state_dir / LOG).read_text(errors="replace")[-2000:]
            raise SandboxError(f"the sandbox exited with code {proc.returncode} while starting:\n{tail}")
        info = SandboxInfo.read(state_dir)
        if info and healthy(info.endpoint, timeout=0.5):
            return info
        time.sleep(0.1)
    proc.kill()
    raise SandboxError(f"the sandbox did not answer within {timeout:.0f}s; see {state_dir / LOG}")


def set_access(info: SandboxInfo, withhold_permissions: list[str], exhaust_quota: list[str]) -> None:
    """Tell a running sandbox which permissions to withhold and which quotas to exhaust."""
    _post(info, "access", {"withhold_permissions": withhold_permissions, "exhaust_quota": exhaust_quota})


def set_gateway_api(info: SandboxInfo, bundle: str) -> None:
    """Give a running sandbox's cluster this Gateway API CRD bundle (an upgrade, or the API enabled
    or disabled); nothing changes when it already has it."""
    _post(info, "cluster", {"gateway_api": bundle})


def set_propagation_delay(info: SandboxInfo, seconds: float) -> None:
    """Tell a running sandbox how long a trust config, server TLS policy or proxy mTLS change takes to
    reach its data plane; changes already waiting keep the time they were made."""
    _post(info, "dataplane", {"propagation_delay_seconds": seconds})


def _post(info: SandboxInfo, path: str, body: dict[str, object]) -> None:
    request = urllib.request.Request(
        f"{info.endpoint}/_sandbox/{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        resp.read()


def stop(state_dir: Path, timeout: float = 10.0) -> bool:
    """Stop the sandbox of this state directory; True when one was running."""
    state_dir = Path(state_dir).resolve()
    info = SandboxInfo.read(state_dir)
    if info is None or not _alive(info.pid):
        (state_dir / INFO).unlink(missing_ok=True)
        return False
    os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(info.pid):
        _reap(info.pid)
        time.sleep(0.05)
    if _alive(info.pid):
        os.kill(info.pid, signal.SIGKILL)
        _reap(info.pid)
    (state_dir / INFO).unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    """Collect our own child so it does not linger as a zombie (which still answers kill -0)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def reset(state_dir: Path) -> None:
    """Forget every resource (the demo PKI is kept, so certificates stay the same)."""
    state_dir = Path(state_dir).resolve()
    stop(state_dir)
    for suffix in ("", "-wal", "-shm"):
        (state_dir / f"state.sqlite{suffix}").unlink(missing_ok=True)
