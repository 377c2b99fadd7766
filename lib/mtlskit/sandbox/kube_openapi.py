"""OpenAPI documents and field validation for the served kinds, from Kubernetes' published schemas.

The schemas come from the `kubernetes-validate` package, which ships the definitions of every
Kubernetes release's OpenAPI document as JSON Schema (`_definitions.json`, one per version): the
same field names, types, descriptions and `x-kubernetes-*` extensions the API server publishes, so
nothing here is written by hand except the BackendConfig CRD, which no package ships (its fields are
ingress-gce's `pkg/apis/backendconfig/v1/types.go`).

kubectl (1.27 and later) reads `/openapi/v3` first: when a kind's PATCH operation lists the
`fieldValidation` parameter it leaves validation to the server and sends `fieldValidation=Strict`;
only otherwise does it fetch `/openapi/v2` in protobuf to validate on the client. The documents here
list that parameter and `validate` enforces it, as every current API server does.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.resources
import json
from typing import Any

from mtlskit.sandbox import kube_discovery as discovery
from mtlskit.sandbox.kube import Kind
from mtlskit.sandbox.web import ApiError, Response

SCHEMA_VERSION = "1.31.0"  # the release the sandbox's /version reports
META = "io.k8s.apimachinery.pkg.apis.meta.v1."
BACKEND_CONFIG = "com.google.cloud.v1.BackendConfig"


@functools.cache
def definitions() -> dict[str, Any]:
    """Every definition of the Kubernetes release, plus the BackendConfig CRD's, in JSON Schema form."""
    folder = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
    raw = json.loads((folder / f"v{SCHEMA_VERSION}-local" / "_definitions.json").read_text())
    defs: dict[str, Any] = raw["$defs"]
    defs[BACKEND_CONFIG] = _backend_config_schema()
    return defs


def resolve(schema: Any) -> Any:
    """A schema with its `$ref` followed (to a definition)."""
    while isinstance(schema, dict) and "$ref" in schema:
        schema = definitions()[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def schema_of(kind: Kind) -> dict[str, Any]:
    return definitions()[definition_name(kind)]


@functools.cache
def definition_name(kind: Kind) -> str:
    """The definition whose `x-kubernetes-group-version-kind` names the kind."""
    for name, schema in definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            if (gvk.get("group", ""), gvk["version"], gvk["kind"]) == (kind.group, kind.version, kind.kind):
                return name
    raise KeyError(kind.kind)


def _refs(schema: Any) -> set[str]:
    if isinstance(schema, dict):
        found = {schema["$ref"].rsplit("/", 1)[-1]} if "$ref" in schema else set()
        for value in schema.values():
            found |= _refs(value)
        return found
    if isinstance(schema, list):
        return set().union(*(_refs(v) for v in schema)) if schema else set()
    return set()


def _closure(names: set[str]) -> set[str]:
    """The named definitions and every definition they reference."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen or name not in definitions():
            continue
        seen.add(name)
        todo.extend(_refs(definitions()[name]) - seen)
    return seen


def _to_openapi(schema: Any, ref_prefix: str) -> Any:
    """JSON Schema back to the OpenAPI dialect: one `type`, `$ref` into the document's own section."""
    if isinstance(schema, list):
        return [_to_openapi(v, ref_prefix) for v in schema]
    if not isinstance(schema, dict):
        return schema
    if "oneOf" in schema and {json.dumps(s.get("type")) for s in schema["oneOf"]} == {
        '["string", "null"]',
        '["integer", "null"]',
    }:
        return {"type": "string", "format": "int-or-string", "x-kubernetes-int-or-string": True}
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "$ref":
            out[key] = ref_prefix + value.rsplit("/", 1)[-1]
        elif key == "type" and isinstance(value, list):
            out[key] = next(t for t in value if t != "null")
        elif key in ("properties", "patternProperties"):
            out[key] = {k: _to_openapi(v, ref_prefix) for k, v in value.items()}
        elif key in ("$schema", "$id"):
            continue
        else:
            out[key] = _to_openapi(value, ref_prefix)
    return out


# ---- documents ---------------------------------------------------------------------------------------


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _operations(kind: Kind, gv: str) -> dict[str, Any]:
    """Collection and item paths with the verbs the sandbox serves and the parameters kubectl looks for."""
    ref = {"$ref": f"#/components/schemas/{definition_name(kind)}"}
    body = {"content": {"application/json": {"schema": ref}}, "required": True}
    answer = {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}}

    def param(name: str, kind_: str = "string") -> dict[str, Any]:
        return {"name": name, "in": "query", "schema": {"type": kind_}, "uniqueItems": True}

    writes = [param("dryRun"), param("fieldManager"), param("fieldValidation")]
    action = {
        "x-kubernetes-group-version-kind": {"group": kind.group, "version": kind.version, "kind": kind.kind}
    }
    op_id = f"{kind.kind}"
    collection = {
        "get": {"operationId": f"list{op_id}", "responses": {"200": {"description": "OK"}}, **action},
        "post": {
            "operationId": f"create{op_id}",
            "requestBody": body,
            "responses": answer,
            "parameters": writes,
            **action,
        },
    }
    patch_body = {
        "content": {
            media: {"schema": {"type": "object"}}
            for media in (
                "application/apply-patch+yaml",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
            )
        },
        "required": True,
    }
    item = {
        "get": {"operationId": f"read{op_id}", "responses": answer, **action},
        "put": {
            "operationId": f"replace{op_id}",
            "requestBody": body,
            "responses": answer,
            "parameters": writes,
            **action,
        },
        "patch": {
            "operationId": f"patch{op_id}",
            "requestBody": patch_body,
            "responses": answer,
            "parameters": [*writes, param("force", "boolean")],
            **action,
        },
        "delete": {"operationId": f"delete{op_id}", "responses": {"200": {"description": "OK"}}, **action},
    }
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    ns = {"name": "namespace", "in": "path", "required": True, "schema": {"type": "string"}}
    base = f"/{gv}/namespaces/{{namespace}}/{kind.plural}" if kind.namespaced else f"/{gv}/{kind.plural}"
    scope = [ns] if kind.namespaced else []
    return {
        base: {**collection, "parameters": scope},
        f"{base}/{{name}}": {**item, "parameters": [name, *scope]},
    }


