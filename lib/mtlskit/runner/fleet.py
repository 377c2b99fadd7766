"""Verification of many environments at once: each params file's verification notebooks run in a child
process of their own (its own kernel, its own run folder), at most `jobs` at a time, and the children's
verdicts come back as one table and one exit code.

Children, not threads: a kernel that hangs or a client library that leaks cannot reach its neighbours,
and a child that outlives its time is ended with its whole process tree.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from mtlskit.config import params as params_mod
from mtlskit.config import paths
from mtlskit.core.errors import KitError
from mtlskit.runner import execute
from mtlskit.runner.results import (
    EXIT_BAD_PARAMS,
    EXIT_CHECK_FAILED,
    EXIT_CRASHED,
    EXIT_OK,
    Interrupted,
    interrupts_held,
)

# Worst last. Bad params (3) outrank a crash: nothing was verified and no retry can help until someone
# fixes the file. A crash (2) outranks a failed check (1): a failed check is a finding about the load
# balancer, a crash means the environment was not verified at all, so its silence proves nothing.
SEVERITY = (EXIT_OK, EXIT_CHECK_FAILED, EXIT_CRASHED, EXIT_BAD_PARAMS)
PARAMS_SUFFIXES = (".yaml", ".yml")
INDEX_VARIABLE = "JOB_COMPLETION_INDEX"  # set by Kubernetes in each pod of an Indexed Job
# A child's own allowance on top of its notebooks' timeouts: interpreter and kernel start, report.
CHILD_GRACE_SECONDS = 180.0
# How long a child has to unwind after SIGTERM (shutting its kernel down) before SIGKILL.
STOP_GRACE_SECONDS = 10.0
LOG_NAME = "run.log"
FLEET_JSON = "fleet.json"

Event = Literal["start", "end"]


class FleetError(KitError, ValueError):
    """The list of environments cannot be used as given; nothing ran (exit code 3)."""


# An environment's params as loaded, once, by the fleet: the params, or why they are invalid.
Loaded = params_mod.Params | params_mod.ParamsError


@dataclass(frozen=True)
class Environment:
    name: str
    params_file: Path


@dataclass
class EnvironmentResult:
    """One row of the fleet table."""

    environment: str
    params_file: str
    exit_code: int
    passed: int = 0
    warned: int = 0
    failed: int = 0
    first_failure: str = ""
    report: str = ""
    seconds: float = 0.0
    folder: str = ""


@dataclass
class FleetResult:
    stamp: str
    folder: str  # OUT/<stamp>: a local path or a gs:// URL
    rows: list[EnvironmentResult] = field(default_factory=list)
    fleet_json: str = ""
    interrupted: int = 0  # the exit code of the signal that stopped the verification, 0 if none did

    @property
    def exit_code(self) -> int:
        """The worst verdict; an interrupted verification has none, and says so (130, 143)."""
        return self.interrupted or worst_exit_code(r.exit_code for r in self.rows)

    @property
    def interrupted_rows(self) -> list[EnvironmentResult]:
        return [r for r in self.rows if self.interrupted and r.exit_code == self.interrupted]

    def to_json(self) -> dict[str, Any]:
        return {
            "stamp": self.stamp,
            "folder": self.folder,
            "exit_code": self.exit_code,
            "environments": [asdict(r) for r in self.rows],
        }


class VerificationInterrupted(Interrupted):
    """Ctrl-C or SIGTERM stopped the verification: every child and kernel is stopped, and `result`
    holds the rows so far (each interrupted or never-started environment marked with the
    interrupt's exit code) and where fleet.json went."""

    def __init__(self, signum: int, result: FleetResult):
        super().__init__(signum)
        self.result = result


def worst_exit_code(codes: Any) -> int:
    return max((known_exit_code(c) for c in codes), key=SEVERITY.index, default=EXIT_OK)


def known_exit_code(code: int) -> int:
    """A child killed by a signal (negative code) or dying with a code the kit never uses crashed."""
    return code if code in SEVERITY else EXIT_CRASHED


def utc_stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def params_files(given: Sequence[str | Path]) -> list[Path]:
    """Directories stand for their *.yaml / *.yml files sorted by name; files keep the order given."""
    found: list[Path] = []
    for item in given:
        path = paths.resolve(str(item), Path.cwd())
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.suffix in PARAMS_SUFFIXES and p.is_file())
            if not inside:
                raise FleetError(f"{item}: the directory holds no *.yaml or *.yml params file")
            found += inside
        elif path.is_file():
            found.append(path)
        else:
            raise FleetError(f"{item}: no such params file or directory")
    if not found:
        raise FleetError("no params files given: name params files or a directory of them")
    return found


