"""Server-side apply, field ownership (`metadata.managedFields`) and strategic merge patches.

A reasonable subset of the API server's structured-merge-diff: fields are tracked to the leaf, lists
are owned whole (atomic) rather than per element, and ownership is recorded as `FieldsV1` the way
`kubectl get --show-managed-fields` shows it. That is enough for what people do with kubectl:
`apply --server-side` creates and updates, a field a manager stops applying is removed, a field
another manager set to a different value is a 409 conflict unless `--force-conflicts`, and
client-side `apply`'s strategic merge patches merge list elements by their merge key.
"""

from __future__ import annotations

import copy
from typing import Any

from mtlskit.sandbox.web import ApiError, kube_time, merge_patch

Field = tuple[str, ...]
# What no manager owns: identity and bookkeeping the server sets, and the status a spec write never touches.
UNOWNED: set[Field] = {
    ("apiVersion",),
    ("kind",),
    ("status",),
    *(
        ("metadata", f)
        for f in (
            "name",
            "namespace",
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "deletionTimestamp",
            "managedFields",
        )
    ),
}


def leaves(obj: Any, prefix: Field = ()) -> dict[Field, Any]:
    """Every owned leaf of an object and its value; lists and empty maps are leaves."""
    out: dict[Field, Any] = {}
    if isinstance(obj, dict) and obj:
        for key, value in obj.items():
            path = (*prefix, key)
            if path in UNOWNED or path[:1] == ("status",):
                continue
            out.update(leaves(value, path))
    elif prefix:
        out[prefix] = obj
    return out


