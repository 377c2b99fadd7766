"""Headless runs: execute notebooks in order with papermill, collect every notebook's checks from the
executed notebook itself, and decide the run's exit code.

Only this module starts kernels, so a notebook's own kernel never pays for importing papermill or the
kernel machinery.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.manager import AsyncKernelManager
from traitlets import CaselessStrEnum, default

from mtlskit.config import paths
from mtlskit.core.bars import HEADLESS_ENV
from mtlskit.core.checks import MIME, Check
from mtlskit.pki.files import PRIVATE_KEY_BLOCK
from mtlskit.runner.results import CHECK_FAILURE, Interrupted, NotebookResult, NotebookStatus, RunResult
from mtlskit.verify.changerecords import RUN_DIR_VARIABLE

BUILD = ["00_design", "00_preflight", "10_ingress", "20_backend_service", "30_trust", "40_frontend"]
VERIFY = ["50_verify", "60_logs", "70_drift"]
TEARDOWN = "90_teardown"
# The Gateway topology builds through its own notebooks (gw...), verified by the same 50 -> 70.
GATEWAY_BUILD = ["00_design", "00_preflight", "gw10_gateway_prereqs", "gw20_gateway"]
GATEWAY_TEARDOWN = "gw90_gateway_teardown"
KERNEL_NAME = "python3"  # the environment's own Python, as ipykernel installs it


def build_notebooks(topology: str) -> list[str]:
    """The build steps of a topology (`params.topology`), in run order."""
    return list(GATEWAY_BUILD if topology == "gateway" else BUILD)


def teardown_notebook(topology: str) -> str:
    return GATEWAY_TEARDOWN if topology == "gateway" else TEARDOWN


class _IpcKernelManager(AsyncKernelManager):
    """Kernels talk over Unix sockets in a private directory, not over TCP on localhost: no other
    local user can reach them, and the kernel has no plain-TCP warning to print into every run."""

    transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

    @default("ip")
    def _private_socket_prefix(self) -> str:
        return str(Path(tempfile.mkdtemp(prefix="mtlskit-kernel-")) / "kernel")

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart)
        if not restart:  # a restarted kernel binds its sockets in the same directory again
            shutil.rmtree(Path(self.ip).parent, ignore_errors=True)


def notebook_path(name: str) -> Path:
    """A runbook step by name (`50_verify`), or any notebook by its path (a team's own extra step)."""
    if name.endswith(".ipynb"):
        return paths.resolve(name, Path.cwd())
    return paths.repo_root() / "notebooks" / f"{name}.ipynb"


def notebook_name(name: str) -> str:
    return Path(name).stem


def published_checks(notebook: Path) -> list[Check]:
    """The checks a notebook published (`mtlskit.runner.step.publish`), read back from its executed copy."""
    nb = json.loads(notebook.read_text())  # papermill wrote it valid; no second schema validation
    found: list[Check] = []
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            rows = output.get("data", {}).get(MIME)
            if rows:
                found += [Check.from_row(r) for r in rows]
    return found


def _out_dir(params_path: Path, out_dir: Path | None) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = out_dir or paths.repo_root() / "runs" / f"{stamp}-{params_path.stem}"
    out.mkdir(parents=True, exist_ok=True)
    return out


# What every notebook imports first (the step harness, tables and checks behind it); a kernel loads
# it while it starts.
PRELOAD = ["mtlskit.runbook"]
PROLOGUE_TAG = "mtlskit-prologue"
# The first cell of every notebook a run executes, removed from the executed notebook: in a kernel an
# earlier notebook used, variables go (imported modules stay); the kernel learns the run's folder
# (`changerecords.RUN_DIR_VARIABLE`: a change notebook records the change beside the run, whenever
# the shared kernel was started); and In [n] starts again at 1.
RESET_SOURCE = "%reset -f"
COUNT_SOURCE = "get_ipython().execution_count = 1"


class SharedKernel:
    """One kernel for a whole run, its namespace cleared before each notebook.

    Starting a kernel and importing the Google and Kubernetes clients costs seconds per notebook and
    is the same work every time; modules stay imported, variables do not leak from one notebook to
    the next. A kernel that died is replaced before the next notebook. (Each notebook also runs alone
    in a kernel of its own under nbval, so none can depend on another's leftovers.)
    """

    def __init__(self, cwd: Path | None = None):
        self.cwd = cwd or paths.repo_root() / "notebooks"
        self.km: _IpcKernelManager | None = None
        self.used = False

    def start(self) -> SharedKernel:
        """Start the kernel now, importing the kit inside it while the caller does other work (the
        command line validates params meanwhile); the first notebook then finds it ready."""
        from jupyter_core.utils import run_sync

        self.km = _IpcKernelManager(kernel_name=KERNEL_NAME)
        preload = [f"--IPKernelApp.exec_lines=__import__({m!r})" for m in PRELOAD]  # binds no name
        # No input history: a headless run never recalls it, and restarting In [n] at 1 for each
        # notebook would collide with the lines already stored ("Session/line number was not unique").
        arguments = [*preload, "--HistoryManager.enabled=False"]
        # Text progress lines, not widgets: nobody renders them, and widget state would stay in the
        # executed notebooks the report copies.
        env = {**os.environ, HEADLESS_ENV: "1"}
        run_sync(self.km.start_kernel)(cwd=str(self.cwd), extra_arguments=arguments, env=env)
        self.used = False
        return self

    def ready(self) -> tuple[_IpcKernelManager, bool]:
        """The kernel, and whether an earlier notebook used it (so the namespace needs clearing)."""
        from jupyter_core.utils import run_sync

        if self.km is not None and not run_sync(self.km.is_alive)():
            self.close()
        if self.km is None:
            self.start()
        assert self.km is not None
        used, self.used = self.used, True
        return self.km, used

    def close(self) -> None:
        from jupyter_core.utils import run_sync

        if self.km is not None:
            run_sync(self.km.shutdown_kernel)(now=True)  # nothing to flush: outputs are written
            self.km = None

    def stop_now(self) -> None:
        """After an interrupt, before `close`: the awaits it cut short (starting the kernel, waiting
        for its first answer, a cell) are still pending in the event loop, and the next call that
        runs the loop would resume them against a kernel being shut down, each ending in a
        DeadKernelError traceback. They are cancelled, and the kernel's process group (whatever a
        cell started with it) is killed at once."""
        from jupyter_core.utils import ensure_event_loop

        loop = ensure_event_loop()
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=KERNEL_STOP_SECONDS))
        for task in pending:  # read, so that none is logged as "never retrieved" (nbclient turns a
            if task.done() and not task.cancelled():  # cancelled cell into DeadKernelError)
                task.exception()
        if self.km is not None:
            kill_kernel_group(self.km)