def environments(files: Sequence[Path]) -> list[Environment]:
    """Each environment is named after its params file; names must differ, since each names a folder."""
    seen: dict[str, Path] = {}
    for f in files:
        if f.stem in seen:
            raise FleetError(
                f"{seen[f.stem]} and {f} would both write the folder {f.stem!r}: rename one of them"
            )
        seen[f.stem] = f
    return [Environment(name, path) for name, path in seen.items()]


def indexed_environment(files: Sequence[Path], index_text: str | None) -> Environment:
    """The environment an Indexed Job's pod verifies: the one at its completion index."""
    listing = ", ".join(f"{i}: {f.name}" for i, f in enumerate(files))
    if index_text is None or not index_text.strip():
        raise FleetError(
            f"{INDEX_VARIABLE} is not set: --indexed runs in a pod of a Kubernetes Indexed Job, which "
            f"sets it; params files by index: {listing}"
        )
    try:
        index = int(index_text)
    except ValueError:
        raise FleetError(
            f"{INDEX_VARIABLE}={index_text!r} is not a whole number; params files by index: {listing}"
        ) from None
    if not 0 <= index < len(files):
        raise FleetError(
            f"{INDEX_VARIABLE}={index} is outside the {len(files)} params file(s) given (0-{len(files) - 1}): "
            f"{listing}; make the Job's completions equal the number of params files"
        )
    return environments(files)[index]


def child_command(
    env: Environment, folder: Path, notebooks: Sequence[str], timeout: float | None
) -> list[str]:
    """`mtlskit run` in a fresh interpreter, exactly as a person would type it."""
    command = [sys.executable, "-m", "mtlskit.cli", "run", "--params", str(env.params_file)]
    command += ["--out", str(folder)]
    if timeout:
        command += ["--timeout", f"{timeout:g}"]
    return [*command, *notebooks]


def child_time_limit(timeout: float | None, notebooks: int) -> float | None:
    """What a whole child may take: each notebook's timeout plus start-up, or no limit without one."""
    return timeout * notebooks + CHILD_GRACE_SECONDS if timeout else None


def row_from_folder(
    env: Environment, folder: Path, code: int | None, reason: str, seconds: float, interrupted: int = 0
) -> EnvironmentResult:
    """An environment's row from its run folder's summary.json, which a child that ran writes after every
    notebook. The child's exit code is trusted only when the summary agrees: Python itself exits 1 on an
    unhandled error, which must not read as a failed check. A run the verification's interrupt stopped
    (`interrupted`, its exit code) gets that code and the notebook it stopped in."""
    row = EnvironmentResult(env.name, str(env.params_file), EXIT_CRASHED, seconds=round(seconds, 1))
    row.folder = str(folder)
    summary_path = folder / "summary.json"
    try:  # a child killed while writing it leaves half a file: no summary, then
        summary: dict[str, Any] = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    except ValueError:
        summary = {}
    checks = summary.get("checks", [])
    row.passed = sum(1 for c in checks if c["status"] == "pass")
    row.warned = sum(1 for c in checks if c["status"] == "warn")
    row.failed = sum(1 for c in checks if c["status"] == "fail")
    report = folder / "report.html"
    row.report = str(report) if report.is_file() else ""
    row.first_failure = reason or _first_failure(summary)
    if interrupted:
        row.exit_code, row.first_failure = interrupted, _where_interrupted(summary)
        return row
    if reason:  # stopped from outside: whatever the summary says, the run did not finish
        return row
    if code == EXIT_BAD_PARAMS:
        row.exit_code = EXIT_BAD_PARAMS
        row.first_failure = _last_error_line(folder) or "the params are invalid"
    elif code is not None and summary and summary.get("exit_code") == code and row.report:
        row.exit_code = code
    else:
        row.exit_code = EXIT_CRASHED
        row.first_failure = (
            f"the run ended with exit code {code} and "
            f"{'no summary.json' if not summary else 'summary exit code ' + str(summary.get('exit_code'))}"
            f"; see {folder / LOG_NAME}"
        )
    return row


