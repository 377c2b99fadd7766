"""One walk of a JSON body against a discovery-document schema, for requests and for responses.

A request is read as Google reads it: camelCase or snake_case names, integer enums when the client
asked for `enum-encoding=int`, int64 values as numbers or strings. A response is held to what Google
writes: camelCase names only, int64 values as strings, enums as names (or as integers when the client
asked for them), and no empty lists or objects (proto JSON leaves empty fields out). Each departure is
a `Violation` with its path, so the sandbox can answer a bad request in Google's own words
(`bad_request`) and the contract test can name the field a response got wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mtlskit.sandbox.web import ApiError

Path = tuple[str | int, ...]
Schema = dict[str, Any]
Found = list["Violation"]
PROTO_PACKAGES = {
    "compute": "google.cloud.compute.v1",
    "networksecurity": "google.cloud.networksecurity.v1",
    "certificatemanager": "google.cloud.certificatemanager.v1",
    "logging": "google.logging.v2",
}
SCALAR_TYPES = {
    "string": "TYPE_STRING",
    "boolean": "TYPE_BOOL",
    "integer": "TYPE_INT32",
    "number": "TYPE_DOUBLE",
}
INT64 = ("int64", "uint64")


@dataclass(frozen=True)
class Violation:
    """One way a body departs from its schema. `type_name` is what Google calls the expected type."""

    path: Path
    kind: str  # unknown | enum | type | int64 | empty
    detail: str
    value: Any = None
    type_name: str = ""

    @property
    def where(self) -> str:
        return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in self.path)

    def __str__(self) -> str:
        return f"{self.where}: {self.detail}"


@dataclass(frozen=True)
class Mode:
    response: bool = False
    enums_as_int: bool = False
    # For an embedded message of another API (an operation listed on a host two APIs share): its
    # document's schemas and proto package, by type URL.
    other: Callable[[str], tuple[dict[str, Any], str] | None] | None = None


def walk(schemas: dict[str, Any], package: str, ref: str, body: Any, mode: Mode = Mode()) -> list[Violation]:
    """Every way `body` departs from schema `ref` of one discovery document."""
    found: list[Violation] = []
    _walk(schemas, package, {"$ref": ref}, body, (), found, mode, ref)
    return found


def _walk(
    schemas: dict[str, Any],
    package: str,
    schema: dict[str, Any],
    value: Any,
    path: Path,
    found: list[Violation],
    mode: Mode,
    owner: str,
) -> None:
    if "$ref" in schema:
        owner = schema["$ref"]
        schema = schemas[owner]
    typ = schema.get("type")
    if value is None:
        return
    type_name = f"type.googleapis.com/{package}.{owner}"
    if typ == "object" or "properties" in schema:
        if not isinstance(value, dict):
            found.append(Violation(path, "type", "expected an object", value, type_name))
            return
        if mode.response and not value and path:
            found.append(Violation(path, "empty", "empty object (Google leaves empty fields out)", value))
        _object(schemas, package, schema, value, path, found, mode, owner)
    elif typ == "array":
        if not isinstance(value, list):
            found.append(Violation(path, "type", "expected a list", value, type_name))
            return
        if mode.response and not value:
            found.append(Violation(path, "empty", "empty list (Google leaves empty fields out)", value))
        for i, item in enumerate(value):
            _walk(schemas, package, schema.get("items", {}), item, (*path, i), found, mode, owner)
    elif typ == "string":
        _string(schema, value, path, found, mode, f"type.googleapis.com/{package}.{owner}.{_cap(path)}")
    elif typ == "boolean":
        if not isinstance(value, bool):
            found.append(Violation(path, "type", "expected a boolean", value, "TYPE_BOOL"))
    elif typ in ("integer", "number"):
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if not numeric and not (isinstance(value, str) and re.match(r"^-?\d+(\.\d+)?$", value)):
            found.append(Violation(path, "type", "expected a number", value, SCALAR_TYPES[typ]))


def _object(
    schemas: dict[str, Any],
    package: str,
    schema: dict[str, Any],
    value: dict[str, Any],
    path: Path,
    found: list[Violation],
    mode: Mode,
    owner: str,
) -> None:
    props = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        name = key
        if name not in props and not mode.response and snake_to_camel(name) in props:
            name = snake_to_camel(name)  # proto JSON reads the snake_case name too
        if name in props:
            _walk(schemas, package, props[name], item, (*path, name), found, mode, owner)
        elif _is_any(extra) and isinstance(value.get("@type"), str):
            _embedded(schemas, package, value, path, found, mode)
            return
        elif extra is not None:
            _walk(schemas, package, extra, item, (*path, key), found, mode, owner)
        elif key == "@type":
            continue
        else:
            found.append(Violation((*path, key), "unknown", "unknown field", item))


def _is_any(extra: dict[str, Any] | None) -> bool:
    """A `google.protobuf.Any` field (its `@type` names the message) rather than a free-form Struct."""
    return bool(extra) and "Contains field @type" in str(extra.get("description", ""))  # type: ignore[union-attr]


def _embedded(
    schemas: dict[str, Any],
    package: str,
    value: dict[str, Any],
    path: Path,
    found: list[Violation],
    mode: Mode,
) -> None:
    """A `google.protobuf.Any` (an operation's `metadata` or `response`): checked as the message its
    `@type` names, when this document defines it."""
    message = value["@type"].rsplit(".", 1)[-1]
    if message == "Empty":
        extra = sorted(k for k in value if k != "@type")
        found.extend(Violation((*path, k), "unknown", "unknown field", value[k]) for k in extra)
    elif message in schemas:
        _walk(schemas, package, {"$ref": message}, value, path, found, mode, message)
    elif mode.other and (other := mode.other(value["@type"])) and message in other[0]:
        _walk(other[0], other[1], {"$ref": message}, value, path, found, mode, message)
    else:
        found.append(Violation((*path, "@type"), "type", f"unknown message {value['@type']}", value["@type"]))


def _string(schema: Schema, value: Any, path: Path, found: Found, mode: Mode, enum_type: str) -> None:
    if "enum" in schema:
        enum = schema["enum"]
        as_int = isinstance(value, int) and not isinstance(value, bool)
        if mode.enums_as_int and as_int and 0 <= value < len(enum):
            return
        if mode.response and mode.enums_as_int and value in enum:
            found.append(
                Violation(path, "enum", f"{value!r} as a name: the client asked for integer enums", value)
            )
        elif value not in enum:
            found.append(Violation(path, "enum", f"{value!r} not in enum {enum}", value, enum_type))
        return
    if schema.get("format") in INT64:
        if isinstance(value, int) and not isinstance(value, bool):
            if mode.response:
                found.append(Violation(path, "int64", "an int64 travels as a JSON string", value))
            return
        if not (isinstance(value, str) and re.match(r"^-?\d+$", value)):
            found.append(Violation(path, "type", "expected an int64 string", value, "TYPE_INT64"))
        return
    if not isinstance(value, str):
        found.append(Violation(path, "type", "expected a string", value, "TYPE_STRING"))


def _cap(path: Path) -> str:
    names = [p for p in path if isinstance(p, str)]
    return (names[-1][:1].upper() + names[-1][1:]) if names else ""


def snake_to_camel(name: str) -> str:
    """Proto JSON accepts both spellings of a field; schemas and update masks need the camelCase one."""
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def camel_to_snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def request_root(ref: str, api: str) -> str:
    """The request field a body fills, as Google names it in errors: Compute's body is `resource`,
    a create or patch fills the resource's own field (`server_tls_policy`), and a `...Request` body is
    the whole request (no name)."""
    if api == "compute":
        return "resource"
    if ref.endswith("Request"):
        return ""
    return camel_to_snake(ref)


def field_path(root: str, path: Path) -> str:
    """`resource.log_config.sample_rate`, `resource.path_matchers[0]`: Google's spelling of a field."""
    out = root
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + camel_to_snake(p)
    return out


def bad_request(violations: list[Violation], root: str) -> ApiError:
    """The 400 Google's front end answers for a body it cannot read into the request message: one
    line per problem, `INVALID_ARGUMENT`, and a BadRequest detail naming each field."""
    lines, fields = [], []
    for v in violations:
        if v.kind == "unknown":
            parent = field_path(root, v.path[:-1])
            at = f" at '{parent}'" if parent else ""
            lines.append(
                f'Invalid JSON payload received. Unknown name "{v.path[-1]}"{at}: Cannot find field.'
            )
            fields.append(parent)
        else:
            where = field_path(root, v.path)
            lines.append(f"Invalid value at '{where}' ({v.type_name}), {json.dumps(v.value)}")
            fields.append(where)
    body = {
        "error": {
            "code": 400,
            "message": "\n".join(lines),
            "status": "INVALID_ARGUMENT",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": [
                        {"field": f, "description": line} for f, line in zip(fields, lines, strict=True)
                    ],
                }
            ],
        }
    }
    return ApiError(400, body)
