"""Compute Engine (global load-balancing resources) as the REST API behaves.

Mutations are checked (names, references, scheme match, fingerprints), applied at once and reported
through a global operation that moves PENDING -> RUNNING -> DONE over a short delay, so the kit's
operation waits are real waits. Fields starting with "_" are sandbox-internal and never returned.
"""

from __future__ import annotations

import ipaddress
import re
import time
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtlskit.sandbox.web import ApiError, Request, Response, merge_patch, new_fingerprint, new_id, rfc3339

if TYPE_CHECKING:
    from mtlskit.sandbox.server import Sandbox

API = "compute"
BASE = "https://www.googleapis.com/compute/v1/"
NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
REF = re.compile(
    r"(?:^|/)projects/(?P<project>[^/]+)/(?:global|zones/(?P<zone>[^/]+))/(?P<coll>[^/]+)/(?P<name>[^/]+)$"
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
SCHEMA_REFS = {
    "addresses": "Address",
    "sslCertificates": "SslCertificate",
    "sslPolicies": "SslPolicy",
    "urlMaps": "UrlMap",
    "targetHttpsProxies": "TargetHttpsProxy",
    "targetHttpProxies": "TargetHttpProxy",
    "forwardingRules": "ForwardingRule",
    "backendServices": "BackendService",
    "healthChecks": "HealthCheck",
}


def self_link(project: str, coll: str, name: str, zone: str | None = None) -> str:
    where = f"zones/{zone}" if zone else "global"
    return f"{BASE}projects/{project}/{where}/{coll}/{name}"


def key_of(project: str, name: str, zone: str | None = None) -> str:
    return f"{project}/{zone}/{name}" if zone else f"{project}/{name}"


def parse_ref(value: str, project: str) -> tuple[str, str, str, str | None] | None:
    """(project, collection, name, zone) for any URL form Compute accepts."""
    m = REF.search(value)
    if m:
        return m["project"], m["coll"], m["name"], m["zone"]
    m = REL_REF.match(value)
    if m:
        return project, m["coll"], m["name"], m["zone"]
    return None


def public(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if not k.startswith("_")}


def not_found(project: str, coll: str, name: str, zone: str | None = None) -> ApiError:
    where = f"zones/{zone}" if zone else "global"
    return ApiError.google(
        404, f"The resource 'projects/{project}/{where}/{coll}/{name}' was not found", "notFound"
    )


def invalid(message: str) -> ApiError:
    return ApiError.google(400, message, "invalid")


class Compute:
    def __init__(self, sandbox: Sandbox):
        self.sb = sandbox
        self.store = sandbox.store

    # ---- storage helpers shared with the ingress controller -------------------------------------

    def get(self, project: str, coll: str, name: str, zone: str | None = None) -> dict[str, Any] | None:
        return self.store.get(API, coll, key_of(project, name, zone))

    def require(self, project: str, coll: str, name: str, zone: str | None = None) -> dict[str, Any]:
        body = self.get(project, coll, name, zone)
        if body is None:
            raise not_found(project, coll, name, zone)
        return body

    def resolve(self, value: str, project: str, expect: set[str], field: str) -> dict[str, Any]:
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
            raise ApiError.google(
                400,
                f"The resource '{short}' is already being used by '{used_by}'",
                "resourceInUseByAnotherResource",
            )

    def delete_checked(self, project: str, coll: str, name: str, zone: str | None = None) -> dict[str, Any]:
        body = self.require(project, coll, name, zone)
        self.raise_if_in_use(body)
        self.store.delete(API, coll, key_of(project, name, zone))
        return body

    def render(self, body: dict[str, Any]) -> dict[str, Any]:
        out = public(body)
        if out.get("kind") == "compute#sslCertificate" and out.get("type") == "MANAGED":
            started = body.get("_provisionStart", 0.0)
            active = time.time() - started >= self.sb.settings.managed_cert_delay_seconds
            status = "ACTIVE" if active else "PROVISIONING"
            managed = dict(out.get("managed", {}))
            managed["status"] = status
            managed["domainStatus"] = {d: status for d in managed.get("domains", [])}
            out["managed"] = managed
            if active:
                out.setdefault("subjectAlternativeNames", managed.get("domains", []))
        if out.get("kind") == "compute#address":
            users = [u for u in self.referrers(out["selfLink"]) if "/forwardingRules/" in u]
            out["status"] = "IN_USE" if users else "RESERVED"
            if users:
                out["users"] = users
        return out

    # ---- HTTP -------------------------------------------------------------------------------------

    def handle(self, req: Request, rest: list[str]) -> Response:
        project = rest[0]
        self.sb.require_project(project, "compute")
        tail = rest[1:]
        if tail[:2] == ["global", "operations"]:
            return self._operations(req, project, tail[2:])
        if tail and tail[0] == "zones" and len(tail) >= 3:
            zone, coll, more = tail[1], tail[2], tail[3:]
            if coll == "operations":
                return self._operations(req, project, more)
            return self._collection(req, project, coll, more, zone)
        if tail and tail[0] == "global" and len(tail) >= 2:
            return self._collection(req, project, tail[1], tail[2:], None)
        if len(tail) == 3 and tail[0] == "targetHttpsProxies":
            # setUrlMap / setSslCertificates live outside /global/ in the v1 API.
            return self._verb(req, project, "targetHttpsProxies", tail[1], tail[2])
        raise ApiError.google(404, f"Not found: {req.path}", "notFound")

    def _collection(
        self, req: Request, project: str, coll: str, more: list[str], zone: str | None
    ) -> Response:
        if coll not in KINDS:
            raise ApiError.google(404, f"Not found: {req.path}", "notFound")
        if not more:
            if req.method == "GET":
                return self._list(req, project, coll, zone)
            if req.method == "POST":
                return self._insert(req, project, coll, zone)
        elif len(more) == 1:
            name = more[0]
            if req.method == "GET":
                return Response(200, self.render(self.require(project, coll, name, zone)))
            if req.method == "DELETE":
                return self._delete(req, project, coll, name, zone)
            if req.method in ("PATCH", "PUT"):
                return self._update(req, project, coll, name, replace=req.method == "PUT")
        elif len(more) == 2 and req.method == "POST":
            return self._verb(req, project, coll, more[0], more[1])
        raise ApiError.google(405, f"Method {req.method} not allowed on {req.path}", "methodNotAllowed")

    def _list(self, req: Request, project: str, coll: str, zone: str | None) -> Response:
        prefix = f"{project}/{zone}/" if zone else f"{project}/"
        items = [self.render(b) for k, b in self.store.list(API, coll, prefix) if zone or k.count("/") == 1]
        size = int(req.arg("maxResults") or 500)
        start = int(req.arg("pageToken") or 0)
        page = items[start : start + size]
        body: dict[str, Any] = {
            "kind": f"compute#{KINDS[coll]}List",
            "id": f"projects/{project}/global/{coll}",
            "items": page,
            "selfLink": f"{BASE}projects/{project}/global/{coll}",
        }
        if start + size < len(items):
            body["nextPageToken"] = str(start + size)
        return Response(200, body)

    # ---- mutations --------------------------------------------------------------------------------

    def _dedupe(self, req: Request, project: str) -> Response | None:
        rid = req.arg("requestId")
        if not rid:
            return None
        op_name = self.store.meta(f"compute-request:{project}:{rid}")
        if op_name:
            op = self.store.get(API, "operations", key_of(project, op_name))
            if op:
                return Response(200, self._render_op(op))
        return None

    def _insert(self, req: Request, project: str, coll: str, zone: str | None) -> Response:
        body = req.json()
        name = body.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise invalid(
                f"Invalid value for field 'resource.name': '{name}'. Must be a match of regex "
                "'(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'"
            )
        replay = self._dedupe(req, project)
        if replay:
            return replay
        if self.get(project, coll, name, zone) is not None:
            short = f"projects/{project}/global/{coll}/{name}"
            raise ApiError.google(409, f"The resource '{short}' already exists", "alreadyExists")
        prepared = self._prepare(project, coll, dict(body))
        return self._mutate(
            req,
            project,
            "insert",
            coll,
            name,
            zone,
            lambda: self.save(project, coll, self.stamp_new(project, coll, prepared, zone), zone),
        )

    def _update(self, req: Request, project: str, coll: str, name: str, replace: bool) -> Response:
        current = self.require(project, coll, name)
        patch = req.json()
        if coll in FINGERPRINTED:
            given = patch.get("fingerprint")
            if given != current.get("fingerprint"):
                raise ApiError.google(
                    412,
                    "Supplied fingerprint does not match current metadata fingerprint."
                    if given
                    else "Required field 'fingerprint' not specified or does not match.",
                    "conditionNotMet",
                    "FAILED_PRECONDITION",
                )
        if patch.get("name", name) != name:
            raise invalid("Invalid value for field 'resource.name': the name of a resource cannot change.")
        keep = {
            k: current[k] for k in ("kind", "id", "creationTimestamp", "selfLink", "name") if k in current
        }
        internal = {k: v for k, v in current.items() if k.startswith("_")}
        merged = {**patch, **keep, **internal} if replace else {**merge_patch(current, patch), **keep}
        merged.pop("fingerprint", None)
        merged = self._prepare(project, coll, merged)
        if coll in FINGERPRINTED:
            merged["fingerprint"] = new_fingerprint()
        return self._mutate(
            req,
            project,
            "update" if replace else "patch",
            coll,
            name,
            None,
            lambda: self.save(project, coll, merged),
        )

    def _delete(self, req: Request, project: str, coll: str, name: str, zone: str | None) -> Response:
        replay = self._dedupe(req, project)
        if replay:
            return replay
        self.raise_if_in_use(self.require(project, coll, name, zone))
        return self._mutate(
            req,
            project,
            "delete",
            coll,
            name,
            zone,
            lambda: self.store.delete(API, coll, key_of(project, name, zone)),
        )

    def _verb(self, req: Request, project: str, coll: str, name: str, verb: str) -> Response:
        current = self.require(project, coll, name)
        body = req.json()
        if coll == "targetHttpsProxies" and verb in ("setUrlMap", "setSslPolicy", "setSslCertificates"):
            field = {
                "setUrlMap": "urlMap",
                "setSslPolicy": "sslPolicy",
                "setSslCertificates": "sslCertificates",
            }[verb]
            updated = dict(current)
            if body.get(field) in (None, []):
                updated.pop(field, None)
            else:
                updated[field] = body[field]
            updated = self._prepare_targetHttpsProxies(project, updated)
            updated["fingerprint"] = new_fingerprint()
            return self._mutate(
                req, project, verb, coll, name, None, lambda: self.save(project, coll, updated)
            )
        if coll == "backendServices" and verb == "getHealth":
            return Response(200, self._health(project, current))
        if coll == "forwardingRules" and verb == "setTarget":
            updated = self._prepare_forwardingRules(project, {**current, "target": body.get("target")})
            return self._mutate(
                req, project, verb, coll, name, None, lambda: self.save(project, coll, updated)
            )
        raise ApiError.google(400, f"Unsupported action {verb} on {coll}", "invalid")

    def _mutate(
        self, req: Request, project: str, kind: str, coll: str, name: str, zone: str | None, change: Any
    ) -> Response:
        """Apply `change` unless the fault switch fails this operation; answer with the operation."""
        fail = self.sb.faults.operation_should_fail()
        target = None if fail else change()
        link = self_link(project, coll, name, zone)
        op = self.new_operation(
            project, kind, link, target.get("id") if isinstance(target, dict) else None, failed=fail
        )
        rid = req.arg("requestId")
        if rid:
            self.store.set_meta(f"compute-request:{project}:{rid}", op["name"])
        return Response(200, self._render_op(op))

    def _prepare(self, project: str, coll: str, body: dict[str, Any]) -> dict[str, Any]:
        """Apply the collection's defaults and reference checks (`_prepare_<collection>`), if it has any."""
        rules = getattr(self, f"_prepare_{coll}", None)
        return rules(project, body) if rules else body

    # ---- resource rules -------------------------------------------------------------------------------

    def _prepare_addresses(self, project: str, body: dict[str, Any]) -> dict[str, Any]:
        body.setdefault("addressType", "EXTERNAL")
        body.setdefault("ipVersion", "IPV4")
        body.setdefault("networkTier", "PREMIUM")
        if body.get("ipVersion") == "IPV6":
            raise invalid("The sandbox hands out IPv4 loopback addresses only; use ipVersion IPV4.")
        if "address" not in body:
            body["address"] = self.sb.allocate_ip()
        return body

    def _prepare_sslCertificates(self, project: str, body: dict[str, Any]) -> dict[str, Any]:
        kind = body.setdefault("type", "MANAGED" if body.get("managed") else "SELF_MANAGED")
        if kind == "MANAGED":
            domains = (body.get("managed") or {}).get("domains") or []
            if not domains:
                raise invalid(
                    "Invalid value for field 'resource.managed.domains': a MANAGED certificate needs "
                    "at least one domain."
                )
            if body.get("certificate") or body.get("privateKey"):
                raise invalid("A MANAGED certificate must not carry 'certificate' or 'privateKey'.")
            body["_provisionStart"] = time.time()
            body["managed"] = {"domains": domains}
        else:
            if not body.get("certificate") or not body.get("privateKey"):
                raise invalid("A SELF_MANAGED certificate needs both 'certificate' and 'privateKey'.")
            try:
                certs = x509.load_pem_x509_certificates(body["certificate"].encode())
            except ValueError:
                raise invalid(
                    "Invalid value for field 'resource.certificate': the certificate could not be parsed."
                ) from None
            leaf = certs[0]
            try:
                key = serialization.load_pem_private_key(body["privateKey"].encode(), None)
            except (ValueError, TypeError):
                raise invalid(
                    "Invalid value for field 'resource.privateKey': the private key could not be parsed."
                ) from None
            spki = serialization.PublicFormat.SubjectPublicKeyInfo
            if key.public_key().public_bytes(
                serialization.Encoding.DER, spki
            ) != leaf.public_key().public_bytes(serialization.Encoding.DER, spki):
                raise invalid(
                    "Invalid value for field 'resource.privateKey': it does not match the certificate."
                )
            body["expireTime"] = rfc3339(leaf.not_valid_after_utc, compute=True)
            try:
                san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                body["subjectAlternativeNames"] = san.get_values_for_type(x509.DNSName)
            except x509.ExtensionNotFound:
                body["subjectAlternativeNames"] = []
            body["_privateKey"] = body.pop("privateKey")
        return body

    def _prepare_sslPolicies(self, project: str, body: dict[str, Any]) -> dict[str, Any]:
        body.setdefault("profile", "COMPATIBLE")
        body.setdefault("minTlsVersion", "TLS_1_0")
        if body["profile"] == "CUSTOM" and not body.get("customFeatures"):
            raise invalid("Invalid value for field 'resource.customFeatures': required for profile CUSTOM.")
        if body["profile"] != "CUSTOM" and body.get("customFeatures"):
            raise invalid(
                "Invalid value for field 'resource.customFeatures': allowed only with profile CUSTOM."
            )
        return body

    def _prepare_urlMaps(self, project: str, body: dict[str, Any]) -> dict[str, Any]:
        services = {"backendServices", "backendBuckets"}
        if body.get("defaultService"):
            bs = self.resolve(body["defaultService"], project, services, "resource.defaultService")
            body["defaultService"] = bs["selfLink"]
        matchers = {m.get("name") for m in body.get("pathMatchers", [])}
        for i, m in enumerate(body.get("pathMatchers", [])):
            if m.get("defaultService"):
                m["defaultService"] = self.resolve(
                    m["defaultService"], project, services, f"resource.pathMatchers[{i}].defaultService"
                )["selfLink"]
            for j, rule in enumerate(m.get("pathRules", [])):
                if rule.get("service"):
                    rule["service"] = self.resolve(
                        rule["service"],
                        project,
                        services,
                        f"resource.pathMatchers[{i}].pathRules[{j}].service",
                    )["selfLink"]
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

    def _prepare_targetHttpsProxies(self, project: str, body: dict[str, Any]) -> dict[str, Any]:
        if not body.get("urlMap"):
            raise invalid("Invalid value for field 'resource.urlMap': required.")
        body["urlMap"] = self.resolve(body["urlMap"], project, {"urlMaps"}, "resource.urlMap")["selfLink"]
        certs = body.get("sslCertificates") or []
        if not certs and not body.get("certificateMap"):
            raise invalid(
                "Invalid value for field 'resource.sslCertificates': at least one certificate is required."
            )
        if len(certs) > 15:
            raise invalid("Invalid value for field 'resource.sslCertificates': at most 15 certificates.")
        body["sslCertificates"] = [
            self.resolve(c, project, {"sslCertificates"}, f"resource.sslCertificates[{i}]")["selfLink"]
            for i, c in enumerate(certs)
        ]
        if body.get("sslPolicy"):
            body["sslPolicy"] = self.resolve(
                body["sslPolicy"], project, {"sslPolicies"}, "resource.sslPolicy"
            )["selfLink"]
        if body.get("serverTlsPolicy"):
            self.sb.netsec.require_policy_ref(body["serverTlsPolicy"], "resource.serverTlsPolicy")
        return body

    def _prepare_targetHttpProxies(self, project: str, body: dict[str, Any]) -> dict[str, Any]:
        body["urlMap"] = self.resolve(body.get("urlMap") or "", project, {"urlMaps"}, "resource.urlMap")[
            "selfLink"
        ]
        return body

    def _prepare_forwardingRules(self, project: str, body: dict[str, Any]) -> dict[str, Any]:
        scheme = body.setdefault("loadBalancingScheme", "EXTERNAL")
        body.setdefault("IPProtocol", "TCP")
        body.setdefault("networkTier", "PREMIUM")
        if body["networkTier"] != "PREMIUM":
            raise invalid(
                "Invalid value for field 'resource.networkTier': global forwarding rules need PREMIUM."
            )
        target = self.resolve(
            body.get("target") or "", project, {"targetHttpsProxies", "targetHttpProxies"}, "resource.target"
        )
        body["target"] = target["selfLink"]
        ip = body.get("IPAddress")
        if ip:
            try:
                ipaddress.ip_address(ip)
                address = self._address_by_ip(project, ip)
            except ValueError:
                address = self.resolve(ip, project, {"addresses"}, "resource.IPAddress")
            if address is None:
                raise invalid(
                    f"Invalid value for field 'resource.IPAddress': '{ip}'. No reserved address has it."
                )
            body["IPAddress"] = address["address"]
            body["_address"] = address["selfLink"]
        else:
            body["IPAddress"] = self.sb.allocate_ip()
        body.setdefault("portRange", "443" if target["kind"] == "compute#targetHttpsProxy" else "80")
        port = body["portRange"].split("-")[0]
        for _k, other in self.store.list(API, "forwardingRules", f"{project}/"):
            if (
                other["name"] != body["name"]
                and other.get("IPAddress") == body["IPAddress"]
                and other.get("portRange", "").split("-")[0] == port
            ):
                raise invalid(
                    f"Invalid value for field 'resource.IPAddress': '{body['IPAddress']}'. "
                    f"The IP and port are already in use by '{other['name']}'."
                )
        for svc in self._backend_services_behind(project, target):
            if svc.get("loadBalancingScheme", "EXTERNAL") != scheme:
                raise invalid(
                    f"Invalid value for field 'resource.loadBalancingScheme': '{scheme}'. The forwarding rule's "
                    f"load balancing scheme must match the backend service '{svc['name']}' "
                    f"({svc.get('loadBalancingScheme', 'EXTERNAL')})."
                )
        return body

    def _prepare_backendServices(self, project: str, body: dict[str, Any]) -> dict[str, Any]:
        body.setdefault("loadBalancingScheme", "EXTERNAL")
        body.setdefault("protocol", "HTTP")
        return body

    def _address_by_ip(self, project: str, ip: str) -> dict[str, Any] | None:
        for _k, a in self.store.list(API, "addresses", f"{project}/"):
            if a.get("address") == ip:
                return a
        return None

    def _backend_services_behind(self, project: str, proxy: dict[str, Any]) -> list[dict[str, Any]]:
        ref = parse_ref(proxy.get("urlMap", ""), project)
        if not ref:
            return []
        um = self.get(ref[0], "urlMaps", ref[2]) or {}
        links = {um.get("defaultService")}
        for m in um.get("pathMatchers", []):
            links.add(m.get("defaultService"))
            links.update(r.get("service") for r in m.get("pathRules", []))
        found = []
        for link in filter(None, links):
            r = parse_ref(link, project)
            if r and r[1] == "backendServices":
                bs = self.get(r[0], "backendServices", r[2])
                if bs:
                    found.append(bs)
        return found

    def _health(self, project: str, bs: dict[str, Any]) -> dict[str, Any]:
        statuses = []
        for backend in bs.get("backends", []):
            ref = parse_ref(backend.get("group", ""), project)
            neg = self.get(ref[0], ref[1], ref[2], ref[3]) if ref else None
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
        return {"kind": "compute#backendServiceGroupHealth", "healthStatus": statuses}

    # ---- operations ------------------------------------------------------------------------------------

    def new_operation(
        self, project: str, kind: str, target_link: str, target_id: str | None, failed: bool = False
    ) -> dict[str, Any]:
        name = f"operation-{int(time.time() * 1000)}-{new_id()[:12]}"
        op: dict[str, Any] = {
            "kind": "compute#operation",
            "id": new_id(),
            "name": name,
            "operationType": kind,
            "targetLink": target_link,
            "user": "sandbox@mtlskit.local",
            "insertTime": rfc3339(compute=True),
            "startTime": rfc3339(compute=True),
            "selfLink": f"{BASE}projects/{project}/global/operations/{name}",
            "_created": time.time(),
        }
        if target_id:
            op["targetId"] = target_id
        if failed:
            op["_fail"] = True
        self.store.put(API, "operations", key_of(project, name), op)
        return op

    def _render_op(self, op: dict[str, Any]) -> dict[str, Any]:
        out = public(op)
        elapsed = time.time() - op["_created"]
        delay = self.sb.settings.operation_delay_seconds
        if elapsed >= delay:
            out.update(status="DONE", progress=100, endTime=rfc3339(compute=True))
            if op.get("_fail"):
                msg = "Internal error. Please try again or contact Google Support."
                out["error"] = {"errors": [{"code": "INTERNAL_ERROR", "message": msg}]}
                out["httpErrorStatusCode"] = 503
                out["httpErrorMessage"] = "SERVICE UNAVAILABLE"
        elif elapsed >= delay / 2:
            out.update(status="RUNNING", progress=50)
        else:
            out.update(status="PENDING", progress=0)
        return out

    def _operations(self, req: Request, project: str, rest: list[str]) -> Response:
        if not rest:
            items = [self._render_op(o) for _k, o in self.store.list(API, "operations", f"{project}/")]
            return Response(200, {"kind": "compute#operationList", "items": items})
        op = self.store.get(API, "operations", key_of(project, rest[0]))
        if op is None:
            raise not_found(project, "operations", rest[0])
        if len(rest) == 2 and rest[1] == "wait" and req.method == "POST":
            # Real wait blocks up to two minutes; ours waits for the operation's own delay.
            remaining = op["_created"] + self.sb.settings.operation_delay_seconds - time.time()
            if remaining > 0:
                time.sleep(min(remaining, 120))
            return Response(200, self._render_op(op))
        if req.method == "DELETE":
            self.store.delete(API, "operations", key_of(project, rest[0]))
            return Response(204)
        return Response(200, self._render_op(op))


def _mentions(node: Any, tail: str, skip: tuple[str, ...]) -> bool:
    if isinstance(node, str):
        return node == tail or node.endswith("/" + tail)
    if isinstance(node, dict):
        return any(_mentions(v, tail, skip) for k, v in node.items() if k not in skip)
    if isinstance(node, list):
        return any(_mentions(v, tail, skip) for v in node)
    return False
