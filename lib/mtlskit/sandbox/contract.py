"""What Google always returns, which a discovery document cannot say, and the check that holds a
sandbox answer to it.

Discovery documents give every field's type and enum but mark none as always present, so a response
with a field left out still "validates". The tables here name, per resource kind and state, the
fields a real resource always has (sources: /work/shared/reference/gcp-mtls.md, the discovery
documents' descriptions, and Google's published list and operation shapes). `problems` joins them with
the schema walk in response mode, so one call says everything a sandbox answer gets wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mtlskit.sandbox import discovery

Body = dict[str, Any]
COMPUTE_RESOURCE = ("kind", "id", "creationTimestamp", "name", "selfLink")
# Compute resources, by `kind`: the fields every one of them has whatever its state.
ALWAYS: dict[str, tuple[str, ...]] = {
    # projects.get, which preflight reads for the quotas
    "compute#project": (
        *COMPUTE_RESOURCE,
        "quotas",
        "commonInstanceMetadata",
        "defaultServiceAccount",
        "xpnProjectStatus",
        "defaultNetworkTier",
    ),
    "compute#address": (*COMPUTE_RESOURCE, "address", "addressType", "networkTier", "status"),
    "compute#sslCertificate": (*COMPUTE_RESOURCE, "type"),
    "compute#sslPolicy": (*COMPUTE_RESOURCE, "profile", "minTlsVersion", "fingerprint"),
    "compute#urlMap": (*COMPUTE_RESOURCE, "fingerprint"),
    "compute#targetHttpsProxy": (*COMPUTE_RESOURCE, "urlMap", "fingerprint"),
    "compute#targetHttpProxy": (*COMPUTE_RESOURCE, "urlMap", "fingerprint"),
    "compute#forwardingRule": (
        *COMPUTE_RESOURCE,
        "IPAddress",
        "IPProtocol",
        "portRange",
        "target",
        "loadBalancingScheme",
        "networkTier",
        "fingerprint",
    ),
    "compute#backendService": (*COMPUTE_RESOURCE, "loadBalancingScheme", "protocol", "fingerprint"),
    "compute#healthCheck": (*COMPUTE_RESOURCE, "type"),
    "compute#networkEndpointGroup": (*COMPUTE_RESOURCE, "zone", "networkEndpointType"),
    "compute#backendServiceGroupHealth": ("kind",),
    "compute#operation": (
        "kind",
        "id",
        "name",
        "operationType",
        "targetLink",
        "status",
        "user",
        "progress",
        "insertTime",
        "startTime",
        "selfLink",
    ),
}
LIST_ENVELOPE = ("kind", "id", "selfLink")
# Cloud Storage's JSON API resources, by `kind` (the discovery document's descriptions and the answers
# Google gives today: every bucket has had a soft delete policy and a generation since 2024).
STORAGE_ALWAYS: dict[str, tuple[str, ...]] = {
    "storage#object": (
        "kind",
        "id",
        "selfLink",
        "mediaLink",
        "name",
        "bucket",
        "generation",
        "metageneration",
        "contentType",
        "storageClass",
        "size",
        "md5Hash",
        "crc32c",
        "etag",
        "timeCreated",
        "updated",
        "timeStorageClassUpdated",
        "timeFinalized",
    ),
    "storage#bucket": (
        "kind",
        "id",
        "selfLink",
        "projectNumber",
        "name",
        "timeCreated",
        "updated",
        "generation",
        "metageneration",
        "location",
        "locationType",
        "storageClass",
        "etag",
        "iamConfiguration",
        "softDeletePolicy",
    ),
}
# Their lists: the item kind; `items` (and `prefixes`, `nextPageToken`) are left out when empty.
STORAGE_LISTS = {"storage#objects": "storage#object", "storage#buckets": "storage#bucket"}
STORAGE_BUCKET_IAM = ("bucketPolicyOnly", "uniformBucketLevelAccess", "publicAccessPrevention")
# Cloud DNS's resources, by `kind` (its API reference's resource shapes; a public zone's answers).
DNS_ALWAYS: dict[str, tuple[str, ...]] = {
    "dns#managedZone": ("kind", "name", "dnsName", "id", "nameServers", "creationTime", "visibility"),
    "dns#resourceRecordSet": ("kind", "name", "type", "ttl", "rrdatas"),
    "dns#change": ("kind", "id", "startTime", "status"),
}
# Their lists: the field that holds the items (left out when empty, as `nextPageToken` is) and the
# items' schema.
DNS_LISTS = {
    "dns#managedZonesListResponse": ("managedZones", "ManagedZone"),
    "dns#resourceRecordSetsListResponse": ("rrsets", "ResourceRecordSet"),
    "dns#changesListResponse": ("changes", "Change"),
}
# Resources of the location-based APIs, by schema.
LOCATION_ALWAYS: dict[str, tuple[str, ...]] = {
    "ServerTlsPolicy": ("name", "createTime", "updateTime"),
    "TrustConfig": ("name", "createTime", "updateTime", "etag"),
    "Operation": ("name", "metadata", "done"),
}
LRO_METADATA = ("@type", "createTime", "target", "verb", "apiVersion")
# Their list responses: which field holds the items, and the items' schema.
LOCATION_LISTS = {
    "ListServerTlsPoliciesResponse": ("serverTlsPolicies", "ServerTlsPolicy"),
    "ListTrustConfigsResponse": ("trustConfigs", "TrustConfig"),
    "ListOperationsResponse": ("operations", "Operation"),
}
# The load balancer's request log (gcp-mtls.md section 4): the LogEntry envelope every entry has, and
# the only jsonPayload and jsonPayload.mtls fields Google documents or has been seen to write.
LOG_ENVELOPE = ("logName", "resource", "timestamp", "receiveTimestamp", "insertId")
LOG_ENTRY_ALWAYS = (*LOG_ENVELOPE, "httpRequest", "jsonPayload")
LB_PAYLOAD_ALWAYS = ("@type", "statusDetails")
LB_PAYLOAD_FIELDS = {
    "@type",
    "statusDetails",
    "backendTargetProjectNumber",
    "cachePolicySource",
    "overrideResponseCode",
    "errorService",
    "errorBackendStatusDetails",
    "authzPolicyInfo",
    "loadBalancingScheme",
    "tls",
    "orca_load_report",
    "remoteIp",
    "cacheDecision",
    "enforcedSecurityPolicy",
    "mtls",
}
LB_TLS_FIELDS = {"protocol", "cipher", "earlyDataRequest"}
LB_MTLS_FIELDS = {
    "clientCertPresent",
    "clientCertChainVerified",
    "clientCertError",
    "clientCertSha256Fingerprint",
    "clientCertSerialNumber",
    "clientCertValidStartTime",
    "clientCertValidEndTime",
    "clientCertSpiffeId",
    "clientCertUriSans",
    "clientCertDnsnameSans",
    "clientCertIssuerDn",
    "clientCertSubjectDn",
    "clientCertLeaf",
    "clientCertChain",
}
LB_RESOURCE_LABELS = {
    "backend_service_name",
    "forwarding_rule_name",
    "project_id",
    "target_proxy_name",
    "url_map_name",
    "zone",
}
LB_PAYLOAD_TYPE = "type.googleapis.com/google.cloud.loadbalancing.type.LoadBalancerLogEntry"


def problems(
    api: str, ref: str, body: Any, *, enums_as_int: bool = False, items_expected: bool = False
) -> list[str]:
    """Everything a response body of schema `ref` gets wrong: the schema walk (types, enums, unknown
    and empty fields) plus every always-returned field it lacks. `items_expected`: the caller knows
    the list is not empty, so its items must be there."""
    found = [str(v) for v in discovery.violations(api, ref, body, enums_as_int=enums_as_int, response=True)]
    if isinstance(body, dict):
        found += _missing(api, ref, body, "$", items_expected)
    return found


def _lacks(body: Body, fields: tuple[str, ...] | list[str], where: str) -> list[str]:
    return [f"{where}.{f}: missing (Google always returns it)" for f in fields if f not in body]


def _missing(api: str, ref: str, body: Body, where: str, items_expected: bool) -> list[str]:
    if api == "compute":
        return _compute(body, where, items_expected, ref)
    if api == "storage":
        return _storage(body, where, items_expected, ref)
    if api == "dns":
        return [] if ref == "ResourceRecordSetsDeleteResponse" else _dns(body, where, items_expected, ref)
    if api == "logging":
        entries = body.get("entries", [])
        out = [f"{where}.entries: missing" for _ in [1] if items_expected and not entries]
        for i, entry in enumerate(entries):
            out += _lacks(entry, LOG_ENVELOPE, f"{where}.entries[{i}]")
        return out
    if ref in LOCATION_LISTS:
        key, item_ref = LOCATION_LISTS[ref]
        out = [f"{where}.{key}: missing" for _ in [1] if items_expected and key not in body]
        for i, item in enumerate(body.get(key, [])):
            out += _location(item_ref, item, f"{where}.{key}[{i}]")
        return out
    return _location(ref, body, where)


def _location(ref: str, body: Body, where: str) -> list[str]:
    out = _lacks(body, LOCATION_ALWAYS.get(ref, ()), where)
    if ref != "Operation":
        return out
    meta = body.get("metadata") or {}
    out += _lacks(meta, [*LRO_METADATA, *(["endTime"] if body.get("done") else [])], f"{where}.metadata")
    if body.get("done") and "error" not in body:
        out += _lacks(body, ["response"], where)
        out += _lacks(body.get("response") or {}, ["@type"], f"{where}.response")
    return out


def _compute(body: Body, where: str, items_expected: bool, ref: str = "") -> list[str]:
    # A body that lost its `kind` is still judged as the kind its schema names.
    kind = str(body.get("kind") or (f"compute#{ref[:1].lower()}{ref[1:]}" if ref else ""))
    if kind.endswith("AggregatedList"):
        out = _lacks(body, [*LIST_ENVELOPE, "items"], where)
        for scope, scoped in (body.get("items") or {}).items():
            if not isinstance(scoped, dict) or len(scoped) != 1:
                out.append(f"{where}.items[{scope!r}]: one list of resources or one warning")
                continue
            ((key, value),) = scoped.items()
            if key == "warning":
                out += _lacks(value, ["code", "message", "data"], f"{where}.items[{scope!r}].warning")
            else:
                out += [
                    p
                    for i, r in enumerate(value)
                    for p in _compute(r, f"{where}.items[{scope!r}][{i}]", False)
                ]
        return out
    if kind.endswith("List"):
        out = _lacks(body, [*LIST_ENVELOPE, *(["items"] if items_expected else [])], where)
        for i, item in enumerate(body.get("items", [])):
            out += _compute(item, f"{where}.items[{i}]", False)
        return out
    if kind not in ALWAYS:
        return [f"{where}.kind: {kind!r} has no always-returned table; add one to contract.ALWAYS"]
    out = _lacks(body, ALWAYS[kind], where)
    rule = STATE_RULES.get(kind)
    return out + (rule(body, where) if rule else [])


def _storage(body: Body, where: str, items_expected: bool, ref: str) -> list[str]:
    kind = str(body.get("kind") or f"storage#{ref[:1].lower()}{ref[1:]}")
    if kind in STORAGE_LISTS:
        out = _lacks(body, ["kind", *(["items"] if items_expected else [])], where)
        item_ref = STORAGE_LISTS[kind].removeprefix("storage#").capitalize()
        for i, item in enumerate(body.get("items", [])):
            out += _storage(item, f"{where}.items[{i}]", False, item_ref)
        return out
    if kind not in STORAGE_ALWAYS:
        return [f"{where}.kind: {kind!r} has no always-returned table; add one to contract.STORAGE_ALWAYS"]
    out = _lacks(body, STORAGE_ALWAYS[kind], where)
    if kind == "storage#bucket":
        out += _lacks(body.get("iamConfiguration") or {}, STORAGE_BUCKET_IAM, f"{where}.iamConfiguration")
        # the recovery point objective belongs to multi- and dual-regions only
        if body.get("locationType") in ("multi-region", "dual-region"):
            out += _lacks(body, ["rpo"], where)
    return out


def _dns(body: Body, where: str, items_expected: bool, ref: str) -> list[str]:
    # A body that lost its `kind` is still judged as the kind its schema names.
    kind = str(body.get("kind") or f"dns#{ref[:1].lower()}{ref[1:]}")
    if kind in DNS_LISTS:
        key, item_ref = DNS_LISTS[kind]
        out = _lacks(body, ["kind", *([key] if items_expected else [])], where)
        for i, item in enumerate(body.get(key, [])):
            out += _dns(item, f"{where}.{key}[{i}]", False, item_ref)
        return out
    if kind not in DNS_ALWAYS:
        return [f"{where}.kind: {kind!r} has no always-returned table; add one to contract.DNS_ALWAYS"]
    out = _lacks(body, DNS_ALWAYS[kind], where)
    for part in ("additions", "deletions"):
        for i, rrset in enumerate(body.get(part, [])):
            out += _dns(rrset, f"{where}.{part}[{i}]", False, "ResourceRecordSet")
    return out


def _operation(op: Body, where: str) -> list[str]:
    out = [] if "error" in op else _lacks(op, ["targetId"], where)
    return out + (_lacks(op, ["endTime"], where) if op.get("status") == "DONE" else [])


def _ssl_certificate(cert: Body, where: str) -> list[str]:
    if cert.get("type") == "MANAGED":
        managed = cert.get("managed") or {}
        out = _lacks(managed, ["domains", "status"], f"{where}.managed")
        if managed.get("status") == "ACTIVE":
            out += _lacks(managed, ["domainStatus"], f"{where}.managed")
            out += _lacks(cert, ["certificate", "expireTime", "subjectAlternativeNames"], where)
        return out
    return _lacks(cert, ["certificate", "expireTime"], where)


STATE_RULES: dict[str, Callable[[Body, str], list[str]]] = {
    "compute#operation": _operation,
    "compute#sslCertificate": _ssl_certificate,
}


def log_entry_problems(entry: Body, where: str = "$") -> list[str]:
    """A load balancer request log entry against the LogEntry envelope and gcp-mtls.md section 4."""
    out = _lacks(entry, LOG_ENTRY_ALWAYS, where)
    resource = entry.get("resource") or {}
    if resource.get("type") != "http_load_balancer":
        return out + [f"{where}.resource.type: {resource.get('type')!r}, not http_load_balancer"]
    out += [
        f"{where}.resource.labels.{k}: not a label of http_load_balancer"
        for k in resource.get("labels", {})
        if k not in LB_RESOURCE_LABELS
    ]
    http = entry.get("httpRequest") or {}
    if "protocol" in http:
        out.append(f"{where}.httpRequest.protocol: not populated for http_load_balancer")
    out += [
        f"{where}.httpRequest.{k}: empty (Google leaves empty fields out)" for k, v in http.items() if v == ""
    ]
    payload = entry.get("jsonPayload") or {}
    out += _lacks(payload, LB_PAYLOAD_ALWAYS, f"{where}.jsonPayload")
    if payload.get("@type", LB_PAYLOAD_TYPE) != LB_PAYLOAD_TYPE:
        out.append(f"{where}.jsonPayload.@type: {payload['@type']!r}")
    for key, allowed in (("", LB_PAYLOAD_FIELDS), ("tls", LB_TLS_FIELDS), ("mtls", LB_MTLS_FIELDS)):
        part = payload.get(key, {}) if key else payload
        prefix = f"{where}.jsonPayload" + (f".{key}" if key else "")
        out += [f"{prefix}.{k}: not a documented field" for k in part if k not in allowed]
    return out
