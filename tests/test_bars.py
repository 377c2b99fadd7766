"""Progress bars: a widget where JupyterLab renders it, a text line on stdout everywhere else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from mtlskit.core import bars

IN_LAB = {bars.SESSION_ENV: "notebooks/50_verify.ipynb"}


@pytest.mark.parametrize(
    ("env", "kernel", "widgets", "expected"),
    [
        (IN_LAB, True, True, "widget"),  # a kernel JupyterLab started for a notebook
        ({**IN_LAB, bars.HEADLESS_ENV: "1"}, True, True, "text"),  # mtlskit run, nbval: always text
        ({**IN_LAB, bars.HEADLESS_ENV: "0"}, True, True, "widget"),  # switched off by hand
        ({}, True, True, "text"),  # papermill or nbclient started the kernel: nobody renders widgets
        (IN_LAB, False, True, "text"),  # a terminal or a script
        (IN_LAB, True, False, "text"),  # ipywidgets missing: a line, not tqdm's warning
    ],
)
def test_the_bar_follows_where_the_code_runs(
    env: dict[str, str], kernel: bool, widgets: bool, expected: str
) -> None:
    assert bars.choose(env, kernel=kernel, widgets=widgets) == expected


def test_outside_a_kernel_the_process_itself_reads_as_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(bars.SESSION_ENV, "x.ipynb")
    monkeypatch.delenv(bars.HEADLESS_ENV, raising=False)
    assert not bars.in_kernel()  # pytest is not an IPython kernel
    assert bars.choose() == "text"


def test_headless_wait_is_one_plain_line_on_stdout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(bars.HEADLESS_ENV, "1")
    with bars.bar("waiting for managed certificate mtls-cert", unit="s") as shown:
        shown.set_postfix({"status": "PROVISIONING", "elapsed": "3s"})
    out, err = capsys.readouterr()
    assert err == ""
    last = out.replace("\r", "\n").strip().splitlines()[-1]
    assert last == "waiting for managed certificate mtls-cert, status=PROVISIONING, elapsed=3s"


def test_headless_counted_wait_shows_how_far(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(bars.HEADLESS_ENV, "1")
    with bars.bar("probes found", total=5, bar_format="{desc}: {n}/{total}") as shown:
        bars.set_count(shown, 2, total=4)  # the wait learned that only four probes expect an entry
    last = capsys.readouterr().out.replace("\r", "\n").strip().splitlines()[-1]
    assert last == "probes found: 2/4"


class Shown(list[Any]):
    def __call__(self, obj: Any, *_: Any, **__: Any) -> None:
        self.append(obj)


def test_in_jupyterlab_the_wait_is_a_widget_and_prints_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import ipywidgets
    import tqdm.notebook

    shown = Shown()
    monkeypatch.setattr(tqdm.notebook, "display", shown)  # what the front end would be sent
    monkeypatch.delenv(bars.HEADLESS_ENV, raising=False)
    monkeypatch.setenv(bars.SESSION_ENV, "notebooks/60_logs.ipynb")
    monkeypatch.setattr(bars, "in_kernel", lambda: True)
    with bars.bar("probes found in the request logs", total=5, bar_format="{desc}: {n}/{total}") as b:
        bars.set_count(b, 3, total=4)
    assert capsys.readouterr().out == ""
    [container] = shown
    assert isinstance(container, ipywidgets.HBox)
    [progress] = [w for w in container.children if isinstance(w, ipywidgets.FloatProgress)]
    assert (progress.value, progress.max) == (3, 4)
    assert container.children[0].value.replace("\u2007", " ").startswith("probes found in the request logs")


@pytest.mark.e2e  # starts a kernel
def test_mtlskit_run_kernel_writes_text_lines_never_widget_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even when the run is started from a JupyterLab session's environment, the run's kernel is headless."""
    from mtlskit.runner import execute

    monkeypatch.setenv(bars.SESSION_ENV, "notebooks/00_preflight.ipynb")
    monkeypatch.delenv(bars.HEADLESS_ENV, raising=False)
    wait = (
        "from mtlskit.core import bars\n"
        "with bars.bar('waiting for the GKE Ingress controller', unit='s') as b:\n"
        "    b.set_postfix(elapsed='1s')"
    )
    cells = [new_code_cell("params_file = None\napply = False", metadata={"tags": ["parameters"]})]
    nb = new_notebook(cells=[*cells, new_code_cell(wait)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "wait.ipynb")
    run = execute.run_notebooks(None, [str(tmp_path / "wait.ipynb")], False, tmp_path / "out", report=False)
    [executed] = (tmp_path / "out").rglob("wait.ipynb")
    outputs = nbformat.read(executed, as_version=4).cells[-1].outputs
    assert "application/vnd.jupyter.widget-view+json" not in json.dumps(outputs), run
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream" and o.name == "stdout")
    assert "waiting for the GKE Ingress controller, elapsed=1s" in text, outputs
