"""Layers with a direction: the import contracts in pyproject.toml hold, and the notebooks, which no
import checker sees because they are not a package, import only the kit's public modules."""

from __future__ import annotations

import ast
import importlib.util
import json
from pathlib import Path

from mtlskit.config import paths

NOTEBOOKS = sorted((paths.repo_root() / "notebooks").glob("*.ipynb"))
# What a notebook cell may import besides the kit: nothing today; a display helper would go here.
ALLOWED_OUTSIDE_THE_KIT: set[str] = set()


def code_cells(notebook: Path) -> list[str]:
    nb = json.loads(notebook.read_text())
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def is_kit_module(name: str) -> bool:
    try:
        return name.startswith("mtlskit.") and importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a name inside a module, not a module
        return False


def imported_modules(source: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            # `from mtlskit.verify import probe` imports the module mtlskit.verify.probe
            found |= {f"{base}.{a.name}" if is_kit_module(f"{base}.{a.name}") else base for a in node.names}
    return found


def test_the_import_contracts_hold() -> None:
    """The same check `make lint` runs (lint-imports), so the fast lane catches a wrong import too."""
    from importlinter.cli import lint_imports

    assert lint_imports(config_filename=str(paths.repo_root() / "pyproject.toml"), no_cache=True) == 0


def test_notebooks_import_only_the_kit_and_never_the_sandbox() -> None:
    assert NOTEBOOKS, "no notebooks found"
    wrong = []
    for nb in NOTEBOOKS:
        for module in sorted(set().union(*(imported_modules(c) for c in code_cells(nb)))):
            top = module.split(".")[0]
            if module.startswith("mtlskit.sandbox") or (
                top != "mtlskit" and module not in ALLOWED_OUTSIDE_THE_KIT
            ):
                wrong.append(f"{nb.name}: {module}")
            elif top == "mtlskit" and importlib.util.find_spec(module) is None:
                wrong.append(f"{nb.name}: {module} does not exist")
    assert not wrong, "notebooks may import only mtlskit's public modules:\n" + "\n".join(wrong)


def test_the_import_scan_sees_every_form_of_import() -> None:
    source = "import os\nfrom mtlskit import runbook\nfrom mtlskit.verify import probe\nfrom mtlskit.sandbox import process\n"
    assert imported_modules(source) == {
        "os",
        "mtlskit.runbook",
        "mtlskit.verify.probe",
        "mtlskit.sandbox.process",
    }
    assert imported_modules(
        "import mtlskit.runner.tables as t\nfrom mtlskit.verify.logs import entries_frame\n"
    ) == {
        "mtlskit.runner.tables",
        "mtlskit.verify.logs",
    }
