"""What a headless run ends with: each notebook's result, the run's result, and the exit codes.

The exit codes are the runner's contract with whoever started it (a shell, a CronJob, the Indexed
Job's podFailurePolicy), so they are stated once, here, with what each means. A run can also end
because it was stopped (Ctrl-C, SIGTERM): the `Interrupted` it then raises, and the one handler that
turns those signals into it, live here too, beside the codes they end with (130, 143).
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from mtlskit.core.checks import Check

# Exit codes of `mtlskit run` and `mtlskit verify` (documented in the README), stated once with what
# each means. A run stopped by a signal exits 128 + the signal's number, as shells report it, so no
# scheduler reads an interrupted run as a verdict on the load balancer.
EXIT_OK, EXIT_CHECK_FAILED, EXIT_CRASHED, EXIT_BAD_PARAMS = 0, 1, 2, 3
# `mtlskit sandbox status` when no sandbox runs: a scheduler asking "is it up?" reads it as "not ready".
EXIT_NOT_RUNNING = 3
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130: Ctrl-C
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143: SIGTERM, a scheduler (or kill) stopping the run
EXIT_MEANING = {
    EXIT_OK: "every check passed",
    EXIT_CHECK_FAILED: "a check failed",
    EXIT_CRASHED: "a notebook crashed or an API kept failing",
    EXIT_BAD_PARAMS: "the params or the command line are invalid (nothing ran)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C, SIGINT) before it finished: no verdict; kernels stopped",
    EXIT_TERMINATED: "stopped by SIGTERM before it finished: no verdict; kernels stopped",
}
INTERRUPT_CODES = (EXIT_INTERRUPTED, EXIT_TERMINATED)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a run before it finished; `run` is what it had done by then.

    A KeyboardInterrupt, so that everything that lets Ctrl-C through (papermill, the clients'
    retries, every `except Exception`) lets SIGTERM through as well, and cleanup written for one
    serves both."""

    def __init__(self, signum: int = signal.SIGINT, run: RunResult | None = None):
        super().__init__(signal.Signals(signum).name)
        self.signum, self.run = signum, run

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @classmethod
    def of(cls, err: BaseException, run: RunResult | None = None) -> Interrupted:
        """The same interrupt with what had run; Python's own KeyboardInterrupt is a SIGINT."""
        signum = err.signum if isinstance(err, Interrupted) else signal.SIGINT
        return cls(signum, run if run is not None else getattr(err, "run", None))


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """The handler of Ctrl-C and SIGTERM while a command runs.

    The first signal raises `Interrupted` in the main thread (SIGTERM's default would end the
    process with its kernels left running). The second is ignored, so stopping kernels and children
    is not cut short halfway (a fleet's stop sends a child SIGTERM twice: to its process group and to
    the process); a third raises again, for a stop that itself hangs. Inside `held()` the first one
    waits until the block ends: code that cannot be interrupted cleanly runs there (see
    `interrupts_held`)."""

    FORCE_AFTER = 3

    def __init__(self) -> None:
        self.received = 0
        self.holding = 0
        self.pending: int | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.received += 1
        if self.received >= self.FORCE_AFTER:
            raise Interrupted(signum)
        if self.received == 1:
            if self.holding:
                self.pending = signum
                return
            raise Interrupted(signum)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.holding += 1
        try:
            yield
        finally:
            self.holding -= 1
            if not self.holding and self.pending is not None:
                signum, self.pending = self.pending, None
                raise Interrupted(signum)

    @classmethod
    @contextlib.contextmanager
    def installed(cls) -> Iterator[None]:
        """For the block: this handler for SIGINT and SIGTERM, then the previous ones again. Only the
        main thread may set handlers (a command run from another thread keeps Python's own)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
        handler = cls()
        try:
            for s in STOP_SIGNALS:
                signal.signal(s, handler)
            yield
        finally:
            for s, old in previous.items():
                signal.signal(s, old)


def interrupts_held() -> contextlib.AbstractContextManager[None]:
    """Ctrl-C and SIGTERM wait until the block ends, under `StopSignals` (elsewhere, nothing changes).

    For loading params: their certificate checks run in cryptography's Rust verifier, which turns an
    exception raised inside it into a failed verification, so an interrupt landing there would be
    swallowed and read as invalid params (exit 3) instead of stopping the run (130)."""
    handler = signal.getsignal(signal.SIGINT)
    return handler.held() if isinstance(handler, StopSignals) else contextlib.nullcontext()


NotebookStatus = Literal["ok", "failed", "crashed", "skipped", "interrupted"]
# A failed check ends the notebook with this exception (`mtlskit.runner.step.StepFailed`, raised by
# Step.finish); anything else is a crash.
CHECK_FAILURE = "StepFailed"


@dataclass
class NotebookResult:
    notebook: str
    status: NotebookStatus
    seconds: float = 0.0
    checks: list[Check] = field(default_factory=list)
    error: str = ""
    cell: int | None = None  # execution count (In [n]) of the failing cell in the executed notebook
    path: str = ""

    def summary(self) -> dict[str, Any]:
        return {
            "notebook": self.notebook,
            "status": self.status,
            "seconds": round(self.seconds, 2),
            "checks": len(self.checks),
            "failed_checks": sum(1 for c in self.checks if c.status == "fail"),
            "error": self.error,
            "cell": self.cell,
            "executed_notebook": self.path,
        }


@dataclass
class RunResult:
    out_dir: Path
    params_file: str
    apply: bool
    started: str
    notebooks: list[NotebookResult] = field(default_factory=list)
    report: Path | None = None
    interrupted: int = 0  # the exit code of the signal that stopped the run, 0 if none did

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return self.interrupted
        statuses = {n.status for n in self.notebooks}
        if "crashed" in statuses:
            return EXIT_CRASHED
        if "failed" in statuses or any(c.status == "fail" for n in self.notebooks for c in n.checks):
            return EXIT_CHECK_FAILED
        return EXIT_OK

    @property
    def interrupted_notebook(self) -> str:
        """The notebook an interrupt stopped, or "" (stopped before, between or after notebooks)."""
        return next((n.notebook for n in self.notebooks if n.status == "interrupted"), "")

    def check_rows(self) -> list[dict[str, str]]:
        return [
            {
                "notebook": n.notebook,
                "check": c.name,
                "status": c.status,
                "evidence": c.evidence,
                "fix": c.fix,
            }
            for n in self.notebooks
            for c in n.checks
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "params_file": self.params_file,
            "apply": self.apply,
            "started": self.started,
            "exit_code": self.exit_code,
            "notebooks": [n.summary() for n in self.notebooks],
            "checks": self.check_rows(),
        }

    def write_summary(self) -> Path:
        path = self.out_dir / "summary.json"
        path.write_text(json.dumps(self.to_json(), indent=2))
        return path
