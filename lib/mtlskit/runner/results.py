"""What a headless run ends with: each notebook's result, the run's result, and the exit codes.

The exit codes are the runner's contract with whoever started it (a shell, a CronJob, the Indexed
Job's podFailurePolicy), so they are stated once, here, with what each means.
"""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mtlskit.core.checks import Check

# Exit codes of `mtlskit run` and `mtlskit verify` (documented in the README), stated once with what
# each means. A run stopped by a signal exits 128 + the signal's number, as shells report it, so no
# scheduler reads an interrupted run as a verdict on the load balancer.
EXIT_OK, EXIT_CHECK_FAILED, EXIT_CRASHED, EXIT_BAD_PARAMS = 0, 1, 2, 3
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
