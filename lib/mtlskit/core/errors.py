"""The kit's errors: one hierarchy for every failure a caller may want to tell apart.

Google's and Kubernetes' client libraries each raise their own exception types, and a dropped
connection raises a third family (requests / urllib3). Callers of the kit should not have to know
any of them: a failed call becomes an `ApiError` that keeps what an on-call engineer needs (method,
path, status, the server's message, truncated and free of key material) and chains the library's
exception as `cause`. An earlier runbook step that has not run is not a fault: `PrerequisiteMissing`.

    KitError
    ├── ApiCallFailed       a runbook step stopped on a failed call (raised by the step harness)
    ├── ApiError            a call failed after retrying (status None: the connection failed)
    │   ├── NotFound        404
    │   ├── Conflict        409
    │   └── OperationFailed a long-running operation ended in error or did not end in time
    ├── PrerequisiteMissing an earlier step has not been applied; the message names it
    │   ├── IngressNotReady the anchor Ingress or the controller's backend service is not there yet
    │   ├── BackendNotFound no backend service of the anchor serves the params' Service and port
    │   ├── GatewayApiUnsupported the cluster's Gateway API cannot carry frontend client-certificate
    │                       validation (no Gateway API, or a schema without spec.tls.frontend)
    │   └── GatewayNotReady the Gateway does not exist, is not Programmed, or names no load balancer yet
    ├── SchemeMismatch      the params' scheme cannot work with the Ingress's backend service
    ├── ApplyRefused        a change was asked for without the params that allow it
    └── SetupMissing        this machine cannot reach the target yet (no Application Default
                            Credentials, no such kube context); `fix` is the command that sets it up

A 403 that names a permission (`Required 'compute.x.create' permission ...`) also names the
predefined role that grants it (`mtlskit.rules.iam`), and a QUOTA_EXCEEDED names the metric and how to
raise it: the message a person acts on during apply is the one preflight would have given.

The errors of one concern live in that concern's module and derive from `KitError` too (keeping the
built-in base older callers catch): `config.params.ParamsError` (ValueError), `runner.step.StepFailed`
(RuntimeError), `runner.fleet.FleetError` (ValueError), `verify.logscan.LogScanError` (ValueError),
`teach.labs.lab.LabRefused` (RuntimeError) and `teach.labs.lab.LabTimedOut` (TimeoutError).
`tests/test_errors.py` fails on any exception class of the kit outside this hierarchy, so
`except KitError` catches every failure the kit raises on purpose.
"""

from __future__ import annotations

import json
import re

import requests
import urllib3
from google.api_core import exceptions as gexc
from googleapiclient.errors import HttpError
from kubernetes.client.exceptions import ApiException

from mtlskit.rules import iam

# Enough of a server's message to act on; bodies can be long and may echo what was sent.
MESSAGE_LIMIT = 300
_PEM = re.compile(r"-----BEGIN [A-Z ]+-----.*?(-----END [A-Z ]+-----|$)", re.S)


class KitError(Exception):
    """Base of every error the kit raises on purpose; anything else is a bug or an interrupt."""


class ApiError(KitError):
    """A Google or Kubernetes API call failed after the clients' retries.

    `status` is the HTTP status, or None when no answer came (connection refused or dropped).
    `retried_seconds` is set when the retry policy gave up, so the message can say so.
    """

    def __init__(
        self,
        api: str,
        method: str,
        path: str,
        status: int | None,
        message: str,
        *,
        reason: str = "",
        retried_seconds: float | None = None,
        cause: BaseException | None = None,
    ):
        self.api = api
        self.method = method
        self.path = path
        self.status = status
        self.reason = reason
        self.message = clean(message)
        self.retried_seconds = retried_seconds
        self.cause = cause
        self.hint = access_hint(self.message, path)
        super().__init__(self.describe())

    def describe(self) -> str:
        """'<METHOD> <path> answered <status> <message>': the call and the answer, on one line."""
        call = f"{self.method} {self.path}".strip()
        if self.status is None:
            where = f" for {call}" if call else ""
            return f"the connection to the API failed{where}: {self.message}"
        answer = " ".join(str(p) for p in (self.status, self.reason) if p)
        if self.api == "kubernetes":
            text = f"the Kubernetes API answered {answer}: {self.message}".rstrip(": ")
            text += f" ({call})" if call else ""
        else:
            text = f"{call or 'an API call'} answered {answer} {self.message}".rstrip()
        if self.retried_seconds is not None:
            text += f" (still failing after retrying for {self.retried_seconds:.0f}s)"
        return text + (f" [{self.hint}]" if self.hint else "")


