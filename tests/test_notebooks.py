"""The committed notebooks as runbook pages: clean (no outputs), parameterised, free of logic, and
keeping their promises: every notebook a page or a check's fix names exists, and every page says why,
what can go wrong and how to check by hand (DESIGN §5)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest

from mtlskit.config import paths

ROOT = paths.repo_root()
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NAMES = {nb.stem for nb in NOTEBOOKS}
REFERENCE = re.compile(r"\b\d\d_[a-z]+(?:_[a-z]+)*\b")
# A cell makes calls and shows a result; a branch or a loop is logic, and logic belongs in lib/.
LOGIC = (ast.If, ast.For, ast.While, ast.With, ast.Try, ast.FunctionDef, ast.ClassDef, ast.Lambda)


def cells(notebook: Path, kind: str) -> list[dict[str, Any]]:
    return [c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == kind]


def text(cell: dict[str, Any]) -> str:
    return "".join(cell["source"])


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs_and_with_a_parameters_cell(notebook: Path) -> None:
    code = cells(notebook, "code")
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "strip outputs"
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged `parameters`"
    assigned = {t.id for n in ast.parse(text(tagged[0])).body if isinstance(n, ast.Assign) for t in n.targets}  # type: ignore[attr-defined]
    assert {"params_file", "apply"} <= assigned
    # nbformat 4.5 wants an id on every cell; without one, every run warns and future nbformat refuses it
    ids = [c.get("id") for c in json.loads(notebook.read_text())["cells"]]
    assert all(ids) and len(set(ids)) == len(ids), "every cell needs its own id"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_cells_hold_calls_not_logic(notebook: Path) -> None:
    for cell in cells(notebook, "code"):
        found = [type(n).__name__ for n in ast.walk(ast.parse(text(cell))) if isinstance(n, LOGIC)]
        assert not found, f"{notebook.stem}: move the {found} in this cell into lib/:\n{text(cell)}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_page_says_why_what_can_go_wrong_and_how_to_check_by_hand(notebook: Path) -> None:
    prose = "\n".join(text(c) for c in cells(notebook, "markdown")).lower()
    missing = [w for w in ("why", "go wrong", "by hand") if w not in prose]
    assert not missing, f"{notebook.stem}'s markdown never says: {missing}"


def test_every_notebook_named_in_pages_and_fixes_exists() -> None:
    """A page or a check's fix that sends the reader to a notebook must name one that is there."""
    sources = {
        nb.name: "\n".join(text(c) for c in cells(nb, "markdown") + cells(nb, "code")) for nb in NOTEBOOKS
    }
    sources |= {p.name: p.read_text() for p in sorted((ROOT / "lib" / "mtlskit").glob("*.py"))}
    named = {(where, ref) for where, body in sources.items() for ref in REFERENCE.findall(body)}
    unknown = sorted(f"{where}: {ref}" for where, ref in named if ref not in NAMES)
    assert named and not unknown, f"no such notebook: {unknown}"


def test_gateway_notebooks_run_under_nbval_on_a_built_gateway(tmp_path: Path) -> None:
    """gw20, the Gateway page with the most cells, as committed (plan only, its default params
    replaced through MTLSKIT_PARAMS by a sandbox of its own) on a Gateway built beforehand: it plans no
    change, waits, and its status and load-balancer checks pass. (Each nbval kernel costs seconds;
    gw10's and gw90's calls run in tests/test_gateway_build_e2e.py.)"""
    import os

    import yaml

    from mtlskit.build import stack_gateway
    from mtlskit.cloud.clients import build_clients
    from mtlskit.config import params as params_mod
    from mtlskit.sandbox import process
    from tests.conftest import free_port, run_nbval

    state = tmp_path / "sandbox"
    data = params_mod.sandbox_default(state, ROOT / "params" / "sandbox-gateway.yaml")
    data["sandbox"]["data_plane_port"] = free_port()
    params_file = tmp_path / "gateway.yaml"
    params_file.write_text(yaml.safe_dump(data))
    params = params_mod.load(params_file)
    try:
        stack_gateway.build(build_clients(params), params, timeout=60)
        env = {**os.environ, params_mod.PARAMS_ENV: str(params_file)}
        result = run_nbval([ROOT / "notebooks" / "gw20_gateway.ipynb"], ROOT, env)
    finally:
        process.stop(state)
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout
