"""OpenAPI documents and field validation for the served kinds, from Kubernetes' published schemas.

The schemas come from the `kubernetes-validate` package, which ships the definitions of every
Kubernetes release's OpenAPI document as JSON Schema (`_definitions.json`, one per version): the
same field names, types, descriptions and `x-kubernetes-*` extensions the API server publishes. The
custom resources' schemas (BackendConfig, the Gateway API, GKE's policies) come from the CRDs the
cluster has installed (`kube_crds`), so every document and check takes the cluster's CRD bundle.
Custom resources are validated as the CRD handler does: unknown fields pruned (or refused under
Strict), defaults filled in, then types, enums, bounds and required fields checked (422 Invalid with
one cause per field).

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

from mtlskit.sandbox import kube_crds
from mtlskit.sandbox import kube_discovery as discovery
from mtlskit.sandbox.kube import Kind
from mtlskit.sandbox.web import ApiError, Response

SCHEMA_VERSION = "1.31.0"  # the release the sandbox's /version reports
META = "io.k8s.apimachinery.pkg.apis.meta.v1."


@functools.cache
def release_definitions() -> dict[str, Any]:
    """Every definition of the Kubernetes release, in JSON Schema form (what `$ref`s point to)."""
    folder = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
    raw = json.loads((folder / f"v{SCHEMA_VERSION}-local" / "_definitions.json").read_text())
    defs: dict[str, Any] = raw["$defs"]
    return defs


@functools.cache
def definitions(bundle: str) -> dict[str, Any]:
    """The release's definitions and the schemas of the CRDs a cluster with this bundle has installed."""
    return {**release_definitions(), **kube_crds.definitions(bundle)}


def resolve(schema: Any) -> Any:
    """A schema with its `$ref` followed (to a definition of the release: CRD schemas are never
    referenced, only their metadata points into the release)."""
    while isinstance(schema, dict) and "$ref" in schema:
        schema = release_definitions()[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def schema_of(kind: Kind, bundle: str) -> dict[str, Any]:
    return definitions(bundle)[definition_name(kind)]


@functools.cache
def definition_name(kind: Kind) -> str:
    """A CRD's name as the API server publishes it, else the release definition whose
    `x-kubernetes-group-version-kind` names the kind."""
    if kube_crds.is_custom(kind):
        return kube_crds.definition_name(kind)
    for name, schema in release_definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            if (gvk.get("group", ""), gvk["version"], gvk["kind"]) == (kind.group, kind.version, kind.kind):
                return name
    raise KeyError(kind.kind)


def _refs(schema: Any) -> set[str]:
    if isinstance(schema, dict):
        # a string: JSONSchemaProps (the CRD's schema type) has a *property* named "$ref"
        ref = schema.get("$ref")
        found = {ref.rsplit("/", 1)[-1]} if isinstance(ref, str) else set()
        for value in schema.values():
            found |= _refs(value)
        return found
    if isinstance(schema, list):
        return set().union(*(_refs(v) for v in schema)) if schema else set()
    return set()


def _closure(names: set[str], defs: dict[str, Any]) -> set[str]:
    """The named definitions and every definition they reference."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        todo.extend(_refs(defs[name]) - seen)
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
def v3_document(bundle: str, group: str, version: str) -> dict[str, Any] | None:
    kinds = discovery.kinds_of(kube_crds.served(bundle), group, version)
    if not kinds:
        return None
    gv = _gv_path(group, version)
    paths: dict[str, Any] = {}
    for kind in kinds:
        paths.update(_operations(kind, gv))
    defs = definitions(bundle)
    names = _closure({definition_name(k) for k in kinds} | {META + "Status", META + "DeleteOptions"}, defs)
    schemas = {n: _to_openapi(defs[n], "#/components/schemas/") for n in sorted(names)}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": f"v{SCHEMA_VERSION}"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


@functools.cache
def v3_index(bundle: str) -> dict[str, Any]:
    """`/openapi/v3`: one entry per group version, with the hash clients cache the document under
    (so a client that cached another bundle's document fetches the new one)."""
    paths = {}
    for group, version in discovery.served_group_versions(kube_crds.served(bundle)):
        document = v3_document(bundle, group, version)
        digest = hashlib.sha512(json.dumps(document, sort_keys=True).encode()).hexdigest()
        gv = _gv_path(group, version)
        paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest[:128].upper()}"}
    return {"paths": paths}


@functools.cache
def v2_document(bundle: str) -> dict[str, Any]:
    kinds = kube_crds.served(bundle)
    defs = definitions(bundle)
    names = _closure({definition_name(k) for k in kinds} | {META + "Status"}, defs)
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": f"v{SCHEMA_VERSION}"},
        "paths": {},
        "definitions": {n: _to_openapi(defs[n], "#/definitions/") for n in sorted(names)},
    }


