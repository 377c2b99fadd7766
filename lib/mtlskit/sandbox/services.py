"""Service Usage, as far as a reader of the runbook asks it: which APIs the project has enabled.

00_preflight tells a person to check `gcloud services list --enabled` before building; on the sandbox
the answer is the APIs the sandbox serves, all enabled (the real API would also list many others).
"""

from __future__ import annotations

from mtlskit.sandbox.web import ApiError, Request, Response

SERVED = {
    "certificatemanager.googleapis.com": "Certificate Manager API",
    "compute.googleapis.com": "Compute Engine API",
    "dns.googleapis.com": "Cloud DNS API",
    "logging.googleapis.com": "Cloud Logging API",
    "networksecurity.googleapis.com": "Network Security API",
}


def is_services_path(parts: list[str]) -> bool:
    return len(parts) == 4 and parts[0] == "v1" and parts[1] == "projects" and parts[3] == "services"


def handle(req: Request, parts: list[str], projects: list[str]) -> Response:
    """`GET /v1/projects/{project}/services`: the served APIs, ENABLED (a `state:DISABLED` filter
    lists none)."""
    project = parts[2]
    if project not in projects:
        raise ApiError.google(403, f"Permission denied on resource project {project}.", "forbidden")
    if req.method != "GET":
        raise ApiError.unknown_method(req.path)
    wanted = (req.arg("filter") or "state:ENABLED").replace(" ", "")
    if wanted not in ("", "state:ENABLED"):
        return Response(200, {})
    return Response(
        200,
        {
            "services": [
                {
                    "name": f"projects/{project}/services/{name}",
                    "parent": f"projects/{project}",
                    "config": {"name": name, "title": title},
                    "state": "ENABLED",
                }
                for name, title in sorted(SERVED.items())
            ]
        },
    )
