"""Backend services and what stands behind them (NEGs, health checks).

The kit never creates these: the Ingress controller does. The handler still serves them (reads,
patches of logging and custom headers, getHealth), and the forwarding rule's scheme check needs
to know which backend services a proxy leads to.
"""

from __future__ import annotations

from typing import Any

from mtlskit.sandbox.compute.resources import ComputeStore, parse_ref


def prepare_backend_service(res: ComputeStore, project: str, body: dict[str, Any]) -> dict[str, Any]:
    body.setdefault("loadBalancingScheme", "EXTERNAL")
    body.setdefault("protocol", "HTTP")
    return body


def services_of_url_map(url_map: dict[str, Any]) -> set[str]:
    """Every backend service link a URL map can route to."""
    links = {url_map.get("defaultService")}
    for m in url_map.get("pathMatchers", []):
        links.add(m.get("defaultService"))
        links.update(r.get("service") for r in m.get("pathRules", []))
        for rule in m.get("routeRules", []):
            links.add(rule.get("service"))
            weighted = (rule.get("routeAction") or {}).get("weightedBackendServices") or []
            links.update(w.get("backendService") for w in weighted)
    return {link for link in links if link}


def backend_services_behind(res: ComputeStore, project: str, proxy: dict[str, Any]) -> list[dict[str, Any]]:
    url_map = res.get_ref(proxy.get("urlMap", ""), project, "urlMaps") or {}
    found = [res.get_ref(link, project, "backendServices") for link in services_of_url_map(url_map)]
    return [bs for bs in found if bs]


def health(res: ComputeStore, project: str, bs: dict[str, Any]) -> dict[str, Any]:
    """`getHealth`: every endpoint of the service's NEGs, healthy (the echo app always answers)."""
    statuses = []
    for backend in bs.get("backends", []):
        ref = parse_ref(backend.get("group", ""), project)
        neg = res.get(ref[0], ref[1], ref[2], ref[3]) if ref else None
        for ep in (neg or {}).get("_endpoints", []):
            statuses.append(
                {
                    "ipAddress": ep["ip"],
                    "port": ep["port"],
                    "healthState": "HEALTHY",
                    "forwardingRule": "",
                    "instance": "",
                }
            )
    out: dict[str, Any] = {"kind": "compute#backendServiceGroupHealth"}
    return {**out, "healthStatus": statuses} if statuses else out  # Google leaves an empty list out