def handle(accept: str, parts: list[str], bundle: str) -> Response:
    """`/openapi/v2` (JSON only) and `/openapi/v3[/<group version path>]`."""
    if parts == ["v2"]:
        if "json" not in accept and accept not in ("", "*/*"):
            raise ApiError.kube(406, "NotAcceptable", "only application/json is served for /openapi/v2")
        return Response(200, v2_document(bundle))
    if parts == ["v3"]:
        return Response(200, v3_index(bundle))
    doc = None
    if parts[:2] == ["v3", "api"] and len(parts) == 3:
        doc = v3_document(bundle, "", parts[2])
    elif parts[:2] == ["v3", "apis"] and len(parts) == 4:
        doc = v3_document(bundle, parts[2], parts[3])
    if doc is None:
        raise ApiError.kube(404, "NotFound", "the server could not find the requested resource")
    return Response(200, doc)


# ---- field validation ----------------------------------------------------------------------------------


Path = tuple[str | int, ...]
# A value of the wrong type: where, the type the schema wants, the JSON type that came.
WrongType = tuple[Path, str, str]


def _show(path: Path) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def problems(kind: Kind, obj: Any, bundle: str) -> tuple[list[Path], list[WrongType]]:
    """(unknown fields, type errors) of an object; paths as the API server names them."""
    unknown: list[Path] = []
    wrong: list[WrongType] = []
    _walk(schema_of(kind, bundle), obj, (), unknown, wrong)
    return unknown, wrong


_TYPES = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def _json_type(value: Any) -> str:
    """The JSON type name of a decoded value, as the API server's messages say it."""
    if isinstance(value, bool):
        return "boolean"
    for name in ("integer", "number", "string", "object", "array"):
        if isinstance(value, _TYPES[name]):
            return name
    return "null"


def _walk(
    schema: dict[str, Any], value: Any, path: Path, unknown: list[Path], wrong: list[WrongType]
) -> None:
    schema = resolve(schema)
    if value is None or schema.get("x-kubernetes-preserve-unknown-fields") or "oneOf" in schema:
        return  # oneOf: int-or-string, the one union the served kinds use
    types = schema.get("type")
    types = [t for t in ([types] if isinstance(types, str) else types or []) if t != "null"]
    if types and not any(
        isinstance(value, _TYPES[t]) and not (t in ("integer", "number") and isinstance(value, bool))
        for t in types
    ):
        wrong.append((path, types[0], _json_type(value)))
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


def validate(kind: Kind, obj: Any, directive: str | None, bundle: str) -> tuple[Any, list[str]]:
    """Check a write as the API server decodes it: the object to store and the warnings to send.

    Unknown fields fail under `fieldValidation=Strict`, are dropped with a warning under `Warn` (the
    default), silently under `Ignore`. A value of the wrong type cannot be decoded into a built-in
    kind (400); in a custom resource it is a schema violation (422, as `admit` reports)."""
    unknown, wrong = problems(kind, obj, bundle)
    cannot = f'{kind.kind} in version "{kind.version}" cannot be handled as a {kind.kind}'
    custom = kube_crds.is_custom(kind)
    if wrong and not custom:
        listed = "; ".join(f"{_show(p) or '<root>'}: expected {want}, got {got}" for p, want, got in wrong)
        raise ApiError.kube(400, "BadRequest", f"{cannot}: {listed}")
    mode = (directive or "Warn").lower()
    if unknown and mode == "strict":
        listed = ", ".join(f'unknown field "{_show(f)}"' for f in unknown)
        raise ApiError.kube(400, "BadRequest", f"{cannot}: strict decoding error: {listed}")
    if wrong:
        _invalid(kind, obj, [_type_cause(p, want, got) for p, want, got in wrong])
    warnings = [f'unknown field "{_show(f)}"' for f in unknown] if mode == "warn" else []
    return prune(obj, unknown), warnings


# ---- custom resources: defaults and schema validation ---------------------------------------------------


Cause = dict[str, str]


def admit(kind: Kind, obj: dict[str, Any], bundle: str) -> dict[str, Any]:
    """A custom resource as the API server stores it: the schema's defaults filled in, then checked
    against its enums, bounds, list keys and required fields (422 Invalid naming every field).
    Built-in kinds pass unchanged: their validation is the server's code, not their schema."""
    if not kube_crds.is_custom(kind):
        return obj
    filled = defaulted(kind, obj, bundle)
    causes: list[Cause] = []
    _check(schema_of(kind, bundle), filled, (), causes)
    if not causes:  # the CRD's rules run on an object that already fits its schema
        causes = _broken_rules(kind, filled)
    if causes:
        _invalid(kind, obj, causes)
    return filled


