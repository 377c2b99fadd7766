"""The one place that knows which target the kit talks to.

Everything else receives a `Clients` and calls the official libraries through it. For the sandbox
that means anonymous credentials, `http://127.0.0.1:PORT` endpoints and the REST transport; for
Google Cloud, Application Default Credentials and the named kube context.

Building clients never fails on a machine that is not set up yet: missing Application Default
Credentials or a kube context that does not exist are recorded in `Clients.setup_problems` (each an
`errors.SetupMissing` with the command that fixes it), 00_preflight reports them as failed checks,
and a call that needs the missing piece raises that same error.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import google.auth
import urllib3
from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials, Credentials
from google.auth.exceptions import DefaultCredentialsError
from google.cloud import certificate_manager_v1, compute_v1, network_security_v1
from google.cloud import dns as cloud_dns
from google.cloud import logging as cloud_logging
from google.cloud import storage as cloud_storage
from googleapiclient import discovery
from kubernetes import client as kube
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException

from mtlskit.cloud import operations
from mtlskit.config.params import Params
from mtlskit.core import errors

T = TypeVar("T")

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
    projects: compute_v1.ProjectsClient  # projects.get: the project's quotas


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
    # Cloud Resource Manager v1 (google-api-python-client, its shipped discovery document):
    # `projects.testIamPermissions`, which preflight asks before any write.
    resource_manager: Any = None
    retry_seconds: float = 90.0
    # Where clients reach the frontend: Google serves HTTPS on 443 and its certificates chain to the
    # system trust store; the sandbox data plane listens on its own port with a CA of its own.
    https_port: int = 443
    server_ca_file: str | None = None
    # How long `operations.wait` waits for any long-running operation before giving up.
    operation_timeout: float = operations.DEFAULT_TIMEOUT_SECONDS
    # Cloud DNS (google-cloud-dns, the JSON API's official client), for a migration's cut-over, and
    # the name server a cut-over's wait asks: params.dns.nameserver, the sandbox's DNS responder, or
    # None for the system's resolver.
    dns: cloud_dns.Client | None = None
    nameserver: str | None = None
    # What this machine lacks to reach the target (see the module docstring); empty when set up.
    setup_problems: list[errors.SetupMissing] = field(default_factory=list)
    # The credentials every client above was built with: a change record names their account.
    credentials: Credentials | None = None

    @property
    def retry(self) -> gretry.Retry:
        return make_retry(self.retry_seconds)

    def call(self, method: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Call a client library method the kit's way: Google methods get the kit's retry (the
        Kubernetes client retries inside urllib3, see `_kube_retry`), and a call that still fails
        raises `errors.ApiError` (`NotFound`, `Conflict`, ...) with the library's exception as cause."""
        if _is_google(method):
            if _takes_retry(method):
                kwargs.setdefault("retry", self.retry)
            else:  # google-cloud-dns's calls take no retry argument: wrap them in the same policy
                method = self.retry(method)
        try:
            return method(*args, **kwargs)
        except errors.LIBRARY_FAILURES as err:
            raise errors.from_exception(err, self.retry_seconds) from err

    def find(self, method: Callable[..., T], /, *args: Any, **kwargs: Any) -> T | None:
        """`call` for a read whose 404 means 'not there': None instead of `errors.NotFound`."""
        try:
            return self.call(method, *args, **kwargs)
        except errors.NotFound:
            return None

    def wait(self, operation: Any, what: str, on_progress: operations.Progress | None = None) -> None:
        """Wait for an operation a mutating call returned (see `operations.wait`)."""
        operations.wait(self, operation, what, on_progress)

    @property
    def location(self) -> str:
        return f"projects/{self.project}/locations/global"


def _is_google(method: Callable[..., Any]) -> bool:
    owner = getattr(method, "__self__", None)
    return type(owner).__module__.startswith("google.")


def _takes_retry(method: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == "retry" or p.kind is p.VAR_KEYWORD for p in parameters)


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
        projects=make(compute_v1.ProjectsClient),
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