class ApiCallFailed(KitError):
    """A runbook step stopped on a failed call: the message names the step, the call (from the
    chained `ApiError`), and says that a re-run is safe. Raised by the step harness."""


class NotFound(ApiError):
    """404: the resource does not exist (planners read this as 'create it')."""


class Conflict(ApiError):
    """409: already exists, or changed since it was read (a re-run re-plans from what exists)."""


class OperationFailed(ApiError):
    """A long-running operation ended in error, or did not end within the kit's operation timeout.

    `what` names the change ('create UrlMap web-um'); `cause` is the API exception the operation's
    error maps to (None for a timeout), so callers can tell a quota error from a bad reference.
    """

    def __init__(self, what: str, path: str, status: int | None, message: str, cause: BaseException | None):
        self.what = what
        super().__init__("operations", "", path, status, message, cause=cause)

    def describe(self) -> str:
        answer = " ".join(str(p) for p in (self.status, self.message) if p)
        hint = f" [{self.hint}]" if getattr(self, "hint", "") else ""
        return f"{self.what}: operation {self.path} ended with {answer}{hint}"


class PrerequisiteMissing(KitError):
    """An earlier runbook step has not been applied; the message names the notebook to run first."""


class IngressNotReady(PrerequisiteMissing):
    """The anchor Ingress does not exist yet, or the controller has not made its backend service."""


class BackendNotFound(PrerequisiteMissing):
    """None of the anchor's backend services serves the params' Service and port."""


class GatewayApiUnsupported(PrerequisiteMissing):
    """The cluster serves no Gateway API, or a Gateway schema without `spec.tls.frontend` (older than
    the v1.5 standard CRDs): the server would prune the field and build a load balancer without mTLS.
    Raised before any write; the message names the upgrade."""


class GatewayNotReady(PrerequisiteMissing):
    """The params' Gateway does not exist, is not Programmed, or its controller has not yet written
    the `networking.gke.io/*` annotations that name the load balancer it built."""


class SchemeMismatch(KitError, ValueError):
    """The params' load-balancing scheme differs from the backend service's; Compute would refuse the
    forwarding rule after the rest of the frontend was built."""


class ApplyRefused(KitError):
    """A change was requested without what the params require for it; the message says what to set."""


class TopologyUnsupported(KitError, ValueError):
    """A day-2 change was asked of a topology it does not serve (the Gateway's CA bundle is a
    ConfigMap the controller reads, not a trust config the kit patches); raised before any call."""


class ChangeRefused(KitError):
    """A day-2 change would not start or continue: the live state is not one it can move in place
    (a missing resource, nothing to roll back to), or its gate refused; nothing was changed."""


class SetupMissing(KitError):
    """This machine is not set up to reach the target: `what` is missing (Application Default
    Credentials, a kube context), `detail` says how it showed, `fix` is the command that sets it up.

    Building clients for a real target records it instead of failing, so 00_preflight can report it
    as a failed check with the fix; a call that needs the missing piece raises it."""

    def __init__(self, what: str, detail: str, fix: str):
        self.what = what
        self.detail = clean(detail)
        self.fix = fix
        super().__init__(f"{what} missing: {self.detail.rstrip('.')}. Fix: {fix}")


# What a call into either client library raises when the API (or the connection to it) fails.
LIBRARY_FAILURES: tuple[type[BaseException], ...] = (
    gexc.GoogleAPICallError,
    gexc.RetryError,
    HttpError,  # google-api-python-client (discovery-based clients: Cloud Resource Manager)
    ApiException,
    requests.exceptions.ConnectionError,
    urllib3.exceptions.HTTPError,
)


def access_hint(message: str, path: str = "") -> str:
    """For a refused permission, the predefined role that grants it; for an exhausted quota, how to
    get room (`mtlskit.rules.iam`, the table preflight uses). Empty for any other answer."""
    where = f"{path} {message}"
    project = (
        where.split("projects/", 1)[1].split("/", 1)[0].split("'", 1)[0]
        if "projects/" in where
        else "PROJECT"
    )
    permission = iam.denied_permission(message)
    if permission:
        role = iam.role_for(permission)
        granted = f"granted by {role}" if role else "not a permission the kit's table knows"
        return f"missing permission {permission}, {granted}; fix: {iam.grant_command(project, permission)}"
    metric = iam.exceeded_metric(message)
    if metric:
        return f"quota {metric} exhausted; fix: {iam.quota_fix(project, metric)}"
    return ""