def defaulted(kind: Kind, obj: dict[str, Any], bundle: str) -> dict[str, Any]:
    """A custom resource with its schema's defaults filled in where a field is absent (built-in
    kinds unchanged)."""
    if not kube_crds.is_custom(kind):
        return obj
    filled: dict[str, Any] = _default(schema_of(kind, bundle), copy.deepcopy(obj))
    return filled


def _default(schema: dict[str, Any], value: Any) -> Any:
    schema = resolve(schema)
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = _default(sub, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_default(schema["items"], item) for item in value]
    return value


def _check(schema: dict[str, Any], value: Any, path: Path, causes: list[Cause]) -> None:
    schema = resolve(schema)
    if value is None or schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    where = _show(path)
    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(json.dumps(v) for v in schema["enum"])
        causes.append(
            _cause(
                "FieldValueNotSupported",
                where,
                f"Unsupported value: {json.dumps(value)}: supported values: {supported}",
            )
        )
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            causes.append(_bound(where, value, f"should be greater than or equal to {schema['minimum']}"))
        if "maximum" in schema and value > schema["maximum"]:
            causes.append(_bound(where, value, f"should be less than or equal to {schema['maximum']}"))
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            causes.append(_bound(where, value, f"should be at least {schema['minLength']} chars long"))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            causes.append(
                _cause(
                    "FieldValueTooLong", where, f"Too long: may not be more than {schema['maxLength']} bytes"
                )
            )
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for key in schema.get("required", []):
            if key not in value:
                causes.append(_cause("FieldValueRequired", _show((*path, key)), "Required value"))
        for key, item in value.items():
            sub = props.get(key, schema.get("additionalProperties"))
            if isinstance(sub, dict):
                _check(sub, item, (*path, key), causes)
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            causes.append(_bound(where, len(value), f"should have at least {schema['minItems']} items"))
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            causes.append(
                _cause(
                    "FieldValueTooMany",
                    where,
                    f"Too many: {len(value)}: must have at most {schema['maxItems']} items",
                )
            )
        keys = schema.get("x-kubernetes-list-map-keys")
        seen: set[str] = set()
        for i, item in enumerate(value):
            if keys and isinstance(item, dict):
                identity = json.dumps({k: item.get(k) for k in keys}, separators=(",", ":"))
                if identity in seen:
                    causes.append(
                        _cause("FieldValueDuplicate", _show((*path, i)), f"Duplicate value: {identity}")
                    )
                seen.add(identity)
            if isinstance(schema.get("items"), dict):
                _check(schema["items"], item, (*path, i), causes)


def _broken_rules(kind: Kind, obj: dict[str, Any]) -> list[Cause]:
    """A cause for every node a CRD validation rule refuses (`Invalid value: "object": <message>`)."""
    causes: list[Cause] = []
    for path, message, holds in kube_crds.rules_of(kind):
        for where, node in _nodes(obj, tuple(path.split(".")), ()):
            if not holds(node):
                shown = "array" if isinstance(node, list) else "object"
                causes.append(
                    _cause("FieldValueInvalid", _show(where), f'Invalid value: "{shown}": {message}')
                )
    return causes


def _nodes(value: Any, steps: tuple[str, ...], at: Path) -> list[tuple[Path, Any]]:
    """The nodes at a rule's path (`[]` steps into every item), with where each one is."""
    if not steps:
        return [(at, value)]
    step, rest = steps[0], steps[1:]
    if step == "[]":
        items = value if isinstance(value, list) else []
        return [found for i, item in enumerate(items) for found in _nodes(item, rest, (*at, i))]
    if isinstance(value, dict) and step in value and value[step] is not None:
        return _nodes(value[step], rest, (*at, step))
    return []


def _cause(reason: str, field: str, message: str) -> Cause:
    return {"reason": reason, "message": message, "field": field}


def _bound(where: str, value: Any, rule: str) -> Cause:
    return _cause("FieldValueInvalid", where, f"Invalid value: {json.dumps(value)}: {where} in body {rule}")


def _type_cause(path: Path, want: str, got: str) -> Cause:
    where = _show(path)
    return _cause(
        "FieldValueTypeInvalid",
        where,
        f'Invalid value: "{got}": {where} in body must be of type {want}: "{got}"',
    )


def _invalid(kind: Kind, obj: Any, causes: list[Cause]) -> None:
    """Raise the API server's 422 for a custom resource that breaks its schema."""
    name = ((obj or {}).get("metadata") or {}).get("name", "") if isinstance(obj, dict) else ""
    listed = [f"{c['field']}: {c['message']}" for c in causes]
    detail = listed[0] if len(listed) == 1 else f"[{', '.join(listed)}]"
    raise ApiError.kube(
        422,
        "Invalid",
        f'{kind.kind}.{kind.group} "{name}" is invalid: {detail}',
        name=name,
        group=kind.group,
        kind=kind.kind,
        causes=causes,
    )
