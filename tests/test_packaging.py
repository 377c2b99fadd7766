"""The conda environment and pyproject.toml must install the same thing."""

from __future__ import annotations

import re
import tomllib

import yaml

from mtlskit.config import paths


def test_environment_yml_installs_the_pyproject_package_with_dev_extras() -> None:
    root = paths.repo_root()
    env = yaml.safe_load((root / "environment.yml").read_text())
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    deps = env["dependencies"]
    pip_block = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    assert pip_block == ["-e .[dev]"], "environment.yml must install exactly the pyproject package"
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python"))
    minimum = re.search(r">=\s*(\d+\.\d+)", project["requires-python"]).group(1)
    assert python.split("=")[-1].startswith(minimum.split(".")[0])
    assert tuple(map(int, python.split("=")[-1].split("."))) >= tuple(map(int, minimum.split(".")))
    assert "dev" in project["optional-dependencies"]


def test_the_kit_imports_the_sandbox_only_to_start_it() -> None:
    """Layers: the kit talks to the sandbox over HTTP like to Google; it may start and stop it."""
    import ast

    allowed = {"mtlskit.sandbox.process", "mtlskit.sandbox.__main__"}
    offenders = []
    for path in sorted((paths.repo_root() / "lib" / "mtlskit").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            modules: list[str] = []
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules = [
                    f"{node.module}.{a.name}" if node.module == "mtlskit.sandbox" else node.module
                    for a in node.names
                ]
            offenders += [
                f"{path.name}: {m}" for m in modules if m.startswith("mtlskit.sandbox") and m not in allowed
            ]
    assert offenders == []
