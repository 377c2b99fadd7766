"""The sandbox HTTP server: one loopback port serving Compute, Network Security, Certificate Manager,
Logging, Cloud Storage, Cloud DNS and the Kubernetes API, plus `/_sandbox/*` for the request counter,
the fault switch, the refusals to practise with (`access`) and the cluster's Gateway API bundle
(`cluster`). (The DNS responder that serves Cloud DNS's zones listens on a UDP and TCP port of its
own: `mtlskit.sandbox.dnsserver`.)

Routing needs no per-API port: the path prefixes do not collide (`/compute/v1`, `/v1/.../
serverTlsPolicies|trustConfigs|operations`, `/v2/entries:list`, `/storage/v1`, `/upload/storage/v1`,
`/download/storage/v1`, `/dns/v1`, `/api`, `/apis`, Resource Manager's `/v1/projects/P:testIamPermissions`), and long-running
operations of Network Security and Certificate Manager are found by their full name.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from mtlskit.sandbox import access, clouddns, discovery, schema, services, storage
from mtlskit.sandbox.compute.handler import Compute
from mtlskit.sandbox.compute.resources import ComputeStore
from mtlskit.sandbox.controller import IngressController
from mtlskit.sandbox.dataplane import DataPlane
from mtlskit.sandbox.dnsserver import DnsResponder
from mtlskit.sandbox.env import Env, Settings
from mtlskit.sandbox.events import KUBE_WRITE, Events
from mtlskit.sandbox.gateway_controller import GatewayController
from mtlskit.sandbox.kube import KubeObjects
from mtlskit.sandbox.kube_api import KubeApi
from mtlskit.sandbox.kube_crds import InstalledCrds, check_bundle
from mtlskit.sandbox.locations import Locations
from mtlskit.sandbox.logs import Logging
from mtlskit.sandbox.web import ApiError, Request, Response

log = logging.getLogger("mtlskit.sandbox")
MAX_LINE = 65537  # the longest chunk-size or trailer line read, as http.server bounds header lines
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
READ_ONLY_POSTS = {
    "compute.globalOperations.wait",
    "logging.entries.list",
    "compute.backendServices.getHealth",
}


class Sandbox:
    """Builds the emulators over one store and routes each request to the API that serves it.

    Nothing else holds this object: the emulators get the shared `Env` and meet only in the store
    and through `events`."""

    def __init__(self, state_dir: Path, settings: Settings, projects: list[str]):
        self.env = Env.open(Path(state_dir), settings, projects)
        self.store = self.env.store
        self.counters: Counter[str] = Counter()
        self._counter_lock = threading.Lock()
        self.events = Events()
        kube_objects = KubeObjects(self.store)
        kube_objects.bootstrap(self.env.cluster_uid)
        self.crds = InstalledCrds(kube_objects)
        self.crds.install(settings.gateway_api)
        self.compute = Compute(self.env)
        self.netsec = Locations(self.env)
        self.logging = Logging(self.env)
        self.storage = storage.Storage(self.env)
        self.dns = clouddns.CloudDns(self.env)
        self.dns_responder = DnsResponder(self.dns)  # started by whoever serves (a port of its own)
        self.kube = KubeApi(kube_objects, self.events, self.crds)
        self.controller = IngressController(self.env, kube_objects, ComputeStore(self.env))
        self.events.subscribe(KUBE_WRITE, self.controller.on_kube_write)
        self.gateways = GatewayController(self.env, kube_objects, ComputeStore(self.env), self.netsec)
        self.events.subscribe(KUBE_WRITE, self.gateways.on_kube_write)
        self.gateways.schedule()  # Gateways written before a restart are synced again
        self.dataplane = DataPlane(self.env)
        self.access = access.Access(self.env)

    @property
    def projects(self) -> list[str]:
        return self.env.projects

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
        status = self.env.faults.request_fault(api)
        if status is not None:
            self.count(f"fault.{status}")
            msg = (
                "Quota exceeded (sandbox fault)."
                if status == 429
                else "The service is unavailable (sandbox fault)."
            )
            reason = "rateLimitExceeded" if status == 429 else "backendError"
            raise (
                ApiError.compute(status, msg, reason)
                if api == "compute"
                else ApiError.google(status, msg, reason)
            )
        with self.store.lock:
            self.access.check(api, method_id, req, parts)
            if api == "compute":
                if method_id == "compute.projects.get":
                    return self.access.project(parts[3])
                self.access.check_quota(method_id, parts[3])
                return self.compute.handle(req, parts[3:])
            if api == "cloudresourcemanager":
                return self.access.test_iam_permissions(req, parts)
            if api in ("networksecurity", "certificatemanager"):
                return self.netsec.handle(req, parts[1:], api)
            if api == "logging":
                return self.logging.handle(req)
            if api == "serviceusage":
                return services.handle(req, parts, self.projects)
            if api == "storage":
                return self.storage.handle(req, parts, method_id)
            if api == "dns":
                return self.dns.handle(req, parts, method_id)
            return self.kube.handle(req, parts)

    def _classify(self, req: Request, parts: list[str]) -> tuple[str, str]:
        """Which API serves the path, and the discovery method id (checked against the schema)."""
        if parts[:2] == ["compute", "v1"] and len(parts) > 3 and parts[2] == "projects":
            api = "compute"
        elif parts[:1] == ["v1"] and "serverTlsPolicies" in parts:
            api = "networksecurity"
        elif parts[:1] == ["v1"] and "trustConfigs" in parts:
            api = "certificatemanager"
        elif clouddns.is_dns_path(parts):
            api = "dns"
        elif storage.is_storage_path(parts):
            # media bodies are not JSON: the storage stand-in checks the metadata it finds in them
            return "storage", storage.method_id(req, parts)
        elif services.is_services_path(parts):
            return "serviceusage", "serviceusage.services.list"
        elif access.is_resource_manager_path(parts):
            api = "cloudresourcemanager"
        elif parts[:1] == ["v1"] and "operations" in parts:
            api = self._operation_api(req.path)
        elif parts[:1] == ["v2"]:
            api = "logging"
        elif parts[:1] in (["api"], ["apis"], ["version"], ["openapi"]):
            return "kube", f"kube.{req.method} {'/'.join(_kube_shape(parts))}"
        else:
            raise ApiError.unknown_method(req.path)
        method = discovery.api(api).find(req.method, req.path)
        if method is None or (api == "dns" and method.id not in clouddns.SERVED):
            raise ApiError.unknown_method(req.path)
        req.method_id = method.id
        if req.method in MUTATING and method.request_ref and method.id not in READ_ONLY_POSTS:
            problems = discovery.violations(
                api, method.request_ref, req.json(), enums_as_int=req.enums_as_int
            )
            if problems:
                raise schema.bad_request(problems[:5], schema.request_root(method.request_ref, api))
        return api, method.id

    def _operation_api(self, path: str) -> str:
        name = path.split("/v1/", 1)[-1].split(":")[0]
        op = self.store.get("lro", "operations", name)
        return (op or {}).get("_api", "networksecurity")

    def _introspect(self, req: Request, parts: list[str]) -> Response:
        if parts == ["healthz"]:
            return Response(200, {"ok": True, "cluster_uid": self.env.cluster_uid, "projects": self.projects})
        if parts == ["dataplane"]:
            if req.method == "POST":
                self.dataplane.configure(req.json())
            return Response(200, self.dataplane.status())
        if parts == ["dns"]:
            return Response(200, self.dns_responder.status())
        if parts == ["counters"]:
            if req.method == "DELETE":
                with self._counter_lock:
                    self.counters.clear()
            with self._counter_lock:
                return Response(200, {"counts": dict(self.counters)})
        if parts == ["access"]:
            return (
                self.access.update(req.json())
                if req.method == "POST"
                else Response(200, self.access.describe())
            )
        if parts == ["cluster"]:
            if req.method == "POST":
                bundle = req.json().get("gateway_api")
                with self.store.lock:
                    if bundle != self.crds.bundle:
                        self.crds.install(check_bundle(bundle))
            return Response(200, {"gateway_api": self.crds.bundle})
        if parts == ["faults"]:
            if req.method in ("POST", "PUT"):
                self.env.faults.update(req.json())
            return Response(200, self.env.faults.describe())
        if parts == ["projects"] and req.method == "POST":
            project = req.json().get("project")
            if project:
                self.env.add_project(project)
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

    def _read_body(self) -> bytes:
        """The request body however HTTP/1.1 frames it (RFC 9112 §6): chunked or Content-Length.

        `http.server` parses the request line and headers but leaves the body to the handler. Google's
        clients send Content-Length; kubectl streams `-f` files with `Transfer-Encoding: chunked`, and
        a chunked body left unread is then parsed as the next request on the connection. Decoding the
        framing here keeps the stdlib server, whose threading model the store's lock is built around,
        rather than moving every emulator onto an ASGI stack (a new server, its event loop and a second
        dependency tree) to gain one framing rule the standard library already documents.
        """
        encodings = [
            e.strip().lower() for e in self.headers.get("Transfer-Encoding", "").split(",") if e.strip()
        ]
        if encodings:
            if encodings[-1] != "chunked":
                raise ApiError.google(501, f"Transfer-Encoding {', '.join(encodings)} is not supported")
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        chunks = []
        while True:
            size_line = self.rfile.readline(MAX_LINE)
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)  # chunk extensions are ignored
            if size == 0:
                break
            chunks.append(self.rfile.read(size))
            self.rfile.readline(MAX_LINE)  # the CRLF that ends the chunk
        while self.rfile.readline(MAX_LINE) not in (b"\r\n", b"\n", b""):
            pass  # trailer fields: none of the clients send any the sandbox would use
        return b"".join(chunks)

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except (ValueError, ApiError) as exc:
            self.close_connection = True  # the framing is lost: nothing after this request can be read
            err = exc if isinstance(exc, ApiError) else ApiError.google(400, f"Malformed request body: {exc}")
            self._send(err.response)
            return
        req = Request.build(self.command, self.path, dict(self.headers.items()), body)
        try:
            resp = self.server.sandbox.dispatch(req)
        except ApiError as err:
            resp = err.response
        except Exception as exc:  # a bug in the sandbox must still answer, like a 500 from the service
            log.exception("sandbox error on %s %s", self.command, self.path)
            resp = Response(
                500,
                {"error": {"code": 500, "message": f"sandbox internal error: {exc}", "status": "INTERNAL"}},
            )
        self._send(resp)

    def _send(self, resp: Response) -> None:
        payload = resp.encode()
        self.send_response(resp.status)
        if "Content-Type" not in resp.headers:
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


def serve(sandbox: Sandbox, port: int) -> _Server:
    """Bind on loopback only (port 0 picks a free one); the caller runs `serve_forever` (foreground) or a thread."""
    return _Server(sandbox, port)
