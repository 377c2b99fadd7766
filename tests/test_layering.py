"""Layers with a direction: the import contracts in pyproject.toml hold, and the notebooks, which no
import checker sees because they are not a package, import only the kit's public modules."""

from __future__ import annotations

import ast
import importlib.util
import json
from pathlib import Path

import grimp

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


def import_circles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Every set of modules that import each other round a circle (Tarjan's strongly connected
    components), type-only imports included."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return circles


def test_the_kit_has_no_import_circle_type_only_imports_included() -> None:
    graph = grimp.build_graph("mtlskit", exclude_type_checking_imports=False, cache_dir=None)
    assert import_circles(graph) == []


def test_the_circle_finder_finds_a_circle() -> None:
    graph = grimp.ImportGraph()
    for module in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(module)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.x")
    graph.add_import(importer="a.z", imported="a.x")
    assert import_circles(graph) == [["a.x", "a.y"]]


def test_only_the_edges_sit_beside_the_subpackages() -> None:
    """The tree shows the layers: every module lives in a subpackage but the two edges."""
    package = paths.repo_root() / "lib" / "mtlskit"
    loose = sorted(p.name for p in package.glob("*.py") if p.name != "__init__.py")
    assert loose == ["cli.py", "runbook.py"]
    for sub in (p for p in package.iterdir() if p.is_dir() and not p.name.startswith("__")):
        assert (sub / "__init__.py").is_file(), sub
        assert ast.get_docstring(ast.parse((sub / "__init__.py").read_text())), f"{sub.name} has no docstring"
