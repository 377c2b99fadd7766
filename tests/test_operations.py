"""operations: one wait for Compute and LRO operations, one timeout, errors carry the operation's message."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.api_core import operation as lro
from google.cloud import compute_v1
from google.longrunning import operations_pb2
from google.protobuf import empty_pb2
from google.rpc import status_pb2

from mtlskit.cloud import operations
from mtlskit.cloud.clients import Clients
from mtlskit.core.errors import OperationFailed
from tests.conftest import sandbox_call


def _fake_clients(compute_answers: list[compute_v1.Operation] | None = None, timeout: float = 5.0) -> Any:
    answers = list(compute_answers or [])
    ops = SimpleNamespace(wait=lambda project, operation: answers.pop(0))
    return SimpleNamespace(
        project="p",
        operation_timeout=timeout,
        compute=SimpleNamespace(operations=ops),
        call=lambda method, *a, **k: method(*a, **k),
    )


def _lro(*states: operations_pb2.Operation) -> lro.Operation:
    refreshed = list(states[1:])
    return lro.Operation(states[0], lambda **_: refreshed.pop(0), lambda: None, empty_pb2.Empty)


def test_compute_wait_reports_progress_until_done() -> None:
    seen: list[str] = []
    answers = [
        compute_v1.Operation(name="op", status="RUNNING"),
        compute_v1.Operation(name="op", status="DONE"),
    ]
    operations.wait(_fake_clients(answers), "op", "create Address a", seen.append)
    assert seen == ["RUNNING", "DONE"]


def test_compute_operation_error_raises_with_its_message_and_mapped_cause() -> None:
    failed = compute_v1.Operation(
        name="op",
        status="DONE",
        http_error_status_code=409,
        error=compute_v1.Error(errors=[compute_v1.Errors(code="RESOURCE_ALREADY_EXISTS", message="exists")]),
    )
    with pytest.raises(OperationFailed) as info:
        operations.wait(_fake_clients([failed]), "op", "create Address a")
    assert info.value.status == 409 and isinstance(info.value.cause, gexc.Conflict)
    assert "create Address a" in str(info.value) and "RESOURCE_ALREADY_EXISTS: exists" in str(info.value)


def test_lro_wait_polls_until_done() -> None:
    op = _lro(
        operations_pb2.Operation(name="projects/p/locations/global/operations/1"),
        operations_pb2.Operation(name="projects/p/locations/global/operations/1"),
        operations_pb2.Operation(name="projects/p/locations/global/operations/1", done=True),
    )
    seen: list[str] = []
    operations.wait(_fake_clients(), op, "create TrustConfig t", seen.append)
    assert seen == ["RUNNING", "DONE"]  # every poll refreshes first: the second answer is DONE


def test_lro_error_maps_the_grpc_code_to_http() -> None:
    name = "projects/p/locations/global/operations/2"
    error = status_pb2.Status(code=9, message="trust config is in use")  # FAILED_PRECONDITION
    op = _lro(
        operations_pb2.Operation(name=name), operations_pb2.Operation(name=name, done=True, error=error)
    )
    with pytest.raises(OperationFailed) as info:
        operations.wait(_fake_clients(), op, "delete TrustConfig t")
    assert info.value.status == 400 and info.value.path == f"/v1/{name}"
    assert "trust config is in use" in str(info.value)


def test_wait_gives_up_after_the_one_timeout() -> None:
    never = [compute_v1.Operation(name="op", status="RUNNING")] * 50
    with pytest.raises(OperationFailed, match="not done after 0s") as info:
        operations.wait(_fake_clients(never, timeout=0.0), "op", "create Address a")
    assert info.value.status is None


@pytest.mark.e2e
def test_sandbox_operation_error_raises_operation_failed(
    clients: Clients, unique: str, no_faults: None
) -> None:
    sandbox_call(clients, "faults", "POST", {"operation_error_rate": 1.0})
    op = clients.call(
        clients.compute.addresses.insert,
        project=clients.project,
        address_resource=compute_v1.Address(name=unique),
    )
    with pytest.raises(OperationFailed) as info:
        clients.wait(op, f"create Address {unique}")
    assert info.value.cause is not None and info.value.status is not None and info.value.status >= 400
    sandbox_call(clients, "faults", "POST", {"operation_error_rate": 0.0})
    assert clients.find(clients.compute.addresses.get, project=clients.project, address=unique) is None
