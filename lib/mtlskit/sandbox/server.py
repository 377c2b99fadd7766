"""The sandbox HTTP server: one loopback port serving Compute, Network Security, Certificate Manager,
Logging and the Kubernetes API, plus `/_sandbox/*` for the request counter and the fault switch.

Routing needs no per-API port: the path prefixes do not collide (`/compute/v1`, `/v1/.../
serverTlsPolicies|trustConfigs|operations`, `/v2/entries:list`, `/api`, `/apis`), and long-running
operations of Network Security and Certificate Manager are found by their full name.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import random
import secrets
import threading
from collections import Counter
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from mtlskit.sandbox import discovery
from mtlskit.sandbox.compute import Compute
from mtlskit.sandbox.controller import IngressController
from mtlskit.sandbox.dataplane import DataPlane
from mtlskit.sandbox.kube import Kind, Kube
from mtlskit.sandbox.locations import Locations
from mtlskit.sandbox.logs import Logging
from mtlskit.sandbox.state import Store
from mtlskit.sandbox.web import ApiError, Request, Response

log = logging.getLogger("mtlskit.sandbox")
DEFAULT_PROJECT = "mtlskit-sandbox"
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
READ_ONLY_POSTS = {
    "compute.globalOperations.wait",
    "logging.entries.list",
    "compute.backendServices.getHealth",
}


@dataclass
class Settings:
    operation_delay_seconds: float = 0.2
    managed_cert_delay_seconds: float = 1.0
    data_plane_port: int = 8443


@dataclass
class Faults:
    """Answer a share of Google API requests with 429/503, or make operations end in an error."""

    error_rate: float = 0.0
    operation_error_rate: float = 0.0
    statuses: list[int] = field(default_factory=lambda: [429, 503])
    seed: int | None = None
    apis: list[str] = field(
        default_factory=lambda: ["compute", "networksecurity", "certificatemanager", "logging"]
    )

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def request_fault(self, api: str) -> int | None:
        if api not in self.apis or self.error_rate <= 0:
            return None
        with self._lock:
            if self._rng.random() < self.error_rate:
                return self._rng.choice(self.statuses)
        return None

    def operation_should_fail(self) -> bool:
        if self.operation_error_rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < self.operation_error_rate

    def describe(self) -> dict[str, Any]:
        return asdict(self)


class Sandbox:
    def __init__(self, state_dir: Path, settings: Settings | None = None, projects: list[str] | None = None):
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(self.state_dir / "state.sqlite")
        self.settings = settings or Settings()
        self.faults = Faults()
        self.counters: Counter[str] = Counter()
        self._counter_lock = threading.Lock()
        if self.store.meta("cluster_uid") is None:
            self.store.set_meta("cluster_uid", secrets.token_hex(8))
        known = json.loads(self.store.meta("projects", "[]") or "[]")
        for p in projects or []:
            if p not in known:
                known.append(p)
        if not known:
            known = [DEFAULT_PROJECT]
        self.store.set_meta("projects", json.dumps(known))
        if self.store.meta("cluster_project") is None:
            self.store.set_meta("cluster_project", known[0])
        self.compute = Compute(self)
        self.netsec = Locations(self)
        self.logging = Logging(self)
        self.kube = Kube(self)
        self.controller = IngressController(self)
        self.dataplane = DataPlane(self, self.settings.data_plane_port)

    @property
    def cluster_uid(self) -> str:
        return self.store.meta("cluster_uid") or ""

    @property
    def cluster_project(self) -> str:
        return self.store.meta("cluster_project") or DEFAULT_PROJECT

    @property
    def projects(self) -> list[str]:
        return list(json.loads(self.store.meta("projects", "[]") or "[]"))

    def require_project(self, project: str, api: str) -> None:
        if project not in self.projects:
            if api == "compute":
                raise ApiError.google(404, f"The resource 'projects/{project}' was not found", "notFound")
            raise ApiError.google(
                403,
                f"Permission denied on resource project {project} (the sandbox serves "
                f"{', '.join(self.projects)}).",
                status_name="PERMISSION_DENIED",
            )

    def allocate_ip(self) -> str:
        """A fresh 127.x address, so each forwarding rule can get its own loopback listener."""
        n = self.store.next_counter("loopback-ip")
        # A per-sandbox /16 (from the cluster uid), so two sandboxes on one machine never share an
        # address: each binds its data plane listeners on its own IPs.
        uid = bytes.fromhex(self.cluster_uid[:4])
        base = ipaddress.ip_address(f"127.{16 + uid[0] % 200}.{uid[1]}.0")
        return str(base + n)

    def after_kube_change(self, kind: Kind, obj: dict[str, Any]) -> None:
        if kind.plural in ("ingresses", "services", "backendconfigs"):
            with self.store.lock:
                self.controller.reconcile()

    def count(self, key: str) -> None:
        with self._counter_lock:
            self.counters[key] += 1

    # ---- dispatch ------------------------------------------------------------------------------------

    def dispatch(self, req: Request) -> Response:
        parts = [p for p in req.path.split("/") if p]
        if parts[:1] == ["_sandbox"]:
            return self._introspect(req, parts[1:])
        api, method_id = self._classify(req, parts)
        self.count(method_id)
        status = self.faults.request_fault(api)
        if status is not None:
            self.count(f"fault.{status}")
            msg = (
                "Quota exceeded (sandbox fault)."
                if status == 429
                else "The service is unavailable (sandbox fault)."
            )
            raise ApiError.google(status, msg, "rateLimitExceeded" if status == 429 else "backendError")
        with self.store.lock:
            if api == "compute":
                return self.compute.handle(req, parts[3:])
            if api in ("networksecurity", "certificatemanager"):
                return self.netsec.handle(req, parts[1:], api)
            if api == "logging":
                return self.logging.handle(req)
            return self.kube.handle(req, parts)

    def _classify(self, req: Request, parts: list[str]) -> tuple[str, str]:
        """Which API serves the path, and the discovery method id (checked against the schema)."""
        if parts[:2] == ["compute", "v1"] and len(parts) > 3 and parts[2] == "projects":
            api = "compute"
        elif parts[:1] == ["v1"] and "serverTlsPolicies" in parts:
            api = "networksecurity"
        elif parts[:1] == ["v1"] and "trustConfigs" in parts:
            api = "certificatemanager"
        elif parts[:1] == ["v1"] and "operations" in parts:
            api = self._operation_api(req.path)
        elif parts[:1] == ["v2"]:
            api = "logging"
        elif parts[:1] in (["api"], ["apis"], ["version"]):
            return "kube", f"kube.{req.method} {'/'.join(_kube_shape(parts))}"
        else:
            raise ApiError.google(404, f"Not found: {req.path}")
        method = discovery.api(api).find(req.method, req.path.split(":")[0] if api != "logging" else req.path)
        if method is None:
            raise ApiError.google(404, f"Method {req.method} {req.path} is not part of the {api} API.")
        if req.method in MUTATING and method.request_ref and method.id not in READ_ONLY_POSTS:
            problems = discovery.check(api, method.request_ref, req.json(), enums_as_int=req.enums_as_int)
            if problems:
                raise ApiError.google(
                    400, "Invalid JSON payload received. " + "; ".join(problems[:5]), "invalid"
                )
        return api, method.id

    def _operation_api(self, path: str) -> str:
        name = path.split("/v1/", 1)[-1].split(":")[0]
        op = self.store.get("lro", "operations", name)
        return (op or {}).get("_api", "networksecurity")

    def _introspect(self, req: Request, parts: list[str]) -> Response:
        if parts == ["healthz"]:
            return Response(200, {"ok": True, "cluster_uid": self.cluster_uid, "projects": self.projects})
        if parts == ["dataplane"]:
            return Response(200, self.dataplane.status())
        if parts == ["counters"]:
            if req.method == "DELETE":
                with self._counter_lock:
                    self.counters.clear()
            with self._counter_lock:
                return Response(200, {"counts": dict(self.counters)})
        if parts == ["faults"]:
            if req.method in ("POST", "PUT"):
                body = req.json()
                allowed = {"error_rate", "operation_error_rate", "statuses", "seed", "apis"}
                unknown = set(body) - allowed
                if unknown:
                    raise ApiError.google(400, f"unknown fault settings: {sorted(unknown)}")
                self.faults = Faults(**{**self.faults.describe(), **body})
            return Response(200, self.faults.describe())
        if parts == ["projects"] and req.method == "POST":
            project = req.json().get("project")
            if project and project not in self.projects:
                self.store.set_meta("projects", json.dumps([*self.projects, project]))
            return Response(200, {"projects": self.projects})
        raise ApiError.google(404, f"Not found: {req.path}")


def _kube_shape(parts: list[str]) -> list[str]:
    """A path with names replaced, so the counter groups by method and resource, not by object."""
    out = []
    for i, p in enumerate(parts):
        prev = parts[i - 1] if i else ""
        out.append("{ns}" if prev == "namespaces" and i + 1 < len(parts) else p)
    return out


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = (
        True  # headers and body go out in two writes; without this each call waits ~40 ms
    )
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        req = Request.build(self.command, self.path, dict(self.headers.items()), body)
        try:
            resp = self.server.sandbox.dispatch(req)
        except ApiError as err:
            resp = Response(err.status, err.body)
        except Exception as exc:  # a bug in the sandbox must still answer, like a 500 from the service
            log.exception("sandbox error on %s %s", self.command, self.path)
            resp = Response(
                500,
                {"error": {"code": 500, "message": f"sandbox internal error: {exc}", "status": "INTERNAL"}},
            )
        payload = resp.encode()
        self.send_response(resp.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for k, v in resp.headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, sandbox: Sandbox, port: int):
        self.sandbox = sandbox
        super().__init__(("127.0.0.1", port), _Handler)


def serve(sandbox: Sandbox, port: int = 0) -> _Server:
    """Bind on loopback only; the caller runs `serve_forever` (foreground) or a thread."""
    return _Server(sandbox, port)
