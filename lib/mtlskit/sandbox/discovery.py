"""Check request bodies against Google's own discovery documents.

The documents ship inside google-api-python-client, so the sandbox refuses an unknown field or a bad
enum value with the same kind of 400 the real API gives: a kit that passes here has sent only what
the API defines. `DOCS` names every API the sandbox serves, in one place, so whatever reads it (the
contract test probes every method of every document) sees the same set whichever modules were
imported first. A method that takes media is also found at its upload paths (`mediaUpload`) and, when
the document says `useMediaDownloadService`, at its `/download/` path, where Google serves it too.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from mtlskit.sandbox import schema

DOCS = {
    "compute": "compute.v1.json",
    "networksecurity": "networksecurity.v1.json",
    "certificatemanager": "certificatemanager.v1.json",
    "logging": "logging.v2.json",
    "cloudresourcemanager": "cloudresourcemanager.v1.json",
    "storage": "storage.v1.json",
    "dns": "dns.v1.json",
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
            # {+name} may span slashes; a plain {name} is one segment, and never holds the ':' that
            # starts a custom verb (`x:getIamPolicy` is not `x`).
            out += ".+" if part.startswith("{+") else "[^/:]+"
        else:
            out += re.escape(part)
    return re.compile(f"^{out}$")


@functools.cache
def api(name: str) -> Api:
    doc = _load_doc(DOCS[name])
    methods = []
    service = doc.get("servicePath", "")
    for m in _walk_methods(doc):
        flat = m.get("flatPath") or m["path"]
        patterns = [_pattern(service, flat)]
        patterns += [
            _pattern("", p["path"]) for p in (m.get("mediaUpload") or {}).get("protocols", {}).values()
        ]
        if m.get("useMediaDownloadService"):
            patterns.append(_pattern("download/" + service, flat))
        methods += [
            Method(
                id=m["id"],
                http_method=m["httpMethod"],
                pattern=pattern,
                request_ref=(m.get("request") or {}).get("$ref"),
                response_ref=(m.get("response") or {}).get("$ref"),
            )
            for pattern in patterns
        ]
    # Longer literal paths first, so ".../wait" is not taken for ".../{operation}".
    methods.sort(key=lambda m: -len(m.pattern.pattern.replace("[^/:]+", "")))
    return Api(name, doc["schemas"], methods)


def check(api_name: str, ref: str, body: Any, enums_as_int: bool = False) -> list[str]:
    """Every way request body `body` departs from schema `ref`, as '$.path: problem' strings."""
    return [str(v) for v in violations(api_name, ref, body, enums_as_int=enums_as_int)]


def violations(
    api_name: str, ref: str, body: Any, enums_as_int: bool = False, response: bool = False
) -> list[schema.Violation]:
    """`schema.walk` over this API's document: a request as Google reads it, or (`response`) a
    response as Google writes it."""
    package = schema.PROTO_PACKAGES.get(api_name, api_name)
    mode = schema.Mode(response=response, enums_as_int=enums_as_int, other=_api_of_type)
    return schema.walk(api(api_name).schemas, package, ref, body, mode)


def _api_of_type(type_url: str) -> tuple[dict[str, Any], str] | None:
    """The schemas and package of the served API whose messages `type_url` names."""
    for name, package in schema.PROTO_PACKAGES.items():
        if type_url.startswith(f"type.googleapis.com/{package}."):
            return api(name).schemas, package
    return None


def normalise_enums(api_name: str, ref: str, body: Any) -> Any:
    """Turn integer enums (sent with enum-encoding=int) into their names, as the service stores them."""
    schemas = api(api_name).schemas
    return _map_enums(schemas, {"$ref": ref}, body, _to_name)


def encode_enums(api_name: str, ref: str, body: Any) -> Any:
    """Every enum of a response as its number, for a client that asked for `enum-encoding=int`."""
    return _map_enums(api(api_name).schemas, {"$ref": ref}, body, _to_number) if ref else body


def _map_enums(
    schemas: dict[str, Any], schema: dict[str, Any], value: Any, leaf: Callable[[list[str], Any], Any]
) -> Any:
    """`value` with `leaf(enum, v)` applied to every value whose schema is an enum."""
    if "$ref" in schema:
        schema = schemas[schema["$ref"]]
    if isinstance(value, dict):
        props = schema.get("properties", {})
        return {k: _map_enums(schemas, props[k], v, leaf) if k in props else v for k, v in value.items()}
    if isinstance(value, list):
        return [_map_enums(schemas, schema.get("items", {}), v, leaf) for v in value]
    return leaf(schema["enum"], value) if "enum" in schema else value


def _to_number(enum: list[str], value: Any) -> Any:
    return enum.index(value) if isinstance(value, str) and value in enum else value


def _to_name(enum: list[str], value: Any) -> Any:
    number = isinstance(value, int) and not isinstance(value, bool)
    return enum[value] if number and 0 <= value < len(enum) else value


snake_to_camel = schema.snake_to_camel
