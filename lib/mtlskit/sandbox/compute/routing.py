"""The frontend chain: address -> forwarding rule -> target proxy -> URL map -> backend service.

Each resource's references are resolved on write (a 400 names the field, as Compute does), so the
chain in the store is always whole; the forwarding rule also checks IP:port clashes and that its
load balancing scheme matches every backend service behind its proxy.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from mtlskit.sandbox import locations
from mtlskit.sandbox.compute.backends import backend_services_behind
from mtlskit.sandbox.compute.resources import ComputeStore, invalid
from mtlskit.sandbox.web import new_fingerprint

SERVICES = {"backendServices", "backendBuckets"}
MAX_PROXY_CERTIFICATES = 15
PROXY_SETTERS = {"setUrlMap": "urlMap", "setSslPolicy": "sslPolicy", "setSslCertificates": "sslCertificates"}


def prepare_address(res: ComputeStore, project: str, body: dict[str, Any]) -> dict[str, Any]:
    body.setdefault("addressType", "EXTERNAL")
    body.setdefault("ipVersion", "IPV4")
    body.setdefault("networkTier", "PREMIUM")
    if body.get("ipVersion") == "IPV6":
        raise invalid("The sandbox hands out IPv4 loopback addresses only; use ipVersion IPV4.")
    if "address" not in body:
        body["address"] = res.env.allocate_ip()
    return body


def prepare_url_map(res: ComputeStore, project: str, body: dict[str, Any]) -> dict[str, Any]:
    def link(value: str, field: str) -> str:
        return str(res.resolve(value, project, SERVICES, field)["selfLink"])

    if body.get("defaultService"):
        body["defaultService"] = link(body["defaultService"], "resource.defaultService")
    matchers = {m.get("name") for m in body.get("pathMatchers", [])}
    for i, m in enumerate(body.get("pathMatchers", [])):
        if m.get("defaultService"):
            m["defaultService"] = link(m["defaultService"], f"resource.pathMatchers[{i}].defaultService")
        for j, rule in enumerate(m.get("pathRules", [])):
            if rule.get("service"):
                rule["service"] = link(rule["service"], f"resource.pathMatchers[{i}].pathRules[{j}].service")
        for j, rule in enumerate(m.get("routeRules", [])):
            where = f"resource.pathMatchers[{i}].routeRules[{j}]"
            if rule.get("service"):
                rule["service"] = link(rule["service"], f"{where}.service")
            weighted = (rule.get("routeAction") or {}).get("weightedBackendServices") or []
            for k, wbs in enumerate(weighted):
                wbs["backendService"] = link(
                    wbs.get("backendService", ""),
                    f"{where}.routeAction.weightedBackendServices[{k}].backendService",
                )
    for i, hr in enumerate(body.get("hostRules", [])):
        if hr.get("pathMatcher") not in matchers:
            raise invalid(
                f"Invalid value for field 'resource.hostRules[{i}].pathMatcher': "
                f"'{hr.get('pathMatcher')}'. No path matcher with that name."
            )
    if not body.get("defaultService") and not body.get("defaultUrlRedirect"):
        raise invalid(
            "Invalid value for field 'resource': a URL map needs defaultService or defaultUrlRedirect."
        )
    return body


def prepare_https_proxy(res: ComputeStore, project: str, body: dict[str, Any]) -> dict[str, Any]:
    if not body.get("urlMap"):
        raise invalid("Invalid value for field 'resource.urlMap': required.")
    body["urlMap"] = res.resolve(body["urlMap"], project, {"urlMaps"}, "resource.urlMap")["selfLink"]
    certs = body.get("sslCertificates") or []
    if not certs and not body.get("certificateMap"):
        raise invalid(
            "Invalid value for field 'resource.sslCertificates': at least one certificate is required."
        )
    if len(certs) > MAX_PROXY_CERTIFICATES:
        raise invalid(
            f"Invalid value for field 'resource.sslCertificates': at most {MAX_PROXY_CERTIFICATES} "
            "certificates."
        )
    body["sslCertificates"] = [
        res.resolve(c, project, {"sslCertificates"}, f"resource.sslCertificates[{i}]")["selfLink"]
        for i, c in enumerate(certs)
    ]
    # A PATCH clears a reference with null (gcloud --clear-server-tls-policy); the typed Python
    # client cannot send null and sends "" instead. Whether Google reads "" as a detach is not
    # documented (gcp-mtls.md 1.2); the sandbox treats both alike and, as Google leaves empty fields
    # out, keeps no empty reference.
    for reference in ("sslPolicy", "serverTlsPolicy"):
        if body.get(reference) == "":
            del body[reference]
    if body.get("sslPolicy"):
        body["sslPolicy"] = res.resolve(body["sslPolicy"], project, {"sslPolicies"}, "resource.sslPolicy")[
            "selfLink"
        ]
    if body.get("serverTlsPolicy"):
        body["serverTlsPolicy"] = locations.require_policy_ref(
            res.store, body["serverTlsPolicy"], "resource.serverTlsPolicy"
        )
    return body


def prepare_http_proxy(res: ComputeStore, project: str, body: dict[str, Any]) -> dict[str, Any]:
    body["urlMap"] = res.resolve(body.get("urlMap") or "", project, {"urlMaps"}, "resource.urlMap")[
        "selfLink"
    ]
    return body


def set_proxy_field(
    res: ComputeStore, project: str, verb: str, current: dict[str, Any], body: dict[str, Any]
) -> dict[str, Any]:
    """setUrlMap / setSslPolicy / setSslCertificates: one field replaced, the rest re-checked."""
    field = PROXY_SETTERS[verb]
    updated = dict(current)
    if body.get(field) in (None, []):
        updated.pop(field, None)
    else:
        updated[field] = body[field]
    updated = prepare_https_proxy(res, project, updated)
    updated["fingerprint"] = new_fingerprint()
    return updated


def set_target(
    res: ComputeStore, project: str, verb: str, current: dict[str, Any], body: dict[str, Any]
) -> dict[str, Any]:
    return prepare_forwarding_rule(res, project, {**current, "target": body.get("target")})


def prepare_forwarding_rule(res: ComputeStore, project: str, body: dict[str, Any]) -> dict[str, Any]:
    scheme = body.setdefault("loadBalancingScheme", "EXTERNAL")
    body.setdefault("IPProtocol", "TCP")
    body.setdefault("networkTier", "PREMIUM")
    if body["networkTier"] != "PREMIUM":
        raise invalid("Invalid value for field 'resource.networkTier': global forwarding rules need PREMIUM.")
    target = res.resolve(
        body.get("target") or "", project, {"targetHttpsProxies", "targetHttpProxies"}, "resource.target"
    )
    body["target"] = target["selfLink"]
    _bind_address(res, project, body)
    body.setdefault("portRange", "443" if target["kind"] == "compute#targetHttpsProxy" else "80")
    port = body["portRange"].split("-")[0]
    for other in res.list(project, "forwardingRules"):
        if (
            other["name"] != body["name"]
            and other.get("IPAddress") == body["IPAddress"]
            and other.get("portRange", "").split("-")[0] == port
        ):
            raise invalid(
                f"Invalid value for field 'resource.IPAddress': '{body['IPAddress']}'. "
                "Specified IP address is in-use and would result in a conflict."
            )
    for svc in backend_services_behind(res, project, target):
        if svc.get("loadBalancingScheme", "EXTERNAL") != scheme:
            raise invalid(
                f"Invalid value for field 'resource.loadBalancingScheme': '{scheme}'. The forwarding rule's "
                f"load balancing scheme must match the backend service '{svc['name']}' "
                f"({svc.get('loadBalancingScheme', 'EXTERNAL')})."
            )
    return body


def _bind_address(res: ComputeStore, project: str, body: dict[str, Any]) -> None:
    """IPAddress may be a literal of a reserved address, a link to one, or absent (ephemeral)."""
    ip = body.get("IPAddress")
    if not ip:
        body["IPAddress"] = res.env.allocate_ip()
        return
    try:
        ipaddress.ip_address(ip)
        address = next((a for a in res.list(project, "addresses") if a.get("address") == ip), None)
    except ValueError:
        address = res.resolve(ip, project, {"addresses"}, "resource.IPAddress")
    if address is None:
        raise invalid(f"Invalid value for field 'resource.IPAddress': '{ip}'. No reserved address has it.")
    body["IPAddress"] = address["address"]
    body["_address"] = address["selfLink"]
