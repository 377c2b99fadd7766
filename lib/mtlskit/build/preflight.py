"""Preflight: is this machine set up for the target, is the target the one we mean, are the APIs
reachable, are the certificates acceptable to the load balancer, all before anything is built.

The caller's IAM permissions (`build.permissions`) and the quota headroom (`build.quotas`) are the
other two readiness questions 00_preflight asks; each has its own module and table. For the Gateway
topology, `topology_checks` adds the cluster's Gateway API questions (`build.gateway_preflight`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.api_core import exceptions as gexc
from kubernetes.client.exceptions import ApiException

from mtlskit.build import gateway_preflight
from mtlskit.cloud.clients import ADC, Clients
from mtlskit.config.params import Params
from mtlskit.core.checks import Check
from mtlskit.core.errors import LIBRARY_FAILURES, ApiError, SetupMissing, from_exception
from mtlskit.pki import lint


def setup_checks(clients: Clients) -> list[Check]:
    """What this machine lacks to reach a real target (Application Default Credentials, the kube
    context), each a failed check with the command that fixes it; nothing when it is set up."""
    checks = []
    for problem in clients.setup_problems:
        if problem.what == ADC:
            checks.append(Check("Application Default Credentials", "fail", problem.detail, problem.fix))
        else:
            checks.append(Check("kube context", "fail", problem.detail, problem.fix))
    return checks


def target_checks(clients: Clients, params: Params) -> list[Check]:
    """One cheap read per API, so a wrong project or an unreachable API shows here, not mid-build."""
    probes: list[tuple[str, Callable[[], Any]]] = [
        (
            "Compute API",
            lambda: clients.compute.ssl_policies.list(project=clients.project, retry=clients.retry),
        ),
        (
            "Network Security API",
            lambda: list(
                clients.network_security.list_server_tls_policies(
                    parent=clients.location, retry=clients.retry
                )
            ),
        ),
        (
            "Certificate Manager API",
            lambda: list(
                clients.certificate_manager.list_trust_configs(parent=clients.location, retry=clients.retry)
            ),
        ),
        ("Kubernetes API", lambda: clients.kube.core.read_namespace(params.kubernetes.namespace)),
    ]
    checks = [
        Check(
            "target",
            "pass",
            f"{params.target}: project {params.project}, kube context "
            f"{clients.kube.context}, namespace {params.kubernetes.namespace}",
        )
    ]
    for name, probe in probes:
        try:
            probe()
            checks.append(Check(name, "pass", "reachable"))
        except ApiException as err:
            if name == "Kubernetes API" and err.status == 404:
                creator = "gw10_gateway_prereqs" if params.topology == "gateway" else "10_ingress"
                checks.append(
                    Check(
                        name,
                        "pass",
                        f"reachable (namespace {params.kubernetes.namespace} will be created by {creator})",
                    )
                )
            else:
                checks.append(
                    Check(name, "fail", f"HTTP {err.status}: {err.reason}", "check the kube context")
                )
        except SetupMissing as err:
            checks.append(Check(name, "fail", f"not tried: {err.what} missing", err.fix))
        except gexc.GoogleAPICallError as err:
            checks.append(
                Check(
                    name,
                    "fail",
                    f"{type(err).__name__}: {err.message}",
                    "check the project id, that the API is enabled, and your credentials",
                )
            )
        except LIBRARY_FAILURES as err:  # retries used up, a cluster that does not answer, ...
            checks.append(
                Check(name, "fail", from_exception(err).describe(), "check the network path and retry")
            )
    if params.topology == "gateway":  # the Ingress's zonal NEG backends are the split topology's
        return checks
    checks.append(
        Check(
            "backend type",
            "warn",
            "GKE Ingress uses zonal NEG backends, which Google's mTLS "
            "documentation does not list among supported backends (seen working in practice)",
            "verify with 50_verify after building; keep REJECT_INVALID probes in scheduled checks",
        )
    )
    return checks


def certificate_checks(findings: list[lint.Finding]) -> list[Check]:
    """The lint's findings as one check; its status is the worst finding's (see `lint.check_status`)."""
    status = lint.worst_status(findings)
    worst = [f for f in findings if f.status == status]
    if status == "fail":
        shown = "; ".join(f"{f.field or f.file}: {f.rule} -> {f.outcome or f.detail}" for f in worst[:3])
        return [Check("certificate lint", status, f"{len(worst)} error(s): {shown}", worst[0].fix)]
    if status == "warn":
        shown = "; ".join(f"{f.field or f.file}: {f.detail}" for f in worst[:3])
        return [Check("certificate lint", status, shown, worst[0].fix)]
    return [Check("certificate lint", status, f"{len(findings)} findings, none blocking")]


def topology_checks(clients: Clients, params: Params) -> list[Check]:
    """What the params' topology needs of the cluster beyond the APIs: for a Gateway, a Gateway API
    whose schema carries frontend validation and a class that accepts and claims it; nothing for the
    split topology."""
    if params.topology != "gateway":
        return []
    try:
        return gateway_preflight.gateway_checks(clients, params)
    except SetupMissing as err:
        return [Check("Gateway API served", "fail", f"not asked: {err.what} missing", err.fix)]
    except (ApiException, *LIBRARY_FAILURES) as err:
        return [Check("Gateway API served", "fail", from_exception(err).describe(), "check the kube context")]
    except ApiError as err:
        return [Check("Gateway API served", "fail", err.describe(), "check the kube context and your RBAC")]
