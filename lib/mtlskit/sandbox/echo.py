"""The app behind every Kubernetes Service in the sandbox: answers JSON with what it received.

One small HTTP server per Service and port, started on first use, so a probe can see exactly which
headers the load balancer passed on (and that a client's forged `X-Client-Cert-*` never arrive).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _EchoServer

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        payload = {
            "service": self.server.service,
            "method": self.command,
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body_bytes": len(body),
        }
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _EchoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, service: str):
        self.service = service
        super().__init__(("127.0.0.1", 0), _Echo)


class EchoApps:
    def __init__(self) -> None:
        self._apps: dict[tuple[str, str, int], _EchoServer] = {}
        self._lock = threading.Lock()

    def address(self, namespace: str, service: str, port: int) -> tuple[str, int]:
        """Where the echo app for one Service port listens (started on first use)."""
        key = (namespace, service, port)
        with self._lock:
            app = self._apps.get(key)
            if app is None:
                app = self._apps[key] = _EchoServer(f"{namespace}/{service}")
                threading.Thread(target=app.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True).start()
        host, bound = app.server_address[:2]
        return str(host), int(bound)

    def close(self) -> None:
        with self._lock:
            for app in self._apps.values():
                app.shutdown()
                app.server_close()
            self._apps.clear()
