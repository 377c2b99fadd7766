"""One HTML page per headless run: every check first, then what each notebook showed (inputs hidden),
so whoever reads the page after a scheduled run sees the verdict before the detail."""

from __future__ import annotations

import html
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from mtlskit.runner.results import EXIT_MEANING, RunResult

STATUS_COLOURS = {
    "pass": "#1e7e34",
    "ok": "#1e7e34",
    "warn": "#b8860b",
    "fail": "#c0392b",
    "failed": "#c0392b",
    "crashed": "#c0392b",
    "skipped": "#6c757d",
}
HIDDEN_TAGS = {"parameters", "injected-parameters"}


def _table(rows: list[dict[str, object]], columns: list[str]) -> str:
    def cell(col: str, value: object) -> str:
        text = "" if value is None else str(value)
        colour = STATUS_COLOURS.get(text) if col == "status" else None
        style = f";color:{colour};font-weight:bold" if colour else ""
        return f'<td style="text-align:left{style}">{html.escape(text)}</td>'

    def shown(row: dict[str, object]) -> dict[str, object]:
        # a passing check's fix is noise in a summary: the reader acts only on what did not pass
        return {**row, "fix": ""} if row.get("status") == "pass" else row

    head = "".join(f'<th style="text-align:left">{html.escape(c)}</th>' for c in columns)
    body = "".join("<tr>" + "".join(cell(c, shown(r).get(c)) for c in columns) + "</tr>" for r in rows)
    return f'<table class="dataframe"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _html_cell(markup: str) -> nbformat.NotebookNode:
    return new_code_cell(source="", outputs=[new_output("display_data", data={"text/html": markup})])


def worst_first(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Failures, then warnings, then passes; a stable sort keeps the run's order within each."""
    rank = {"fail": 0, "warn": 1, "pass": 2}
    return sorted(rows, key=lambda r: rank.get(r["status"], 3))


def summary_html(run: RunResult) -> str:
    code = run.exit_code
    failed = sum(1 for r in run.check_rows() if r["status"] == "fail")
    return (
        f"<h1>mtlskit run: {html.escape(Path(run.params_file).name)}</h1>"
        f"<p>started {html.escape(run.started)} · apply={run.apply} · "
        f"<b>exit code {code}</b>: {EXIT_MEANING[code]} · {len(run.check_rows())} checks, {failed} failed</p>"
        "<h2>Checks</h2><p>what did not pass first, in run order within each status</p>"
        + _table(worst_first(run.check_rows()), ["notebook", "check", "status", "evidence", "fix"])  # type: ignore[arg-type]
        + "<h2>Notebooks</h2>"
        + _table(
            [n.summary() for n in run.notebooks],
            ["notebook", "status", "seconds", "checks", "failed_checks", "error", "cell"],
        )
    )


def build_report_notebook(run: RunResult) -> nbformat.NotebookNode:
    """The summary, then each executed notebook's cells under a heading of its own."""
    cells = [_html_cell(summary_html(run))]
    for result in run.notebooks:
        cells.append(new_markdown_cell(f"---\n# {result.notebook} · {result.status}"))
        if result.path and Path(result.path).is_file():
            executed = nbformat.read(result.path, as_version=4)
            shown = [c for c in executed.cells if not HIDDEN_TAGS & set(c.metadata.get("tags", []))]
            for i, c in enumerate(shown):
                c["id"] = f"{result.notebook}-{i}"  # ids stay unique when notebooks are joined
            cells += shown
        elif result.error:
            cells.append(new_markdown_cell(html.escape(result.error)))
    nb = new_notebook(cells=cells)
    nb.metadata["title"] = f"mtlskit run {run.started}"
    return nb


def write_report(run: RunResult) -> Path:
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(build_report_notebook(run))
    path = run.out_dir / "report.html"
    path.write_text(body)
    return path
