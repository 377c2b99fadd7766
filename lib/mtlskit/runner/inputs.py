"""What a verification run needs from the filesystem it runs on, checked before anything starts.

In a container image with a read-only root filesystem (deploy/k8s/cronjob.yaml), a file missing from the
image or a folder the pod did not mount writable would otherwise surface minutes later as a kernel that
cannot start or a notebook that cannot be saved, named by a traceback deep in Jupyter. Checked up front,
each is one line naming the file or folder, what is wrong with it and what provides it, and nothing runs.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mtlskit.config import paths
from mtlskit.runner.execute import KERNEL_NAME as KERNEL
from mtlskit.runner.execute import notebook_path


@dataclass(frozen=True)
class Missing:
    """One input a run cannot do without: what it is, where, why it fails and what provides it."""

    what: str
    path: str
    why: str
    fix: str

    def __str__(self) -> str:
        return f"{self.what} {self.path}: {self.why}; {self.fix}"


def _readable(what: str, path: Path, fix: str) -> Missing | None:
    if not path.exists():
        return Missing(what, str(path), "missing", fix)
    if not os.access(path, os.R_OK):
        return Missing(what, str(path), f"not readable by uid {os.getuid()}", fix)
    return None


def _writable(what: str, path: Path, fix: str) -> Missing | None:
    """A folder the run writes into, proven by creating (and at once removing) a file in it, or in the
    nearest folder above it that exists (the run creates the rest): a read-only mount passes os.access
    for root and fails only on the write. Nothing is left behind."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, "Not a directory")
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".mtlskit-write-check-"):
            pass
    except OSError as err:
        return Missing(what, str(path), f"not writable by uid {os.getuid()} ({err.strerror})", fix)
    return None


def _kernel_problem() -> Missing | None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    specs = KernelSpecManager()
    try:
        spec = specs.get_kernel_spec(KERNEL)
    except NoSuchKernel:
        return Missing(
            "Jupyter kernelspec",
            KERNEL,
            "not found in " + ", ".join(specs.kernel_dirs),
            "install ipykernel in this environment (the lock does)",
        )
    return _readable("Jupyter kernelspec", Path(spec.resource_dir) / "kernel.json", "reinstall ipykernel")


def run_inputs(params_file: Path, notebooks: Sequence[str], out: str | Path) -> list[Missing]:
    """Everything `mtlskit verify` reads or writes outside the params' own files (the params loader
    names those): the params file, the notebooks, the kernel, and the folders it writes into."""
    from jupyter_core.paths import jupyter_runtime_dir

    image = "rebuild the image from deploy/Dockerfile (it copies notebooks/ and params/)"
    mount = "mount a writable volume there (deploy/k8s/cronjob.yaml mounts emptyDir volumes)"
    checks = [_readable("params file", params_file, "mount the params ConfigMap (or pass another file)")]
    checks += [_readable(f"notebook {name}", notebook_path(name), image) for name in notebooks]
    checks.append(_kernel_problem())
    checks.append(_writable("temporary folder", Path(os.environ.get("TMPDIR") or "/tmp"), mount))
    checks.append(_writable("Jupyter runtime folder", Path(jupyter_runtime_dir()), mount + " (HOME)"))
    if os.environ.get("MPLCONFIGDIR"):
        checks.append(_writable("matplotlib folder (MPLCONFIGDIR)", Path(os.environ["MPLCONFIGDIR"]), mount))
    checks.append(_writable("the kit's runs folder", paths.repo_root() / "runs", mount))
    if not str(out).startswith("gs://"):
        checks.append(_writable("output folder (--out)", Path(out), mount))
    return [c for c in checks if c is not None]
