"""One progress bar for every wait: a widget where a person watches JupyterLab, a text line elsewhere.

A widget bar in a headless run would leave widget state in the executed notebook (a report shows it
as "Loading widget..." or nothing at all); a text bar in JupyterLab is a line that rewrites itself,
readable but easy to miss. So the choice is made from where the code runs, never from a parameter:

- `MTLSKIT_HEADLESS` set (by `mtlskit run`'s kernel, by the test suite's nbval runs, or by hand for a
  plain papermill run): text.
- Not inside an IPython kernel (a terminal, a script, the command line): text.
- A kernel started by a Jupyter server (JupyterLab, Notebook): widget. The server names the kernel's
  session in `JPY_SESSION_NAME`; papermill, nbval and nbclient start kernels without it.
- ipywidgets missing: text, rather than tqdm's warning about it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal

from tqdm.std import tqdm

HEADLESS_ENV = "MTLSKIT_HEADLESS"
SESSION_ENV = "JPY_SESSION_NAME"  # set by jupyter_server for a kernel it starts for a notebook

Kind = Literal["widget", "text"]


def in_kernel() -> bool:
    """True inside an IPython kernel that talks to a client over ZMQ (not a terminal IPython)."""
    shell_module = sys.modules.get("IPython")
    if shell_module is None:
        return False
    shell = shell_module.get_ipython()  # type: ignore[attr-defined]
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def widgets_installed() -> bool:
    return importlib.util.find_spec("ipywidgets") is not None


def choose(
    env: Mapping[str, str] | None = None, kernel: bool | None = None, widgets: bool | None = None
) -> Kind:
    """Which bar fits where this runs; the inputs default to the live process's."""
    env = os.environ if env is None else env
    if env.get(HEADLESS_ENV, "").strip() not in ("", "0"):
        return "text"
    if not (in_kernel() if kernel is None else kernel):
        return "text"
    if not env.get(SESSION_ENV):
        return "text"
    return "widget" if (widgets_installed() if widgets is None else widgets) else "text"


@contextmanager
def bar(desc: str, total: float | None = None, unit: str = "it", **options: Any) -> Iterator[tqdm]:
    """A tqdm bar the caller updates (`update`, `n` + `refresh`, `set_postfix`).

    Text bars go to stdout: a report shows stderr in red, and this is progress, not an error. With no
    total the text line is `{desc}{postfix}` (elapsed time and what the wait knows so far), since a
    bar without an end says nothing. Extra `options` go to tqdm (e.g. `bar_format` for the text line).
    """
    kind = choose()
    if kind == "widget":
        from tqdm.notebook import tqdm as widget_tqdm

        options.pop("bar_format", None)  # the widget draws its own bar; a text format would hide it
        options.pop("file", None)
        with widget_tqdm(total=total, desc=desc, unit=unit, **options) as widget:
            yield widget
        return
    options.setdefault("file", sys.stdout)
    if total is None:
        options.setdefault("bar_format", "{desc}{postfix}")
    with tqdm(total=total, desc=desc, unit=unit, **options) as line:
        yield line


def set_count(shown: tqdm, n: float, total: float | None = None) -> None:
    """Move a bar to `n` of `total`. A wait may learn its total late (how many probes expect a log
    entry); tqdm.notebook's widget keeps its own maximum, so that is moved too."""
    if total is not None and total != shown.total:
        shown.total = total
        children = getattr(getattr(shown, "container", None), "children", ())
        if len(children) == 3:  # tqdm.notebook's row: description, progress widget, numbers
            children[1].max = total
    shown.n = n
    shown.refresh()
