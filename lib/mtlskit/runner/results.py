"""What a headless run ends with: each notebook's result, the run's result, and the exit codes.

The exit codes are the runner's contract with whoever started it (a shell, a CronJob, the Indexed
Job's podFailurePolicy), so they are stated once, here, with what each means.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mtlskit.core.checks import Check

# Exit codes of `mtlskit run` (documented in the README), stated once with what each means.
EXIT_OK, EXIT_CHECK_FAILED, EXIT_CRASHED, EXIT_BAD_PARAMS = 0, 1, 2, 3
EXIT_MEANING = {
    EXIT_OK: "every check passed",
    EXIT_CHECK_FAILED: "a check failed",
    EXIT_CRASHED: "a notebook crashed or an API kept failing",
    EXIT_BAD_PARAMS: "the params or the command line are invalid (nothing ran)",
}

NotebookStatus = Literal["ok", "failed", "crashed", "skipped"]
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

    @property
    def exit_code(self) -> int:
        statuses = {n.status for n in self.notebooks}
        if "crashed" in statuses:
            return EXIT_CRASHED
        if "failed" in statuses or any(c.status == "fail" for n in self.notebooks for c in n.checks):
            return EXIT_CHECK_FAILED
        return EXIT_OK

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
