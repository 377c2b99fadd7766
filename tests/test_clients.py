"""clients: one retry policy for both client libraries, and failures wrapped where the call is made."""

from __future__ import annotations

from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.cloud import compute_v1
from kubernetes.client.exceptions import ApiException

from mtlskit.cloud import clients as clients_mod
from mtlskit.cloud.clients import Clients
from mtlskit.core import errors


def _offline(retry_seconds: float = 1.0) -> Clients:
    none: Any = None
    return Clients("sandbox", "p", None, none, none, none, none, none, retry_seconds=retry_seconds)


class _FakeGoogleClient:
    """Stands in for a google-cloud client: `Clients.call` recognises Google methods by their module."""

    __module__ = "google.cloud.fake"

    def __init__(self, *answers: Exception | str) -> None:
        self.answers = list(answers)
        self.kwargs: list[dict[str, Any]] = []

    def get(self, **kwargs: Any) -> str:
        self.kwargs.append(kwargs)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_transient_answers_are_retried_and_others_are_not() -> None:
    retry = clients_mod.make_retry(5)
    assert retry._predicate(gexc.ServiceUnavailable("x")) and retry._predicate(gexc.TooManyRequests("x"))
    assert not retry._predicate(gexc.NotFound("x")) and not retry._predicate(gexc.BadRequest("x"))


def test_kubernetes_retry_covers_the_same_statuses_and_every_verb() -> None:
    retry = clients_mod._kube_retry(20)
    assert set(retry.status_forcelist) == {429, 500, 502, 503, 504}
    assert retry.allowed_methods is None and retry.total == 10 and not retry.raise_on_status


def test_call_gives_google_methods_the_kits_retry_and_passes_the_answer_through() -> None:
    fake = _FakeGoogleClient("ok")
    assert _offline(retry_seconds=7).call(fake.get, name="x") == "ok"
    assert fake.kwargs[0]["name"] == "x"  # the caller's arguments reach the library unchanged
    retry = fake.kwargs[0]["retry"]
    assert isinstance(retry, type(clients_mod.make_retry(1))) and retry.timeout == 7  # the params' deadline


def test_call_wraps_google_failures_with_the_cause() -> None:
    fake = _FakeGoogleClient(gexc.RetryError("deadline", gexc.ServiceUnavailable("down")))
    with pytest.raises(errors.ApiError) as info:
        _offline(retry_seconds=7).call(fake.get, name="x")
    assert info.value.status == 503 and "retrying for 7s" in str(info.value)
    assert isinstance(info.value.__cause__, gexc.RetryError)


def test_call_wraps_kubernetes_failures_without_adding_a_retry_argument() -> None:
    def read(name: str) -> None:  # a plain function, as the kubernetes client's bound methods look
        raise ApiException(status=409, reason="Conflict")

    with pytest.raises(errors.Conflict):
        _offline().call(read, "x")


def test_find_turns_not_found_into_none_and_lets_other_errors_through() -> None:
    assert _offline().find(_FakeGoogleClient(gexc.NotFound("gone")).get) is None
    with pytest.raises(errors.ApiError):
        _offline().find(_FakeGoogleClient(gexc.Forbidden("no")).get)


def test_operation_timeout_has_one_default() -> None:
    assert _offline().operation_timeout == 600.0


@pytest.mark.e2e
def test_sandbox_404s_of_both_libraries_name_method_and_path(clients: Clients, unique: str) -> None:
    with pytest.raises(errors.NotFound) as google:
        clients.call(clients.compute.url_maps.get, project=clients.project, url_map=unique)
    assert (google.value.method, google.value.path) == (
        "GET",
        f"/compute/v1/projects/{clients.project}/global/urlMaps/{unique}",
    )
    with pytest.raises(errors.NotFound) as kube:
        clients.call(clients.kube.core.read_namespaced_service, unique, "default")
    assert (kube.value.method, kube.value.path) == ("GET", f"/api/v1/namespaces/default/services/{unique}")
    assert unique in kube.value.message


@pytest.mark.e2e
def test_sandbox_insert_through_call_returns_a_waitable_operation(clients: Clients, unique: str) -> None:
    op = clients.call(
        clients.compute.addresses.insert,
        project=clients.project,
        address_resource=compute_v1.Address(name=unique),
    )
    clients.wait(op, f"create {unique}")
    assert clients.find(clients.compute.addresses.get, project=clients.project, address=unique) is not None