@functools.cache
def v3_document(group: str, version: str) -> dict[str, Any] | None:
    kinds = discovery.kinds_of(group, version)
    if not kinds:
        return None
    gv = _gv_path(group, version)
    paths: dict[str, Any] = {}
    for kind in kinds:
        paths.update(_operations(kind, gv))
    names = _closure({definition_name(k) for k in kinds} | {META + "Status", META + "DeleteOptions"})
    schemas = {n: _to_openapi(definitions()[n], "#/components/schemas/") for n in sorted(names)}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": f"v{SCHEMA_VERSION}"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


@functools.cache
def v3_index() -> dict[str, Any]:
    """`/openapi/v3`: one entry per group version, with the hash clients cache the document under."""
    paths = {}
    for group, version in discovery.served_group_versions():
        digest = hashlib.sha512(json.dumps(v3_document(group, version), sort_keys=True).encode()).hexdigest()
        gv = _gv_path(group, version)
        paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest[:128].upper()}"}
    return {"paths": paths}


@functools.cache
def v2_document() -> dict[str, Any]:
    kinds = [k for g, v in discovery.served_group_versions() for k in discovery.kinds_of(g, v)]
    names = _closure({definition_name(k) for k in kinds} | {META + "Status"})
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": f"v{SCHEMA_VERSION}"},
        "paths": {},
        "definitions": {n: _to_openapi(definitions()[n], "#/definitions/") for n in sorted(names)},
    }


def handle(accept: str, parts: list[str]) -> Response:
    """`/openapi/v2` (JSON only) and `/openapi/v3[/<group version path>]`."""
    if parts == ["v2"]:
        if "json" not in accept and accept not in ("", "*/*"):
            raise ApiError.kube(406, "NotAcceptable", "only application/json is served for /openapi/v2")
        return Response(200, v2_document())
    if parts == ["v3"]:
        return Response(200, v3_index())
    doc = None
    if parts[:2] == ["v3", "api"] and len(parts) == 3:
        doc = v3_document("", parts[2])
    elif parts[:2] == ["v3", "apis"] and len(parts) == 4:
        doc = v3_document(parts[2], parts[3])
    if doc is None:
        raise ApiError.kube(404, "NotFound", "the server could not find the requested resource")
    return Response(200, doc)


# ---- field validation ----------------------------------------------------------------------------------


Path = tuple[str | int, ...]


def _show(path: Path) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def problems(kind: Kind, obj: Any) -> tuple[list[Path], list[str]]:
    """(unknown fields, type errors) of an object; paths as the API server names them."""
    unknown: list[Path] = []
    wrong: list[str] = []
    _walk({"$ref": "#/$defs/" + definition_name(kind)}, obj, (), unknown, wrong)
    return unknown, wrong


_TYPES = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def _walk(schema: dict[str, Any], value: Any, path: Path, unknown: list[Path], wrong: list[str]) -> None:
    schema = resolve(schema)
    if value is None or schema.get("x-kubernetes-preserve-unknown-fields") or "oneOf" in schema:
        return  # oneOf: int-or-string, the one union the served kinds use
    types = schema.get("type")
    types = [t for t in ([types] if isinstance(types, str) else types or []) if t != "null"]
    if types and not any(
        isinstance(value, _TYPES[t]) and not (t in ("integer", "number") and isinstance(value, bool))
        for t in types
    ):
        wrong.append(f"{_show(path) or '<root>'}: expected {types[0]}, got {type(value).__name__}")
        return
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if props is not None and key in props:
                _walk(props[key], item, (*path, key), unknown, wrong)
            elif isinstance(extra, dict):
                _walk(extra, item, (*path, key), unknown, wrong)
            elif props is not None:
                unknown.append((*path, key))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            _walk(schema["items"], item, (*path, i), unknown, wrong)


