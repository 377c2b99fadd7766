"""Headless runs without a sandbox: small notebooks that publish checks, fail a check, crash or leave
variables behind, run through the same code as `mtlskit run`."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner
from nbformat.v4 import new_code_cell, new_notebook

from mtlskit.cli import main
from mtlskit.runner import execute, results
from mtlskit.verify.changerecords import RUN_DIR_VARIABLE

pytestmark = pytest.mark.e2e  # starts a kernel


def _notebook(directory: Path, name: str, *sources: str) -> str:
    cells = [new_code_cell("params_file = None\napply = False", metadata={"tags": ["parameters"]})]
    cells += [new_code_cell(s) for s in sources]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = directory / f"{name}.ipynb"
    nbformat.write(nb, path)
    return str(path)


def _finish(*checks: tuple[str, str]) -> str:
    rows = ", ".join(f"Check({n!r}, {s!r}, 'evidence of {n}', 'fix {n}')" for n, s in checks)
    return (
        "from mtlskit.core.checks import Check\nfrom mtlskit import runbook\n"
        f"runbook.Step(None, None, False).finish([{rows}])"
    )


@pytest.fixture
def books(tmp_path: Path) -> dict[str, str]:
    d = tmp_path / "nb"
    d.mkdir()
    return {
        "good": _notebook(d, "good", "leftover = 42", _finish(("a", "pass"), ("b", "warn"))),
        "also_good": _notebook(d, "also_good", _finish(("c", "pass"))),
        "bad_check": _notebook(d, "bad_check", _finish(("d", "pass"), ("e", "fail"))),
        "crash": _notebook(d, "crash", "x = 1", "raise ValueError('boom: the API said no')"),
        "leak": _notebook(d, "leak", "assert 'leftover' not in dir(), 'a variable leaked'", _finish()),
        # the marker is assembled at run time, so only the output holds a whole key block
        "key": _notebook(
            d,
            "key",
            "b, k, m = '-----BEGIN ', 'PRIVATE KEY-----', 'MII'\nprint(b + k + '\\n' + m + 'secret\\n-----END ' + k)",
            _finish(("a", "pass")),
        ),
    }


def test_summary_carries_every_check_and_exit_code_follows(books: dict[str, str], tmp_path: Path) -> None:
    ok = execute.run_notebooks(None, [books["good"], books["also_good"]], False, tmp_path / "ok")
    summary = json.loads((ok.out_dir / "summary.json").read_text())
    assert summary["exit_code"] == results.EXIT_OK
    assert [(c["notebook"], c["check"], c["status"]) for c in summary["checks"]] == [
        ("good", "a", "pass"),
        ("good", "b", "warn"),
        ("also_good", "c", "pass"),
    ]
    assert summary["checks"][0]["evidence"] == "evidence of a"
    # a passing check's fix is nobody's to act on; a warning keeps its fix
    assert summary["checks"][0]["fix"] == "" and summary["checks"][1]["fix"] == "fix b"

    failed = execute.run_notebooks(None, [books["good"], books["bad_check"]], False, tmp_path / "f")
    assert failed.exit_code == results.EXIT_CHECK_FAILED
    assert failed.notebooks[1].status == "failed"
    assert [c.name for c in failed.notebooks[1].checks] == ["d", "e"]  # the table shown before failing

    crashed = execute.run_notebooks(None, [books["crash"], books["good"]], False, tmp_path / "c")
    assert crashed.exit_code == results.EXIT_CRASHED
    first = crashed.notebooks[0]
    assert first.status == "crashed" and "boom" in first.error and first.cell == 4
    assert crashed.notebooks[1].status == "skipped"  # a failed step stops the steps that build on it


def test_verification_steps_each_run_after_one_fails(tmp_path: Path) -> None:
    d = tmp_path / "nb"
    d.mkdir()
    names = [
        _notebook(d, "50_verify", _finish(("probe", "fail"))),
        _notebook(d, "60_logs", _finish(("logs", "pass"))),
        _notebook(d, "90_teardown", _finish(("gone", "pass"))),
    ]
    run = execute.run_notebooks(None, names, False, tmp_path / "out")
    assert [n.status for n in run.notebooks] == ["failed", "ok", "skipped"]
    assert run.exit_code == results.EXIT_CHECK_FAILED


def test_shared_kernel_does_not_leak_variables(books: dict[str, str], tmp_path: Path) -> None:
    """...and each notebook's kernel knows the run's folder (where a change is recorded beside the
    run), whether the kernel is fresh or shared; the cell that tells it is not in the executed copy."""
    out = tmp_path / "out"
    knows = f"import os\nassert os.environ[{RUN_DIR_VARIABLE!r}] == {str(out)!r}"
    first = _notebook(tmp_path / "nb", "first", knows, "leftover = 1")
    records = tmp_path / "records"
    change = (  # a change notebook's record, written without naming the run: it lands beside it too
        "import datetime as dt\nfrom mtlskit.config import params as params_mod\n"
        "from mtlskit.verify import changerecords as cr\n"
        f"p = params_mod.sandbox_default({str(tmp_path / 'state')!r})\n"
        f"p['changes'] = {{'records': {str(records)!r}}}\np = params_mod.parse(p, 'p')\n"
        "now = dt.datetime.now(dt.UTC)\n"
        "r = cr.ChangeRecord(cr.stack_of(p), 'c1', 'trust', 1, 'me', now, now, {}, {}, 'applied', 0)\n"
        "cr.write_record(p, r)"
    )
    second = _notebook(tmp_path / "nb", "second", knows, change)
    run = execute.run_notebooks(None, [first, books["leak"], second], False, out)
    assert [n.status for n in run.notebooks] == ["ok", "ok", "ok"], [n.error for n in run.notebooks]
    beside = [f.name for f in (out / "changes").iterdir()]
    assert len(beside) == 1 and [f.name for f in records.iterdir()] == beside
    for name in ("first", "second"):  # a fresh kernel, then the shared one
        executed = nbformat.read(out / f"{name}.ipynb", as_version=4)
        assert RUN_DIR_VARIABLE not in executed.cells[0].source  # the parameters cell comes first again
        assert [c.execution_count for c in executed.cells[:2]] == [1, 2], name  # In [1] comes first


def test_report_puts_checks_first_and_hides_code(books: dict[str, str], tmp_path: Path) -> None:
    run = execute.run_notebooks(None, [books["good"], books["bad_check"]], False, tmp_path / "out")
    page = run.report.read_text() if run.report else ""
    assert page.index("<h2>Checks</h2>") < page.index("evidence of a") < page.index("good · ok")
    assert "exit code 1" in page and "fix e" in page
    assert "runbook.Step(None" not in page  # inputs hidden


def test_cli_exit_codes_and_stderr(books: dict[str, str], tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["run", "--out", str(tmp_path / "a"), books["good"]])
    assert ok.exit_code == 0, ok.output
    assert "good" in ok.output and "2 checks, 0 failed, 1 warning " in ok.output

    failed = runner.invoke(main, ["run", "--out", str(tmp_path / "b"), books["bad_check"]])
    assert failed.exit_code == 1
    assert "bad_check: check failed: e: evidence of e (fix: fix e)" in failed.stderr

    crashed = runner.invoke(main, ["run", "--out", str(tmp_path / "c"), books["crash"]])
    assert crashed.exit_code == 2
    assert "crash crashed at cell In [4]: ValueError: boom" in crashed.stderr

    bad = tmp_path / "bad.yaml"
    bad.write_text("target: sandbox\nproject: x\n")
    invalid = runner.invoke(main, ["run", "--params", str(bad), "--out", str(tmp_path / "d"), books["good"]])
    assert invalid.exit_code == 3 and "project" in invalid.stderr
    assert not (tmp_path / "d").exists()


def test_interrupted_run_leaves_no_kernel(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    import psutil

    d = tmp_path / "nb"
    d.mkdir()
    slow = _notebook(d, "slow", "import time\ntime.sleep(60)")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mtlskit.cli", "run", "--out", str(tmp_path / "out"), slow],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        kernels: list[psutil.Process] = []
        while time.monotonic() < deadline and not kernels:
            time.sleep(0.5)
            kernels = [
                p
                for p in psutil.Process(proc.pid).children(recursive=True)
                if "ipykernel" in " ".join(p.cmdline())
            ]
        assert kernels, "the run never started a kernel"
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == results.EXIT_TERMINATED  # 128 + SIGTERM, as shells report it
        gone, alive = psutil.wait_procs(kernels, timeout=10)
        assert not alive, f"kernel left running: {[p.pid for p in alive]}"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_private_key_in_an_output_is_removed_and_fails_the_run(
    books: dict[str, str], tmp_path: Path
) -> None:
    run = execute.run_notebooks(None, [books["key"]], False, tmp_path / "out")
    executed = (tmp_path / "out" / "key.ipynb").read_text()
    assert "MIIsecret" not in executed and "[private key removed by mtlskit]" in executed
    assert "MIIsecret" not in (run.report.read_text() if run.report else "")
    assert run.exit_code == results.EXIT_CHECK_FAILED
    assert [c.name for c in run.notebooks[0].checks if c.status == "fail"] == [execute.KEY_CHECK]
