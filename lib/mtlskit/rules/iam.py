"""Who may do what, and how much of it: the IAM permissions and Compute quota metrics of what the kit
builds, each with the predefined role that grants it, in one place.

A refused write is the first thing a real project does to a new user, and Google's 403 names only the
permission. Preflight (before any write), the kit's errors (a 403 during apply), params validation
(the sandbox's `withhold_permissions`) and the sandbox (which enforces it) all read this table, so the
role a message names is the one the table holds, and a permission the sandbox can withhold is one the
kit knows how to ask for.

Roles are Google's predefined roles (IAM roles-and-permissions reference): `roles/compute.loadBalancerAdmin`
holds the load balancer's Compute permissions, SSL policy writes need `roles/compute.securityAdmin`,
server TLS policies `roles/networksecurity.admin` (`networksecurity.*`), trust configs
`roles/certificatemanager.editor` (deleting one `roles/certificatemanager.owner`), request logs
`roles/logging.viewer`.
"""

from __future__ import annotations

import re

LB_ADMIN = "roles/compute.loadBalancerAdmin"
SECURITY_ADMIN = "roles/compute.securityAdmin"
NETSEC_ADMIN = "roles/networksecurity.admin"
CM_EDITOR = "roles/certificatemanager.editor"
CM_OWNER = "roles/certificatemanager.owner"
LOG_VIEWER = "roles/logging.viewer"

# The IAM resource type of each Compute REST collection the kit writes (global resources: the
# addresses and forwarding rules are `globalAddresses`/`globalForwardingRules` in IAM and in the
# discovery document's method ids, `addresses`/`forwardingRules` in URLs).
COMPUTE_IAM_TYPE = {
    "addresses": "globalAddresses",
    "sslCertificates": "sslCertificates",
    "sslPolicies": "sslPolicies",
    "urlMaps": "urlMaps",
    "targetHttpsProxies": "targetHttpsProxies",
    "forwardingRules": "globalForwardingRules",
    "backendServices": "backendServices",
}


def _all(prefix: str, verbs: str, role: str) -> dict[str, str]:
    return {f"{prefix}.{verb}": role for verb in verbs.split()}


# Every permission the kit's steps can need, with the narrowest predefined role that grants it.
ROLES: dict[str, str] = {
    **_all("compute.globalAddresses", "get create delete use", LB_ADMIN),
    **_all("compute.sslCertificates", "get create delete", LB_ADMIN),
    **_all("compute.sslPolicies", "get list use", LB_ADMIN),
    **_all("compute.sslPolicies", "create update delete", SECURITY_ADMIN),
    **_all("compute.urlMaps", "get create update delete use", LB_ADMIN),
    **_all("compute.targetHttpsProxies", "get create update delete use", LB_ADMIN),
    **_all("compute.globalForwardingRules", "get create delete", LB_ADMIN),
    **_all("compute.backendServices", "get use", LB_ADMIN),
    "compute.globalOperations.get": LB_ADMIN,
    "compute.projects.get": LB_ADMIN,
    **_all("networksecurity.serverTlsPolicies", "get list create update delete use", NETSEC_ADMIN),
    "networksecurity.operations.get": NETSEC_ADMIN,
    **_all("certificatemanager.trustconfigs", "get list create update use", CM_EDITOR),
    "certificatemanager.trustconfigs.delete": CM_OWNER,
    "certificatemanager.operations.get": CM_EDITOR,
    "logging.logEntries.list": LOG_VIEWER,
}
PERMISSIONS = frozenset(ROLES)

# Compute's project-wide quota metric (`projects.get` -> `quotas[].metric`) for each global collection.
# The classic load balancer's global forwarding rules (scheme EXTERNAL, the only one a GKE Ingress
# backend allows) count against FORWARDING_RULES (EXTERNAL_MANAGED ones would count against
# GLOBAL_EXTERNAL_MANAGED_FORWARDING_RULES); global static addresses against STATIC_ADDRESSES.
QUOTA_METRICS = {
    "addresses": "STATIC_ADDRESSES",
    "sslCertificates": "SSL_CERTIFICATES",
    "sslPolicies": "SSL_POLICIES",
    "urlMaps": "URL_MAPS",
    "targetHttpsProxies": "TARGET_HTTPS_PROXIES",
    "forwardingRules": "FORWARDING_RULES",
    "backendServices": "BACKEND_SERVICES",
}
METRICS = frozenset(QUOTA_METRICS.values())

# Where a quota is raised: the console's Quotas page, or `gcloud alpha quotas preferences create`
# (Cloud Quotas API) with the metric's service quota id.
QUOTA_CONSOLE = "https://console.cloud.google.com/iam-admin/quotas?project={project}"

# Google's wording of a refused permission: Compute ("Required 'compute.x.create' permission for
# 'projects/...'") and the location-based APIs ("Permission 'networksecurity.x.create' denied on
# resource '...'").
_DENIED = (
    re.compile(r"Required '([a-zA-Z]+\.[a-zA-Z]+\.[a-zA-Z]+)' permission"),
    re.compile(r"Permission '([a-zA-Z]+\.[a-zA-Z]+\.[a-zA-Z]+)' denied"),
)
_QUOTA = re.compile(r"Quota '([A-Z0-9_]+)' exceeded")


def role_for(permission: str) -> str | None:
    """The predefined role that grants `permission`, or None for one the kit never needs."""
    return ROLES.get(permission)


def denied_permission(message: str) -> str | None:
    """The permission a 403's message says is missing, or None."""
    for pattern in _DENIED:
        found = pattern.search(message)
        if found:
            return found.group(1)
    return None


def exceeded_metric(message: str) -> str | None:
    """The quota metric a QUOTA_EXCEEDED message names, or None."""
    found = _QUOTA.search(message)
    return found.group(1) if found else None


def grant_command(project: str, permission: str) -> str:
    """The command that grants the role holding `permission` (run by a project IAM admin)."""
    role = role_for(permission) or "ROLE"
    return f"gcloud projects add-iam-policy-binding {project} --member=user:YOU@example.com --role={role}"


def quota_fix(project: str, metric: str) -> str:
    """What fixes an exhausted quota: free a resource, or ask for more."""
    return (
        f"request a quota increase for {metric} (console: {QUOTA_CONSOLE.format(project=project)}, "
        f"filter on the metric; or `gcloud alpha quotas preferences create`), or delete unused "
        f"resources it counts; read it with `gcloud compute project-info describe --project={project} "
        f"--flatten=quotas --filter=quotas.metric={metric}`"
    )


def unknown_permissions(names: list[str]) -> list[str]:
    return [n for n in names if n not in PERMISSIONS]


def unknown_metrics(names: list[str]) -> list[str]:
    return [n for n in names if n not in METRICS]
