"""Server-side printing of custom resources: the `meta.k8s.io/v1` Table `kubectl get` asks for.

kubectl prints what the API server puts in a Table; for a custom resource the server builds the columns
from its CRD's `additionalPrinterColumns` (JSONPath into the object, `date` columns as an age). So
`kubectl get gateways` shows CLASS, ADDRESS and PROGRAMMED, and `kubectl get gatewayclass` shows
CONTROLLER and ACCEPTED, as on GKE, from the same column list the CRD objects publish (`kube_crds`).
Built-in kinds are answered as plain objects, which kubectl prints itself.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mtlskit.sandbox.web import now, parse_time

NAME_COLUMN = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name must be unique within a namespace.",
    "priority": 0,
}
DEFAULT_COLUMNS = ({"jsonPath": ".metadata.creationTimestamp", "name": "Age", "type": "date"},)


def wants_table(accept: str) -> bool:
    return any("as=Table" in media and "g=meta.k8s.io" in media for media in accept.split(","))


def table(
    columns: tuple[dict[str, Any], ...], objects: list[dict[str, Any]], resource_version: str
) -> dict[str, Any]:
    """The Table of `objects` with the CRD's printer columns (Name first, as the server adds it)."""
    columns = columns or DEFAULT_COLUMNS
    definitions = [
        NAME_COLUMN,
        *(
            {
                "name": c["name"],
                "type": c["type"],
                "format": c.get("format", ""),
                "description": c.get(
                    "description", f"Custom resource definition column (in JSONPath format): {c['jsonPath']}"
                ),
                "priority": c.get("priority", 0),
            }
            for c in columns
        ),
    ]
    rows = [
        {
            "cells": [obj["metadata"]["name"], *(_cell(c, obj) for c in columns)],
            "object": {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            },
        }
        for obj in objects
    ]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": definitions,
        "rows": rows,
    }


def _cell(column: dict[str, Any], obj: dict[str, Any]) -> Any:
    values = find(obj, column["jsonPath"])
    if not values:
        return None
    if column["type"] == "date":
        return human_age(str(values[0]))
    if len(values) == 1:
        value = values[0]
        return json.dumps(value, separators=(",", ":")) if isinstance(value, (list, dict)) else value
    return ",".join(str(v) for v in values)


_STEP = re.compile(r'\.([A-Za-z0-9_-]+)|\[\*\]|\[\?\(@\.([A-Za-z0-9_-]+)=="([^"]*)"\)\]')


def find(obj: Any, path: str) -> list[Any]:
    """The values a printer column's JSONPath selects: `.a.b`, `[*]` and `[?(@.type=="X")]`, the
    forms the published CRDs use."""
    nodes = [obj]
    for match in _STEP.finditer(path):
        field, key, wanted = match.groups()
        if field is not None:
            nodes = [n[field] for n in nodes if isinstance(n, dict) and field in n]
        elif key is None:
            nodes = [item for n in nodes if isinstance(n, list) for item in n]
        else:
            nodes = [
                item
                for n in nodes
                if isinstance(n, list)
                for item in n
                if isinstance(item, dict) and str(item.get(key)) == wanted
            ]
    return nodes


def human_age(timestamp: str) -> str:
    """An age the way kubectl and the API server print it (`45s`, `3m12s`, `5h`, `2d3h`)."""
    seconds = max(0, int((now() - parse_time(timestamp)).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"
