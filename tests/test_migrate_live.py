"""The migration of a live split stack to the Gateway (new_ip) while a client keeps sending requests on
fresh connections with a valid certificate, resolving the domain through the sandbox's DNS responder
each time its answer's TTL runs out: no request may be refused or fail in any phase, and at the end
the split frontend and the anchor are gone and the Gateway passes verification."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mtlskit.build import dns, frontend, stack
from mtlskit.cloud.clients import Clients, build_clients
from mtlskit.config import params as params_mod
from mtlskit.config import paths
from mtlskit.config.params import Params
from mtlskit.migrate import run, state
from mtlskit.migrate.traffic import SteadyClient
from mtlskit.rules.dns import SANDBOX_ZONE
from mtlskit.sandbox import process

pytestmark = pytest.mark.e2e


def from_file(name: str, state_dir: Path, **overrides: Any) -> Params:
    """A committed params file with its sandbox paths moved into `state_dir` (same names, same PKI
    roles), applying, with `overrides` merged one level deep."""
    text = (paths.repo_root() / "params" / name).read_text().replace("../.sandbox", str(state_dir))
    data = yaml.safe_load(text)
    data["apply"] = True
    data["sandbox"]["operation_delay_seconds"] = 0.05
    for key, value in overrides.items():
        data[key] = {**data.get(key, {}), **value}
    return params_mod.parse(data, name)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Params, Clients]]:
    """params/sandbox.yaml's split stack serving api.mtlskit.test, its A record published in the
    sandbox's zone, and params/sandbox-gateway.yaml as the migration's one params file, with TTLs and
    a drain window of seconds."""
    d = tmp_path_factory.mktemp("migrate-state")
    split = from_file("sandbox.yaml", d)
    params = from_file(
        "sandbox-gateway.yaml",
        d,
        dns={"managed_zone": SANDBOX_ZONE, "ttl_seconds": 2, "cutover_ttl_seconds": 1},
        migration={"drain_window_seconds": 2, "poll_seconds": 0.5, "watch_timeout_seconds": 30},
    )
    try:
        clients = build_clients(split)
        stack.build(clients, split)
        frontend.wait_for_certificate(clients, split, 30, poll_seconds=0.2)
        clients = build_clients(params)
        ip = state.split_ip(clients, params)
        assert ip
        dns.apply(clients, params, dns.plan_records(clients, params, ip))
        yield params, clients
    finally:
        process.stop(d)


def test_live_split_stack_moves_to_the_gateway_with_no_refused_client(live: tuple[Params, Clients]) -> None:
    params, clients = live
    ops = state.kit_ops()
    old_ip = state.split_ip(clients, params)
    client = SteadyClient.for_params(clients, params).start()
    try:
        lines: list[str] = []
        results = run.migrate(run.Context(clients, params, ops, progress=lines.append))
    finally:
        tally = client.stop()
    refused = {r.phase: [c for c in r.checks if c.status == "fail"] for r in results}
    assert [r.phase for r in results] == ["build", "verify", "cutover", "drain", "retire"], refused
    refused = {r.phase: [c for c in r.checks if c.status == "fail"] for r in results}
    assert all(r.passed for r in results), refused
    assert tally.refused == 0 and tally.failed == 0, tally.problems
    gateway_ip = state.read_state(clients, params, ops).gateway.ip
    assert tally.by_ip[old_ip] > 0 and tally.by_ip[gateway_ip] > 0, tally  # both frontends served it
    after = state.read_state(clients, params, ops)
    assert not after.split_rule and after.split_left == [], after.split_left
    assert frontend.KINDS["ForwardingRule"].get(clients, params.frontend.forwarding_rule) is None
    assert state.k8s.read(clients, "Ingress", params) is None
    assert state.next_phase(params, after) == state.DONE
    assert run.migrate(run.Context(clients, params, ops)) == []  # a re-run finds nothing to do
    final = run.verify_at(clients, params, "final")
    assert final and all(c.status == "pass" for c in final), [c for c in final if c.status != "pass"]
