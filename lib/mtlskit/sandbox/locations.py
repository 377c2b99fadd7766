"""Network Security (serverTlsPolicies) and Certificate Manager (trustConfigs).

Both are `projects/*/locations/*` APIs with google.longrunning operations that share one URL shape;
operations live in one table keyed by their full name, so a poll is answered correctly whichever
API created the operation. The load balancer's rules for ALB policies and trust stores are enforced
here, because the real APIs refuse the same things.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import re
import time
from typing import Any

from cryptography import x509

from mtlskit.rules import names
from mtlskit.sandbox import discovery
from mtlskit.sandbox.env import Env
from mtlskit.sandbox.state import Store
from mtlskit.sandbox.web import ApiError, Request, Response, new_id, rfc3339

SERVICE_HOSTS = {
    "serverTlsPolicies": "networksecurity.googleapis.com",
    "trustConfigs": "certificatemanager.googleapis.com",
}
# The sandbox stands in for the service host: a client configured with an endpoint override (gcloud's
# `api_endpoint_overrides/networksecurity`) builds full URLs on the override's host, as it would on
# networksecurity.googleapis.com, so the loopback host on any port counts as the service's own (Compute
# references use the same rule).
SANDBOX_HOST = r"https?://(?:127\.0\.0\.1|localhost|\[::1\])(?::\d+)?"


def _ref_form(coll: str) -> re.Pattern[str]:
    """Every form Google accepts for a reference to a `projects/*/locations/*` resource: the relative
    name, the full resource name (`//service/...`) and the URL with its API version."""
    host = re.escape(SERVICE_HOSTS[coll])
    prefix = rf"(?://{host}/|https://{host}/v1(?:alpha1|beta1)?/|{SANDBOX_HOST}/v1(?:alpha1|beta1)?/)?"
    return re.compile(rf"^{prefix}projects/([^/]+)/locations/([^/]+)/{coll}/([^/]+)$")


REF_FORMS = {coll: _ref_form(coll) for coll in SERVICE_HOSTS}
MAX_PEM = 5 * 1024

KINDS: dict[str, dict[str, Any]] = {
    "serverTlsPolicies": {
        "api": "networksecurity",
        "schema": "ServerTlsPolicy",
        "id_param": "serverTlsPolicyId",
        "id_rule": names.SERVER_TLS_POLICY_ID,
        "type": "type.googleapis.com/google.cloud.networksecurity.v1.ServerTlsPolicy",
        "meta": "type.googleapis.com/google.cloud.networksecurity.v1.OperationMetadata",
        "mask_required": False,
    },
    "trustConfigs": {
        "api": "certificatemanager",
        "schema": "TrustConfig",
        "id_param": "trustConfigId",
        "id_rule": names.TRUST_CONFIG_ID,
        "type": "type.googleapis.com/google.cloud.certificatemanager.v1.TrustConfig",
        "meta": "type.googleapis.com/google.cloud.certificatemanager.v1.OperationMetadata",
        "mask_required": True,
    },
}
OUTPUT_ONLY = {"name", "createTime", "updateTime", "etag"}


def _err(status: int, message: str) -> ApiError:
    return ApiError.google(status, message)


def relative_name(coll: str, ref: str) -> str | None:
    """`projects/{p}/locations/{l}/{coll}/{id}` for any accepted reference form, or None."""
    m = REF_FORMS[coll].match(ref)
    return f"projects/{m[1]}/locations/{m[2]}/{coll}/{m[3]}" if m else None


def _by_ref(store: Store, coll: str, ref: str) -> dict[str, Any] | None:
    """The resource a reference (any form Google accepts) points at."""
    name = relative_name(coll, ref)
    return store.get(KINDS[coll]["api"], coll, name) if name else None


def server_tls_policy(store: Store, ref: str) -> dict[str, Any] | None:
    """The server TLS policy a proxy's `serverTlsPolicy` names."""
    return _by_ref(store, "serverTlsPolicies", ref)


