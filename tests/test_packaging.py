"""The conda environment and pyproject.toml must install the same thing."""

from __future__ import annotations

import re
import tomllib

import yaml

from mtlskit import paths


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