def _first_failure(summary: dict[str, Any]) -> str:
    """The first thing that did not pass, in run order: a failed check or a notebook that did not run through."""
    failed = {c["notebook"]: c["check"] for c in reversed(summary.get("checks", [])) if c["status"] == "fail"}
    for nb in summary.get("notebooks", []):
        if nb["notebook"] in failed:
            return f"{nb['notebook']}: {failed[nb['notebook']]}"
        if nb["status"] == "crashed":
            return f"{nb['notebook']} crashed: {nb['error']}"
    return ""


INTERRUPTED_REASON = "the verification was interrupted"


def _where_interrupted(summary: dict[str, Any]) -> str:
    notebooks = summary.get("notebooks", [])
    stopped = next((nb["notebook"] for nb in notebooks if nb["status"] == "interrupted"), "")
    if stopped:
        return f"stopped in {stopped}: {INTERRUPTED_REASON}"
    after = [nb["notebook"] for nb in notebooks if nb["status"] != "skipped"]
    return f"stopped {'after ' + after[-1] if after else 'before its first notebook'}: {INTERRUPTED_REASON}"


def _last_error_line(folder: Path) -> str:
    log = folder / LOG_NAME
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()] if log.is_file() else []
    return next((ln.strip() for ln in reversed(lines) if "rror" in ln), lines[-1].strip() if lines else "")


def load_params(env: Environment) -> Loaded:
    """An environment's params, loaded once for everything the fleet does with them (the check before
    a child starts, the uploads); invalid ones come back as their error."""
    try:
        with interrupts_held():
            return params_mod.load(env.params_file)
    except params_mod.ParamsError as err:
        return err


def refuse_bad_params(env: Environment, folder: Path, loaded: Loaded) -> EnvironmentResult | None:
    """Invalid params are found here, before a child and its kernel start for nothing; the row names the
    first problem and run.log holds them all."""
    if not isinstance(loaded, params_mod.ParamsError):
        return None
    (folder / LOG_NAME).write_text(f"Error: {loaded}\n")
    first = f"{loaded.problems[0]}" if loaded.problems else str(loaded)
    row = row_from_folder(env, folder, EXIT_BAD_PARAMS, "", 0.0)
    row.first_failure = f"invalid params ({_plural(len(loaded.problems), 'problem')}): {first}"
    return row


