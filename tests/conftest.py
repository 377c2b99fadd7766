"""Shared fixtures: one sandbox per test session, in a temporary state directory.

Tests talk to it only through the official client libraries (built by the kit's client factory),
plus the sandbox's request counter and fault switch.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mtlskit import params as params_mod
from mtlskit.clients import Clients, build_clients
from mtlskit.sandbox import process

PROJECT = "mtlskit-sandbox"


def sandbox_params(state_dir: Path, **overrides: Any) -> params_mod.Params:
    data: dict[str, Any] = {
        "target": "sandbox",
        "project": PROJECT,
        "sandbox": {
            "state_dir": str(state_dir),
            "operation_delay_seconds": 0.1,
            "managed_cert_delay_seconds": 1.0,
        },
        "mtls": {
            "trust_anchors": [str(state_dir / "pki" / "root.pem")],
            "intermediates": [str(state_dir / "pki" / "intermediate.pem")],
        },
    }
    for key, value in overrides.items():
        if isinstance(value, dict):
            data[key] = {**data.get(key, {}), **value}
        else:
            data[key] = value
    return params_mod.parse(data, "test-params")


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    d = tmp_path_factory.mktemp("sandbox-state")
    yield d
    process.stop(d)


@pytest.fixture(scope="session")
def params(state_dir: Path) -> params_mod.Params:
    return sandbox_params(state_dir)


@pytest.fixture(scope="session")
def clients(params: params_mod.Params) -> Clients:
    return build_clients(params)


@pytest.fixture
def unique() -> str:
    return "t" + uuid.uuid4().hex[:8]


def sandbox_call(clients: Clients, path: str, method: str = "GET", body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"{clients.endpoint}/_sandbox/{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"null")


@pytest.fixture
def no_faults(clients: Clients) -> Iterator[None]:
    yield
    sandbox_call(clients, "faults", "POST", {"error_rate": 0.0, "operation_error_rate": 0.0})