class _KubeApiClient(kube.ApiClient):  # type: ignore[misc]
    """The Kubernetes client's exceptions carry the status and body but not the request; note the
    method and path on them here, where every Kubernetes call passes, so the kit's `ApiError` can
    name the call as it does for Google's. (The request is sent in `call_api`; an error answer is
    raised later, in `response_deserialize`.)"""

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        call = (method, urlsplit(url).path)
        try:
            response = super().call_api(method, url, *args, **kwargs)
        except (ApiException, urllib3.exceptions.HTTPError) as err:  # no answer: the connection failed
            _note_call(err, call)
            raise
        response.kit_call = call
        return response

    def response_deserialize(self, response_data: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().response_deserialize(response_data, *args, **kwargs)
        except ApiException as err:
            _note_call(err, getattr(response_data, "kit_call", ("", "")))
            raise


def _note_call(err: BaseException, call: tuple[str, str]) -> None:
    err.kit_method, err.kit_path = call  # type: ignore[attr-defined]


ADC = "Application Default Credentials"
KUBE_CONTEXT_PROBLEM = "kube context"
ADC_FIX = "gcloud auth application-default login"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


class _MissingCredentials(Credentials):  # type: ignore[misc]
    """Stands in for Application Default Credentials that could not be found: every client can be
    built, and the first call raises the kit's `SetupMissing` (with the fix) instead of sending."""

    def __init__(self, problem: errors.SetupMissing):
        super().__init__()
        self.problem = problem

    def refresh(self, request: Any) -> None:
        raise self.problem


def _application_default_credentials() -> tuple[Credentials, errors.SetupMissing | None]:
    try:
        credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM])
        return credentials, None
    except DefaultCredentialsError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        problem = errors.SetupMissing(ADC, first, ADC_FIX)
        return _MissingCredentials(problem), problem


def kube_context_fix(project: str) -> str:
    """The command that writes a GKE cluster's context into the kubeconfig (cluster and region are
    the reader's: the params name only the context)."""
    return (
        f"gcloud container clusters get-credentials CLUSTER --region REGION --project {project} "
        "(then set kubernetes.context to the context it prints, gke_PROJECT_REGION_CLUSTER)"
    )


class _UnreachableKubeApiClient(kube.ApiClient):  # type: ignore[misc]
    """The Kubernetes client when the kubeconfig has no such context: any call raises the problem."""

    def __init__(self, problem: errors.SetupMissing):
        super().__init__(kube.Configuration())
        self.problem = problem

    def call_api(self, *args: Any, **kwargs: Any) -> Any:
        raise self.problem


def _kube_or_problem(
    kubeconfig: str | None, context: str | None, retry_seconds: float, project: str
) -> tuple[KubeClients, errors.SetupMissing | None]:
    try:
        return _kube_clients(kubeconfig, context, retry_seconds), None
    except (kube_config.ConfigException, OSError) as err:
        where = kubeconfig or "$KUBECONFIG or ~/.kube/config"
        named = f"context {context!r}" if context else "the current context"
        detail = f"{named} not usable in {where} (contexts there: {_context_names(kubeconfig)}): {err}"
        problem = errors.SetupMissing(KUBE_CONTEXT_PROBLEM, detail, kube_context_fix(project))
        api = _UnreachableKubeApiClient(problem)
        clients = KubeClients(
            api, kube.CoreV1Api(api), kube.NetworkingV1Api(api), kube.CustomObjectsApi(api), context or ""
        )
        return clients, problem


def _context_names(kubeconfig: str | None) -> str:
    """The contexts a kubeconfig holds, so the reader sees whether the name is wrong or the context absent."""
    try:
        contexts, _ = kube_config.list_kube_config_contexts(config_file=kubeconfig)
    except (kube_config.ConfigException, OSError):
        return "none, or no kubeconfig"
    return ", ".join(str(c.get("name")) for c in contexts or []) or "none"


def _resource_manager(credentials: Credentials, endpoint: str | None) -> Any:
    """Cloud Resource Manager v1 from the discovery document google-api-python-client ships."""
    options = {"api_endpoint": endpoint} if endpoint else None
    return discovery.build(
        "cloudresourcemanager",
        "v1",
        credentials=credentials,
        client_options=options,
        static_discovery=True,
        cache_discovery=False,
    )


