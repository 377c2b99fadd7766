"""Real requests against the frontend, as a client would send them, with the outcome each should have.

Each probe carries a unique id (in the path and a header) and is saved, so the log step can find the
load balancer's entry for every probe and compare its statusDetails with what was expected.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mtlskit import paths
from mtlskit.params import Params

PROBE_HEADER = "X-Mtlskit-Probe"
PROBE_PATH = "/.mtlskit/probe/"  # followed by the probe id


@dataclass
class ProbeResult:
    probe_id: str
    case: str
    expected: str  # "ok" or the documented client_cert_* string
    expected_status_details: str  # what the load balancer's log entry should say
    outcome: str  # "HTTP 200", "connection closed during TLS", "timeout", ...
    http_status: int | None
    verdict: str  # pass | fail
    sent_at: str  # RFC 3339 UTC, taken just before connecting
    finished_at: str
    detail: str = ""
    backend_headers: dict[str, str] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return asdict(self)


def results_file(params: Params) -> Path:
    """Where the last probes of one environment are kept, so 60_logs finds them whether the runbook
    ran headless or step by step in JupyterLab."""
    return paths.repo_root() / "runs" / "probes" / f"{params.project}-{params.stack}.json"


def save_results(params: Params, results: list[ProbeResult]) -> Path:
    path = results_file(params)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([r.row() for r in results], indent=2))
    return path


def load_results(params: Params) -> list[ProbeResult]:
    """The probes 50_verify sent last; empty when it has not run for this environment."""
    path = results_file(params)
    if not path.is_file():
        return []
    return [ProbeResult(**row) for row in json.loads(path.read_text())]
