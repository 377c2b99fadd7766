"""Check request bodies against Google's own discovery documents.

The documents ship inside google-api-python-client, so the sandbox refuses an unknown field or a bad
enum value with the same kind of 400 the real API gives: a kit that passes here has sent only what
the API defines.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

DOCS = {
    "compute": "compute.v1.json",
    "networksecurity": "networksecurity.v1.json",
    "certificatemanager": "certificatemanager.v1.json",
    "logging": "logging.v2.json",
}


@dataclass
class Method:
    id: str
    http_method: str
    pattern: re.Pattern[str]
    request_ref: str | None
    response_ref: str | None


@dataclass
class Api:
    name: str
    schemas: dict[str, Any]
    methods: list[Method]

    def find(self, http_method: str, path: str) -> Method | None:
        for m in self.methods:
            if m.http_method == http_method and m.pattern.match(path):
                return m
        return None


def _load_doc(filename: str) -> dict[str, Any]:
    base = resources.files("googleapiclient") / "discovery_cache" / "documents" / filename
    return json.loads(base.read_text())


def _walk_methods(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = list(node.get("methods", {}).values())
    for res in node.get("resources", {}).values():
        found.extend(_walk_methods(res))
    return found


def _pattern(service_path: str, flat_path: str) -> re.Pattern[str]:
    path = "/" + (service_path + flat_path).lstrip("/")
    out = ""
    for part in re.split(r"(\{[^}]+\})", path):
        if part.startswith("{"):
            # {+name} may span slashes; a plain {name} is one segment.
            out += ".+" if part.startswith("{+") else "[^/]+"
        else:
            out += re.escape(part)
    return re.compile(f"^{out}$")


@functools.cache
def api(name: str) -> Api:
    doc = _load_doc(DOCS[name])
    methods = []
    for m in _walk_methods(doc):
        flat = m.get("flatPath") or m["path"]
        methods.append(
            Method(
                id=m["id"],
                http_method=m["httpMethod"],
                pattern=_pattern(doc.get("servicePath", ""), flat),
                request_ref=(m.get("request") or {}).get("$ref"),
                response_ref=(m.get("response") or {}).get("$ref"),
            )
        )
    # Longer literal paths first, so ".../wait" is not taken for ".../{operation}".
    methods.sort(key=lambda m: -len(m.pattern.pattern.replace("[^/]+", "")))
    return Api(name, doc["schemas"], methods)


def check(api_name: str, ref: str, body: Any, enums_as_int: bool = False) -> list[str]:
    """Every way `body` departs from schema `ref`, as '$.path: problem' strings."""
    schemas = api(api_name).schemas
    problems: list[str] = []
    _check(schemas, {"$ref": ref}, body, "$", problems, enums_as_int)
    return problems


def _check(
    schemas: dict[str, Any],
    schema: dict[str, Any],
    value: Any,
    where: str,
    problems: list[str],
    enums_as_int: bool,
) -> None:
    if "$ref" in schema:
        schema = schemas[schema["$ref"]]
    typ = schema.get("type")
    if value is None:
        return
    if typ == "object" or "properties" in schema:
        if not isinstance(value, dict):
            problems.append(f"{where}: expected an object")
            return
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key not in props and snake_to_camel(key) in props:
                key = snake_to_camel(key)  # proto JSON accepts the snake_case field name too
            if key in props:
                _check(schemas, props[key], item, f"{where}.{key}", problems, enums_as_int)
            elif extra is not None:
                _check(schemas, extra, item, f"{where}.{key}", problems, enums_as_int)
            elif key == "@type":
                continue
            else:
                problems.append(f"{where}.{key}: unknown field")
    elif typ == "array":
        if not isinstance(value, list):
            problems.append(f"{where}: expected a list")
            return
        for i, item in enumerate(value):
            _check(schemas, schema.get("items", {}), item, f"{where}[{i}]", problems, enums_as_int)
    elif typ == "string":
        if "enum" in schema:
            if enums_as_int and isinstance(value, int) and 0 <= value < len(schema["enum"]):
                return
            if value not in schema["enum"]:
                problems.append(f"{where}: {value!r} not in enum {schema['enum']}")
        elif schema.get("format") in ("int64", "uint64") and isinstance(value, int):
            return
        elif not isinstance(value, str):
            problems.append(f"{where}: expected a string")
    elif typ == "boolean":
        if not isinstance(value, bool):
            problems.append(f"{where}: expected a boolean")
    elif typ in ("integer", "number"):
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        # int64 values travel as JSON strings
        if not numeric and not (isinstance(value, str) and re.match(r"^-?\d+(\.\d+)?$", value)):
            problems.append(f"{where}: expected a number")


def normalise_enums(api_name: str, ref: str, body: Any) -> Any:
    """Turn integer enums (sent with enum-encoding=int) into their names, as the service stores them."""
    schemas = api(api_name).schemas
    return _norm(schemas, {"$ref": ref}, body)


def _norm(schemas: dict[str, Any], schema: dict[str, Any], value: Any) -> Any:
    if "$ref" in schema:
        schema = schemas[schema["$ref"]]
    if isinstance(value, dict):
        props = schema.get("properties", {})
        return {k: _norm(schemas, props[k], v) if k in props else v for k, v in value.items()}
    if isinstance(value, list):
        return [_norm(schemas, schema.get("items", {}), v) for v in value]
    if "enum" in schema and isinstance(value, int) and not isinstance(value, bool):
        enum = schema["enum"]
        return enum[value] if 0 <= value < len(enum) else value
    return value


def snake_to_camel(name: str) -> str:
    """Proto JSON accepts both spellings of a field; schemas and update masks need the camelCase one."""
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)
