"""errors: library exceptions become the kit's, keeping the call, the status and a clean message."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import SimpleNamespace

import pytest
import requests
from google.api_core import exceptions as gexc
from kubernetes.client.exceptions import ApiException

from mtlskit.core import errors


def _google(
    cls: type[gexc.GoogleAPICallError], message: str, method: str = "GET", url: str = ""
) -> Exception:
    request = SimpleNamespace(method=method, url=url)
    return cls(message, response=SimpleNamespace(request=request))


def test_google_error_names_the_call_and_maps_404_to_not_found() -> None:
    url = "http://127.0.0.1:1/compute/v1/projects/p/global/urlMaps/um?alt=json"
    err = errors.from_exception(_google(gexc.NotFound, f"GET {url}: The resource was not found", url=url))
    assert isinstance(err, errors.NotFound) and err.status == 404
    assert (err.method, err.path) == ("GET", "/compute/v1/projects/p/global/urlMaps/um")
    # the library's repetition of the URL is dropped: the call is named once
    assert (
        err.describe()
        == "GET /compute/v1/projects/p/global/urlMaps/um answered 404 The resource was not found"
    )


def test_retry_error_says_how_long_it_retried_and_keeps_the_last_answer() -> None:
    last = _google(gexc.ServiceUnavailable, "backend down", "POST", "http://h/v1/projects/p/x")
    err = errors.from_exception(gexc.RetryError("deadline", last), retry_seconds=90)
    assert err.status == 503 and err.cause is not None
    assert (
        err.describe()
        == "POST /v1/projects/p/x answered 503 backend down (still failing after retrying for 90s)"
    )


def test_conflict_is_its_own_type() -> None:
    assert isinstance(errors.from_exception(_google(gexc.Conflict, "exists")), errors.Conflict)


def test_kubernetes_error_keeps_status_message_and_the_annotated_call() -> None:
    raw = ApiException(status=404, reason="Not Found")
    raw.body = '{"kind":"Status","message":"services \\"web\\" not found","code":404}'
    raw.kit_method, raw.kit_path = "GET", "/api/v1/namespaces/default/services/web"  # type: ignore[attr-defined]
    err = errors.from_exception(raw)
    assert isinstance(err, errors.NotFound) and err.api == "kubernetes"
    assert err.describe() == (
        'the Kubernetes API answered 404 Not Found: services "web" not found '
        "(GET /api/v1/namespaces/default/services/web)"
    )
    assert err.cause is raw


def test_connection_failure_has_no_status_and_says_the_connection_failed() -> None:
    raw = requests.exceptions.ConnectionError("('Connection aborted.', RemoteDisconnected())")
    raw.request = SimpleNamespace(method="GET", url="http://127.0.0.1:9/v1/x")  # type: ignore[attr-defined]
    err = errors.from_exception(raw)
    assert err.status is None
    assert err.describe().startswith(
        "the connection to the API failed for GET http://127.0.0.1:9/v1/x: ConnectionError"
    )


@pytest.mark.parametrize("kind", ["CERTIFICATE", "PRIVATE KEY", "EC PRIVATE KEY"])
def test_messages_drop_pem_blocks_and_are_truncated(kind: str) -> None:
    body = f"bad -----BEGIN {kind}-----\nMIIBsecret\n-----END {kind}----- tail " + "x" * 1000
    text = errors.clean(body)
    assert "MIIBsecret" not in text and "[PEM omitted]" in text
    assert len(text) == errors.MESSAGE_LIMIT and "\n" not in text


def test_operation_failed_names_the_change_and_the_operation() -> None:
    err = errors.OperationFailed("create UrlMap um", "/v1/ops/1", 400, "invalid reference", None)
    assert isinstance(err, errors.ApiError)
    assert str(err) == "create UrlMap um: operation /v1/ops/1 ended with 400 invalid reference"


def test_describe_covers_kit_errors_library_errors_and_the_rest() -> None:
    assert errors.describe(errors.IngressNotReady("run 10_ingress")) == "run 10_ingress"
    assert errors.describe(_google(gexc.Forbidden, "denied")).endswith("answered 403 denied")
    assert errors.describe(ValueError("odd")) == "ValueError: odd"


def test_prerequisite_errors_are_one_family() -> None:
    for cls in (errors.IngressNotReady, errors.BackendNotFound):
        assert issubclass(cls, errors.PrerequisiteMissing) and issubclass(cls, errors.KitError)
    assert not issubclass(errors.PrerequisiteMissing, errors.ApiError)


# ---- one hierarchy ------------------------------------------------------------------------------------


def kit_exception_classes() -> dict[str, type[Exception]]:
    """Every Exception subclass defined in a kit module (the sandbox is a separate server whose errors
    are Google's, not the kit's), by its qualified name. An interrupt (`runner.results.Interrupted`, a
    KeyboardInterrupt) is a BaseException on purpose: every `except Exception` must let it through."""
    import mtlskit

    found: dict[str, type[Exception]] = {}
    for module in pkgutil.walk_packages(mtlskit.__path__, "mtlskit."):
        if module.name == "mtlskit.sandbox" or module.name.startswith("mtlskit.sandbox."):
            continue
        loaded = importlib.import_module(module.name)
        for _, cls in inspect.getmembers(loaded, inspect.isclass):
            if issubclass(cls, Exception) and cls.__module__ == module.name:
                found[f"{module.name}.{cls.__qualname__}"] = cls
    return found


def test_every_exception_the_kit_defines_is_a_kit_error() -> None:
    classes = kit_exception_classes()
    # the walk reaches every layer, the ones defined outside core/errors.py included
    assert {
        "mtlskit.core.errors.ApiError",
        "mtlskit.config.params.ParamsError",
        "mtlskit.runner.step.StepFailed",
        "mtlskit.runner.fleet.FleetError",
        "mtlskit.teach.labs.lab.LabRefused",
        "mtlskit.teach.labs.lab.LabTimedOut",
    } <= classes.keys()
    outside = sorted(name for name, cls in classes.items() if not issubclass(cls, errors.KitError))
    assert not outside, f"derive these from mtlskit.core.errors.KitError (keep their old base too): {outside}"


@pytest.mark.parametrize(
    ("module", "name", "old_base"),
    [
        ("mtlskit.config.params", "ParamsError", ValueError),
        ("mtlskit.runner.step", "StepFailed", RuntimeError),
        ("mtlskit.runner.fleet", "FleetError", ValueError),
        ("mtlskit.teach.labs.lab", "LabRefused", RuntimeError),
        ("mtlskit.teach.labs.lab", "LabTimedOut", TimeoutError),
    ],
)
def test_errors_moved_under_kit_error_keep_their_old_base(
    module: str, name: str, old_base: type[BaseException]
) -> None:
    """Callers that caught them as ValueError, RuntimeError or TimeoutError still catch them."""
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, errors.KitError) and issubclass(cls, old_base)
