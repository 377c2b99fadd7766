"""Teardown plans from what exists: twice in a row passes both times, the second with no mutating call,
with and without the anchor Ingress; an Ingress the kit did not create is never deleted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException

from mtlskit import runbook
from mtlskit.build import k8s, stack, teardown
from mtlskit.cloud.clients import Clients, build_clients
from mtlskit.config.params import Params
from mtlskit.sandbox import process
from tests.conftest import sandbox_call, sandbox_params
from tests.test_runbook import mutating_calls

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Params, Clients]]:
    state = tmp_path_factory.mktemp("teardown-state")
    params = sandbox_params(state, stack="td")
    clients = build_clients(params)
    yield params, clients
    process.stop(state)


def _teardown(params: Params, clients: Clients, delete_anchor: bool) -> tuple[runbook.Step, list[str]]:
    step = runbook.Step(params, clients, apply=True)
    frame = step.run(teardown.plan_teardown, teardown.apply_teardown, delete_anchor)
    return step, list(frame.get("resource", []))


@pytest.mark.parametrize("delete_anchor", [False, True])
def test_teardown_twice_second_run_changes_nothing(env: tuple[Params, Clients], delete_anchor: bool) -> None:
    params, clients = env
    stack.build(clients, params)
    step, kinds = _teardown(params, clients, delete_anchor)
    assert "ForwardingRule" in kinds and ("Ingress" in kinds) == delete_anchor
    assert runbook.outcome_checks(step, "removed")[0].status == "pass"

    sandbox_call(clients, "counters", "DELETE")
    again, kinds = _teardown(params, clients, delete_anchor)
    assert mutating_calls(sandbox_call(clients, "counters")["counts"]) == {}
    assert kinds == []  # nothing left to plan: every deletion was planned from what exists
    check = runbook.outcome_checks(again, "removed")[0]
    assert check.status == "pass", check
    present = k8s.read(clients, "Ingress", params) is not None
    assert present != delete_anchor


def test_teardown_keeps_an_ingress_the_kit_did_not_create(env: tuple[Params, Clients]) -> None:
    params, clients = env
    k = params.kubernetes
    stack.build(clients, params)
    clients.kube.networking.patch_namespaced_ingress(
        k.ingress, k.namespace, {"metadata": {"labels": {"app.kubernetes.io/managed-by": "someone-else"}}}
    )
    changes = teardown.plan_teardown(clients, params, delete_anchor=True)
    anchor = [c for c in changes if c.kind == "Ingress"]
    assert [c.action for c in anchor] == ["keep"]
    teardown.apply_teardown(clients, params, changes, True)
    assert clients.kube.networking.read_namespaced_ingress(k.ingress, k.namespace).metadata.name == k.ingress
    # a vanished Ingress during apply is not an error either
    clients.kube.networking.delete_namespaced_ingress(k.ingress, k.namespace)
    with pytest.raises(ApiException):
        clients.kube.networking.read_namespaced_ingress(k.ingress, k.namespace)
    stale = [teardown.Change("Ingress", k.ingress, "delete")]
    teardown.apply_teardown(clients, params, stale, True)  # raises nothing: the goal is already met
    assert [
        c for c in teardown.plan_teardown(clients, params, delete_anchor=True) if c.kind == "Ingress"
    ] == []


def test_printed_teardown_commands_use_real_gcloud_groups(
    env: tuple[Params, Clients], tmp_path: Path
) -> None:
    params, clients = env
    stack.build(clients, params)
    commands = [c.gcloud for c in teardown.plan_teardown(clients, params, delete_anchor=True) if c.gcloud]
    assert any("gcloud compute forwarding-rules delete" in c for c in commands), commands
    assert not any("forwardingRules" in c or "targetHttpsProxies" in c for c in commands), commands
