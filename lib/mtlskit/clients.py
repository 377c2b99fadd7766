"""The one place that knows which target the kit talks to.

Everything else receives a `Clients` and calls the official libraries through it. For the sandbox
that means anonymous credentials, `http://127.0.0.1:PORT` endpoints and the REST transport; for
Google Cloud, Application Default Credentials and the named kube context.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
import urllib3
from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import certificate_manager_v1, compute_v1, network_security_v1
from google.cloud import logging as cloud_logging
from kubernetes import client as kube
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException

from mtlskit.params import Params

TRANSIENT = (
    gexc.TooManyRequests,
    gexc.ServiceUnavailable,
    gexc.InternalServerError,
    gexc.GatewayTimeout,
    gexc.BadGateway,
)


def make_retry(seconds: float) -> gretry.Retry:
    """Every call the kit makes retries transient answers with backoff for `seconds`; inserts carry a
    request id, so a retried create cannot make a second resource."""
    return gretry.Retry(
        predicate=gretry.if_exception_type(*TRANSIENT),
        initial=0.2,
        maximum=4.0,
        multiplier=2.0,
        timeout=seconds,
    )


class ApiCallFailed(RuntimeError):
    """An API call still failed after retrying; the message names the call so the on-call engineer
    knows which API and resource to look at, and says that re-running is safe."""


# What a call into either client library raises when the API (or the connection to it) fails.
CALL_FAILURES: tuple[type[BaseException], ...] = (
    gexc.GoogleAPICallError,
    gexc.RetryError,
    ApiException,
    requests.exceptions.ConnectionError,
    urllib3.exceptions.HTTPError,
)


def describe_call_failure(err: BaseException, retry_seconds: float) -> str:
    """'<METHOD> <path> answered <status> ...' from the exception the client library raised."""
    if isinstance(err, ApiException):
        reason = _kube_reason(err)
        return f"the Kubernetes API answered {err.status} {err.reason}: {reason}".rstrip(": ")
    if isinstance(err, requests.exceptions.ConnectionError | urllib3.exceptions.HTTPError):
        request = getattr(err, "request", None)
        where = f" for {request.method} {request.url}" if request is not None else ""
        return f"the connection to the API failed{where}: {type(err).__name__}: {_first_line(err)}"
    cause: BaseException | None = err
    retried = isinstance(err, gexc.RetryError)
    if retried:
        cause = err.cause  # type: ignore[attr-defined]
    if isinstance(err, OperationError):
        return f"{err.what}: {err.cause.code} {err.cause.message}"
    response = getattr(cause, "response", None)
    request = getattr(response, "request", None)
    call = "an API call"
    if request is not None:
        url = str(getattr(request, "url", ""))
        path = url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
        call = f"{request.method} /{path}"
    message = str(getattr(cause, "message", cause))
    if request is not None and message.startswith(f"{request.method} "):
        message = message.split(": ", 1)[-1]  # the library repeats the URL; the call is named already
    answer = f"{getattr(cause, 'code', '')} {message}".strip()
    after = f" (still failing after retrying for {retry_seconds:.0f}s)" if retried else ""
    return f"{call} answered {answer}{after}"


def _kube_reason(err: ApiException) -> str:
    """The message of the Status body the API server sent (the body can be long; one line of it)."""
    import json

    try:
        return str(json.loads(err.body or "{}").get("message", ""))[:300]
    except (ValueError, AttributeError):
        return ""


def _first_line(err: BaseException) -> str:
    return str(err).splitlines()[0][:300] if str(err) else ""


class OperationError(RuntimeError):
    """A long-running operation finished with an error; `cause` is the mapped API exception."""

    def __init__(self, what: str, cause: gexc.GoogleAPICallError):
        super().__init__(f"{what} failed: {cause}")
        self.what = what
        self.cause = cause


@dataclass
class ComputeClients:
    addresses: compute_v1.GlobalAddressesClient
    ssl_certificates: compute_v1.SslCertificatesClient
    ssl_policies: compute_v1.SslPoliciesClient
    url_maps: compute_v1.UrlMapsClient
    target_https_proxies: compute_v1.TargetHttpsProxiesClient
    target_http_proxies: compute_v1.TargetHttpProxiesClient
    forwarding_rules: compute_v1.GlobalForwardingRulesClient
    backend_services: compute_v1.BackendServicesClient
    health_checks: compute_v1.HealthChecksClient
    network_endpoint_groups: compute_v1.NetworkEndpointGroupsClient
    operations: compute_v1.GlobalOperationsClient


@dataclass
class KubeClients:
    api: kube.ApiClient
    core: kube.CoreV1Api
    networking: kube.NetworkingV1Api
    custom: kube.CustomObjectsApi
    context: str


@dataclass
class Clients:
    target: str
    project: str
    endpoint: str | None
    compute: ComputeClients
    network_security: network_security_v1.NetworkSecurityClient
    certificate_manager: certificate_manager_v1.CertificateManagerClient
    logging: cloud_logging.Client
    kube: KubeClients
    retry_seconds: float = 90.0
    # Where clients reach the frontend: Google serves HTTPS on 443 and its certificates chain to the
    # system trust store; the sandbox data plane listens on its own port with a CA of its own.
    https_port: int = 443
    server_ca_file: str | None = None

    @property
    def retry(self) -> gretry.Retry:
        return make_retry(self.retry_seconds)

    @property
    def location(self) -> str:
        return f"projects/{self.project}/locations/global"


def _compute_clients(credentials: Credentials | None, options: ClientOptions | None) -> ComputeClients:
    kw: dict[str, Any] = {"credentials": credentials, "client_options": options, "transport": "rest"}
    ops = compute_v1.GlobalOperationsClient(**kw)

    def make(cls: Callable[..., Any]) -> Any:
        c = cls(**kw)
        if options is not None:
            # ExtendedOperation.result() builds its poller without client_options and would poll
            # compute.googleapis.com; give it the operations client that points where we do.
            c._transport._extended_operations_services["global_operations"] = ops
        return c

    return ComputeClients(
        addresses=make(compute_v1.GlobalAddressesClient),
        ssl_certificates=make(compute_v1.SslCertificatesClient),
        ssl_policies=make(compute_v1.SslPoliciesClient),
        url_maps=make(compute_v1.UrlMapsClient),
        target_https_proxies=make(compute_v1.TargetHttpsProxiesClient),
        target_http_proxies=make(compute_v1.TargetHttpProxiesClient),
        forwarding_rules=make(compute_v1.GlobalForwardingRulesClient),
        backend_services=make(compute_v1.BackendServicesClient),
        health_checks=make(compute_v1.HealthChecksClient),
        network_endpoint_groups=make(compute_v1.NetworkEndpointGroupsClient),
        operations=ops,
    )


def _kube_retry(seconds: float) -> urllib3.Retry:
    """The Kubernetes client gets the same policy as Google's: 429/5xx and dropped connections are
    retried with backoff for about `seconds`, then the last answer is raised as usual."""
    attempts = max(1, int(seconds / 2))
    return urllib3.Retry(
        total=attempts,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=None,  # every verb: plans are re-read, so a replayed write is caught as a conflict
        backoff_factor=0.2,
        backoff_max=4.0,
        raise_on_status=False,
    )


def _kube_clients(kubeconfig: str | None, context: str | None, retry_seconds: float) -> KubeClients:
    configuration = kube.Configuration()
    kube_config.load_kube_config(
        config_file=kubeconfig, context=context, client_configuration=configuration, persist_config=False
    )
    configuration.retries = _kube_retry(retry_seconds)
    api = kube.ApiClient(configuration)
    ctx = context or kube_config.list_kube_config_contexts(config_file=kubeconfig)[1]["name"]
    return KubeClients(api, kube.CoreV1Api(api), kube.NetworkingV1Api(api), kube.CustomObjectsApi(api), ctx)


def sandbox_settings(params: Params) -> dict[str, Any]:
    """The params' sandbox settings as `mtlskit.sandbox.process` takes them (one mapping for every
    way the kit starts a sandbox)."""
    return {
        "projects": [params.project],
        "operation_delay": params.sandbox.operation_delay_seconds,
        "managed_cert_delay": params.sandbox.managed_cert_delay_seconds,
        "data_plane_port": params.sandbox.data_plane_port,
    }


def build_clients(params: Params) -> Clients:
    """Clients for the params' target; for the sandbox, start it first when nothing runs."""
    if params.target == "sandbox":
        from mtlskit import certs
        from mtlskit.sandbox import (
            process,  # the kit only ever starts the sandbox, never imports its internals
        )

        certs.ensure_demo_pki_for(params)  # loading params writes nothing; first use does
        info = process.start(params.state_dir, port=params.sandbox.port, **sandbox_settings(params))
        credentials: Credentials | None = AnonymousCredentials()
        options: ClientOptions | None = ClientOptions(api_endpoint=info.endpoint)
        kubeconfig, context, endpoint = info.kubeconfig, process.KUBE_CONTEXT, info.endpoint
        https_port = params.sandbox.data_plane_port
        server_ca: str | None = str(params.state_dir / "dataplane" / "ca.pem")
        log_client = cloud_logging.Client(
            project=params.project,
            credentials=credentials,
            _use_grpc=False,
            client_options={"api_endpoint": info.endpoint},
        )
    else:
        credentials, options, endpoint = None, None, None
        https_port, server_ca = 443, None
        kubeconfig, context = params.kubernetes.kubeconfig, params.kubernetes.context
        log_client = cloud_logging.Client(project=params.project, _use_grpc=False)
    kw: dict[str, Any] = {"credentials": credentials, "client_options": options, "transport": "rest"}
    return Clients(
        target=params.target,
        project=params.project,
        endpoint=endpoint,
        compute=_compute_clients(credentials, options),
        network_security=network_security_v1.NetworkSecurityClient(**kw),
        certificate_manager=certificate_manager_v1.CertificateManagerClient(**kw),
        logging=log_client,
        kube=_kube_clients(kubeconfig, context, params.api_retry_seconds),
        retry_seconds=params.api_retry_seconds,
        https_port=https_port,
        server_ca_file=server_ca,
    )


def wait_for_compute(
    clients: Clients,
    operation: Any,
    what: str,
    timeout: float = 600.0,
    on_progress: Callable[[str], None] | None = None,
) -> None:
    """Wait for a global Compute operation through the operations client the kit configured."""
    name = getattr(operation, "name", None) or operation
    deadline = time.monotonic() + timeout
    while True:
        op = clients.compute.operations.wait(project=clients.project, operation=name, retry=clients.retry)
        if on_progress:
            on_progress(op.status.name)
        if op.status == compute_v1.Operation.Status.DONE:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: operation {name} not done after {timeout:.0f}s")
    if op.http_error_status_code or (op.error and op.error.errors):
        message = op.http_error_message or "; ".join(e.message for e in op.error.errors)
        detail = "; ".join(f"{e.code}: {e.message}" for e in op.error.errors) if op.error else ""
        cause = gexc.from_http_status(op.http_error_status_code or 500, f"{message} {detail}".strip())
        raise OperationError(what, cause)
