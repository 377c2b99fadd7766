"""`mtlskit verify` across environments: eight sandbox environments (one sandbox, a stack each) verified
with `--jobs 4` against one after another (`--jobs 1`). Prints both wall times and the speed-up; nothing
is asserted. Run: make bench (or .venv/bin/python bench/fleet.py [ENVIRONMENTS] [JOBS]).

Each environment is a child `mtlskit run` with its own kernel, so the speed-up is bounded by the
machine's cores: the children spend most of their time in Python (kernel start, imports, TLS probes).
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import yaml

from mtlskit.build import stack
from mtlskit.cloud.clients import build_clients
from mtlskit.config import params as params_mod
from mtlskit.config.params import load
from mtlskit.runner import fleet
from mtlskit.sandbox import process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def environment_file(directory: Path, state: Path, port: int, key: str) -> Path:
    """The default sandbox params with a stack and resource names of its own, on a shared sandbox."""
    data = params_mod.another_stack(params_mod.sandbox_default(state), key, stack=f"bench-{key}")
    data["sandbox"]["data_plane_port"] = port
    path = directory / f"{key}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def timed(envs: list[fleet.Environment], out: Path, jobs: int) -> tuple[float, list[int]]:
    started = time.monotonic()
    result = fleet.run_fleet(envs, out / f"jobs{jobs}", jobs, timeout=600)
    return time.monotonic() - started, [r.exit_code for r in result.rows]


def main(count: int = 8, jobs: int = 4) -> None:
    with tempfile.TemporaryDirectory(prefix="mtlskit-bench-fleet-") as tmp:
        root = Path(tmp)
        state, port = root / "state", free_port()
        (root / "envs").mkdir()
        files = [environment_file(root / "envs", state, port, f"env{i}") for i in range(count)]
        try:
            started = time.monotonic()
            for f in files:
                p = load(f)
                stack.build(build_clients(p), p, timeout=120)
            print(f"built {count} environments on one sandbox in {time.monotonic() - started:.1f} s")
            envs = fleet.environments(files)
            parallel, codes_parallel = timed(envs, root / "out", jobs)
            serial, codes_serial = timed(envs, root / "out", 1)
        finally:
            process.stop(state)
    print(f"cores: {os.cpu_count()}")
    print(f"verify {count} environments, --jobs {jobs}: {parallel:7.1f} s  exit codes {codes_parallel}")
    print(f"verify {count} environments, --jobs 1: {serial:7.1f} s  exit codes {codes_serial}")
    print(f"speed-up: {serial / parallel:.2f}x (target >= 1.7x on 2 cores)")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
