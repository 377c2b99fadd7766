"""Shared fixtures: one sandbox per test session, in a temporary state directory.

Tests talk to it only through the official client libraries (built by the kit's client factory),
plus the sandbox's request counter and fault switch.

The fast lane, `pytest -m "not e2e"`, starts no sandbox and no kernel. A test is `e2e` when it uses
a sandbox fixture (below, or one a module builds for itself) or its module is marked; any other test
that tries to start a sandbox or a kernel fails at once with the mark to add, in every run.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from requests.adapters import HTTPAdapter
from urllib3 import PoolManager

from mtlskit.cloud.clients import Clients, build_clients
from mtlskit.config import params as params_mod
from mtlskit.sandbox import process

PROJECT = "mtlskit-sandbox"

# Fixtures that start a sandbox: a test that uses one (directly or through another fixture) is e2e.
SANDBOX_FIXTURES = {"state_dir", "params", "clients", "no_faults"}
# Modules with fast tests beside end-to-end ones: the fixtures (or tests) in them that start a
# sandbox or a kernel of their own. Modules that are end to end throughout say so with `pytestmark`.
E2E_IN_MIXED_MODULES = {
    "test_logs.py": {"lb"},
    "test_commands.py": {"built"},
    "test_cli.py": {"test_run_refuses_bad_params_and_unknown_notebooks_before_running_anything"},
    "test_notebooks.py": {"test_gateway_notebooks_run_under_nbval_on_a_built_gateway"},
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        uses = set(getattr(item, "fixturenames", ())) | {getattr(item, "originalname", item.name)}
        if uses & (SANDBOX_FIXTURES | E2E_IN_MIXED_MODULES.get(item.path.name, set())):
            item.add_marker(pytest.mark.e2e)


class StartedInFastTest(RuntimeError):
    """A test without the e2e mark tried to start a sandbox or a kernel."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Around every test that is not e2e (its fixtures included), starting a sandbox or a kernel
    raises instead, so the fast lane cannot quietly grow slow."""
    if item.get_closest_marker("e2e"):
        yield
        return
    from jupyter_client.provisioning import local_provisioner

    def refuse(what: str) -> Any:
        def starter(*_: Any, **__: Any) -> Any:
            raise StartedInFastTest(f"{item.nodeid} starts {what}: mark it e2e (see tests/conftest.py)")

        return starter

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(process, "start", refuse("a sandbox"))
        mp.setattr(local_provisioner, "launch_kernel", refuse("a kernel"))
        yield


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


def wait_serving(clients: Clients, ip: str, timeout: float = 30.0) -> None:
    """Until the sandbox's data plane serves a certificate on `ip`: the API says a managed certificate
    is ACTIVE before the data plane's next refresh picks it up, and a client that connects in between
    is closed without a handshake, as a load balancer without a certificate to present would."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listeners = sandbox_call(clients, "dataplane")["listeners"]
        if any(li["ip"] == ip and li["listening"] and li["certificates_served"] for li in listeners):
            return
        time.sleep(0.05)
    raise AssertionError(f"the sandbox's data plane serves no certificate on {ip} after {timeout:.0f}s")


@pytest.fixture
def no_faults(clients: Clients) -> Iterator[None]:
    yield
    sandbox_call(clients, "faults", "POST", {"error_rate": 0.0, "operation_error_rate": 0.0})


class ResolveAdapter(HTTPAdapter):
    """`curl --resolve` for requests: connect to the listener's IP, send SNI and check `domain`; with
    `source_ip`, also `curl --interface`: connect from that local address (any 127.0.0.N on Linux),
    so the load balancer's log tells the clients apart by remoteIp as it would real ones."""

    def __init__(self, ctx: ssl.SSLContext, domain: str, source_ip: str | None = None):
        self.ctx, self.domain, self.source_ip = ctx, domain, source_ip
        super().__init__()

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **kw: Any) -> None:
        source = {"source_address": (self.source_ip, 0)} if self.source_ip else {}
        self.poolmanager = PoolManager(
            num_pools=connections,
            maxsize=maxsize,
            block=block,
            ssl_context=self.ctx,
            server_hostname=self.domain,
            assert_hostname=self.domain,
            **source,
        )


def run_nbval(notebooks: list[Path], cwd: Path, env: dict[str, str] | None = None) -> Any:
    """nbval over notebooks as committed, in a process of its own (its kernels start from `env`),
    headless: progress bars are text lines, as under `mtlskit run`."""
    import os
    import subprocess
    import sys

    from mtlskit.core.bars import HEADLESS_ENV

    args = ["-q", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env"]
    return subprocess.run(
        [sys.executable, "-m", "pytest", *args, *map(str, notebooks)],
        env={**(os.environ if env is None else env), HEADLESS_ENV: "1"},
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
    )


def free_port() -> int:
    """A loopback port nobody listens on right now (each test sandbox's data plane gets its own)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stand_in_notebook(directory: Path, name: str, *sources: str) -> str:
    """A notebook of the given code cells after a parameters cell, for runner tests that need a
    notebook to behave a certain way (sleep, fail, hang) rather than a runbook step."""
    cells = [new_code_cell("params_file = None\napply = False", metadata={"tags": ["parameters"]})]
    nb = new_notebook(cells=cells + [new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = directory / f"{name}.ipynb"
    nbformat.write(nb, path)
    return str(path)


def gateway_spec(ca_configmap: str = "client-ca", mode: str | None = None, **spec: Any) -> dict[str, Any]:
    """A Gateway's spec as the kit writes it: the default class, one HTTPS listener on 443 and GEP-91
    frontend validation against one CA ConfigMap (no mode: the schema's default applies)."""
    from mtlskit.rules import gateway as gw

    validation: dict[str, Any] = {
        "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": ca_configmap}]
    }
    if mode is not None:
        validation["mode"] = mode
    return {
        "gatewayClassName": gw.DEFAULT_CLASS,
        "listeners": [{"name": "https", "port": 443, "protocol": "HTTPS"}],
        "tls": {"frontend": {"default": {"validation": validation}}},
        **spec,
    }
