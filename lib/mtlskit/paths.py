"""Where things live on disk.

Notebooks run with cwd `notebooks/` in JupyterLab and with an arbitrary cwd under papermill or
pytest, so every relative path in the kit is resolved against the repository root, never the cwd.
"""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The checkout that holds `params/` and `notebooks/`.

    MTLSKIT_ROOT wins (an installed kit running from a container image); otherwise the package's own
    location inside `lib/mtlskit/` tells us where the checkout is.
    """
    env = os.environ.get("MTLSKIT_ROOT")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parents[2]


def resolve(path: str | os.PathLike[str], base: Path | None = None) -> Path:
    """Absolute path for `path`; relative paths are taken from `base` (default: the repository root)."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    return ((base or repo_root()) / p).resolve()


def default_params_file() -> Path:
    return repo_root() / "params" / "sandbox.yaml"
