"""The one wait for long-running operations: Compute global operations and the Network Security /
Certificate Manager LROs, with one timeout (`Clients.operation_timeout`) and one progress callback.

Every change the kit makes returns an operation; a change counts as done only when its operation is,
and an operation that ends in error raises `OperationFailed` with the operation's own message (a
Compute insert that is refused after the request was accepted answers 200 and fails here).

Compute is polled through the `GlobalOperationsClient` built with the kit's endpoint, never through
`ExtendedOperation.result()`, which ignores `client_options` and would poll Google's host.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from google.api_core import exceptions as gexc
from google.api_core import operation as lro
from google.cloud import compute_v1

from mtlskit.core.errors import OperationFailed
from mtlskit.core.poll import poll

T = TypeVar("T")


class OperationClients(Protocol):
    """What the wait needs of `mtlskit.cloud.clients.Clients`, which builds on this module and so is
    named here by shape rather than imported."""

    project: str
    operation_timeout: float
    compute: Any

    def call(self, method: Callable[..., T], /, *args: Any, **kwargs: Any) -> T: ...


Progress = Callable[[str], None]

# The one operation timeout: a Compute or Certificate Manager operation can take minutes on Google
# Cloud; ten is well beyond any the kit starts. `Clients.operation_timeout` carries it per target.
DEFAULT_TIMEOUT_SECONDS = 600.0

# Seconds between polls of a Network Security / Certificate Manager operation: quick at first (the
# sandbox finishes in a fraction of a second), then no more than one poll every few seconds.
FIRST_POLL, LAST_POLL = 0.05, 3.0


def wait(clients: OperationClients, operation: Any, what: str, on_progress: Progress | None = None) -> None:
    """Wait until `operation` is done; raise `OperationFailed` when it failed or took longer than
    `clients.operation_timeout` seconds. `what` names the change in the error ('create UrlMap um').

    `operation` is what a client's mutating method returned: a Compute `ExtendedOperation` (or the
    operation's name) or an `google.api_core.operation.Operation`.
    """
    if isinstance(operation, lro.Operation):
        poll_once, path = _lro_poller(clients, operation), f"/v1/{operation.operation.name}"
    else:
        name = str(getattr(operation, "name", None) or operation)
        poll_once, path = (
            _compute_poller(clients, name),
            f"/compute/v1/projects/{clients.project}/global/operations/{name}",
        )
    waited = poll(
        poll_once,
        lambda read: read[0] == "DONE",
        clients.operation_timeout,
        every=FIRST_POLL,
        growth=1.5,
        longest=LAST_POLL,
        on_read=(lambda read, _: on_progress(read[0])) if on_progress else None,
    )
    status, failure = waited.value
    if not waited.done:
        raise OperationFailed(
            what,
            path,
            None,
            f"not done after {clients.operation_timeout:.0f}s (last status {status})",
            None,
        )
    if failure is not None:
        code, message = failure
        raise OperationFailed(what, path, code, message, gexc.from_http_status(code, message))


Poll = Callable[[], tuple[str, tuple[int, str] | None]]


def _compute_poller(clients: OperationClients, name: str) -> Poll:
    """Compute's `wait` blocks on the server for up to two minutes, so no pause is needed between calls."""

    def read() -> tuple[str, tuple[int, str] | None]:
        op = clients.call(clients.compute.operations.wait, project=clients.project, operation=name)
        if op.status != compute_v1.Operation.Status.DONE:
            return op.status.name, None
        errors = list(op.error.errors) if op.error else []
        if not (op.http_error_status_code or errors):
            return "DONE", None
        detail = "; ".join(f"{e.code}: {e.message}" for e in errors)
        message = " ".join(p for p in (op.http_error_message, detail) if p)
        return "DONE", (op.http_error_status_code or 500, message)

    return read


def _lro_poller(clients: OperationClients, operation: lro.Operation) -> Poll:
    def read() -> tuple[str, tuple[int, str] | None]:
        if not clients.call(operation.done):
            return "RUNNING", None
        error = operation.operation.error
        if not operation.operation.HasField("error"):
            return "DONE", None
        mapped = gexc.from_grpc_status(error.code, error.message)
        return "DONE", (int(mapped.code or 500), error.message)

    return read
