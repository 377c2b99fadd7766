"""How the GKE Gateway controller turns Kubernetes objects into Compute resource bodies.

- Names: `gkegw1-<4>-<ns>-<gateway>-<12>` for the Gateway's own address, forwarding rule, target
  proxy, URL map, server TLS policy and trust config; `gkegw1-<4>-<ns>-<svc>-<port>-<12>` for the
  backend service and health check of one Service port. `<4>` is fixed per cluster and `<12>` per
  object, so names are stable across syncs; fields are trimmed evenly to stay within 63 characters.
- HTTPRoutes become the URL map's host rules and route rules; a rule's RequestHeaderModifier becomes
  the route rule's `headerAction` (`set` replaces a client's header, `add` appends to it, as the load
  balancer's `replace` flag does), so `{client_cert_*}` values reach the backend.
- GCPBackendPolicy and HealthCheckPolicy become backend service and health check fields.

Pure functions over dicts: the controller reads the objects and writes the results.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from mtlskit.rules import gateway as gw
from mtlskit.sandbox.controller import trim_fields_evenly

MAX_NAME = 63
ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
HEALTH_CHECK_TYPES = {
    "HTTP": "httpHealthCheck",
    "HTTPS": "httpsHealthCheck",
    "HTTP2": "http2HealthCheck",
    "TCP": "tcpHealthCheck",
    "GRPC": "grpcHealthCheck",
}
SAMPLE_RATE_SCALE = 1_000_000  # GCPBackendPolicy's sampleRate is in millionths


def _base36(data: bytes, length: int) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while len(out) < length:
        n, r = divmod(n, 36)
        out += ALPHABET[r]
    return out


def cluster_tag(cluster_uid: str) -> str:
    """The 4 characters every name of one cluster's controller shares."""
    return _base36(hashlib.sha256(cluster_uid.encode()).digest(), 4)


def _name(cluster_uid: str, *fields: str) -> str:
    suffix = _base36(hashlib.sha256(";".join([cluster_uid, *fields]).encode()).digest(), 12)
    fixed = len(gw.NAME_PREFIX) + 4 + 1 + len(fields) + 12  # prefix, tag, dashes, suffix
    trimmed = trim_fields_evenly(MAX_NAME - fixed, *fields)
    return f"{gw.NAME_PREFIX}{cluster_tag(cluster_uid)}-{'-'.join(trimmed)}-{suffix}"


def gateway_name(cluster_uid: str, namespace: str, gateway: str) -> str:
    """The name of the Gateway's own resources (address, rule, proxy, URL map, TLS policy, trust config)."""
    return _name(cluster_uid, namespace, gateway)


def backend_name(cluster_uid: str, namespace: str, service: str, port: int) -> str:
    """The backend service and health check of one Service port (shared by every Gateway using it)."""
    return _name(cluster_uid, namespace, service, str(port))


def serve404_name(cluster_uid: str, namespace: str) -> str:
    """The backend that answers what no route matches."""
    return backend_name(cluster_uid, namespace, "gw-serve404", 80)


def firewall_name(cluster_uid: str, network: str = "default") -> str:
    return f"{gw.NAME_PREFIX}{cluster_tag(cluster_uid)}-l7-{network}-global"


# ---- routes -> URL map ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleTarget:
    """One HTTPRoute rule with its backends resolved to backend service links and weights."""

    matches: tuple[dict[str, Any], ...]
    filters: tuple[dict[str, Any], ...]
    services: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class RouteTarget:
    hostnames: tuple[str, ...]
    rules: tuple[RuleTarget, ...]


def header_action(filters: tuple[dict[str, Any], ...]) -> dict[str, Any] | None:
    """The load balancer's headerAction for a rule's RequestHeaderModifier filters."""
    add: list[dict[str, Any]] = []
    remove: list[str] = []
    for f in filters:
        if f.get("type") != "RequestHeaderModifier":
            continue
        modifier = f.get("requestHeaderModifier") or {}
        for replace, key in ((True, "set"), (False, "add")):
            add += [
                {"headerName": h["name"], "headerValue": h.get("value", ""), "replace": replace}
                for h in modifier.get(key) or []
            ]
        remove += list(modifier.get("remove") or [])
    action: dict[str, Any] = {}
    if add:
        action["requestHeadersToAdd"] = add
    if remove:
        action["requestHeadersToRemove"] = remove
    return action or None


