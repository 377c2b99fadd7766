"""Ctrl-C and SIGTERM, for real: `mtlskit run` and `mtlskit verify` started as a person or a scheduler
starts them, on a sandbox of the module's own, and stopped at different moments. Each must exit
128 + the signal (never 1, "a check failed"), say on stderr what it stopped and where the partial run
is, print no traceback, and leave no kernel or anything a kernel started behind."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import yaml

from mtlskit.config import params as params_mod
from mtlskit.config import paths
from mtlskit.runner import fleet
from mtlskit.runner.results import EXIT_INTERRUPTED, EXIT_MEANING, EXIT_TERMINATED
from tests.conftest import free_port, stand_in_notebook

pytestmark = pytest.mark.e2e  # a sandbox and kernels


@pytest.fixture(scope="module")
def params_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """params/sandbox.yaml on a running sandbox of the module's own. Started here, so the sandbox is
    no descendant of the runs under test (it outlives a run on purpose)."""
    from mtlskit.cloud.clients import build_clients
    from mtlskit.sandbox import process

    root = tmp_path_factory.mktemp("interrupt")
    data = params_mod.sandbox_default(root / "state")
    data["sandbox"].update(data_plane_port=free_port(), operation_delay_seconds=0.1)
    path = root / "team-a.yaml"
    path.write_text(yaml.safe_dump(data))
    build_clients(params_mod.load(path))
    try:
        yield path
    finally:
        process.stop(root / "state")


def _stuck(marker: Path) -> tuple[str, str]:
    """Cells that read the params and reach the sandbox with the kit's clients, then start a process
    of their own (as a cell that shells out does), note its pid in `marker`, and wait."""
    return (
        "from mtlskit.cloud.clients import build_clients\nfrom mtlskit.config.params import load\n"
        "p = load(params_file)\nbuild_clients(p)",
        "import subprocess, time\nfrom pathlib import Path\nchild = subprocess.Popen(['sleep', '300'])\n"
        f"Path({str(marker)!r}).write_text(str(child.pid))\ntime.sleep(300)",
    )


@dataclass
class Stopped:
    code: int
    stdout: str
    stderr: str
    left: list[psutil.Process]  # descendants still alive after the run exited
    seen: set[int]  # the descendants' pids when the signal was sent


def _zombie(p: psutil.Process) -> bool:
    """Dead and waiting to be reaped by whoever adopted it: nothing left running."""
    try:
        return p.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _kernels(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return [p for p in proc.children(recursive=True) if "ipykernel" in " ".join(p.cmdline())]
    except psutil.NoSuchProcess:
        return []


def _run_and_stop(
    command: list[str], when: Callable[[psutil.Process], bool], signum: int, within: float = 120
) -> Stopped:
    """Start `command`, send `signum` once `when(process)` holds, and collect what it left behind:
    every descendant seen just before the signal must be gone once it exited."""
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=paths.repo_root()
    )
    me = psutil.Process(proc.pid)
    try:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and proc.poll() is None and not when(me):
            time.sleep(0.05)
        assert proc.poll() is None, f"ended before the moment to stop it: {proc.communicate()}"
        assert when(me), "the moment to stop it never came"
        descendants = me.children(recursive=True)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
        _, alive = psutil.wait_procs(descendants, timeout=15)
        return Stopped(
            proc.returncode, out, err, [p for p in alive if not _zombie(p)], {p.pid for p in descendants}
        )
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in psutil.Process(proc.pid).children(recursive=True) if psutil.pid_exists(proc.pid) else []:
            p.kill()


def _no_traceback(text: str) -> None:
    assert "Traceback" not in text and "DeadKernelError" not in text, text


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, EXIT_INTERRUPTED), (signal.SIGTERM, EXIT_TERMINATED)]
)
def test_a_run_stopped_mid_notebook_exits_128_plus_the_signal_and_names_the_notebook(
    params_file: Path, tmp_path: Path, signum: int, code: int
) -> None:
    books = tmp_path / "nb"
    books.mkdir()
    names = [
        stand_in_notebook(books, "first", "x = 1"),
        stand_in_notebook(books, "stuck", *_stuck(books / "started")),
        stand_in_notebook(books, "after"),
    ]
    out = tmp_path / "out"
    command = [sys.executable, "-m", "mtlskit.cli", "run", "--params", str(params_file), "--out", str(out)]
    stopped = _run_and_stop([*command, *names], lambda _: (books / "started").is_file(), signum)

    assert stopped.code == code, stopped.stderr
    _no_traceback(stopped.stderr)
    name = signal.Signals(signum).name
    assert f"interrupted by {name} in stuck of environment team-a ({params_file})" in stopped.stderr
    assert f"the partial run (summary.json says what ran): {out}" in stopped.stderr
    assert f"exit code {code}: {EXIT_MEANING[code]}" in stopped.stderr
    assert f"stuck                interrupted by {name}" in stopped.stdout
    cell_child = int((books / "started").read_text())
    assert cell_child in stopped.seen, "the cell's own process was not among the run's descendants"
    assert not stopped.left, f"left running: {[' '.join(p.cmdline()) for p in stopped.left]}"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["exit_code"] == code
    assert [(n["notebook"], n["status"]) for n in summary["notebooks"]] == [
        ("first", "ok"),
        ("stuck", "interrupted"),
        ("after", "skipped"),
    ]


def test_a_run_interrupted_while_its_kernel_starts_exits_130_without_a_kernel_traceback(
    params_file: Path, tmp_path: Path
) -> None:
    """The moment the kernel process appears it is still importing the kit: the first notebook waits
    for its first answer, the await nbclient leaves pending when Ctrl-C cuts it short."""
    books = tmp_path / "nb"
    books.mkdir()
    command = [sys.executable, "-m", "mtlskit.cli", "run", "--params", str(params_file)]
    command += ["--out", str(tmp_path / "out"), stand_in_notebook(books, "first", "x = 1")]
    stopped = _run_and_stop(command, lambda me: bool(_kernels(me)), signal.SIGINT)

    assert stopped.code == EXIT_INTERRUPTED, stopped.stderr
    _no_traceback(stopped.stderr)
    env = f"of environment team-a ({params_file})"
    assert f"interrupted by SIGINT in first {env}" in stopped.stderr or (
        f"interrupted by SIGINT before any notebook {env} ran" in stopped.stderr
    ), stopped.stderr
    assert not stopped.left, f"left running: {[' '.join(p.cmdline()) for p in stopped.left]}"


def test_verify_interrupted_stops_every_child_and_kernel_and_marks_them_in_fleet_json(
    params_file: Path, tmp_path: Path
) -> None:
    """Three environments, two at a time: Ctrl-C once both children run a kernel. Both are stopped
    with their kernels, the third never starts, and fleet.json says so for each."""
    envs = tmp_path / "envs"
    envs.mkdir()
    for name in ("a", "b", "c"):
        (envs / f"{name}.yaml").write_text(params_file.read_text())
    out = tmp_path / "out"
    command = [sys.executable, "-m", "mtlskit.cli", "verify", str(envs), "--jobs", "2", "--out", str(out)]
    command += ["--stamp", "S"]
    stopped = _run_and_stop(command, lambda me: len(_kernels(me)) == 2, signal.SIGINT)

    assert stopped.code == EXIT_INTERRUPTED, stopped.stdout + stopped.stderr
    _no_traceback(stopped.stderr)
    assert "interrupted by SIGINT: every child and kernel is stopped" in stopped.stderr
    assert f"exit code 130: {EXIT_MEANING[EXIT_INTERRUPTED]}" in stopped.stderr
    assert not stopped.left, f"left running: {[' '.join(p.cmdline()) for p in stopped.left]}"
    saved = json.loads((out / "S" / fleet.FLEET_JSON).read_text())
    assert saved["exit_code"] == EXIT_INTERRUPTED
    rows = {r["environment"]: r for r in saved["environments"]}
    assert list(rows) == ["a", "b", "c"]
    assert {r["exit_code"] for r in rows.values()} == {EXIT_INTERRUPTED}
    assert rows["c"]["first_failure"] == f"not started: {fleet.INTERRUPTED_REASON}"
    assert not (out / "S" / "c" / fleet.LOG_NAME).exists()
    for name in ("a", "b"):
        assert rows[name]["first_failure"].startswith("stopped "), rows[name]
        assert f"{name}: {rows[name]['first_failure']}; partial run: {out / 'S' / name}" in stopped.stderr
        _no_traceback((out / "S" / name / fleet.LOG_NAME).read_text())  # the child's own output


def test_an_indexed_job_pod_stopped_by_sigterm_exits_143_with_its_row(
    params_file: Path, tmp_path: Path
) -> None:
    """What the kubelet does to a pod it deletes: SIGTERM while the pod's own kernel starts."""
    import os

    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "mtlskit.cli",
        "verify",
        "--indexed",
        str(params_file),
        "--out",
        str(out),
    ]
    command += ["--stamp", "job"]
    os.environ["JOB_COMPLETION_INDEX"] = "0"
    try:
        stopped = _run_and_stop(command, lambda me: bool(_kernels(me)), signal.SIGTERM)
    finally:
        del os.environ["JOB_COMPLETION_INDEX"]

    assert stopped.code == EXIT_TERMINATED, stopped.stdout + stopped.stderr
    _no_traceback(stopped.stderr)
    folder = out / "job" / "team-a"
    why = f"stopped in 50_verify: {fleet.INTERRUPTED_REASON}"
    assert (
        f"interrupted by SIGTERM: every child and kernel is stopped\n  team-a: {why}; partial run: {folder}"
        in (stopped.stderr)
    )
    (row,) = [line for line in stopped.stdout.splitlines() if line.startswith("team-a ")]
    assert row.split()[1] == str(EXIT_TERMINATED) and why in row
    assert json.loads((folder / "summary.json").read_text())["exit_code"] == EXIT_TERMINATED
    assert not stopped.left, f"left running: {[' '.join(p.cmdline()) for p in stopped.left]}"
