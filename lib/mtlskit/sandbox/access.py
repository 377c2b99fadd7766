"""IAM and quotas on the sandbox: the refusals a real project gives a new user, to practise with.

By default the caller holds every permission and has room under every quota. Settings withhold
permissions (`sandbox.withhold_permissions`) and exhaust Compute quota metrics
(`sandbox.exhaust_quota`); the sandbox then answers as Google does, in every place it would:

- Cloud Resource Manager `projects.testIamPermissions` leaves the withheld ones out of its answer;
- a call that needs a withheld permission, for the resource itself or for one it refers to (a proxy's
  URL map needs `compute.urlMaps.use`), answers 403 with Google's message naming the permission;
- Compute `projects.get` lists the project's global quotas, their usage counted from the resources the
  sandbox holds; an exhausted metric has its limit at its usage, and an insert it counts answers 403
  `QUOTA_EXCEEDED`.
"""

from __future__ import annotations

import base64
import threading
import zlib
from typing import Any

from mtlskit.rules import iam
from mtlskit.sandbox.env import Env
from mtlskit.sandbox.web import ApiError, Request, Response

COMPUTE_BASE = "https://www.googleapis.com/compute/v1/"
# Room the sandbox gives each metric that is not exhausted (real projects start lower; the sandbox
# must hold many training stacks side by side).
DEFAULT_LIMIT = 1000.0
TEST_IAM_METHOD = "cloudresourcemanager.projects.testIamPermissions"
_VERBS = {"insert": "create", "patch": "update", "aggregatedList": "list", "wait": "get", "getHealth": "get"}
_URL_COLLECTION = {v: k for k, v in iam.COMPUTE_IAM_TYPE.items()}
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"


def is_resource_manager_path(parts: list[str]) -> bool:
    """`/v1/projects` and `/v1/projects/{project}[:verb]`: Resource Manager's paths, of which the
    sandbox serves only `testIamPermissions` (the one call the kit makes); the location-based APIs'
    paths all go deeper."""
    return parts[:2] == ["v1", "projects"] and len(parts) <= 3


def permission_of(method_id: str) -> str:
    """The IAM permission a discovery method id needs: `compute.targetHttpsProxies.insert` ->
    `compute.targetHttpsProxies.create`, `certificatemanager.projects.locations.trustConfigs.create`
    -> `certificatemanager.trustconfigs.create`."""
    parts = method_id.split(".")
    service, kind, verb = parts[0], parts[-2], parts[-1]
    verb = "update" if verb.startswith("set") else _VERBS.get(verb, verb)
    if service == "certificatemanager":
        kind = kind.lower()
    if service == "logging" and kind == "entries":
        kind = "logEntries"
    return f"{service}.{kind}.{verb}"