def match_rules(matches: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    """URL map match rules for HTTPRoute matches (no match: every path)."""
    out = []
    for m in matches or ({},):
        path = m.get("path") or {"type": "PathPrefix", "value": "/"}
        value = path.get("value", "/")
        kind = path.get("type", "PathPrefix")
        rule: dict[str, Any] = (
            {"fullPathMatch": value}
            if kind == "Exact"
            else {"regexMatch": value}
            if kind == "RegularExpression"
            else {"prefixMatch": value}
        )
        headers = [
            {
                "headerName": h["name"],
                **(
                    {"regexMatch": h["value"]}
                    if h.get("type") == "RegularExpression"
                    else {"exactMatch": h["value"]}
                ),
            }
            for h in m.get("headers") or []
        ]
        if headers:
            rule["headerMatches"] = headers
        out.append(rule)
    return out


def _specificity(rule: RuleTarget) -> tuple[int, int]:
    """Gateway API precedence: exact paths before prefixes, longer prefixes before shorter ones."""
    paths = [(m.get("path") or {}) for m in rule.matches] or [{}]
    exact = any(p.get("type") == "Exact" for p in paths)
    longest = max(len(p.get("value", "/")) for p in paths)
    return (0 if exact else 1, -longest)


def url_map(name: str, default_service: str, routes: list[RouteTarget]) -> dict[str, Any]:
    """The URL map body: one path matcher per distinct host set, one route rule per HTTPRoute rule."""
    by_hosts: dict[tuple[str, ...], list[RuleTarget]] = {}
    for route in routes:
        hosts = tuple(sorted(route.hostnames)) or ("*",)
        by_hosts.setdefault(hosts, []).extend(r for r in route.rules if r.services)
    host_rules, matchers = [], []
    for i, (hosts, rules) in enumerate(sorted(by_hosts.items())):
        matcher = f"host{i}"
        host_rules.append({"hosts": list(hosts), "pathMatcher": matcher})
        route_rules = []
        for priority, rule in enumerate(sorted(rules, key=_specificity), start=1):
            body: dict[str, Any] = {"priority": priority, "matchRules": match_rules(rule.matches)}
            if len(rule.services) == 1:
                body["service"] = rule.services[0][0]
            else:
                body["routeAction"] = {
                    "weightedBackendServices": [
                        {"backendService": link, "weight": weight} for link, weight in rule.services
                    ]
                }
            action = header_action(rule.filters)
            if action:
                body["headerAction"] = action
            route_rules.append(body)
        matcher_body: dict[str, Any] = {"name": matcher, "defaultService": default_service}
        if route_rules:
            matcher_body["routeRules"] = route_rules
        matchers.append(matcher_body)
    out: dict[str, Any] = {"name": name, "defaultService": default_service}
    if host_rules:
        out.update(hostRules=host_rules, pathMatchers=matchers)
    return out


# ---- policies -> backend service and health check fields ------------------------------------------------


def backend_policy_fields(policy: dict[str, Any] | None) -> dict[str, Any]:
    """Backend service fields a GCPBackendPolicy sets; logging is off when no policy turns it on."""
    default = ((policy or {}).get("spec") or {}).get("default") or {}
    logging = default.get("logging") or {}
    fields: dict[str, Any] = {"logConfig": {"enable": False, "sampleRate": 0.0}}
    if logging.get("enabled"):
        rate = logging.get("sampleRate", SAMPLE_RATE_SCALE)
        fields["logConfig"] = {"enable": True, "sampleRate": float(rate) / SAMPLE_RATE_SCALE}
    if "timeoutSec" in default:
        fields["timeoutSec"] = int(default["timeoutSec"])
    draining = (default.get("connectionDraining") or {}).get("drainingTimeoutSec")
    if draining is not None:
        fields["connectionDraining"] = {"drainingTimeoutSec": int(draining)}
    affinity = default.get("sessionAffinity") or {}
    if affinity.get("type"):
        fields["sessionAffinity"] = affinity["type"]
        if affinity.get("cookieTtlSec") is not None:
            fields["affinityCookieTtlSec"] = int(affinity["cookieTtlSec"])
    return fields


def health_check(name: str, policy: dict[str, Any] | None) -> dict[str, Any]:
    """The health check body: GKE's Gateway defaults, with what a HealthCheckPolicy sets."""
    default = ((policy or {}).get("spec") or {}).get("default") or {}
    config = default.get("config") or {}
    kind = config.get("type", "HTTP")
    field_name = HEALTH_CHECK_TYPES.get(kind, "httpHealthCheck")
    probe = dict(config.get(field_name) or {})
    if "port" not in probe:
        probe.setdefault("portSpecification", "USE_SERVING_PORT")
    if kind in ("HTTP", "HTTPS", "HTTP2"):
        probe.setdefault("requestPath", "/")
    body: dict[str, Any] = {
        "name": name,
        "type": kind,
        field_name: probe,
        "checkIntervalSec": int(default.get("checkIntervalSec", 5)),
        "timeoutSec": int(default.get("timeoutSec", 5)),
        "healthyThreshold": int(default.get("healthyThreshold", 2)),
        "unhealthyThreshold": int(default.get("unhealthyThreshold", 2)),
    }
    if (default.get("logConfig") or {}).get("enabled"):
        body["logConfig"] = {"enable": True}
    return body