def require_policy_ref(store: Store, value: str, field: str) -> str:
    """The policy a Compute request field names, as the full resource name the proxy keeps (the form
    Google documents for attaching), or the 400 Compute answers for a bad reference."""
    name = relative_name("serverTlsPolicies", value)
    if name is None:
        raise ApiError.google(
            400, f"Invalid value for field '{field}': '{value}'. The URL is malformed.", "invalid"
        )
    if server_tls_policy(store, name) is None:
        raise ApiError.google(
            400, f"Invalid value for field '{field}': '{value}'. The resource was not found.", "invalid"
        )
    return f"//{SERVICE_HOSTS['serverTlsPolicies']}/{name}"


def trust_config(store: Store, ref: str) -> dict[str, Any] | None:
    """The trust config a policy's `clientValidationTrustConfig` names."""
    return _by_ref(store, "trustConfigs", ref)


class Locations:
    def __init__(self, env: Env):
        self.env = env
        self.store = env.store

    # ---- HTTP -----------------------------------------------------------------------------------------

    def handle(self, req: Request, rest: list[str], service: str) -> Response:
        # rest: projects/{p}/locations/{l}/{collection}[/{id}]
        if len(rest) < 5 or rest[0] != "projects" or rest[2] != "locations":
            raise ApiError.unknown_method(req.path)
        project, location, coll = rest[1], rest[3], rest[4]
        self.env.require_project(project, service)
        parent = f"projects/{project}/locations/{location}"
        if coll == "operations":
            return self._operation(req, parent, rest[5:])
        if coll not in KINDS or KINDS[coll]["api"] != service:
            raise ApiError.unknown_method(req.path)
        if location != "global":
            raise _err(
                400,
                f"Location '{location}' is not served by the sandbox; global load balancers use 'global'.",
            )
        spec = KINDS[coll]
        verb = req.method_id.rsplit(".", 1)[-1]
        if len(rest) == 5:
            if verb == "list":
                items = [self._public(b) for _k, b in self.store.list(spec["api"], coll, f"{parent}/{coll}/")]
                return self._answer(req, spec, _page(req, coll, items))
            if verb == "create":
                return self._create(req, parent, coll, spec)
        elif len(rest) == 6:
            name = f"{parent}/{coll}/{rest[5]}"
            if verb == "get":
                return self._answer(req, spec, self._public(self._require(spec, coll, name)), spec["schema"])
            if verb == "patch":
                return self._patch(req, name, coll, spec)
            if verb == "delete":
                return self._delete(req, name, coll, spec)
        raise ApiError.unknown_method(req.path)

    @staticmethod
    def _answer(req: Request, spec: dict[str, Any], body: dict[str, Any], ref: str | None = None) -> Response:
        """A resource or list as the client asked for it: a client that sends `$alt=json;enum-encoding=int`
        (the Python clients do) gets every enum as its number, as Google answers it."""
        if req.enums_as_int:
            method = discovery.api(spec["api"]).find(req.method, req.path)
            body = discovery.encode_enums(spec["api"], ref or (method.response_ref if method else ""), body)
        return Response(200, body)

    def _require(self, spec: dict[str, Any], coll: str, name: str) -> dict[str, Any]:
        body = self.store.get(spec["api"], coll, name)
        if body is None:
            raise _err(404, f"Resource '{name}' was not found")
        return body

    @staticmethod
    def _public(body: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in body.items() if not k.startswith("_")}

    def _create(self, req: Request, parent: str, coll: str, spec: dict[str, Any]) -> Response:
        rid = req.arg(spec["id_param"])
        rule: names.NameRule = spec["id_rule"]
        if not rule.matches(rid):
            raise _err(400, f"Invalid {spec['id_param']} '{rid}': must match {rule.pattern.pattern}")
        name = f"{parent}/{coll}/{rid}"
        if self.store.get(spec["api"], coll, name) is not None:
            raise _err(409, f"Resource '{name}' already exists")
        body = discovery.normalise_enums(spec["api"], spec["schema"], req.json())
        body = {k: v for k, v in body.items() if k not in OUTPUT_ONLY}
        getattr(self, f"_check_{coll}")(body, parent)
        now = rfc3339()
        body.update(name=name, createTime=now, updateTime=now)
        if coll == "trustConfigs":
            body["etag"] = _etag(body)
        return self._operate(
            req, parent, spec, name, "create", lambda: self.store.put(spec["api"], coll, name, body)
        )

    def _patch(self, req: Request, name: str, coll: str, spec: dict[str, Any]) -> Response:
        current = self._require(spec, coll, name)
        mask = req.arg("updateMask")
        if spec["mask_required"] and not mask:
            raise _err(400, "updateMask is required")
        patch = discovery.normalise_enums(spec["api"], spec["schema"], req.json())
        if coll == "trustConfigs" and patch.get("etag") and patch["etag"] != current.get("etag"):
            raise _err(409, "The etag does not match the current trust config (ABORTED); read it again.")
        if mask:
            updated = _masked(current, patch, mask)
        else:
            keep = {k: current[k] for k in OUTPUT_ONLY if k in current}
            updated = {**{k: v for k, v in patch.items() if k not in OUTPUT_ONLY}, **keep}
        getattr(self, f"_check_{coll}")(updated, name.rsplit(f"/{coll}/", 1)[0])
        updated["updateTime"] = rfc3339()
        if coll == "trustConfigs":
            updated["etag"] = _etag(updated)
        parent = name.rsplit(f"/{coll}/", 1)[0]
        return self._operate(
            req, parent, spec, name, "update", lambda: self.store.put(spec["api"], coll, name, updated)
        )

    def _delete(self, req: Request, name: str, coll: str, spec: dict[str, Any]) -> Response:
        current = self._require(spec, coll, name)
        etag = req.arg("etag")
        if etag and etag != current.get("etag"):
            raise _err(409, "The etag does not match the current resource (ABORTED); read it again.")
        self._refuse_in_use(coll, name)
        parent = name.rsplit(f"/{coll}/", 1)[0]
        drop = functools.partial(self.store.delete, spec["api"], coll, name)
        return self._operate(req, parent, spec, name, "delete", drop, empty=True)

    def _refuse_in_use(self, coll: str, name: str) -> None:
        """The API's 400 for deleting what something still uses, naming the first user."""
        users = self._users(coll, name)
        if users:
            raise ApiError.google(
                400,
                f"The resource '{name}' is already being used by '{users[0]}'",
                "resourceInUseByAnotherResource",
                "FAILED_PRECONDITION",
            )

    def _users(self, coll: str, name: str) -> list[str]:
        users = []
        for api, _c, key, body in self.store.all():
            if (
                coll == "serverTlsPolicies"
                and api == "compute"
                and body.get("serverTlsPolicy", "").endswith(name)
            ):
                users.append(body.get("selfLink", key))
            if coll == "trustConfigs" and api == "networksecurity":
                ref = (body.get("mtlsPolicy") or {}).get("clientValidationTrustConfig", "")
                if ref.endswith(name):
                    users.append(key)
        return users

    # ---- direct writes, for the Google-side controllers ----------------------------------------------------

    def save(self, coll: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create or update `name` in place, as a Google-side controller does (no operation to wait
        for): the API's own rules apply, and an unchanged resource keeps its times and etag."""
        spec = KINDS[coll]
        current = self.store.get(spec["api"], coll, name)
        getattr(self, f"_check_{coll}")(body, name.rsplit(f"/{coll}/", 1)[0])
        if current is not None and {k: v for k, v in current.items() if k not in OUTPUT_ONLY} == body:
            return current
        now = rfc3339()
        updated = {
            **body,
            "name": name,
            "createTime": (current or {}).get("createTime", now),
            "updateTime": now,
        }
        if coll == "trustConfigs":
            updated["etag"] = _etag(updated)
        self.store.put(spec["api"], coll, name, updated)
        return updated

    def remove(self, coll: str, name: str) -> bool:
        """Delete `name` directly; refused (the API's 400) while something still uses it."""
        spec = KINDS[coll]
        if self.store.get(spec["api"], coll, name) is None:
            return False
        self._refuse_in_use(coll, name)
        return self.store.delete(spec["api"], coll, name)

    # ---- rules ------------------------------------------------------------------------------------------

    def _check_serverTlsPolicies(self, body: dict[str, Any], parent: str) -> None:
        mtls = body.get("mtlsPolicy")
        if body.get("allowOpen") or body.get("serverCertificate"):
            raise _err(
                400,
                "allowOpen and serverCertificate are for Traffic Director; an Application Load "
                "Balancer policy must leave them unset.",
            )
        if not mtls:
            raise _err(400, "mtlsPolicy is required for an Application Load Balancer policy.")
        if mtls.get("clientValidationCa"):
            raise _err(
                400, "mtlsPolicy.clientValidationCa is for Traffic Director; use clientValidationTrustConfig."
            )
        mode = mtls.get("clientValidationMode")
        if mode in (None, "CLIENT_VALIDATION_MODE_UNSPECIFIED"):
            raise _err(
                400,
                "mtlsPolicy.clientValidationMode is required (ALLOW_INVALID_OR_MISSING_CLIENT_CERT "
                "or REJECT_INVALID).",
            )
        tc = mtls.get("clientValidationTrustConfig")
        if mode == "REJECT_INVALID" and not tc:
            raise _err(
                400,
                "mtlsPolicy.clientValidationTrustConfig is required when clientValidationMode is "
                "REJECT_INVALID.",
            )
        if tc and trust_config(self.store, tc) is None:
            raise _err(
                400,
                f"Invalid value for mtlsPolicy.clientValidationTrustConfig: trust config '{tc}' "
                "was not found.",
            )

    def _check_trustConfigs(self, body: dict[str, Any], parent: str) -> None:
        stores = body.get("trustStores") or []
        if len(stores) > 1:
            raise _err(400, "Only one trust store is allowed per trust config.")
        allow = body.get("allowlistedCertificates") or []
        for store in stores:
            anchors = store.get("trustAnchors") or []
            inters = store.get("intermediateCas") or []
            if len(anchors) > 200:
                raise _err(400, f"A trust store holds at most 200 trust anchors (got {len(anchors)}).")
            if len(inters) > 100:
                raise _err(400, f"A trust store holds at most 100 intermediate CAs (got {len(inters)}).")
            for field, items in (("trustAnchors", anchors), ("intermediateCas", inters)):
                for i, item in enumerate(items):
                    _check_pem(item.get("pemCertificate", ""), f"trustStores[0].{field}[{i}].pemCertificate")
        for i, item in enumerate(allow):
            _check_pem(item.get("pemCertificate", ""), f"allowlistedCertificates[{i}].pemCertificate")

    # ---- operations -------------------------------------------------------------------------------------

    def _operate(
        self,
        req: Request,
        parent: str,
        spec: dict[str, Any],
        target: str,
        verb: str,
        change: Any,
        empty: bool = False,
    ) -> Response:
        fail = self.env.faults.operation_should_fail()
        if not fail:
            change()
        name = f"{parent}/operations/operation-{int(time.time() * 1000)}-{new_id()[:10]}"
        op = {
            "name": name,
            "_created": time.time(),
            "_fail": fail,
            "_api": spec["api"],
            "_coll": target.split("/")[-2],
            "_target": target,
            "_empty": empty,
            "metadata": {
                "@type": spec["meta"],
                "createTime": rfc3339(),
                "target": target,
                "verb": verb,
                "apiVersion": "v1",
            },
            "done": False,
        }
        self.store.put("lro", "operations", name, op)
        return Response(200, self._render_op(op, req.enums_as_int))

    def _render_op(self, op: dict[str, Any], as_int: bool = False) -> dict[str, Any]:
        """The operation as Google reports it; once done, the resource it made in `response` (with
        its enums as numbers for a client that asked for integer enums)."""
        out = self._public(op)
        if time.time() - op["_created"] < self.env.settings.operation_delay_seconds:
            return out
        out["done"] = True
        out["metadata"] = {**out["metadata"], "endTime": rfc3339()}
        if op["_fail"]:
            out["error"] = {"code": 14, "message": "The service is currently unavailable (sandbox fault)."}
        elif op["_empty"]:
            out["response"] = {"@type": "type.googleapis.com/google.protobuf.Empty"}
        else:
            spec = KINDS[op["_coll"]]
            resource = self._public(self.store.get(op["_api"], op["_coll"], op["_target"]) or {})
            if as_int:
                resource = discovery.encode_enums(spec["api"], spec["schema"], resource)
            out["response"] = {"@type": spec["type"], **resource}
        return out

    def _operation(self, req: Request, parent: str, rest: list[str]) -> Response:
        verb = req.method_id.rsplit(".", 1)[-1]
        if not rest and verb == "list":
            items = [
                self._render_op(o, req.enums_as_int)
                for _k, o in self.store.list("lro", "operations", f"{parent}/operations/")
            ]
            return Response(200, _page(req, "operations", items))
        if len(rest) != 1 or verb not in ("get", "delete", "cancel"):
            raise ApiError.unknown_method(req.path)
        name = f"{parent}/operations/{rest[0].split(':')[0]}"
        op = self.store.get("lro", "operations", name)
        if op is None:
            raise _err(404, f"Operation '{name}' was not found")
        if verb in ("delete", "cancel"):
            return Response(200, {})
        return Response(200, self._render_op(op, req.enums_as_int))


def _masked(current: dict[str, Any], patch: dict[str, Any], mask: str) -> dict[str, Any]:
    """`current` with every field the update mask names taken from `patch` (FieldMask semantics): a
    nested path (`mtls_policy.client_validation_mode`) changes only that field and keeps its
    siblings; a named field the patch leaves out is cleared; output-only fields never change.
    Paths come snake_case (the Python clients) or camelCase (gcloud, REST)."""
    updated = copy.deepcopy(current)
    for path in mask.split(","):
        parts = [discovery.snake_to_camel(p) for p in path.strip().split(".") if p]
        if not parts or parts[0] in OUTPUT_ONLY:
            continue
        source: Any = patch
        target = updated
        for part in parts[:-1]:
            source = source.get(part) if isinstance(source, dict) else None
            child = target.get(part)
            target[part] = child = child if isinstance(child, dict) else {}
            target = child
        leaf = parts[-1]
        if isinstance(source, dict) and leaf in source:
            target[leaf] = copy.deepcopy(source[leaf])
        else:
            target.pop(leaf, None)
    return updated


def _page(req: Request, key: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """A list response: the page `pageSize`/`pageToken` select, `nextPageToken` while more remain, and
    no `key` at all when there is nothing to list (proto JSON leaves an empty list out)."""
    size = int(req.arg("pageSize") or 0) or len(items) or 1
    start = int(req.arg("pageToken") or 0)
    out: dict[str, Any] = {key: items[start : start + size]} if items[start : start + size] else {}
    if start + size < len(items):
        out["nextPageToken"] = str(start + size)
    return out


def _check_pem(text: str, field: str) -> None:
    if len(text.encode()) > MAX_PEM:
        raise _err(
            400, f"{field}: each PEM certificate must be at most 5 kB (got {len(text.encode())} bytes)."
        )
    try:
        x509.load_pem_x509_certificate(text.encode())
    except ValueError:
        raise _err(400, f"{field}: not a parseable PEM X.509 certificate.") from None


def _etag(body: dict[str, Any]) -> str:
    return hashlib.sha256(repr(sorted(body.items())).encode()).hexdigest()[:16]
