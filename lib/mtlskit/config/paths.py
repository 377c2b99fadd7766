"""Where things live on disk.

Notebooks run with cwd `notebooks/` in JupyterLab and with an arbitrary cwd under papermill or
pytest, so every relative path in the kit is resolved against the repository root, never the cwd.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml


def repo_root() -> Path:
    """The checkout that holds `params/` and `notebooks/`.

    MTLSKIT_ROOT wins (an installed kit running from a container image); otherwise the package's own
    location inside `lib/mtlskit/config/` tells us where the checkout is.
    """
    env = os.environ.get("MTLSKIT_ROOT")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parents[3]


def resolve(path: str | os.PathLike[str], base: Path | None = None) -> Path:
    """Absolute path for `path`; relative paths are taken from `base` (default: the repository root)."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    return ((base or repo_root()) / p).resolve()


def default_params_file() -> Path:
    return repo_root() / "params" / "sandbox.yaml"


def default_params_files() -> tuple[Path, ...]:
    """The params files the committed notebooks name as their default: the sandbox's split topology
    (the runbook) and its Gateway topology (the gw notebooks). `MTLSKIT_PARAMS` replaces either."""
    return (default_params_file(), repo_root() / "params" / "sandbox-gateway.yaml")


class _ManifestDumper(yaml.SafeDumper):
    """Certificates as literal blocks and no folded lines, so the file reads like a hand-written one."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_ManifestDumper.add_representer(str, _str)


def write_manifest(project: str, stack: str, filename: str, body: Any) -> Path:
    """Write `body` as YAML to `runs/manifests/<project>-<stack>/<filename>`; return its absolute path.

    The runbook's equivalent commands name these files (`kubectl apply -f …`, `gcloud … import
    --source=…`), so a person can run exactly what the kit applies. One fixed directory per stack keeps
    the printed command stable between runs. Certificates are public; private keys must never land
    here, so key material is refused outright. The write is atomic: two plans of the same stack in
    parallel (`mtlskit verify`) never leave a torn file.
    """
    text = yaml.dump(body, Dumper=_ManifestDumper, sort_keys=False, width=10_000)
    if "PRIVATE KEY" in text:
        raise ValueError(f"refusing to write private key material into the runbook file {filename}")
    directory = repo_root() / "runs" / "manifests" / f"{project}-{stack}"
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / filename
    if target.is_file() and target.read_text() == text:
        return target
    with tempfile.NamedTemporaryFile("w", dir=directory, prefix=f".{filename}.", delete=False) as tmp:
        tmp.write(text)
    os.replace(tmp.name, target)
    return target