def _with_prologue(src: Path, used: bool, run_dir: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(src, as_version=4)
    run_dir_line = f"__import__('os').environ[{RUN_DIR_VARIABLE!r}] = {str(run_dir)!r}"
    lines = [*([RESET_SOURCE] if used else []), run_dir_line, COUNT_SOURCE]
    cell = nbformat.v4.new_code_cell("\n".join(lines), metadata={"tags": [PROLOGUE_TAG]})
    nb.cells.insert(0, cell)
    return nb


KEY_CHECK = "no private key in outputs"


def _scrub_private_keys(dst: Path) -> Check:
    """The last line of defence: key material that reached an output is cut out of the executed
    notebook before anyone reads it (and before the report copies it), and the run fails loudly."""
    text = dst.read_text()
    cleaned, found = PRIVATE_KEY_BLOCK.subn("[private key removed by mtlskit]", text)
    if not found:
        return Check(KEY_CHECK, "pass", "no private key material in the executed notebook")
    dst.write_text(cleaned)
    return Check(
        KEY_CHECK,
        "fail",
        f"{found} private key block(s) appeared in the outputs and were removed from {dst.name}",
        "find the cell that printed a key file and show its path instead; rotate the key if the "
        "notebook was shared before this run",
    )


def _drop_prologue(dst: Path) -> None:
    nb = json.loads(dst.read_text())
    nb["cells"] = [c for c in nb["cells"] if PROLOGUE_TAG not in c.get("metadata", {}).get("tags", [])]
    dst.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def kill_kernel_group(km: _IpcKernelManager) -> None:
    """SIGKILL to the kernel and everything it started: the kernel runs in a session of its own, so
    its process group holds whatever a cell started (a kernel still starting has none yet)."""
    provisioner = km.provisioner
    pgid = getattr(provisioner, "pgid", None)
    try:
        if pgid:
            os.killpg(pgid, signal.SIGKILL)
        elif provisioner is not None and getattr(provisioner, "process", None) is not None:
            provisioner.process.kill()  # type: ignore[attr-defined]
    except ProcessLookupError:
        pass


class _Deadline:
    """Kills the kernel when a notebook outlives its time. A dead kernel is the one stop that works
    whatever the cell is doing (a blocking socket read ignores an interrupt); papermill then ends the
    notebook, and the next one gets a fresh kernel."""

    def __init__(self, km: _IpcKernelManager, seconds: float | None):
        self.seconds, self.expired = seconds, False
        self._km = km
        self._timer = threading.Timer(seconds, self._kill) if seconds else None
        if self._timer:
            self._timer.daemon = True
            self._timer.start()

    def _kill(self) -> None:
        self.expired = True
        kill_kernel_group(self._km)

    def cancel(self) -> None:
        if self._timer:
            self._timer.cancel()


# A kernel that has not answered by then is broken, not busy (it starts in seconds, even on a loaded
# machine); the per-notebook timeout counts from its first answer.
KERNEL_START_SECONDS = 120.0
# What the awaits an interrupt cut short get to unwind once cancelled (they only close sockets).
KERNEL_STOP_SECONDS = 5.0


def _wait_until_answering(km: _IpcKernelManager, seconds: float) -> None:
    from jupyter_core.utils import run_sync

    client = km.client()
    client.start_channels()
    try:
        run_sync(client.wait_for_ready)(timeout=seconds)
    finally:
        client.stop_channels()


def _execute_one(
    src: Path,
    dst: Path,
    parameters: dict[str, Any],
    kernel: SharedKernel,
    timeout: float | None = None,
) -> NotebookResult:
    import papermill as pm

    name = src.stem
    started = time.monotonic()
    km, used = kernel.ready()
    deadline = _Deadline(km, None)
    try:
        # the clock starts when the kernel answers: a fresh kernel's imports are not the notebook's
        if timeout:
            _wait_until_answering(km, KERNEL_START_SECONDS)
            deadline = _Deadline(km, timeout)
        pm.execute_notebook(
            _with_prologue(src, used, dst.parent),
            str(dst),
            parameters=parameters,
            kernel_name=KERNEL_NAME,
            km=km,
            cwd=str(src.parent),
            progress_bar=False,
            # written once when done (also on failure), not after every cell: a run reads it only then
            request_save_on_cell_execute=False,
        )
        result = NotebookResult(name, "ok")
    except pm.PapermillExecutionError as err:
        status: NotebookStatus = "failed" if err.ename == CHECK_FAILURE else "crashed"
        result = NotebookResult(name, status, error=f"{err.ename}: {err.evalue}", cell=err.exec_count)
    except RuntimeError as err:  # the kernel died or never started: the next notebook gets a new one
        result = NotebookResult(name, "crashed", error=f"{type(err).__name__}: {err}")
    finally:
        deadline.cancel()
    # A timer that fires between papermill's return and the cancel kills a kernel whose notebook had
    # finished: the notebook stands as it ended, and the next one gets a fresh kernel (`ready`).
    if deadline.expired and result.status != "ok":
        result.status, result.error = "crashed", f"timed out after {timeout:g} s"
    result.seconds = time.monotonic() - started
    result.path = str(dst)
    if dst.is_file():
        _drop_prologue(dst)
        key_check = _scrub_private_keys(dst)
        result.checks = published_checks(dst)
        if key_check.status == "fail":
            result.checks.append(key_check)
            result.status = "failed" if result.status == "ok" else result.status
    return result


def run_notebooks(
    params_file: str | None,
    names: list[str],
    apply: bool,
    out_dir: Path | None = None,
    extra: dict[str, Any] | None = None,
    progress: Callable[[str, NotebookResult | None], None] | None = None,
    report: bool = True,
    kernel: SharedKernel | None = None,
    timeout: float | None = None,
) -> RunResult:
    """Execute notebooks in order; outputs land in runs/<timestamp>-<env>/ with summary.json and report.html.

    A failed or crashed notebook is still written (papermill saves it with the error), so the on-call
    engineer can open it at the failing cell. A build step that fails stops the run, because later
    steps build on it; verification steps change nothing, so each one runs whatever the one before
    found. A notebook that runs longer than `timeout` seconds is stopped and counts as crashed.

    Ctrl-C or SIGTERM (a KeyboardInterrupt; `Interrupted` for SIGTERM) stops the kernel and what it
    started, writes summary.json with the interrupted notebook marked and no report, and raises
    `Interrupted` carrying the run so far.
    """
    from mtlskit.config.params import params_file as locate_params

    params_path = locate_params(params_file)
    out = _out_dir(params_path, out_dir)
    run = RunResult(out, str(params_path), apply, dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    parameters = {"params_file": str(params_path), "apply": apply, **(extra or {})}
    kernel = kernel or SharedKernel()
    try:
        _run_in_order(run, names, parameters, kernel, progress, timeout)
    except KeyboardInterrupt as err:
        kernel.stop_now()  # before `close`, which runs the event loop the interrupt left mid-await
        raise Interrupted.of(err, run) from None
    finally:
        kernel.close()  # an interrupted run leaves no kernel behind
    if report:
        from mtlskit.runner import report as report_mod  # nbconvert loads only when a report is asked

        try:
            run.report = report_mod.write_report(run)
        except KeyboardInterrupt as err:
            raise Interrupted.of(err, run) from None
    return run


def _run_in_order(
    run: RunResult,
    names: list[str],
    parameters: dict[str, Any],
    kernel: SharedKernel,
    progress: Callable[[str, NotebookResult | None], None] | None,
    timeout: float | None = None,
) -> None:
    stopped = ""
    for i, given in enumerate(names):
        name = notebook_name(given)
        if stopped and (stopped not in VERIFY or name not in VERIFY):
            result = NotebookResult(name, "skipped", error=f"not run: {stopped} did not pass")
        else:
            if progress:
                progress(name, None)
            dst = run.out_dir / f"{name}.ipynb"
            started = time.monotonic()
            try:
                result = _execute_one(notebook_path(given), dst, parameters, kernel, timeout)
            except KeyboardInterrupt as err:
                interrupted = NotebookResult(name, "interrupted", time.monotonic() - started)
                _record_interrupt(run, interrupted, Interrupted.of(err), names[i + 1 :])
                if progress:
                    progress(name, interrupted)
                raise
            stopped = stopped or ("" if result.status == "ok" else name)
        run.notebooks.append(result)
        if progress:
            progress(name, result)
        run.write_summary()


def _record_interrupt(
    run: RunResult, result: NotebookResult, interrupt: Interrupted, rest: list[str]
) -> None:
    """summary.json says which notebook the interrupt stopped and which never ran, so the run folder
    explains itself (papermill writes an executed notebook only when it ends, so the interrupted
    one has none)."""
    why = f"interrupted by {interrupt.signal_name}"
    run.interrupted = interrupt.exit_code
    result.error = why
    run.notebooks.append(result)
    run.notebooks += [
        NotebookResult(notebook_name(n), "skipped", error=f"not run: the run was {why}") for n in rest
    ]
    run.write_summary()