def first_valid_params(loaded: Sequence[Loaded]) -> params_mod.Params | None:
    return next((p for p in loaded if isinstance(p, params_mod.Params)), None)


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def end_process_tree(proc: subprocess.Popen[bytes], grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM to the child and everything below it (`mtlskit run` unwinds and shuts its kernel down,
    the kernel exits), then SIGKILL for whatever is left. The kernel runs in a session of its own
    (jupyter_client starts it so), outside the child's process group, so it is found as a descendant.

    The child itself is waited for through `proc`, never through psutil: psutil's wait would reap it
    and leave Popen an exit code of 0, which reads as "every check passed"."""
    import psutil

    try:
        below = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        below = []
    _signal_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    for p in below:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()
    started = time.monotonic()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    _, alive = psutil.wait_procs(below, timeout=max(0.0, grace - (time.monotonic() - started)))
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    _signal_group(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    proc.wait()


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


class _Children:
    """The children running now, so that a stop (Ctrl-C, SIGTERM) ends each one with its kernel, and no
    queued environment starts after it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()
        self.stopped_by = 0  # the exit code of the interrupt that stopped them, once one did

    def spawn(self, command: list[str], log: Any) -> subprocess.Popen[bytes] | None:
        with self._lock:
            if self.stopped_by:
                return None
            # a session of its own: the terminal's Ctrl-C reaches the fleet, which stops each child
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            self._running.add(proc)
            return proc

    def done(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._running.discard(proc)

    def stop_all(self, exit_code: int) -> None:
        with self._lock:
            self.stopped_by = exit_code
            running = list(self._running)
        threads = [threading.Thread(target=end_process_tree, args=(p,)) for p in running]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


Progress = Callable[[Event, Environment, EnvironmentResult | None], None]
Command = Callable[[Environment, Path], list[str]]


def run_fleet(
    envs: Sequence[Environment],
    out: str | Path,
    jobs: int,
    timeout: float | None = None,
    notebooks: Sequence[str] | None = None,
    progress: Progress | None = None,
    command: Command | None = None,
    time_limit: float | None = None,
    stamp: str | None = None,
) -> FleetResult:
    """Verify every environment, `jobs` at a time, each in a child `mtlskit run`; rows keep the order
    of `envs`. One environment's crash or hang does not stop the others.

    Ctrl-C or SIGTERM (a KeyboardInterrupt here) ends every child and its kernel, starts no queued
    environment, writes fleet.json with the rows so far (the stopped and the never-started marked
    with the interrupt's exit code, 130 or 143) and raises `VerificationInterrupted` with them.

    `command` and `time_limit` replace the child command line and its time (default: each notebook's
    `timeout` plus start-up)."""
    if jobs < 1:
        raise FleetError(f"--jobs must be at least 1, not {jobs}")
    stamp = stamp or utc_stamp()
    target = Output(out, stamp)
    loaded = {env: load_params(env) for env in envs}
    if target.cloud:
        target.storage_params = first_valid_params(list(loaded.values()))
    notebooks = list(notebooks or execute.VERIFY)
    make = command or (lambda env, folder: child_command(env, folder, notebooks, timeout))
    limit = time_limit if time_limit is not None else child_time_limit(timeout, len(notebooks))
    children = _Children()
    lock = threading.Lock()

    def report(event: Event, env: Environment, row: EnvironmentResult | None) -> None:
        if progress:
            with lock:  # one line at a time from the pool's threads
                progress(event, env, row)

    def verify(env: Environment) -> EnvironmentResult:
        folder = target.local(env.name)
        folder.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        refused = refuse_bad_params(env, folder, loaded[env])
        if refused:
            target.publish(env, refused, None)
            report("end", env, refused)
            return refused
        if children.stopped_by:  # queued when the interrupt came: no child, no run.log
            return not_started(env, folder, children.stopped_by)
        with (folder / LOG_NAME).open("wb") as log:
            proc = children.spawn(make(env, folder), log)
            if proc is None:
                return not_started(env, folder, children.stopped_by)
            report("start", env, None)
            reason = ""
            try:
                code: int | None = proc.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                end_process_tree(proc)
                code, reason = None, f"killed after {limit:g} s (the run's time limit)"
            finally:
                children.done(proc)
        # a child that finished before the interrupt keeps its verdict; one it stopped gets its code
        stopped = children.stopped_by if not reason and code not in SEVERITY else 0
        row = row_from_folder(env, folder, code, reason, time.monotonic() - started, interrupted=stopped)
        if not children.stopped_by:  # no uploads once stopping: the folder stays local, named in the row
            target.publish(env, row, loaded[env])
        report("end", env, row)
        return row

    result = FleetResult(stamp, target.root_text)
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="verify") as pool:
        futures: list[Future[EnvironmentResult]] = []
        try:
            futures += (pool.submit(verify, env) for env in envs)
            result.rows = [f.result() for f in futures]
        except KeyboardInterrupt as err:
            interrupt = Interrupted.of(err)
            children.stop_all(interrupt.exit_code)
            pool.shutdown(wait=True, cancel_futures=True)
            result.interrupted = interrupt.exit_code
            submitted = dict(zip(envs, futures, strict=False))  # all, unless the interrupt came first
            result.rows = [
                _row_after_stop(submitted.get(env), env, target, interrupt.exit_code) for env in envs
            ]
            target.keep_staging = True
            result.fleet_json = target.write_fleet_json(result, upload=False)
            raise VerificationInterrupted(interrupt.signum, result) from None
        except BaseException:
            children.stop_all(EXIT_CRASHED)
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    result.fleet_json = target.write_fleet_json(result)
    return result


def not_started(env: Environment, folder: Path, interrupted: int) -> EnvironmentResult:
    row = EnvironmentResult(env.name, str(env.params_file), interrupted, folder=str(folder))
    row.first_failure = f"not started: {INTERRUPTED_REASON}"
    return row


def _row_after_stop(
    future: Future[EnvironmentResult] | None, env: Environment, target: Output, interrupted: int
) -> EnvironmentResult:
    """A finished environment's row, or, for one the pool never started, a row that says so."""
    if future is not None and future.done() and not future.cancelled() and future.exception() is None:
        return future.result()
    return not_started(env, target.local(env.name), interrupted)


def run_here(
    env: Environment, out: str | Path, timeout: float | None = None, stamp: str | None = None
) -> EnvironmentResult:
    """One environment's verification in this process (an Indexed Job's pod): the same folder, summary
    and row as a child of `run_fleet` gives. Ctrl-C or SIGTERM stops its kernel and raises
    `VerificationInterrupted` with the environment's row (nothing is uploaded then)."""
    target = Output(out, stamp or utc_stamp())
    folder = target.local(env.name)
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    loaded = load_params(env)
    refused = refuse_bad_params(env, folder, loaded)
    if refused:
        target.publish(env, refused, None)  # without valid params it cannot go up: the row says so
        return refused
    try:
        run = execute.run_notebooks(
            str(env.params_file), list(execute.VERIFY), apply=False, out_dir=folder, timeout=timeout
        )
    except Interrupted as err:
        row = row_from_folder(env, folder, None, "", time.monotonic() - started, interrupted=err.exit_code)
        result = FleetResult(target.stamp, target.root_text, [row], interrupted=err.exit_code)
        raise VerificationInterrupted(err.signum, result) from None
    row = row_from_folder(env, folder, run.exit_code, "", time.monotonic() - started)
    target.publish(env, row, loaded)
    target.discard_staging()
    return row


def check_out(out: str) -> None:
    """A gs:// output names a bucket; anything else is a local folder."""
    if out.startswith("gs://") and not out[len("gs://") :].split("/")[0]:
        raise FleetError(f"--out {out}: name a bucket, as in gs://BUCKET/PREFIX")


class Output:
    """Where a fleet's folders go: OUT/<stamp>/<environment>/ on this machine, or under a gs:// prefix.

    Runs always write to a local folder first, because each executed notebook is scrubbed of private
    keys and read back for its checks before anyone else may see it; for gs:// the finished folder is
    then copied up with google-cloud-storage (see `upload_folder` for why not papermill's gs:// I/O).
    """

    def __init__(self, out: str | Path, stamp: str):
        text = str(out)
        self.stamp = stamp
        self.cloud = text.startswith("gs://")
        self.keep_staging = False
        # Whose storage client carries what has no valid params of its own (an invalid environment's
        # run.log, fleet.json): the first params file that loads.
        self.storage_params: params_mod.Params | None = None
        if self.cloud:
            check_out(text)
            bucket, _, prefix = text[len("gs://") :].partition("/")
            self.bucket, self.prefix = bucket, "/".join(p for p in (prefix.strip("/"), stamp) if p)
            self.root = Path(tempfile.mkdtemp(prefix="mtlskit-verify-")) / stamp
            self.root_text = f"gs://{self.bucket}/{self.prefix}"
        else:
            self.root = paths.resolve(text, Path.cwd()) / stamp
            self.root_text = str(self.root)

    def local(self, name: str) -> Path:
        return self.root / name

    def publish(self, env: Environment, row: EnvironmentResult, params: params_mod.Params | None) -> None:
        """Copy a finished environment's folder to Cloud Storage with its `params`' storage client (an
        environment without valid params: the first that loads) and point its row there. An upload that
        fails makes the row a crash (the run's output is not where the team looks) and keeps the local
        folder, named in the row, instead of stopping the other environments."""
        if params is not None:
            attach_records(params, Path(row.folder))
        if not self.cloud:
            return
        url = f"{self.root_text}/{env.name}"
        refused = row.exit_code == EXIT_BAD_PARAMS
        try:
            source = params or self.storage_params
            if source is None:
                raise FleetError("no params file of the fleet loads, so none can reach Cloud Storage")
            upload_folder(source, Path(row.folder), self.bucket, f"{self.prefix}/{env.name}")
        except Exception as err:  # any client or transport error: the row says which
            self.keep_staging = True
            row.exit_code = worst_exit_code([row.exit_code, EXIT_CRASHED])
            already = f"{row.first_failure}; " if refused else ""
            row.first_failure = (
                f"{already}not uploaded to {url} ({type(err).__name__}: {err}); kept in {row.folder}"
            )
            return
        row.folder = url
        row.report = f"{url}/report.html" if row.report else ""

    def write_fleet_json(self, result: FleetResult, upload: bool = True) -> str:
        """fleet.json in OUT/<stamp>/, then (for gs://, unless `upload` is off) in Cloud Storage."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / FLEET_JSON
        path.write_text(json.dumps(result.to_json(), indent=2) + "\n")
        if not self.cloud or not upload:
            return str(path)
        try:
            if self.storage_params is None:
                raise FleetError("no params file of the fleet loads, so none can reach Cloud Storage")
            upload_files(self.storage_params, [path], self.bucket, self.prefix)
        except Exception as err:  # the rows are still worth printing; say where the table is instead
            self.keep_staging = True
            return f"{path} (not uploaded to {self.root_text}: {type(err).__name__}: {err})"
        self.discard_staging()
        return f"{self.root_text}/{FLEET_JSON}"

    def discard_staging(self) -> None:
        """The local copies of a gs:// run go once they are uploaded (a pod's disk is small)."""
        if self.cloud and not self.keep_staging:
            shutil.rmtree(self.root.parent, ignore_errors=True)


def attach_records(params: params_mod.Params, folder: Path) -> None:
    """The environment's change records go with its results (`<folder>/changes/`), so the team finds
    what changed beside the verification that judged it. Records that cannot be read are noted in the
    run's log; 70_drift has already reported them in its checks."""
    from mtlskit.verify import changerecords

    try:
        changerecords.copy_records(params, folder)
    except Exception as err:  # any client or transport error: the verification's verdict stands
        with (folder / LOG_NAME).open("a") as log:
            log.write(f"change records not copied from {changerecords.records_location(params)}: {err}\n")


def upload_folder(params: params_mod.Params, folder: Path, bucket: str, prefix: str) -> None:
    """The whole run folder (executed notebooks, summary.json, report.html, the run's log, the change
    records in changes/), after the child has cut private keys out of the notebooks.

    Through the params' own storage client rather than papermill's gs:// writer: gcsfs takes its
    endpoint from process-wide environment variables, which would carry one environment's target (a
    sandbox) into the next one's upload, and a notebook written to the bucket while it runs would be
    there before the key scrub."""
    for directory in [folder, *sorted(d for d in folder.rglob("*") if d.is_dir())]:
        files = [f for f in sorted(directory.iterdir()) if f.is_file()]
        below = directory.relative_to(folder).as_posix()
        upload_files(params, files, bucket, prefix if below == "." else f"{prefix}/{below}")


def upload_files(params: params_mod.Params, files: Sequence[Path], bucket: str, prefix: str) -> None:
    from mtlskit.cloud import clients

    target = clients.storage_client(params).bucket(bucket)
    for f in files:
        kind = {".json": "application/json", ".ipynb": "application/x-ipynb+json", ".html": "text/html"}.get(
            f.suffix, "text/plain"
        )
        target.blob(f"{prefix}/{f.name}").upload_from_filename(str(f), content_type=kind)
