"""Sandbox lifecycle: background start, restart with state kept, clean stop, loopback only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from google.cloud import compute_v1

from mtlskit.cloud.clients import build_clients
from mtlskit.cloud.operations import wait
from mtlskit.sandbox import process
from tests.conftest import PROJECT, sandbox_params

pytestmark = pytest.mark.e2e  # starts and stops sandboxes


def _listening_addresses(pid: int) -> list[str]:
    """Local addresses of the TCP sockets `pid` listens on, read from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A = LISTEN
                found.append(cols[1])
    return found


def test_state_survives_restart_and_stop_leaves_no_process(tmp_path: Path) -> None:
    params = sandbox_params(tmp_path)
    clients = build_clients(params)
    info = process.status(tmp_path)
    assert info is not None
    listening = _listening_addresses(info.pid)
    assert listening and all(a.startswith("0100007F:") for a in listening), listening  # 127.0.0.1 only
    wait(
        clients,
        clients.compute.addresses.insert(project=PROJECT, address_resource=compute_v1.Address(name="kept")),
        "insert",
    )
    clients.kube.core.create_namespace({"metadata": {"name": "kept"}})

    assert process.stop(tmp_path) is True
    assert process.status(tmp_path) is None
    with pytest.raises(ProcessLookupError):
        os.kill(info.pid, 0)
    assert not (tmp_path / process.INFO).exists()

    clients = build_clients(params)  # starts a new sandbox on the same state
    assert process.status(tmp_path).pid != info.pid
    assert clients.compute.addresses.get(project=PROJECT, address="kept").address
    assert clients.kube.core.read_namespace("kept").metadata.name == "kept"
    process.stop(tmp_path)


def test_cli_up_status_down_reset(tmp_path: Path) -> None:
    params_file = tmp_path / "p.yaml"
    params_file.write_text(
        f"target: sandbox\nproject: {PROJECT}\nsandbox:\n  state_dir: {tmp_path / 'st'}\n"
        f"  demo_pki: false\nmtls:\n  validation_mode: ALLOW_INVALID_OR_MISSING_CLIENT_CERT\n"
    )

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mtlskit.cli", "sandbox", *args, "--params", str(params_file)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert cli("status").returncode == 3
    up = cli("up")
    assert up.returncode == 0 and "sandbox running: http://127.0.0.1:" in up.stdout
    status = cli("status")
    assert status.returncode == 0 and PROJECT in status.stdout
    assert cli("down").returncode == 0
    assert "not running" in cli("status").stdout
    reset = subprocess.run(
        [sys.executable, "-m", "mtlskit.cli", "sandbox", "reset", "--yes", "--params", str(params_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert reset.returncode == 0 and not (tmp_path / "st" / "state.sqlite").exists()
