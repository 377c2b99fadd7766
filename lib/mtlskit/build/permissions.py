"""The IAM permissions the runbook's steps need, derived from what they create, update, read and
delete, and whether the caller holds them, asked before any write.

A real project's first answer to a new user is often a 403 halfway through the build. Cloud Resource
Manager's `projects.testIamPermissions` says which of a list of permissions the caller holds without
changing anything, so 00_preflight asks it for exactly these and names, for each one missing, the
predefined role that grants it (`mtlskit.rules.iam`, the same table the kit's 403 messages use).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mtlskit.build import frontend, trust
from mtlskit.build.backend import BackendService
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core import errors
from mtlskit.core.checks import Check, Status
from mtlskit.rules import iam

# What a write's field refers to, and the permission Compute or Network Security checks on it.
REFERENCE_PERMISSIONS = {
    "default_service": "compute.backendServices.use",
    "url_map": "compute.urlMaps.use",
    "ssl_certificates": "compute.sslCertificates.get",
    "ssl_policy": "compute.sslPolicies.use",
    "server_tls_policy": "networksecurity.serverTlsPolicies.use",
    "target": "compute.targetHttpsProxies.use",
    "I_p_address": "compute.globalAddresses.use",
}
# The IAM resource type of each trust kind (Certificate Manager spells it in lower case).
TRUST_IAM = {
    "TrustConfig": "certificatemanager.trustconfigs",
    "ServerTlsPolicy": "networksecurity.serverTlsPolicies",
}
# A server TLS policy names its trust config.
TRUST_REFERENCES = {"ServerTlsPolicy": ["certificatemanager.trustconfigs.use"]}
TEARDOWN = "90_teardown"
# The Gateway topology's own notebooks (the kit's Compute resources; the Gateway and its check).
GATEWAY_PREREQS = "gw10_gateway_prereqs"
GATEWAY_STEP = "gw20_gateway"
GATEWAY_TEARDOWN = "gw90_gateway_teardown"
TEARDOWN_STEPS = (TEARDOWN, GATEWAY_TEARDOWN)
# What gw20 reads to check the load balancer the Gateway controller built.
GATEWAY_READS = (
    "compute.targetHttpsProxies.get",
    "networksecurity.serverTlsPolicies.get",
    "certificatemanager.trustconfigs.get",
)
BATCH = 100  # testIamPermissions answers at most this many permissions per call


@dataclass(frozen=True)
class Need:
    """One permission one step needs, and for what."""

    permission: str
    step: str  # the notebook: "40_frontend"
    action: str  # "create TargetHttpsProxy mtls-proxy"


def _stand_in_inputs(params: Params) -> frontend.Inputs:
    """The frontend's desired fields only for their names (which references each kind makes)."""
    bs = BackendService("backend", "", "EXTERNAL", "HTTP", "", "", "", False, 1.0, [])
    return frontend.Inputs(params, bs, server_tls_policy="policy")


def needs(params: Params) -> list[Need]:
    """Every permission the runbook needs for these params, in step order: 00_preflight's reads,
    20's backend service, 30's trust resources, 40's frontend (with the `.use` permissions of what
    each write refers to), 60's logs, then 90's deletes."""
    out = [Need("compute.projects.get", "00_preflight", "read the project's quotas")]
    gateway = params.topology == "gateway"
    # The Gateway topology: the kit creates only a few Compute resources of its own (gw10); the
    # controller builds the rest under its own service account. Reading what it built (the proxy,
    # server TLS policy and trust config) is the load-balancer check of gw20.
    build_step = GATEWAY_PREREQS if gateway else "40_frontend"
    if gateway:
        out += [
            Need(p, GATEWAY_STEP, f"read the load balancer the controller built ({p.split('.')[1]})")
            for p in GATEWAY_READS
        ]
    else:
        out.append(
            Need("compute.backendServices.get", "20_backend_service", "read the Ingress's backend service")
        )
    for kind in [] if gateway else trust.TRUST_KINDS.values():
        prefix, name = TRUST_IAM[kind.name], kind.resource_id(params)
        out += [
            Need(f"{prefix}.{verb}", "30_trust", f"{verb} {kind.name} {name}")
            for verb in ("get", "create", "update")
        ]
        out += [
            Need(p, "30_trust", f"create {kind.name} {name} (refers to it)")
            for p in TRUST_REFERENCES.get(kind.name, [])
        ]
        out.append(Need(f"{prefix.split('.')[0]}.operations.get", "30_trust", f"wait for {kind.name} {name}"))
    inputs = _stand_in_inputs(params)
    kinds = frontend.kit_kinds(params)
    for kind in kinds:
        prefix, name = f"compute.{iam.COMPUTE_IAM_TYPE[kind.collection]}", kind.resource_name(params)
        verbs = ("get", "create", "update") if kind.patchable else ("get", "create")
        out += [Need(f"{prefix}.{verb}", build_step, f"{verb} {kind.name} {name}") for verb in verbs]
        refs = [REFERENCE_PERMISSIONS[f] for f in kind.desired(inputs) if f in REFERENCE_PERMISSIONS]
        out += [Need(p, build_step, f"create {kind.name} {name} (refers to it)") for p in refs]
    out.append(Need("compute.globalOperations.get", build_step, "wait for Compute operations"))
    out.append(Need("logging.logEntries.list", "60_logs", "read the load balancer's request logs"))
    teardown_step = GATEWAY_TEARDOWN if gateway else TEARDOWN
    for kind in reversed(kinds):
        prefix = f"compute.{iam.COMPUTE_IAM_TYPE[kind.collection]}"
        out.append(
            Need(f"{prefix}.delete", teardown_step, f"delete {kind.name} {kind.resource_name(params)}")
        )
    for kind in [] if gateway else reversed(trust.TRUST_KINDS.values()):
        out.append(
            Need(f"{TRUST_IAM[kind.name]}.delete", TEARDOWN, f"delete {kind.name} {kind.resource_id(params)}")
        )
    return out