def to_fields_v1(paths: set[Field]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for part in path:
            node = node.setdefault(f"f:{part}", {})
    return tree


def from_fields_v1(tree: dict[str, Any], prefix: Field = ()) -> set[Field]:
    out: set[Field] = set()
    for key, sub in tree.items():
        if not key.startswith("f:"):
            continue
        path = (*prefix, key[2:])
        out |= from_fields_v1(sub, path) if sub else {path}
    return out


def _entry(manager: str, operation: str, api_version: str, paths: set[Field]) -> dict[str, Any]:
    return {
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": kube_time(),
        "fieldsType": "FieldsV1",
        "fieldsV1": to_fields_v1(paths),
    }


def _owned(entries: list[dict[str, Any]]) -> list[tuple[dict[str, Any], set[Field]]]:
    return [(e, from_fields_v1(e.get("fieldsV1") or {})) for e in entries]


def created_by(manager: str, operation: str, api_version: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """managedFields of a new object: its creator owns every field it sent."""
    return [_entry(manager, operation, api_version, set(leaves(body)))]


def record_update(
    current: dict[str, Any], written: dict[str, Any], stored: dict[str, Any], manager: str, api_version: str
) -> list[dict[str, Any]]:
    """managedFields after a replace or patch by `manager`: it takes every leaf it changed or wrote."""
    entries = _owned(list(current["metadata"].get("managedFields") or []))
    before = leaves(current)
    written_leaves = leaves(written)
    taken = {p for p, v in leaves(stored).items() if before.get(p, object()) != v or p in written_leaves}
    return _rebuild(entries, manager, "Update", api_version, taken)


def _rebuild(
    entries: list[tuple[dict[str, Any], set[Field]]],
    manager: str,
    operation: str,
    api_version: str,
    taken: set[Field],
    replace: bool = False,
) -> list[dict[str, Any]]:
    """Give `taken` to `manager` (added to what it had, or replacing it for an apply), off the others."""
    out: list[dict[str, Any]] = []
    mine: set[Field] = set()
    for entry, paths in entries:
        if entry["manager"] == manager and entry["operation"] == operation:
            mine = set() if replace else paths
            continue
        rest = paths - taken
        if rest:
            out.append({**entry, "fieldsV1": to_fields_v1(rest)})
    out.append(_entry(manager, operation, api_version, mine | taken))
    return out


def apply(
    current: dict[str, Any], applied: dict[str, Any], manager: str, force: bool
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The object after `manager` applies `applied` over `current`, and its new managedFields.

    Raises the API server's 409 Conflict when another manager owns a field with another value."""
    entries = _owned(list(current["metadata"].get("managedFields") or []))
    wanted = leaves(applied)
    have = leaves(current)
    conflicts = [
        (entry["manager"], path)
        for entry, paths in entries
        if entry["manager"] != manager
        for path in paths & wanted.keys()
        if have.get(path) != wanted[path]
    ]
    if conflicts and not force:
        lines = "\n".join(f'- conflict with "{m}": .{".".join(p)}' for m, p in sorted(conflicts))
        raise ApiError.kube(
            409,
            "Conflict",
            f"Apply failed with {len(conflicts)} conflict{'s' * (len(conflicts) > 1)}:\n{lines}",
        )
    previously = next(
        (paths for e, paths in entries if e["manager"] == manager and e["operation"] == "Apply"), set()
    )
    others = set().union(*(paths for e, paths in entries if e["manager"] != manager)) if entries else set()
    result = _merge_apply(current, applied)
    for path in previously - wanted.keys() - others:
        _remove(result, path)
    managed = _rebuild(entries, manager, "Apply", current["apiVersion"], set(wanted), replace=True)
    return result, managed


def _merge_apply(current: Any, applied: Any) -> Any:
    if isinstance(current, dict) and isinstance(applied, dict):
        out = dict(current)
        for key, value in applied.items():
            out[key] = _merge_apply(current.get(key), value)
        return out
    return copy.deepcopy(applied)


def _remove(obj: dict[str, Any], path: Field) -> None:
    node: Any = obj
    for part in path[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return
    if isinstance(node, dict):
        node.pop(path[-1], None)


def manager_of(field_manager: str | None, user_agent: str) -> str:
    """`fieldManager`, else the client program's name from its User-Agent, as the API server does."""
    return field_manager or (user_agent.split("/", 1)[0] or "unknown")


# ---- strategic merge patch --------------------------------------------------------------------------


def strategic_merge(target: Any, patch: Any, schema: Any, resolve: Any) -> Any:
    """A strategic merge patch: a merge patch whose lists with a patch merge key merge by element.

    `$setElementOrder`, `$retainKeys` and `$patch` directives are honoured as far as the served kinds
    need (kubectl sends them for Service ports and Ingress rules)."""
    schema = resolve(schema)
    if not isinstance(patch, dict):
        return patch
    if patch.get("$patch") == "replace":
        return {k: v for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = dict(target) if isinstance(target, dict) else {}
    props = (schema or {}).get("properties") or {}
    extra = (schema or {}).get("additionalProperties")
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        sub = props.get(key) if key in props else extra if isinstance(extra, dict) else None
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, resolve(sub), resolve)
        else:
            result[key] = strategic_merge(result.get(key), value, sub, resolve)
    if retain is not None:
        result = {k: v for k, v in result.items() if k in retain}
    for key, order in patch.items():
        if key.startswith("$setElementOrder/"):
            name = key.split("/", 1)[1]
            result[name] = _order(result.get(name) or [], order, resolve(props.get(name)))
    return result


def _merge_list(current: Any, patch: list[Any], schema: Any, resolve: Any) -> Any:
    key = (schema or {}).get("x-kubernetes-patch-merge-key")
    if (schema or {}).get("x-kubernetes-patch-strategy", "").find("merge") < 0 or not key:
        return merge_patch(None, patch) if not isinstance(patch, list) else copy.deepcopy(patch)
    items = list(current or [])
    for element in patch:
        match = next((i for i, e in enumerate(items) if e.get(key) == element.get(key)), None)
        if isinstance(element, dict) and element.get("$patch") == "delete":
            if match is not None:
                items.pop(match)
        elif match is None:
            items.append(strategic_merge(None, element, schema.get("items"), resolve))
        else:
            items[match] = strategic_merge(items[match], element, schema.get("items"), resolve)
    return items


def _order(items: list[Any], order: list[Any], schema: Any) -> list[Any]:
    key = (schema or {}).get("x-kubernetes-patch-merge-key")
    if not key:
        return items
    rank = {o.get(key): i for i, o in enumerate(order)}
    return sorted(items, key=lambda e: rank.get(e.get(key), len(rank)))
