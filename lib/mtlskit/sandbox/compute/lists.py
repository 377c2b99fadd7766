"""The envelope of Compute's list answers: plain lists, aggregated lists and their paging.

Every list carries `kind` (from the discovery document), `id` and `selfLink`, pages with
`maxResults`/`pageToken` and says `nextPageToken` while more remain; an aggregated list keys its
items by scope, and a scope with nothing on the page carries the NO_RESULTS_ON_PAGE warning.
"""

from __future__ import annotations

from typing import Any

from mtlskit.sandbox import discovery
from mtlskit.sandbox.compute.resources import API, BASE
from mtlskit.sandbox.web import Request

ZONE = "us-central1-a"  # the one zone the sandbox's cluster runs in
ZONAL = {"networkEndpointGroups"}


def paged(req: Request, path: str, items: list[Any]) -> tuple[dict[str, Any], list[Any]]:
    """A list response's envelope (kind from the discovery document, id, selfLink, nextPageToken)
    and the page of `items` that `maxResults` and `pageToken` select."""
    size = int(req.arg("maxResults") or 500)
    start = int(req.arg("pageToken") or 0)
    method = discovery.api(API).find("GET", req.path)
    schema = discovery.api(API).schemas[method.response_ref] if method and method.response_ref else {}
    body: dict[str, Any] = {
        "kind": schema.get("properties", {}).get("kind", {}).get("default", "compute#list"),
        "id": path,
        "selfLink": f"{BASE}{path}",
    }
    if start + size < len(items):
        body["nextPageToken"] = str(start + size)
    return body, items[start : start + size]


def no_results(scope: str) -> dict[str, Any]:
    """What an aggregated list says for a scope with nothing on this page."""
    return {
        "warning": {
            "code": "NO_RESULTS_ON_PAGE",
            "message": f"There are no results for scope '{scope}' on this page.",
            "data": [{"key": "scope", "value": scope}],
        }
    }