@dataclass
class PermissionReport:
    """What the caller holds of what the runbook needs; `problem` says why nothing could be asked."""

    project: str
    needs: list[Need]
    granted: set[str] = field(default_factory=set)
    problem: str = ""
    problem_fix: str = ""

    def permissions(self) -> list[str]:
        return list(dict.fromkeys(n.permission for n in self.needs))

    def missing(self, teardown: bool = False) -> list[str]:
        """Missing permissions a build step needs (or, with `teardown`, only 90_teardown)."""
        if self.problem:
            return []
        wanted = [n.permission for n in self.needs if (n.step in TEARDOWN_STEPS) == teardown]
        if teardown:  # one also needed to build is reported with the build
            build = {n.permission for n in self.needs if n.step not in TEARDOWN_STEPS}
            wanted = [p for p in wanted if p not in build]
        return [p for p in dict.fromkeys(wanted) if p not in self.granted]

    def rows(self) -> list[dict[str, Any]]:
        """One row per permission: held or not, the role that grants it, the steps that need it."""
        if self.problem:
            return [{"permission": "(not asked)", "granted": "", "role": "", "needed by": self.problem}]
        out = []
        for permission in self.permissions():
            uses = [n for n in self.needs if n.permission == permission]
            out.append(
                {
                    "permission": permission,
                    "granted": "yes" if permission in self.granted else "NO",
                    "role": iam.role_for(permission) or "",
                    "needed by": "; ".join(f"{n.step}: {n.action}" for n in uses),
                }
            )
        return out

    def checks(self) -> list[Check]:
        if self.problem:
            return [Check("IAM permissions", "fail", f"not asked: {self.problem}", self.problem_fix)]
        build, teardown = self.missing(), self.missing(teardown=True)
        out = [self._check("IAM permissions", "fail", build, f"all {len(self.permissions())} held")]
        if teardown:
            out.append(self._check("IAM permissions for teardown", "warn", teardown, ""))
        return out

    def _check(self, name: str, status: Status, missing: list[str], ok: str) -> Check:
        if not missing:
            return Check(name, "pass", ok)
        listed = "; ".join(f"{p} (role {iam.role_for(p)}, for {self._first_use(p)})" for p in missing)
        roles = sorted({iam.role_for(p) or "" for p in missing})
        fix = "; ".join(iam.grant_command(self.project, p) for p in _one_per_role(missing))
        evidence = f"{len(missing)} missing: {listed}"
        return Check(name, status, evidence, f"grant {', '.join(roles)}: {fix}")

    def _first_use(self, permission: str) -> str:
        need = next(n for n in self.needs if n.permission == permission)
        return f"{need.step} {need.action}"


def _one_per_role(permissions: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for p in permissions:
        seen.setdefault(iam.role_for(p) or p, p)
    return list(seen.values())


def check_permissions(clients: Clients, params: Params) -> PermissionReport:
    """Ask Cloud Resource Manager which of the needed permissions the caller holds (it changes
    nothing); a machine without credentials, or an API that refuses, becomes the report's problem."""
    report = PermissionReport(clients.project, needs(params))
    asked = report.permissions()
    projects = clients.resource_manager.projects()
    try:
        for start in range(0, len(asked), BATCH):
            body = {"permissions": asked[start : start + BATCH]}
            request = projects.testIamPermissions(resource=clients.project, body=body)
            answer = clients.call(request.execute, num_retries=3)
            report.granted |= set(answer.get("permissions", []))
    except errors.SetupMissing as err:
        report.problem, report.problem_fix = f"{err.what} missing", err.fix
    except errors.ApiError as err:
        report.problem = err.describe()
        report.problem_fix = (
            "the caller needs resourcemanager.projects.get on the project to ask (any role on it); "
            "check the project id"
        )
    return report
