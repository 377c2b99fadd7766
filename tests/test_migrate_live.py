"""The migration of a live split stack to the Gateway (new_ip) while a client keeps sending requests on
fresh connections with a valid certificate, resolving the domain through the sandbox's DNS responder
each time its answer's TTL runs out: no request may be refused or fail in any phase, and at the end
the split frontend and the anchor are gone and the Gateway passes verification."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mtlskit.build import dns, frontend, k8s
from mtlskit.cloud.clients import Clients
from mtlskit.migrate import rehearsal, run, state
from mtlskit.migrate.traffic import SteadyClient
from mtlskit.sandbox import process
from mtlskit.verify import drift

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rehearsal.Rehearsal]:
    """params/sandbox.yaml's split stack serving api.mtlskit.test, its A record published in the
    sandbox's zone; params/sandbox-gateway.yaml as the migration's params (TTLs and window in seconds)."""
    d = tmp_path_factory.mktemp("migrate-state")
    try:
        yield rehearsal.live_split_stack(d)
    finally:
        process.stop(d)


def test_live_split_stack_moves_to_the_gateway_with_no_refused_client(live: rehearsal.Rehearsal) -> None:
    params, clients, ops = live.params, live.clients, state.kit_ops()
    ctx = run.Context(clients, params, ops)
    client = SteadyClient.for_params(clients, params).start()
    try:
        # Cut over, then take the way back (records back, Gateway deleted), then migrate for good.
        rehearsed = run.migrate(ctx, until="cutover")
        went_back = run.roll_back(ctx)
        back = state.read_state(clients, params, ops)
        results = run.migrate(ctx)
    finally:
        tally = client.stop()
    assert [r.phase for r in rehearsed] == ["build", "verify", "cutover"] and all(r.passed for r in rehearsed)
    assert (
        went_back[0].startswith("api.mtlskit.test")
        and went_back[-1] == f"deleted Gateway {params.gateway.name}"
    )
    assert not back.gateway.exists and back.records_at(live.old_ip) and back.split_rule
    refused = {r.phase: [c for c in r.checks if c.status == "fail"] for r in results}
    assert [r.phase for r in results] == ["build", "verify", "cutover", "drain", "retire"], refused
    assert all(r.passed for r in results), refused
    assert tally.sent > 0 and tally.refused == 0 and tally.failed == 0, tally.problems
    after = state.read_state(clients, params, ops)
    assert tally.by_ip[live.old_ip] > 0 and tally.by_ip[str(after.gateway.ip)] > 0, tally  # both served it
    assert not after.split_rule and after.split_left == []
    assert frontend.KINDS["ForwardingRule"].get(clients, params.frontend.forwarding_rule) is None
    assert k8s.read(clients, "Ingress", params) is None and k8s.read(clients, "BackendConfig", params) is None
    assert k8s.read(clients, "Service", params) is not None  # the Gateway routes to it
    assert all(r is not None and r.ttl == params.dns.ttl_seconds for r in after.records.values())
    assert run.migrate(run.Context(clients, params, ops)) == []  # a re-run finds nothing to do
    final = run.verify_at(clients, params, "final")
    assert final and all(c.status == "pass" for c in final), [c for c in final if c.status != "pass"]
    drifted = [
        c for c in drift.drift_checks(clients, params, _sandbox_resolver(clients)) if c.status == "fail"
    ]
    assert not drifted, drifted  # 70_drift's checks of the Gateway topology


def _sandbox_resolver(clients: Clients) -> drift.Resolver:
    """70_drift's DNS check asking the sandbox's responder, where the records were cut over."""

    def resolve(domain: str) -> drift.Resolution:
        answer = dns.resolve([domain], clients.nameserver)[domain]
        return (
            drift.Resolution(domain, answer)
            if isinstance(answer, tuple)
            else drift.Resolution(domain, (), answer)
        )

    return resolve


@pytest.fixture(scope="module")
def live_named(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rehearsal.Rehearsal]:
    d = tmp_path_factory.mktemp("migrate-named-state")
    try:
        yield rehearsal.live_split_stack(d, gateway={"address": "named_address"})
    finally:
        process.stop(d)


def test_named_address_keeps_the_ip_after_a_measured_downtime(live_named: rehearsal.Rehearsal) -> None:
    params, clients, ops = live_named.params, live_named.clients, state.kit_ops()
    plan = run.plan(clients, params, ops)
    assert [r["phase"] for r in plan] == ["switch", "verify", "retire"] and "downtime" in plan[0]["does"]
    ctx = run.Context(clients, params, ops)
    client = SteadyClient.for_params(clients, params).start()
    try:
        # Switch, take the way back (Gateway deleted, the kit's forwarding rule re-created), then for good.
        went_back = run.migrate(ctx, until="switch") and run.roll_back(ctx)
        back = state.read_state(clients, params, ops)
        results = run.migrate(ctx, until="switch")
        answered_before_switch_ended = client.tally.answered
        results += run.migrate(ctx)
    finally:
        tally = client.stop()
    assert went_back and went_back[-1] == f"re-created forwarding rule {params.frontend.forwarding_rule}"
    assert back.split_rule and not back.gateway.exists and back.split_ip == live_named.old_ip
    refused = {r.phase: [c for c in r.checks if c.status == "fail"] for r in results}
    assert [r.phase for r in results] == ["switch", "verify", "retire"] and all(r.passed for r in results), (
        refused
    )
    assert results[0].figures["downtime_seconds"] > 0
    after = state.read_state(clients, params, ops)
    assert after.gateway.ip == live_named.old_ip  # the same IP, now the Gateway's
    assert frontend.KINDS["Address"].get(clients, params.frontend.address) is not None  # kept: the Gateway's
    assert after.split_left == [] and k8s.read(clients, "Ingress", params) is None
    assert tally.answered > answered_before_switch_ended  # the Gateway answers on the kept IP
    assert set(tally.by_ip) == {live_named.old_ip}
