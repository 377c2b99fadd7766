"""Cloud Logging `entries:list` over the entries the data plane writes.

Supports the filter subset the kit and the Logs Explorer queries in the docs use: comparisons
(`=`, `!=`, `=~`, `!~`, `:`, `<`, `<=`, `>`, `>=`) on dotted field paths, joined by AND (or by
newlines, which Logging treats as AND). Anything else is refused with a 400 that says so, rather
than silently matching everything.
"""

from __future__ import annotations

import re
from typing import Any

from mtlskit.sandbox.env import Env
from mtlskit.sandbox.state import Store
from mtlskit.sandbox.web import ApiError, Request, Response, new_id, parse_time, rfc3339

CLAUSE = re.compile(
    r"^\s*(?P<field>[A-Za-z_@][\w@.\-]*)\s*(?P<op>=~|!~|!=|>=|<=|=|:|<|>)\s*(?P<value>.+?)\s*$"
)


def split_and(filter_text: str) -> list[str]:
    """Split into comparisons joined by AND, newlines or plain whitespace (Logging's implicit AND)."""
    tokens, buf, quote = [], "", False
    for i, ch in enumerate(filter_text):
        if ch == '"' and (i == 0 or filter_text[i - 1] != "\\"):
            quote = not quote
        if ch.isspace() and not quote:
            if buf:
                tokens.append(buf)
            buf = ""
            continue
        buf += ch
    if buf:
        tokens.append(buf)
    parts: list[str] = []
    current = ""
    for i, tok in enumerate(tokens):
        if tok == "AND":
            continue
        if tok in ("OR", "NOT", "-"):  # kept apart, so the filter is refused rather than misread
            parts += [current, tok] if current else [tok]
            current = ""
            continue
        current = f"{current} {tok}".strip()
        following = tokens[i + 1] if i + 1 < len(tokens) else ""
        continues = following[:1] in ("=", "!", "<", ">", ":", "~")
        if CLAUSE.match(current) and not continues and not current.endswith(tuple("=!<>:~")):
            parts.append(current)
            current = ""
    if current:
        parts.append(current)
    return parts


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"')
    return value


def _lookup(entry: dict[str, Any], path: str) -> Any:
    node: Any = entry
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return None
    return node


def compile_filter(filter_text: str) -> list[tuple[str, str, str]]:
    clauses = []
    for raw in split_and(filter_text):
        if raw in ("OR", "NOT", "-") or raw.upper().startswith("NOT ") or " OR " in raw:
            raise ApiError.google(
                400, f"Unsupported filter in the sandbox: {raw!r} (only AND-joined comparisons)"
            )
        m = CLAUSE.match(raw)
        if not m:
            raise ApiError.google(400, f"Invalid filter expression: {raw!r}")
        clauses.append((m["field"], m["op"], _unquote(m["value"])))
    return clauses


def matches(entry: dict[str, Any], clauses: list[tuple[str, str, str]]) -> bool:
    for field, op, value in clauses:
        actual = _lookup(entry, field)
        if field in ("timestamp", "receiveTimestamp"):
            if actual is None:
                return False
            a, b = parse_time(str(actual)), parse_time(value)
            ok = {"=": a == b, "!=": a != b, ">=": a >= b, "<=": a <= b, ">": a > b, "<": a < b}.get(op)
            if ok is None:
                raise ApiError.google(400, f"Operator {op} is not supported on {field}")
            if not ok:
                return False
            continue
        text = "" if actual is None else (str(actual).lower() if isinstance(actual, bool) else str(actual))
        if op == "=" and not (actual is not None and text == value):
            return False
        if op == "!=" and text == value:
            return False
        if op == ":" and not (actual is not None and value.lower() in text.lower()):
            return False
        if op == "=~" and not (actual is not None and re.search(value, text)):
            return False
        if op == "!~" and actual is not None and re.search(value, text):
            return False
        if op in ("<", "<=", ">", ">="):
            try:
                a, b = float(text), float(value)
            except ValueError:
                a, b = text, value  # type: ignore[assignment]
            if not {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]:
                return False
    return True


def append_entry(store: Store, entry: dict[str, Any]) -> dict[str, Any]:
    """The one write path, shared by entries:write and the data plane's request logs."""
    now = rfc3339()
    entry.setdefault("timestamp", now)
    entry["receiveTimestamp"] = now
    entry.setdefault("insertId", new_id()[:14])
    entry.setdefault("severity", "INFO")
    store.append_log(entry["timestamp"], entry)
    return entry


class Logging:
    def __init__(self, env: Env):
        self.env = env

    def handle(self, req: Request) -> Response:
        """entries:write and entries:list; every other Logging method is not served."""
        if req.method_id == "logging.entries.write":
            return self._write(req.json())
        if req.method_id != "logging.entries.list":
            raise ApiError.unknown_method(req.path)
        body = req.json()
        projects = [r.split("/", 1)[1] for r in body.get("resourceNames", []) if r.startswith("projects/")]
        if not projects:
            raise ApiError.google(400, "resourceNames must name at least one project (projects/PROJECT_ID)")
        for p in projects:
            self.env.require_project(p, "logging")
        clauses = compile_filter(body.get("filter", ""))
        wanted = {f"projects/{p}/" for p in projects}
        entries = [
            e
            for e in self.env.store.log_entries()
            if any(e.get("logName", "").startswith(w) for w in wanted) and matches(e, clauses)
        ]
        order = (body.get("orderBy") or "timestamp asc").lower()
        if order.endswith("desc"):
            entries.reverse()
        size = int(body.get("pageSize") or 1000)
        start = int(body.get("pageToken") or 0)
        out: dict[str, Any] = {"entries": entries[start : start + size]}
        if start + size < len(entries):
            out["nextPageToken"] = str(start + size)
        return Response(200, out)

    def _write(self, body: dict[str, Any]) -> Response:
        for entry in body.get("entries", []):
            full = {
                "logName": entry.get("logName") or body.get("logName"),
                "resource": entry.get("resource") or body.get("resource") or {"type": "global", "labels": {}},
                **{k: v for k, v in entry.items() if k not in ("logName", "resource")},
            }
            if not full["logName"] or not str(full["logName"]).startswith("projects/"):
                raise ApiError.google(400, "logName must be projects/PROJECT_ID/logs/LOG_ID")
            self.env.require_project(full["logName"].split("/")[1], "logging")
            append_entry(self.env.store, full)
        return Response(200, {})
