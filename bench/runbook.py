"""The runbook's own speed: wall time of 00 -> 70 on a sandbox against the floor, and the API calls one
verification of one environment costs (figures only; nothing is asserted).

The floor is what papermill alone needs for the same number of notebooks: each an empty two-cell
notebook (parameters + `pass`), run one after another in this process, a kernel each, as papermill
does by default. Run: make bench.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat
import yaml
from nbformat.v4 import new_code_cell, new_notebook

from mtlskit.cloud.clients import build_clients
from mtlskit.config.params import load, sandbox_default
from mtlskit.runner import execute
from mtlskit.sandbox import process

RUNBOOK = [*execute.BUILD, *execute.VERIFY]
ROUNDS = 3


def sandbox_params(directory: Path) -> Path:
    """The default sandbox params with a throwaway state directory (and its own demo PKI)."""
    data = sandbox_default(directory / "state")
    path = directory / "bench.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def empty_notebooks(directory: Path, n: int) -> list[Path]:
    out = []
    for i in range(n):
        nb = new_notebook(
            cells=[
                new_code_cell("params_file = None\napply = False", metadata={"tags": ["parameters"]}),
                new_code_cell("pass"),
            ]
        )
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        path = directory / f"empty{i}.ipynb"
        nbformat.write(nb, path)
        out.append(path)
    return out


def floor_seconds(notebooks: list[Path], out: Path) -> float:
    import papermill as pm

    started = time.perf_counter()
    for nb in notebooks:
        pm.execute_notebook(str(nb), str(out / nb.name), kernel_name="python3", progress_bar=False)
    return time.perf_counter() - started


def runbook_seconds(params_file: Path, out: Path) -> tuple[float, float]:
    """The whole `mtlskit run` process (what a scheduler pays), and the notebooks alone within it."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "mtlskit.cli", "run", "--params", str(params_file), "--out", str(out)],
        check=False,
        capture_output=True,
    )
    whole = time.perf_counter() - started
    summary = json.loads((out / "summary.json").read_text())
    return whole, sum(n["seconds"] for n in summary["notebooks"])


def api_calls(endpoint: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{endpoint}/_sandbox/counters", timeout=10) as r:
        return dict(json.load(r)["counts"])


def reset_counters(endpoint: str) -> None:
    request = urllib.request.Request(f"{endpoint}/_sandbox/counters", method="DELETE")
    urllib.request.urlopen(request, timeout=10).close()


def verification_calls(params_file: Path, out: Path) -> int:
    """API requests (Google and Kubernetes; operation polls included) of one run of 50 -> 70."""
    params = load(params_file)
    endpoint = build_clients(params).endpoint or ""
    reset_counters(endpoint)
    execute.run_notebooks(str(params_file), list(execute.VERIFY), False, out, report=False)
    counts = api_calls(endpoint)
    return sum(v for k, v in counts.items() if not k.startswith("fault."))


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        params_file = sandbox_params(work)
        params = load(params_file)
        try:
            build = execute.run_notebooks(str(params_file), execute.BUILD, True, work / "build", report=False)
            print(f"{'build 00 -> 40 with apply (once, not timed)':<52} exit {build.exit_code}")
            notebooks = empty_notebooks(work, len(RUNBOOK))
            floors, wholes, inner = [], [], []
            for i in range(ROUNDS):  # paired: floor and runbook alternate, so drift hits both alike
                floors.append(floor_seconds(notebooks, work))
                whole, nb_seconds = runbook_seconds(params_file, work / f"run{i}")
                wholes.append(whole)
                inner.append(nb_seconds)
            floor, whole = statistics.median(floors), statistics.median(wholes)
            print(f"{'floor: papermill, ' + str(len(RUNBOOK)) + ' empty notebooks':<52} {floor:8.1f} s")
            print(
                f"{'mtlskit run 00 -> 70, whole process':<52} {whole:8.1f} s   {whole / floor:4.2f} x floor"
            )
            print(f"{'  of which notebooks':<52} {statistics.median(inner):8.1f} s")
            print(
                f"{'  rounds (floor / runbook)':<52} "
                + ", ".join(f"{a:.1f}/{b:.1f}" for a, b in zip(floors, wholes, strict=True))
            )
            calls = verification_calls(params_file, work / "verify")
            print(f"{'API calls, one verification (50 -> 70)':<52} {calls:8d}")
            clients = build_clients(params)
            from google.cloud import compute_v1

            for i in range(20):  # unrelated resources in the same project must not cost calls
                clients.compute.addresses.insert(
                    project=params.project, address_resource=compute_v1.Address(name=f"unrelated-{i}")
                )
            more = verification_calls(params_file, work / "verify2")
            print(f"{'  with 20 unrelated addresses in the project':<52} {more:8d}")
        finally:
            process.stop(params.state_dir)


if __name__ == "__main__":
    main()