def clean(text: str) -> str:
    """One line of at most MESSAGE_LIMIT characters, with any PEM block (certificate or key) cut out."""
    one_line = " ".join(_PEM.sub("[PEM omitted]", str(text)).split())
    return one_line if len(one_line) <= MESSAGE_LIMIT else one_line[: MESSAGE_LIMIT - 1] + "…"


def from_exception(err: BaseException, retry_seconds: float | None = None) -> ApiError:
    """The kit's error for an exception a client library raised (the exception becomes `cause`).

    `retry_seconds` is the retry budget that was spent when the library gave up retrying.
    """
    if isinstance(err, ApiError):
        return err
    if isinstance(err, ApiException):
        return _from_kube(err)
    if isinstance(err, HttpError):
        return _from_discovery_client(err)
    if isinstance(err, requests.exceptions.ConnectionError | urllib3.exceptions.HTTPError):
        return _from_connection(err)
    cause: BaseException = err
    retried = None
    if isinstance(err, gexc.RetryError):
        retried = retry_seconds
        if err.cause is None:
            return ApiError("google", "", "", None, str(err), retried_seconds=retried, cause=err)
        if isinstance(err.cause, requests.exceptions.ConnectionError | urllib3.exceptions.HTTPError):
            return _from_connection(err.cause, err)
        cause = err.cause
    return _from_google(cause, retried, err)


def _error_class(status: int | None) -> type[ApiError]:
    return {404: NotFound, 409: Conflict}.get(status or 0, ApiError)


def _from_google(cause: BaseException, retried: float | None, raised: BaseException) -> ApiError:
    response = getattr(cause, "response", None)
    request = getattr(response, "request", None)
    method, path = "", ""
    if request is not None:
        url = str(getattr(request, "url", ""))
        method = str(request.method)
        path = "/" + url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
    message = str(getattr(cause, "message", cause))
    if method and message.startswith(f"{method} "):
        message = message.split(": ", 1)[-1]  # the library repeats the URL; the call is named already
    status = getattr(cause, "code", None)
    status = status if isinstance(status, int) else None
    if status is None and isinstance(cause, gexc.GoogleAPICallError):
        status = 500  # an error answer without an HTTP code still was an answer
    cls = _error_class(status)
    return cls("google", method, path, status, message, retried_seconds=retried, cause=raised)


def _from_discovery_client(err: HttpError) -> ApiError:
    status = int(getattr(err.resp, "status", 0) or 0) or None
    path = "/" + str(err.uri or "").split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
    message = str(err.reason or "")
    return _error_class(status)("google", "", path, status, message, cause=err)


def _from_kube(err: ApiException) -> ApiError:
    try:
        body = json.loads(err.body or "{}")
        message = str(body.get("message", "")) if isinstance(body, dict) else ""
    except (ValueError, TypeError):
        message = ""
    method = str(getattr(err, "kit_method", ""))
    path = str(getattr(err, "kit_path", ""))
    status = int(err.status) if err.status else None
    cls = _error_class(status)
    return cls("kubernetes", method, path, status, message, reason=str(err.reason or ""), cause=err)


def _from_connection(err: BaseException, raised: BaseException | None = None) -> ApiError:
    request = getattr(err, "request", None)
    method = str(getattr(request, "method", "") or getattr(err, "kit_method", ""))
    url = str(getattr(request, "url", "") or getattr(err, "kit_path", "") or getattr(err, "url", "") or "")
    first = str(err).splitlines()[0] if str(err) else ""
    message = f"{type(err).__name__}: {first}"
    return ApiError("connection", method, url, None, message, cause=raised or err)


def describe(err: BaseException, retry_seconds: float | None = None) -> str:
    """The one-line account of a failed call for any exception a call can raise (kit or library)."""
    if isinstance(err, KitError) and not isinstance(err, ApiError):
        return str(err)
    if isinstance(err, (ApiError, *LIBRARY_FAILURES)):
        return from_exception(err, retry_seconds).describe()
    return f"{type(err).__name__}: {clean(str(err))}"