class Access:
    """The withheld permissions and exhausted metrics, changeable while the sandbox runs."""

    def __init__(self, env: Env):
        self.env = env
        self._lock = threading.Lock()
        self.withheld = set(env.settings.withhold_permissions)
        self.exhausted = set(env.settings.exhaust_quota)

    def describe(self) -> dict[str, Any]:
        return {"withhold_permissions": sorted(self.withheld), "exhaust_quota": sorted(self.exhausted)}

    def update(self, body: Any) -> Response:
        """`POST /_sandbox/access` with either list; unknown names are refused, nothing changes."""
        if not isinstance(body, dict):
            raise ApiError.google(400, "expected {withhold_permissions: [...], exhaust_quota: [...]}")
        permissions = list(body.get("withhold_permissions", sorted(self.withheld)))
        metrics = list(body.get("exhaust_quota", sorted(self.exhausted)))
        bad = iam.unknown_permissions(permissions) + iam.unknown_metrics(metrics)
        if bad or set(body) - {"withhold_permissions", "exhaust_quota"}:
            raise ApiError.google(400, f"unknown permissions, metrics or settings: {bad or sorted(body)}")
        with self._lock:
            self.withheld, self.exhausted = set(permissions), set(metrics)
        return Response(200, self.describe())

    # ---- Cloud Resource Manager ---------------------------------------------------------------------

    def test_iam_permissions(self, req: Request, parts: list[str]) -> Response:
        """The caller's granted subset of the permissions asked about (Google leaves an empty list out)."""
        if req.method_id != TEST_IAM_METHOD:
            raise ApiError.unknown_method(req.path)
        project = parts[2].split(":", 1)[0]
        if project not in self.env.projects:
            raise _denied_project(project)
        asked = req.json().get("permissions", [])
        if not isinstance(asked, list) or not all(isinstance(p, str) for p in asked):
            raise ApiError.google(
                400, "Invalid JSON payload received. 'permissions' must be a list of strings.", "invalid"
            )
        wild = [p for p in asked if "*" in p or p.count(".") != 2]
        if wild:
            raise ApiError.google(400, f"Permission {wild[0]} is not valid.", "badRequest")
        granted = [p for p in asked if p not in self.withheld]
        return Response(200, {"permissions": granted} if granted else {})

    # ---- permissions on every call ------------------------------------------------------------------

    def check(self, api: str, method_id: str, req: Request, parts: list[str]) -> None:
        """Answer 403 as Google does when the call, or a resource it refers to, needs a withheld
        permission."""
        if not self.withheld or api not in ("compute", "networksecurity", "certificatemanager", "logging"):
            return
        for permission, resource in self._needs(api, method_id, req, parts):
            if permission in self.withheld:
                raise _permission_denied(api, permission, resource)

    def _needs(self, api: str, method_id: str, req: Request, parts: list[str]) -> list[tuple[str, str]]:
        own = permission_of(method_id)
        body = req.json() if req.method in ("POST", "PATCH", "PUT") else {}
        body = body if isinstance(body, dict) else {}
        if api == "compute":
            resource = _compute_resource(parts, method_id, body)
            return [(own, resource), *_compute_references(method_id, body)]
        if api == "logging":
            projects = body.get("resourceNames") or body.get("projectIds") or []
            return [(own, str(projects[0]) if projects else "")]
        resource = "/".join(parts[1:]).split(":", 1)[0]
        if method_id.endswith(".create"):
            created = req.arg("serverTlsPolicyId") or req.arg("trustConfigId") or ""
            resource = f"{resource}/{created}"
        needs = [(own, resource)]
        trust = (body.get("mtlsPolicy") or {}).get("clientValidationTrustConfig")
        if trust:
            needs.append(("certificatemanager.trustconfigs.use", _relative(trust)))
        return needs

    # ---- quotas -------------------------------------------------------------------------------------

    def quotas(self, project: str) -> list[dict[str, Any]]:
        """Compute's global quotas for the metrics the kit's resources count against."""
        out = []
        for collection, metric in iam.QUOTA_METRICS.items():
            usage = float(len(self._global(project, collection)))
            limit = usage if metric in self.exhausted else max(DEFAULT_LIMIT, usage)
            out.append({"metric": metric, "limit": limit, "usage": usage})
        return out

    def project(self, project: str) -> Response:
        """Compute `projects.get`: the project with its global quotas."""
        if project not in self.env.projects:
            raise ApiError.compute(404, f"The resource 'projects/{project}' was not found", "notFound")
        number = str(zlib.crc32(project.encode()))
        return Response(
            200,
            {
                "kind": "compute#project",
                "id": number,
                "creationTimestamp": "2024-01-01T00:00:00.000-08:00",
                "name": project,
                "selfLink": f"{COMPUTE_BASE}projects/{project}",
                "quotas": self.quotas(project),
                "commonInstanceMetadata": {
                    "kind": "compute#metadata",
                    "fingerprint": base64.b64encode(zlib.crc32(project.encode()).to_bytes(8, "big")).decode(),
                },
                "defaultServiceAccount": f"{number}-compute@developer.gserviceaccount.com",
                "xpnProjectStatus": "UNSPECIFIED_XPN_PROJECT_STATUS",
                "defaultNetworkTier": "PREMIUM",
            },
        )

    def check_quota(self, method_id: str, project: str) -> None:
        """An insert counted by a metric with no room left answers 403 QUOTA_EXCEEDED."""
        parts = method_id.split(".")
        if parts[0] != "compute" or parts[-1] != "insert":
            return
        collection = _URL_COLLECTION.get(parts[-2])
        metric = iam.QUOTA_METRICS.get(collection or "")
        if collection is None or metric is None:
            return
        quota = next(q for q in self.quotas(project) if q["metric"] == metric)
        if quota["usage"] + 1 > quota["limit"]:
            raise _quota_exceeded(metric, quota["limit"])

    def _global(self, project: str, collection: str) -> list[str]:
        return [k for k, _ in self.env.store.list("compute", collection, f"{project}/") if k.count("/") == 1]


