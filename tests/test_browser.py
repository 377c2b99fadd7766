"""JupyterLab in a real browser: the notebooks a new engineer opens first run top to bottom without an
error output, 00_design draws its diagram, a lab runs, and a wait's progress bar renders as a widget.

JupyterLab serves a temporary copy of `notebooks/` (running cells there changes no committed file) and
its kernels read the params through `MTLSKIT_PARAMS`, which points at a sandbox of this module's own.
Chromium is the system's (`make browser` installs it); Playwright never downloads one. Screenshots land
in `test-artifacts/`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat
import pytest
import yaml

from mtlskit.config import params, paths
from mtlskit.core import bars
from mtlskit.sandbox import process
from tests.conftest import free_port

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

CHROMIUM = Path(os.environ.get("MTLSKIT_CHROMIUM", "/usr/bin/chromium"))
# Without the background-networking switches Chromium stalls on a network that reaches nothing.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = paths.repo_root() / "test-artifacts"
KERNEL = "mtlskit"  # the kernelspec `make venv` installs; the notebooks name it
ERROR_OUTPUT = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
# A lab that needs no trainee action to run through: it builds the stack, sends its cases and judges
# the (still empty) predictions as "not yet", which is an answer, not an error.
LAB = "labs/01_client_certificates.ipynb"
DESIGN = "00_design.ipynb"
FORWARDING_RULE = "mtls-fr"  # params/sandbox.yaml's, which the diagram labels
RAN = re.compile(r"^\[\d+\]:$")  # a cell that ran shows its execution count; [*] still runs
# JupyterLab settings for a test: every cell in the DOM (no windowing). No news prompt and no update
# check come from the project's own Jupyter config (jupyter/, which `make lab` uses too), not from here.
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}
PROJECT_JUPYTER_CONFIG = paths.repo_root() / "jupyter"
NEWS_PROMPT = "official Jupyter news"  # JupyterLab's toast: "Would you like to get notified about ..."


# ---- MTLSKIT_PARAMS (no server needed) ------------------------------------------------------------------


@pytest.mark.parametrize("named", [None, "params/sandbox.yaml"])
def test_mtlskit_params_replaces_the_default_wherever_it_is_named(
    named: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = tmp_path / "mine.yaml"
    monkeypatch.setenv(params.PARAMS_ENV, str(mine))
    assert params.params_file(named) == mine
    other = tmp_path / "other.yaml"
    other.write_text("target: sandbox\n")
    assert params.params_file(str(other)) == other  # a file named on purpose is never replaced


def test_mtlskit_params_pointing_nowhere_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(params.PARAMS_ENV, str(tmp_path / "gone.yaml"))
    with pytest.raises(params.ParamsError, match="MTLSKIT_PARAMS=.*gone.yaml.*fix or unset it"):
        params.load("params/sandbox.yaml")


# ---- JupyterLab --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lab:
    url: str
    token: str
    root: Path


def _params_file(directory: Path) -> Path:
    """The default params with the state directory and data-plane port of this module's sandbox."""
    state = directory / "state"
    text = (paths.repo_root() / "params" / "sandbox.yaml").read_text().replace("../.sandbox", str(state))
    data = yaml.safe_load(text)
    data["sandbox"]["data_plane_port"] = free_port()
    path = directory / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _wait_for_server(url: str, token: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"jupyter lab exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"jupyter lab did not answer within 60s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if not CHROMIUM.is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: run `make browser` (installs the distribution's chromium)")
    kernelspec = Path(sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL / "kernel.json"
    if not kernelspec.is_file():
        pytest.fail(f"no {KERNEL!r} kernelspec in {sys.prefix}: run `make venv` (it installs one)")
    base = tmp_path_factory.mktemp("jupyterlab")
    root = base / "notebooks"
    shutil.copytree(
        paths.repo_root() / "notebooks", root, ignore=shutil.ignore_patterns(".ipynb_checkpoints")
    )
    for name, values in SETTINGS.items():
        target = base / "settings" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    params_file = _params_file(base)
    env = {k: v for k, v in os.environ.items() if k not in (bars.HEADLESS_ENV, bars.SESSION_ENV)}
    env.update(
        {
            params.PARAMS_ENV: str(params_file),
            "JUPYTER_CONFIG_DIR": str(base / "config"),
            "JUPYTER_CONFIG_PATH": str(PROJECT_JUPYTER_CONFIG),  # as `make lab` sets it
            "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        }
    )
    port, token = free_port(), secrets.token_hex(16)
    url = f"http://127.0.0.1:{port}"
    log = base / "jupyterlab.log"
    command = [
        str(Path(sys.prefix) / "bin" / "jupyter"),
        "lab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        *(["--allow-root"] if os.geteuid() == 0 else []),  # CI containers run as root
    ]
    with log.open("wb") as out:
        server = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=base)
    try:
        _wait_for_server(url, token, server, log)
        yield Lab(url, token, root)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        process.stop(Path(params.load(params_file).sandbox.state_dir))


@pytest.fixture(scope="module")
def browser(lab: Lab) -> Iterator[BrowserContext]:
    """One Chromium for the module, with a fresh profile (Playwright passes it as --user-data-dir)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(lab.root.parent / "chromium-profile"),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield context
        finally:
            context.close()


def open_notebook(browser: BrowserContext, lab: Lab, path: str) -> Page:
    """Open a notebook in JupyterLab and wait for its kernel; accept the kernel dialog if one asks."""
    page = browser.new_page()
    # A workspace of its own, reset: no tab restored from an earlier test can take the menu's commands.
    workspace = Path(path).stem.replace("_", "-")
    page.goto(f"{lab.url}/lab/workspaces/{workspace}/tree/{path}?reset&token={lab.token}")
    panel = page.locator(".jp-NotebookPanel:visible")
    panel.wait_for(timeout=60_000)
    dialog = page.locator(".jp-Dialog")
    kernel = panel.locator(".jp-Toolbar-kernelName")
    idle = panel.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]')
    deadline = time.monotonic() + 60
    while not (idle.count() and "mtlskit" in kernel.inner_text()):
        if dialog.count():  # "Select Kernel": the notebook's own (mtlskit) is preselected
            dialog.locator(".jp-mod-accept").click()
        if time.monotonic() > deadline:
            shot = screenshot(page, f"failed-kernel-{Path(path).stem}")
            pytest.fail(f"{path}: no idle mtlskit kernel within 60s (kernel {kernel.inner_text()!r}; {shot})")
        page.wait_for_timeout(200)
    return page


def run_all_cells(page: Page, path: str, timeout: float = 120) -> None:
    """Run -> Run All Cells from the menu bar, then wait until every code cell has run."""
    panel = page.locator(".jp-NotebookPanel:visible")
    panel.locator(".jp-InputArea-prompt").first.click()  # the notebook, not the file browser, is current
    page.locator(".lm-MenuBar-item", has_text="Run").first.click()
    page.locator('.lm-Menu-item[data-command="runmenu:run-all"]:not(.lm-mod-disabled)').click()
    prompts = panel.locator(".jp-CodeCell .jp-InputArea-prompt")
    deadline = time.monotonic() + timeout
    while True:
        texts = prompts.all_inner_texts()
        done = all(RAN.match(t.strip()) for t in texts)
        if done and panel.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').count():
            return
        if time.monotonic() > deadline:
            shot = screenshot(page, f"failed-run-{Path(path).stem}")
            pytest.fail(f"{path}: cells still running after {timeout:.0f}s: {texts} ({shot})")
        page.wait_for_timeout(250)


def assert_no_error_output(page: Page, path: str) -> None:
    panel = page.locator(".jp-NotebookPanel:visible")
    errors = panel.locator(ERROR_OUTPUT).all_inner_texts()
    assert not errors, f"{path} wrote to stderr or raised:\n" + "\n---\n".join(errors)
    outputs = "\n".join(panel.locator(".jp-OutputArea-output").all_inner_texts())
    assert "Traceback" not in outputs, outputs


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    print(f"screenshot: {path}")
    return path


@pytest.mark.e2e  # a sandbox, a Jupyter server, kernels and a browser
def test_design_page_runs_in_jupyterlab_and_draws_the_diagram(browser: BrowserContext, lab: Lab) -> None:
    page = open_notebook(browser, lab, DESIGN)
    run_all_cells(page, DESIGN)
    assert_no_error_output(page, DESIGN)
    # Inline <svg> from the diagram's HTML, or an <img> of the SVG source where only image/svg+xml is sent.
    drawn = page.locator(
        ".jp-NotebookPanel:visible .jp-OutputArea-output svg, "
        '.jp-NotebookPanel:visible .jp-OutputArea-output img[src^="data:image/svg+xml"]'
    )
    assert drawn.count() >= 1, "00_design shows no SVG diagram"
    diagram = drawn.first
    diagram.scroll_into_view_if_needed()
    box = diagram.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 150, f"the diagram is not drawn at size: {box}"
    if diagram.evaluate("e => e.tagName") == "IMG":
        assert diagram.evaluate("e => e.complete && e.naturalWidth > 0"), "the diagram image did not load"
    else:
        assert diagram.locator("text", has_text=FORWARDING_RULE).count(), (
            "the diagram lacks the params' names"
        )
    screenshot(page, "jupyterlab-00_design")
    page.close()


@pytest.mark.e2e  # a sandbox, a Jupyter server, kernels and a browser
def test_lab_runs_in_jupyterlab(browser: BrowserContext, lab: Lab) -> None:
    page = open_notebook(browser, lab, LAB)
    run_all_cells(page, LAB, timeout=180)
    assert_no_error_output(page, LAB)
    outputs = page.locator(".jp-NotebookPanel:visible .jp-OutputArea-output")
    assert "not yet" in "\n".join(outputs.all_inner_texts()), "the lab judged no prediction"
    outputs.last.scroll_into_view_if_needed()
    screenshot(page, "jupyterlab-" + Path(LAB).stem)
    page.close()


@pytest.mark.e2e  # a sandbox, a Jupyter server, kernels and a browser
def test_a_wait_shows_a_widget_progress_bar_in_jupyterlab(browser: BrowserContext, lab: Lab) -> None:
    source = (
        "from mtlskit.core import bars\n"
        "with bars.bar('probes found in the request logs', total=5, unit='probe') as shown:\n"
        "    bars.set_count(shown, 3, total=3)  # the wait learned its total late"
    )
    # A deliberate stderr line shows that the error-output selector sees what it must refuse elsewhere.
    stderr = "import sys\nprint('deliberate stderr line', file=sys.stderr)"
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source), nbformat.v4.new_code_cell(stderr)]
    )
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python (mtlskit)", "language": "python"}
    nbformat.write(nb, lab.root / "progress.ipynb")
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page = open_notebook(browser, lab, "progress.ipynb")
    run_all_cells(page, "progress.ipynb")
    errors = page.locator(f".jp-NotebookPanel:visible {ERROR_OUTPUT}").all_inner_texts()
    assert [e.strip() for e in errors] == ["deliberate stderr line"], errors
    widget = page.locator(".jp-NotebookPanel:visible .jupyter-widgets.widget-hprogress")
    try:
        widget.wait_for(timeout=20_000)
    except PlaywrightTimeout:
        shot = screenshot(page, "failed-progress-widget")
        outputs = page.locator(".jp-NotebookPanel:visible .jp-OutputArea-output").all_inner_texts()
        pytest.fail(f"no progress widget rendered ({shot}); outputs: {outputs}")
    row = widget.locator("xpath=..")  # tqdm's row: description, bar, counts
    assert "3/3" in row.inner_text().replace("\u2007", " "), row.inner_text()
    assert widget.locator(".progress-bar").evaluate("e => e.style.width") == "100%"  # max moved to 3
    assert "probes found" not in "".join(page.locator(".jp-RenderedText").all_inner_texts())  # no text line
    screenshot(page, "jupyterlab-progress-widget")
    page.close()


@pytest.mark.e2e
def test_a_first_time_user_gets_no_news_prompt_from_the_project_s_jupyter_config(
    browser: BrowserContext, lab: Lab
) -> None:
    """The server applies jupyter/labconfig's defaults (its settings API says so), and a notebook opened
    by a user with no settings of their own shows no news toast."""
    url = f"{lab.url}/lab/api/settings/@jupyterlab/apputils-extension:notification?token={lab.token}"
    with urllib.request.urlopen(url, timeout=30) as resp:
        plugin = json.load(resp)
    # overrides become the schema's defaults; the user's own settings (none here) would come on top
    defaults = {k: v.get("default") for k, v in plugin["schema"]["properties"].items()}
    assert defaults["fetchNews"] == "false" and defaults["checkForUpdates"] is False, defaults
    assert not {"fetchNews", "checkForUpdates"} & set(plugin["settings"]), plugin["settings"]
    page = open_notebook(browser, lab, DESIGN)
    page.wait_for_timeout(3000)  # the prompt comes once the notification plugin has started
    # The status bar's notification count: the news prompt is a notification, and a count of 0 read from
    # an element that exists means none came (a renamed toast class cannot make it pass unseen).
    assert page.locator(".jp-Notification-Status-Text").inner_text() == "0"
    toasts = page.locator(".Toastify__toast").all_inner_texts()
    assert not [t for t in toasts if NEWS_PROMPT in t], toasts
    page.close()


@pytest.mark.e2e
def test_a_long_request_log_table_is_bounded_and_unfolds_every_row_on_a_click(
    browser: BrowserContext, lab: Lab
) -> None:
    source = (
        "import pandas as pd\n"
        "from mtlskit import runbook\n"
        "frame = pd.DataFrame({'status': range(300), 'outcome': ['accepted'] * 300})\n"
        "runbook.entries_view(frame)"
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python (mtlskit)", "language": "python"}
    nbformat.write(nb, lab.root / "entries.ipynb")
    page = open_notebook(browser, lab, "entries.ipynb")
    run_all_cells(page, "entries.ipynb")
    output = page.locator(".jp-NotebookPanel:visible .jp-OutputArea-output").first
    shown, folded = output.locator("table").nth(0), output.locator("details table")
    assert shown.locator("tbody tr").count() == 20
    assert "20 of 300 rows shown; all of them: the variable `frame`" in output.inner_text()
    assert not folded.is_visible()
    output.locator("summary", has_text="show all 300 rows").click()
    folded.wait_for(state="visible", timeout=10_000)
    assert folded.locator("tbody tr").count() == 300
    # the unfolded table scrolls inside its own box instead of lengthening the page by 300 rows
    box, table = output.locator("details div").bounding_box(), folded.bounding_box()
    assert box and table and box["height"] < table["height"], (box, table)
    screenshot(page, "jupyterlab-entries-view")
    page.close()
