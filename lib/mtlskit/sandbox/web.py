"""The small request/response vocabulary the emulators share, and the error bodies each API returns.

The official clients turn error bodies into exceptions (google.api_core.exceptions.*,
kubernetes.client.ApiException); the bodies here follow what the real services send so that the
kit's error handling is exercised exactly as it would be against Google Cloud.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""
    _json: Any = field(default=None, repr=False)
    # The discovery method the request resolved to (`compute.urlMaps.get`), set by the server's
    # routing, so a handler answers only the method it was asked for.
    method_id: str = ""

    @classmethod
    def build(cls, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Request:
        path, _, qs = raw_path.partition("?")
        return cls(
            method.upper(),
            path,
            parse_qs(qs, keep_blank_values=True),
            {k.lower(): v for k, v in headers.items()},
            body,
        )

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        if self._json is None:
            if not self.body.strip():
                self._json = {}
            else:
                try:
                    self._json = json.loads(self.body)
                except ValueError as exc:
                    raise ApiError.google(
                        400, f"Invalid JSON payload received. {exc}", "parseError"
                    ) from None
        return self._json

    @property
    def enums_as_int(self) -> bool:
        return "enum-encoding=int" in (self.arg("$alt") or "")


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return b"" if self.body is None else json.dumps(self.body).encode()


class ApiError(Exception):
    """An error the emulated service answers with; `body` is the service's own error format."""

    def __init__(self, status: int, body: dict[str, Any] | bytes, headers: dict[str, str] | None = None):
        super().__init__(
            (body.decode(errors="replace") if isinstance(body, bytes) else json.dumps(body))[:300]
        )
        self.status = status
        self.body = body
        self.headers = headers or {}

    @property
    def response(self) -> Response:
        return Response(self.status, self.body, dict(self.headers))

    @classmethod
    def compute(cls, status: int, message: str, reason: str) -> ApiError:
        """Compute's error body: code, message and `errors[]` with domain and reason; unlike the
        location-based APIs it carries no `status` name."""
        errors = [{"message": message, "domain": "global", "reason": reason}]
        return cls(status, {"error": {"code": status, "message": message, "errors": errors}})

    @classmethod
    def unknown_method(cls, path: str) -> ApiError:
        """What Google's front end answers for a URL and HTTP method no API method has: its HTML
        404 page, never another method's answer."""
        page = (
            "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n"
            "  <title>Error 404 (Not Found)!!1</title>\n"
            "  <p><b>404.</b> <ins>That\u2019s an error.</ins>\n"
            f"  <p>The requested URL <code>{html.escape(path)}</code> was not found on this server."
            "  <ins>That\u2019s all we know.</ins>\n"
        )
        return cls(404, page.encode(), {"Content-Type": "text/html; charset=UTF-8"})

    @classmethod
    def google(
        cls, status: int, message: str, reason: str | None = None, status_name: str | None = None
    ) -> ApiError:
        body: dict[str, Any] = {
            "error": {
                "code": status,
                "message": message,
                "status": status_name or STATUS_NAMES.get(status, "UNKNOWN"),
            }
        }
        if reason:
            body["error"]["errors"] = [{"message": message, "domain": "global", "reason": reason}]
        return cls(status, body)

    @classmethod
    def kube(
        cls,
        status: int,
        reason: str,
        message: str,
        name: str = "",
        group: str = "",
        kind: str = "",
        causes: list[dict[str, str]] | None = None,
    ) -> ApiError:
        details: dict[str, Any] = {}
        if name:
            details["name"] = name
        if group:
            details["group"] = group
        if kind:
            details["kind"] = kind
        if causes:
            details["causes"] = causes
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "details": details,
            "code": status,
        }
        return cls(status, body)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def kube_time() -> str:
    """Kubernetes timestamps: RFC 3339 in UTC, whole seconds."""
    return now().astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339(t: dt.datetime | None = None, compute: bool = False) -> str:
    t = t or now()
    if compute:
        # Compute's timestamps carry a -07:00 style offset and milliseconds.
        return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}-00:00"
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str) -> dt.datetime:
    v = value.strip().replace("Z", "+00:00")
    if len(v) >= 5 and v[-5] in "+-" and v[-3] != ":" and v[-4:].isdigit():
        v = v[:-2] + ":" + v[-2:]
    # Python's fromisoformat wants at most 6 fractional digits.
    if "." in v:
        head, _, rest = v.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        tz = rest[len(digits) :]
        v = f"{head}.{digits[:6].ljust(6, '0')}{tz}"
    parsed = dt.datetime.fromisoformat(v)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def new_id() -> str:
    """A Compute-style unsigned 64-bit id, as a JSON string."""
    return str(secrets.randbits(63))


def new_fingerprint() -> str:
    import base64

    return base64.b64encode(secrets.token_bytes(8)).decode()


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