def _relative(link: str) -> str:
    """`projects/...` of any link form (full URL, `//service/...`, or relative)."""
    return "projects/" + link.split("projects/", 1)[1] if "projects/" in link else link


def _compute_resource(parts: list[str], method_id: str, body: dict[str, Any]) -> str:
    path = parts[2:]  # after /compute/v1/: projects/P/...
    verb = method_id.rsplit(".", 1)[-1]
    if verb.startswith("set") or verb == "getHealth":
        path = path[:-1]
    resource = "/".join(path)
    if verb == "insert" and body.get("name"):
        resource += f"/{body['name']}"
    return resource


def _compute_references(method_id: str, body: dict[str, Any]) -> list[tuple[str, str]]:
    """The `.use` (or `.get`) permissions Compute checks on what a write refers to."""
    kind, verb = method_id.split(".")[-2:]
    if verb not in ("insert", "patch", "update") and not verb.startswith("set"):
        return []
    refs: list[tuple[str, str]] = []
    if kind == "urlMaps" and body.get("defaultService"):
        refs.append(("compute.backendServices.use", _relative(body["defaultService"])))
    if kind == "targetHttpsProxies":
        if body.get("urlMap"):
            refs.append(("compute.urlMaps.use", _relative(body["urlMap"])))
        refs += [("compute.sslCertificates.get", _relative(c)) for c in body.get("sslCertificates") or []]
        if body.get("sslPolicy"):
            refs.append(("compute.sslPolicies.use", _relative(body["sslPolicy"])))
        if body.get("serverTlsPolicy"):
            refs.append(("networksecurity.serverTlsPolicies.use", _relative(body["serverTlsPolicy"])))
    if kind == "globalForwardingRules":
        if body.get("target"):
            refs.append(("compute.targetHttpsProxies.use", _relative(body["target"])))
        address = str(body.get("IPAddress") or "")
        if "/" in address:
            refs.append(("compute.globalAddresses.use", _relative(address)))
    return refs


def _error(
    status: int, message: str, reason: str, domain: str, info: dict[str, Any], api: str = "compute"
) -> ApiError:
    """Google's error body: the legacy `errors[]` (Compute's clients read its reason) and an
    `ErrorInfo` detail (api_core reads its reason and metadata). Compute's carries no status name;
    the location-based APIs' does."""
    body: dict[str, Any] = {
        "code": status,
        "message": message,
        "errors": [{"message": message, "domain": domain, "reason": reason}],
        "details": [{"@type": _ERROR_INFO, **info}],
    }
    if api != "compute":
        body["status"] = "PERMISSION_DENIED"
    return ApiError(status, {"error": body})


def _permission_denied(api: str, permission: str, resource: str) -> ApiError:
    if api == "compute":
        message = f"Required '{permission}' permission for '{resource}'"
    else:
        message = (
            f"Permission '{permission}' denied on resource '//{api}.googleapis.com/{resource}' "
            "(or it may not exist)."
        )
    info = {
        "reason": "IAM_PERMISSION_DENIED",
        "domain": "iam.googleapis.com",
        "metadata": {"permission": permission, "resource": resource},
    }
    return _error(403, message, "forbidden", "global", info, api)


def _quota_exceeded(metric: str, limit: float) -> ApiError:
    message = f"Quota '{metric}' exceeded.  Limit: {limit:.1f} globally."
    info = {
        "reason": "QUOTA_EXCEEDED",
        "domain": "compute.googleapis.com",
        "metadata": {"quota_metric": metric, "quota_limit": f"{limit:.1f}", "scope": "global"},
    }
    return _error(403, message, "quotaExceeded", "usageLimits", info)


def _denied_project(project: str) -> ApiError:
    return ApiError.google(
        403,
        f"The caller does not have permission (project {project} is not served by this sandbox)",
        "forbidden",
    )
