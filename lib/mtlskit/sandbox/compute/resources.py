"""Compute documents in the store: names, links, lookups and the "in use" rule.

The HTTP handler, the Ingress controller and the data plane all read and write Compute resources
through `ComputeStore`, so a resource the controller creates is indistinguishable from one the kit
inserted. Fields starting with "_" are sandbox-internal and never returned.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
import time
from typing import Any

from cryptography import x509

from mtlskit.sandbox import stand_in_ca
from mtlskit.sandbox.env import Env
from mtlskit.sandbox.locations import SANDBOX_HOST
from mtlskit.sandbox.web import ApiError, new_fingerprint, new_id, rfc3339

API = "compute"
BASE = "https://www.googleapis.com/compute/v1/"
# Every form Compute accepts for a reference: the full URL (on www.googleapis.com or
# compute.googleapis.com, any API version), the partial URL from `projects/` and the one from
# `global/` or `zones/`. The loopback host stands in for Google's: a client with an endpoint override
# (gcloud's `api_endpoint_overrides/compute`) builds its full URLs on the override's host.
URL_PREFIX = rf"(?:https://(?:www|compute)\.googleapis\.com|{SANDBOX_HOST})/compute/(?:v1|beta|alpha)/"
REF = re.compile(
    rf"^(?:{URL_PREFIX})?projects/(?P<project>[^/]+)/(?:global|zones/(?P<zone>[^/]+))/"
    r"(?P<coll>[^/]+)/(?P<name>[^/]+)$"
)
REL_REF = re.compile(r"^(?:global|zones/(?P<zone>[^/]+))/(?P<coll>[^/]+)/(?P<name>[^/]+)$")

KINDS = {
    "addresses": "address",
    "sslCertificates": "sslCertificate",
    "sslPolicies": "sslPolicy",
    "urlMaps": "urlMap",
    "targetHttpsProxies": "targetHttpsProxy",
    "targetHttpProxies": "targetHttpProxy",
    "forwardingRules": "forwardingRule",
    "backendServices": "backendService",
    "healthChecks": "healthCheck",
    "networkEndpointGroups": "networkEndpointGroup",
}
FINGERPRINTED = {
    "sslPolicies",
    "urlMaps",
    "targetHttpsProxies",
    "targetHttpProxies",
    "backendServices",
    "forwardingRules",
}
Ref = tuple[str, str, str, str | None]
_ISSUE_LOCK = threading.Lock()  # the HTTP handler and the data plane may both see a certificate turn ACTIVE  # (project, collection, name, zone)


def self_link(project: str, coll: str, name: str, zone: str | None = None) -> str:
    where = f"zones/{zone}" if zone else "global"
    return f"{BASE}projects/{project}/{where}/{coll}/{name}"


def key_of(project: str, name: str, zone: str | None = None) -> str:
    return f"{project}/{zone}/{name}" if zone else f"{project}/{name}"


def parse_ref(value: str, project: str) -> Ref | None:
    """(project, collection, name, zone) for any URL form Compute accepts."""
    m = REF.match(value)
    if m:
        return m["project"], m["coll"], m["name"], m["zone"]
    m = REL_REF.match(value)
    if m:
        return project, m["coll"], m["name"], m["zone"]
    return None


def same_fingerprint(given: str | None, current: str | None) -> bool:
    """Fingerprints are bytes on the wire (`format: byte`): a client may decode the one it read and
    send it back in the URL-safe base64 alphabet, with or without padding (gcloud does), so compare
    what they decode to, not their text."""
    decoded = [_fingerprint_bytes(f) for f in (given, current)]
    return decoded[0] is not None and decoded[0] == decoded[1]


def _fingerprint_bytes(value: str | None) -> bytes | None:
    if not value:
        return None
    text = value.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        return None


def public(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if not k.startswith("_")}


def not_found(project: str, coll: str, name: str, zone: str | None = None) -> ApiError:
    where = f"zones/{zone}" if zone else "global"
    return ApiError.compute(
        404, f"The resource 'projects/{project}/{where}/{coll}/{name}' was not found", "notFound"
    )


def invalid(message: str) -> ApiError:
    return ApiError.compute(400, message, "invalid")


class ComputeStore:
    def __init__(self, env: Env):
        self.env = env
        self.store = env.store

    def get(self, project: str, coll: str, name: str, zone: str | None = None) -> dict[str, Any] | None:
        return self.store.get(API, coll, key_of(project, name, zone))

    def get_ref(self, value: str, project: str, coll: str) -> dict[str, Any] | None:
        """The resource of collection `coll` that a link (any accepted form) names, if it exists."""
        ref = parse_ref(value, project) if value else None
        if ref is None or ref[1] != coll:
            return None
        return self.get(ref[0], coll, ref[2], ref[3])

    def list(self, project: str, coll: str) -> list[dict[str, Any]]:
        """Global resources of one project (zonal keys carry one more '/')."""
        return [b for k, b in self.store.list(API, coll, f"{project}/") if k.count("/") == 1]

    def list_all(self, coll: str) -> list[tuple[str, dict[str, Any]]]:
        """(project, resource) for every project the sandbox holds."""
        return [(k.split("/", 1)[0], b) for k, b in self.store.list(API, coll)]

    def require(self, project: str, coll: str, name: str, zone: str | None = None) -> dict[str, Any]:
        body = self.get(project, coll, name, zone)
        if body is None:
            raise not_found(project, coll, name, zone)
        return body

    def resolve(self, value: str, project: str, expect: set[str], field: str) -> dict[str, Any]:
        """The resource a request field names, or the 400 Compute answers for a bad reference."""
        ref = parse_ref(value, project)
        if ref is None or ref[1] not in expect:
            raise invalid(f"Invalid value for field '{field}': '{value}'. The URL is malformed.")
        p, coll, name, zone = ref
        body = self.get(p, coll, name, zone)
        if body is None:
            raise invalid(
                f"Invalid value for field '{field}': '{value}'. "
                f"The resource 'projects/{p}/global/{coll}/{name}' was not found."
            )
        return body

    def save(self, project: str, coll: str, body: dict[str, Any], zone: str | None = None) -> dict[str, Any]:
        self.store.put(API, coll, key_of(project, body["name"], zone), body)
        return body

    def create(
        self, project: str, coll: str, body: dict[str, Any], zone: str | None = None
    ) -> dict[str, Any]:
        """Store a new resource with the output-only fields the API sets on insert."""
        return self.save(project, coll, self.stamp_new(project, coll, body, zone), zone)

    def stamp_new(
        self, project: str, coll: str, body: dict[str, Any], zone: str | None = None
    ) -> dict[str, Any]:
        body = dict(body)
        body.update(
            kind=f"compute#{KINDS[coll]}",
            id=new_id(),
            creationTimestamp=rfc3339(compute=True),
            selfLink=self_link(project, coll, body["name"], zone),
        )
        if zone:
            body["zone"] = f"{BASE}projects/{project}/zones/{zone}"
        if coll in FINGERPRINTED:
            body["fingerprint"] = new_fingerprint()
        return body

    def delete(self, project: str, coll: str, name: str, zone: str | None = None) -> bool:
        return self.store.delete(API, coll, key_of(project, name, zone))

    def referrers(self, link: str) -> list[str]:
        """Self links of every resource (in any API) that names `link`."""
        tail = link.split("/compute/v1/")[-1] if "/compute/v1/" in link else link
        users = []
        for api, coll, _key, body in self.store.all():
            if (
                api not in ("compute", "networksecurity")
                or coll == "operations"
                or body.get("selfLink") == link
            ):
                continue
            if _mentions(body, tail, skip=("selfLink", "users", "region", "zone")):
                users.append(body.get("selfLink") or body.get("name", "?"))
        return users

    def raise_if_in_use(self, body: dict[str, Any]) -> None:
        users = self.referrers(body["selfLink"])
        if users:
            short = body["selfLink"].split("/compute/v1/")[-1]
            used_by = users[0].split("/compute/v1/")[-1] if "/compute/v1/" in users[0] else users[0]
            raise ApiError.compute(
                400,
                f"The resource '{short}' is already being used by '{used_by}'",
                "resourceInUseByAnotherResource",
            )

    def delete_checked(self, project: str, coll: str, name: str, zone: str | None = None) -> dict[str, Any]:
        body = self.require(project, coll, name, zone)
        self.raise_if_in_use(body)
        self.delete(project, coll, name, zone)
        return body

    def _provisioned(self, body: dict[str, Any], domains: tuple[str, ...]) -> dict[str, Any]:
        """The certificate an ACTIVE managed certificate carries, issued once by the stand-in CA and
        kept with the resource (the data plane serves the same one): `certificate`, `expireTime`,
        `subjectAlternativeNames`, as Google reports them once provisioning is done."""
        with _ISSUE_LOCK:
            if "_managedCertificate" not in body:
                stored = self.store.get(API, "sslCertificates", _key_of_link(body["selfLink"])) or body
                if "_managedCertificate" not in stored:
                    pem, key = stand_in_ca.issue_for_state(self.env.state_dir, domains)
                    stored = {**stored, "_managedCertificate": pem, "_managedKey": key}
                    self.store.put(API, "sslCertificates", _key_of_link(body["selfLink"]), stored)
                body["_managedCertificate"], body["_managedKey"] = (
                    stored["_managedCertificate"],
                    stored["_managedKey"],
                )
        leaf = x509.load_pem_x509_certificate(body["_managedCertificate"].encode())
        return {
            "certificate": body["_managedCertificate"],
            "expireTime": rfc3339(leaf.not_valid_after_utc, compute=True),
            "subjectAlternativeNames": list(domains),
        }

    def render(self, body: dict[str, Any]) -> dict[str, Any]:
        """The resource as a GET returns it: managed certificate and address status are derived."""
        out = public(body)
        if out.get("kind") == "compute#sslCertificate" and out.get("type") == "MANAGED":
            started = body.get("_provisionStart", 0.0)
            active = time.time() - started >= self.env.settings.managed_cert_delay_seconds
            status = "ACTIVE" if active else "PROVISIONING"
            managed = dict(out.get("managed", {}))
            managed["status"] = status
            managed["domainStatus"] = {d: status for d in managed.get("domains", [])}
            out["managed"] = managed
            if active:
                out.update(self._provisioned(body, tuple(managed.get("domains", []))))
        if out.get("kind") == "compute#address":
            users = [u for u in self.referrers(out["selfLink"]) if "/forwardingRules/" in u]
            out["status"] = "IN_USE" if users else "RESERVED"
            if users:
                out["users"] = users
        return out


def _key_of_link(link: str) -> str:
    ref = parse_ref(link, "")
    assert ref is not None, link
    return key_of(ref[0], ref[2], ref[3])


def _mentions(node: Any, tail: str, skip: tuple[str, ...]) -> bool:
    if isinstance(node, str):
        return node == tail or node.endswith("/" + tail)
    if isinstance(node, dict):
        return any(_mentions(v, tail, skip) for k, v in node.items() if k not in skip)
    if isinstance(node, list):
        return any(_mentions(v, tail, skip) for v in node)
    return False