def _kube_clients(kubeconfig: str | None, context: str | None, retry_seconds: float) -> KubeClients:
    configuration = kube.Configuration()
    kube_config.load_kube_config(
        config_file=kubeconfig, context=context, client_configuration=configuration, persist_config=False
    )
    configuration.retries = _kube_retry(retry_seconds)
    api = _KubeApiClient(configuration)
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
        "dns_port": params.sandbox.dns_port,
        "withhold_permissions": list(params.sandbox.withhold_permissions),
        "exhaust_quota": list(params.sandbox.exhaust_quota),
        "gateway_api": params.sandbox.gateway_api,
        "propagation_delay": params.sandbox.propagation_delay_seconds,
    }


def build_clients(params: Params) -> Clients:
    """Clients for the params' target; for the sandbox, start it first when nothing runs."""
    problems: list[errors.SetupMissing] = []
    credentials: Credentials
    if params.target == "sandbox":
        from mtlskit.sandbox import (
            process,  # the kit only ever starts the sandbox, never imports its internals
        )

        params.ensure_demo_pki()  # loading params writes nothing; first use does
        info = process.start(params.state_dir, port=params.sandbox.port, **sandbox_settings(params))
        credentials = AnonymousCredentials()
        options: ClientOptions | None = ClientOptions(api_endpoint=info.endpoint)
        kubeconfig, context, endpoint = info.kubeconfig, process.KUBE_CONTEXT, info.endpoint
        https_port = params.sandbox.data_plane_port
        nameserver = params.dns.nameserver or info.nameserver
        server_ca: str | None = str(params.state_dir / "dataplane" / "ca.pem")
        log_client = cloud_logging.Client(
            project=params.project,
            credentials=credentials,
            _use_grpc=False,
            client_options={"api_endpoint": info.endpoint},
        )
    else:
        credentials, missing = _application_default_credentials()
        problems += [missing] if missing else []
        options, endpoint = None, None
        https_port, server_ca = 443, None
        nameserver = params.dns.nameserver
        kubeconfig, context = params.kubernetes.kubeconfig, params.kubernetes.context
        log_client = cloud_logging.Client(project=params.project, credentials=credentials, _use_grpc=False)
    kube_clients, kube_problem = _kube_or_problem(
        kubeconfig, context, params.api_retry_seconds, params.project
    )
    problems += [kube_problem] if kube_problem else []
    kw: dict[str, Any] = {"credentials": credentials, "client_options": options, "transport": "rest"}
    return Clients(
        target=params.target,
        project=params.project,
        endpoint=endpoint,
        compute=_compute_clients(credentials, options),
        network_security=network_security_v1.NetworkSecurityClient(**kw),
        certificate_manager=certificate_manager_v1.CertificateManagerClient(**kw),
        logging=log_client,
        kube=kube_clients,
        resource_manager=_resource_manager(credentials, endpoint),
        retry_seconds=params.api_retry_seconds,
        https_port=https_port,
        server_ca_file=server_ca,
        setup_problems=problems,
        dns=cloud_dns.Client(
            project=params.project,
            credentials=credentials,
            client_options={"api_endpoint": endpoint} if endpoint else None,
        ),
        nameserver=nameserver,
        credentials=credentials,
    )


def storage_environment(params: Params) -> dict[str, str]:
    """The variables that send Cloud Storage clients built elsewhere (gcsfs under papermill, a
    `google-cloud-storage` client without options, `gcloud storage`) to the params' target: on the
    sandbox `STORAGE_EMULATOR_HOST` and friends (`process.storage_variables`); nothing on Google
    Cloud. gcsfs reads `GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT` when imported: set these before that."""
    if params.target != "sandbox":
        return {}
    from mtlskit.sandbox import process

    info = process.start(params.state_dir, port=params.sandbox.port, **sandbox_settings(params))
    return process.storage_variables(info)


def storage_client(params: Params) -> cloud_storage.Client:
    """A Cloud Storage client for the params' target: anonymous on the sandbox's endpoint, or
    Application Default Credentials on Google Cloud."""
    if params.target != "sandbox":
        return cloud_storage.Client(project=params.project)
    endpoint = storage_environment(params)["STORAGE_EMULATOR_HOST"]
    return cloud_storage.Client(
        project=params.project,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": endpoint},
    )