def prune(obj: Any, fields: list[Path]) -> Any:
    """The object without the unknown fields: what the API server stores when it only warns."""
    obj = copy.deepcopy(obj)
    for path in fields:
        node = obj
        for step in path[:-1]:
            node = node[step]
        node.pop(path[-1], None)
    return obj


def validate(kind: Kind, obj: Any, directive: str | None) -> tuple[Any, list[str]]:
    """Check a write as the API server decodes it: the object to store and the warnings to send.

    Type errors always fail (the server cannot decode them); unknown fields fail under
    `fieldValidation=Strict`, are dropped with a warning under `Warn` (the default), silently under
    `Ignore`."""
    unknown, wrong = problems(kind, obj)
    cannot = f'{kind.kind} in version "{kind.version}" cannot be handled as a {kind.kind}'
    if wrong:
        raise ApiError.kube(400, "BadRequest", f"{cannot}: {'; '.join(wrong)}")
    mode = (directive or "Warn").lower()
    if unknown and mode == "strict":
        listed = ", ".join(f'unknown field "{_show(f)}"' for f in unknown)
        raise ApiError.kube(400, "BadRequest", f"{cannot}: strict decoding error: {listed}")
    warnings = [f'unknown field "{_show(f)}"' for f in unknown] if mode == "warn" else []
    return prune(obj, unknown), warnings


# ---- the BackendConfig CRD -----------------------------------------------------------------------------


# ingress-gce's BackendConfig `spec` (cloud.google.com/v1, pkg/apis/backendconfig/v1/types.go), in a
# shorthand `_schema` expands: a type name, a map of fields, or a one-element list of items.
BACKEND_CONFIG_SPEC: dict[str, Any] = {
    "iap": {
        "enabled": "boolean",
        "oauthclientCredentials": dict.fromkeys(("secretName", "clientID", "clientSecret"), "string"),
    },
    "cdn": {
        "enabled": "boolean",
        "bypassCacheOnRequestHeaders": [{"headerName": "string"}],
        "cachePolicy": {
            **dict.fromkeys(("includeHost", "includeProtocol", "includeQueryString"), "boolean"),
            **dict.fromkeys(("queryStringBlacklist", "queryStringWhitelist"), ["string"]),
        },
        "cacheMode": "string",
        **dict.fromkeys(
            ("clientTtl", "defaultTtl", "maxTtl", "serveWhileStale", "signedUrlCacheMaxAgeSec"), "integer"
        ),
        **dict.fromkeys(("negativeCaching", "requestCoalescing"), "boolean"),
        "negativeCachingPolicy": [{"code": "integer", "ttl": "integer"}],
        "signedUrlKeys": [dict.fromkeys(("keyName", "keyValue", "secretName"), "string")],
    },
    "securityPolicy": {"name": "string"},
    "timeoutSec": "integer",
    "connectionDraining": {"drainingTimeoutSec": "integer"},
    "sessionAffinity": {"affinityType": "string", "affinityCookieTtlSec": "integer"},
    "customRequestHeaders": {"headers": ["string"]},
    "customResponseHeaders": {"headers": ["string"]},
    "healthCheck": {
        **dict.fromkeys(
            ("checkIntervalSec", "timeoutSec", "healthyThreshold", "unhealthyThreshold", "port"), "integer"
        ),
        **dict.fromkeys(("type", "requestPath"), "string"),
    },
    "logging": {"enable": "boolean", "sampleRate": "number"},
}


def _schema(shape: Any) -> dict[str, Any]:
    if isinstance(shape, str):
        return {"type": shape}
    if isinstance(shape, list):
        return {"type": "array", "items": _schema(shape[0])}
    return {"type": "object", "properties": {k: _schema(v) for k, v in shape.items()}}


def _backend_config_schema() -> dict[str, Any]:
    """The BackendConfig CRD's structural schema, as its CustomResourceDefinition publishes it."""
    s = {"type": "string"}
    spec = _schema(BACKEND_CONFIG_SPEC)
    return {
        "description": "BackendConfig is the Schema for the backendconfig API (GKE Ingress).",
        "type": "object",
        "properties": {
            "apiVersion": s,
            "kind": s,
            "metadata": {"$ref": f"#/$defs/{META}ObjectMeta"},
            "spec": spec,
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
        "x-kubernetes-group-version-kind": [
            {"group": "cloud.google.com", "kind": "BackendConfig", "version": "v1"}
        ],
    }
