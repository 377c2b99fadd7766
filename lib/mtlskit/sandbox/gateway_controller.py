"""A simulated GKE Gateway controller (`networking.gke.io/gateway`), faithful where the kit relies on it.

- It follows writes to Gateways, HTTPRoutes, ConfigMaps, Services, ReferenceGrants and the GKE
  policies, and syncs every Gateway of a class it controls after the sandbox's operation delay (GKE
  programs a Gateway minutes after the write; the kit must wait for `Programmed`, not assume it).
- Per Gateway it builds EXTERNAL_MANAGED global resources under `gkegw1-` names
  (`gateway_translate`): an address (or the Gateway's NamedAddress), a forwarding rule on :443, a
  target HTTPS proxy with the listeners' pre-shared certificates and the GCPGatewayPolicy's SSL
  policy, a URL map from the attached HTTPRoutes (header filters as header actions), backend
  services on the Services' NEGs with GCPBackendPolicy logging, and health checks from
  HealthCheckPolicy. With `spec.tls.frontend` validation it also builds a Certificate Manager trust
  config from the ConfigMaps' `ca.crt` and a Network Security server TLS policy on the proxy.
- It writes back what GKE writes: `networking.gke.io/*` annotations with resource paths, its
  finalizer, `status.addresses`, Gateway and listener conditions (GEP-91 reasons for bad CA
  references), HTTPRoute parent conditions, policies' `Attached`, and events from
  `sc-gateway-controller`.
- Invalid CA references, an insecure mode the class does not claim, a missing certificate or an
  address clash leave the load balancer as it was: nothing it builds ever skips validation.
- Changes update resources in place; deleting the Gateway deletes what it built (never an address
  it did not create), and backend services no Gateway uses any more are garbage-collected.
Like the Ingress controller it works on Kubernetes and Compute through their stores; Network
Security and Certificate Manager through `Locations`' direct writes (the controller is Google-side).
The sandbox serves no firewall API: the firewall annotation names the rule GKE would create. How GKE
names the server TLS policy and trust config it makes is unverified; here they take the Gateway's
`gkegw1-` name, and the kit finds them through the proxy, never by name.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mtlskit.rules import gateway as gw
from mtlskit.sandbox import gateway_refs
from mtlskit.sandbox import gateway_translate as tr
from mtlskit.sandbox.compute import routing
from mtlskit.sandbox.compute.lists import ZONE
from mtlskit.sandbox.compute.resources import FINGERPRINTED, ComputeStore, self_link
from mtlskit.sandbox.controller import ClusterController, delete_unused_neg, ensure_neg, neg_name
from mtlskit.sandbox.env import Env
from mtlskit.sandbox.kube import KINDS, Kind, KubeObjects
from mtlskit.sandbox.locations import Locations
from mtlskit.sandbox.web import ApiError, kube_time, new_fingerprint

log = logging.getLogger("mtlskit.sandbox.gateway")

OWNER = "gateway-controller"
LOCATION = "global"
ROUTE_KIND = {"group": gw.GROUP, "kind": "HTTPRoute"}
STAMPS = ("kind", "id", "creationTimestamp", "selfLink", "fingerprint", "_owner", "zone")
DEPRECATED_SCHEDULED = "The OSS Gateway API has deprecated this condition, do not depend on it."
DEPRECATED_READY = (
    'The OSS Gateway API has altered the "Ready" condition semantics and reserved it for future use.  '
    'GKE Gateway will stop emitting it in a future update, use "Programmed" instead.'
)
NO_CERTMAP = (
    "the sandbox's Certificate Manager serves no certificate maps: give the HTTPS listener "
    f'tls.options["{gw.PRE_SHARED_CERTS_OPTION}"] naming Compute SSL certificates instead'
)


def _kind(group: str, version: str, plural: str, kind: str) -> Kind:
    """The served kind, or the same kind unserved (a cluster whose CRD bundle lacks it has no objects)."""
    return KINDS.get((group, plural)) or Kind(group, version, plural, kind, has_status=True)


GATEWAY_CLASS = _kind(gw.GROUP, gw.VERSION, "gatewayclasses", "GatewayClass")
GATEWAY = _kind(gw.GROUP, gw.VERSION, "gateways", "Gateway")
HTTP_ROUTE = _kind(gw.GROUP, gw.VERSION, "httproutes", "HTTPRoute")
REFERENCE_GRANT = _kind(gw.GROUP, "v1beta1", "referencegrants", "ReferenceGrant")
GATEWAY_POLICY = _kind(gw.POLICY_GROUP, gw.POLICY_VERSION, "gcpgatewaypolicies", "GCPGatewayPolicy")
BACKEND_POLICY = _kind(gw.POLICY_GROUP, gw.POLICY_VERSION, "gcpbackendpolicies", "GCPBackendPolicy")
HEALTH_POLICY = _kind(gw.POLICY_GROUP, gw.POLICY_VERSION, "healthcheckpolicies", "HealthCheckPolicy")
SERVICE = KINDS[("", "services")]
CONFIG_MAP = KINDS[("", "configmaps")]
EVENT = KINDS[("", "events")]
POLICIES = (GATEWAY_POLICY, BACKEND_POLICY, HEALTH_POLICY)
WATCHED = {
    k.plural for k in (GATEWAY_CLASS, GATEWAY, HTTP_ROUTE, REFERENCE_GRANT, SERVICE, CONFIG_MAP, *POLICIES)
}


class Blocked(Exception):
    """The frontend cannot be (re)built now: the Gateway condition to report, the LB left as it was."""

    def __init__(self, condition: str, reason: str, message: str):
        super().__init__(message)
        self.condition, self.reason, self.message = condition, reason, message


def condition(
    type_: str, ok: bool, reason: str, message: str, generation: int, previous: list[dict[str, Any]]
) -> dict[str, Any]:
    """A status condition; its lastTransitionTime moves only when its status changes."""
    status = "True" if ok else "False"
    before = next((c for c in previous if c.get("type") == type_), None)
    since = before["lastTransitionTime"] if before and before.get("status") == status else kube_time()
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": since,
    }


@dataclass
class Listener:
    """One listener's judgement: its conditions as (ok, reason, message) by type, its certificates."""

    name: str
    certificates: list[str] = field(default_factory=list)
    accepted: tuple[bool, str, str] = (True, "Accepted", "")
    resolved: tuple[bool, str, str] = (True, "ResolvedRefs", "")
    attached: int = 0

    @property
    def usable(self) -> bool:
        return self.accepted[0] and bool(self.certificates)


@dataclass
class Sync:
    """What one Gateway's sync found and built, for its status and annotations."""

    listeners: list[Listener]
    accepted: tuple[bool, str, str] = (True, "Accepted", "")
    programmed: tuple[bool, str, str] = (True, "Programmed", "")
    insecure: bool = False
    ip: str | None = None
    address: str | None = None  # the address resource the forwarding rule uses
    backends: list[str] = field(default_factory=list)  # backend service names it routes to
    changed: list[str] = field(default_factory=list)  # resources created or updated


class GatewayController(ClusterController):
    def __init__(self, env: Env, kube: KubeObjects, compute: ComputeStore, locations: Locations):
        super().__init__(env, kube, compute)
        self.locations = locations
        self._pending: threading.Timer | None = None
        self._pending_lock = threading.Lock()
        # per reconcile pass: route parents and policy verdicts collected while syncing Gateways
        self._route_parents: dict[str, list[dict[str, Any]]] = {}
        self._policy_verdicts: dict[str, tuple[bool, str, str]] = {}

    # ---- entry points ---------------------------------------------------------------------------------

    def on_kube_write(self, kind: Kind, obj: dict[str, Any]) -> None:
        """What the controller watches; the sync follows after the operation delay, once for a burst."""
        if kind.plural in WATCHED:
            self.schedule()

    def schedule(self) -> None:
        with self._pending_lock:
            if self._pending is not None:
                return  # the pass already due reads the state this write left
            timer = threading.Timer(self.env.settings.operation_delay_seconds, self._run)
            timer.daemon = True
            self._pending = timer
            timer.start()

    def _run(self) -> None:
        with self._pending_lock:
            self._pending = None
        try:
            with self.env.store.lock:
                self.reconcile()
        except Exception:  # the controller keeps running; the next write syncs again
            log.exception("gateway sync failed")

    def reconcile(self) -> None:
        """One pass over every Gateway of a class this controller owns, then routes, policies, GC."""
        self._route_parents, self._policy_verdicts = {}, {}
        wanted: set[str] = set()
        live: set[str] = set()
        for gateway in self.kube.list(GATEWAY):
            facts = self._class_facts(gateway)
            if facts is None:
                continue
            if gateway["metadata"].get("deletionTimestamp"):
                self._finalize(gateway)
                continue
            live.add(tr.gateway_name(self.uid, gateway["metadata"]["namespace"], gateway["metadata"]["name"]))
            wanted |= self._sync(gateway, facts)
        self._collect_frontends(live)
        self._collect_backends(wanted)
        self._write_route_status()
        self._write_policy_status()

    # ---- classes ---------------------------------------------------------------------------------------

    def _class_facts(self, gateway: dict[str, Any]) -> gw.GatewayClassFacts | None:
        """The class's facts when this controller owns the Gateway's class; its claimed features are
        what the GatewayClass publishes, when it publishes them."""
        name = (gateway.get("spec") or {}).get("gatewayClassName", "")
        cls = self.kube.get(GATEWAY_CLASS, None, name)
        if cls is None or (cls.get("spec") or {}).get("controllerName") != gw.CONTROLLER_NAME:
            return None  # no class, or another controller's: the Gateway waits for its controller
        facts = gw.CLASSES.get(name)
        if facts is None:
            return None
        published = (cls.get("status") or {}).get("supportedFeatures")
        if published is not None:
            names = {f.get("name") if isinstance(f, dict) else f for f in published}
            facts = gw.GatewayClassFacts(
                facts.name, facts.load_balancing_scheme, facts.regional, frozenset(names)
            )
        return facts

    # ---- one Gateway -----------------------------------------------------------------------------------

    def _sync(self, gateway: dict[str, Any], facts: gw.GatewayClassFacts) -> set[str]:
        meta = gateway["metadata"]
        ns, name = meta["namespace"], meta["name"]
        gateway = self._ensure_finalizer(gateway)
        self._announce(gateway)
        listeners = self._listeners(gateway)
        result = Sync(listeners)
        routes = self._attached_routes(gateway, listeners, result)
        serve404 = self._ensure_backend_service(ns, tr.serve404_name(self.uid, ns), None, None, result)
        wanted = {serve404["name"], *result.backends}
        try:
            if facts.regional:
                raise Blocked(
                    "Accepted",
                    "Invalid",
                    f"class {facts.name} builds a regional load balancer; the sandbox builds global ones only",
                )
            mtls = self._client_validation(gateway, facts, listeners, result)
            # in listener order: the proxy's first certificate is the one served without SNI
            certificates = list(dict.fromkeys(c for lst in listeners if lst.usable for c in lst.certificates))
            if (meta.get("annotations") or {}).get(gw.CERTMAP_ANNOTATION):
                raise Blocked("Programmed", "Invalid", NO_CERTMAP)
            if not certificates:
                raise Blocked(
                    "Programmed",
                    "Invalid",
                    "no HTTPS listener on port 443 has a usable certificate: nothing to serve",
                )
            try:
                result.ip = self._build_frontend(
                    gateway, serve404["selfLink"], routes, certificates, mtls, result
                )
            except ApiError as err:  # Compute, Network Security or Certificate Manager refused a resource
                raise Blocked("Programmed", "Invalid", err.body["error"]["message"]) from None
        except Blocked as blocked:
            setattr(result, blocked.condition.lower(), (False, blocked.reason, blocked.message))
            if blocked.condition == "Accepted":
                result.programmed = (False, "Invalid", blocked.message)
            built = self.compute.get(self.project, "forwardingRules", tr.gateway_name(self.uid, ns, name))
            result.ip = (built or {}).get("IPAddress")
            used = self.compute.get_ref((built or {}).get("_address", ""), self.project, "addresses")
            result.address = (used or {}).get("name")
            self._event(
                gateway, "SYNC", f'failed to translate Gateway "{ns}/{name}": {blocked.message}', "Warning"
            )
        self._write_back(gateway, result)
        if result.programmed[0]:
            self._event(gateway, "SYNC", f"SYNC on {ns}/{name} was a success")
        return wanted

    def _ensure_finalizer(self, gateway: dict[str, Any]) -> dict[str, Any]:
        meta = gateway["metadata"]
        if gw.FINALIZER in (meta.get("finalizers") or []):
            return gateway
        return self.kube.patch(
            GATEWAY,
            meta["namespace"],
            meta["name"],
            {"metadata": {"finalizers": [*(meta.get("finalizers") or []), gw.FINALIZER]}},
        )

    def _announce(self, gateway: dict[str, Any]) -> None:
        """ADD the first time a Gateway is seen, UPDATE when its spec changed since the last sync."""
        meta = gateway["metadata"]
        key = f"gateway-generation:{meta['uid']}"
        seen = self.env.store.meta(key)
        generation = str(meta.get("generation", 1))
        if seen == generation:
            return
        self.env.store.set_meta(key, generation)
        self._event(gateway, "ADD" if seen is None else "UPDATE", f"{meta['namespace']}/{meta['name']}")

    def _listeners(self, gateway: dict[str, Any]) -> list[Listener]:
        out = []
        for spec in (gateway.get("spec") or {}).get("listeners") or []:
            lst = Listener(spec.get("name", ""))
            tls = spec.get("tls") or {}
            if spec.get("protocol") != "HTTPS" or spec.get("port") != gateway_refs.HTTPS_PORT:
                lst.accepted = (
                    False,
                    "UnsupportedProtocol" if spec.get("protocol") != "HTTPS" else "PortUnavailable",
                    "the sandbox's Gateway builds HTTPS listeners on port 443 only",
                )
            elif tls.get("certificateRefs"):
                lst.resolved = (
                    False,
                    "InvalidCertificateRef",
                    "the sandbox serves no Secrets: name Compute SSL certificates in "
                    f'tls.options["{gw.PRE_SHARED_CERTS_OPTION}"] instead',
                )
            else:
                names = [
                    n.strip()
                    for n in (tls.get("options") or {}).get(gw.PRE_SHARED_CERTS_OPTION, "").split(",")
                ]
                for cert in filter(None, names):
                    if self.compute.get(self.project, "sslCertificates", cert) is None:
                        lst.resolved = (
                            False,
                            "InvalidCertificateRef",
                            f"pre-shared certificate {cert} not found in project {self.project}",
                        )
                    else:
                        lst.certificates.append(self_link(self.project, "sslCertificates", cert))
            out.append(lst)
        return out

    def _client_validation(
        self, gateway: dict[str, Any], facts: gw.GatewayClassFacts, listeners: list[Listener], result: Sync
    ) -> tuple[str, gateway_refs.CaResolution] | None:
        """(server TLS policy mode, trust material) for :443, None without validation; Blocked when
        the Gateway's validation cannot be honoured (the load balancer keeps what it had)."""
        validation = gateway_refs.validation_for_port(gateway)
        if validation is None:
            return None
        if validation.mode == gw.ALLOW_INSECURE_FALLBACK and not facts.claims_fallback():
            raise Blocked(
                "Accepted",
                gw.UNSUPPORTED_VALUE,
                f"spec.tls.frontend validation mode {gw.ALLOW_INSECURE_FALLBACK} is not supported by class "
                f"{facts.name} (it does not claim {gw.FEATURE_FALLBACK}); use {gw.ALLOW_VALID_ONLY}",
            )
        ns = gateway["metadata"]["namespace"]
        found = gateway_refs.resolve(
            ns,
            validation,
            lambda n, name: self.kube.get(CONFIG_MAP, n, name),
            lambda n: self.kube.list(REFERENCE_GRANT, n),
        )
        https = [lst for lst in listeners if lst.accepted[0]]
        if found.problems:
            reason = found.problems[0][0]
            message = "; ".join(m for _r, m in found.problems)
            for lst in https:
                lst.resolved = (False, reason, message)
        if found.all_invalid or not found.total:
            for lst in https:
                lst.accepted = (False, gw.NO_VALID_CA, "no caCertificateRefs resolve to a CA certificate")
            raise Blocked(
                "Accepted",
                "ListenersNotValid",
                f"{gw.NO_VALID_CA}: no client CA certificate to validate with; the load balancer is left as it was",
            )
        insecure = validation.mode == gw.ALLOW_INSECURE_FALLBACK
        result.insecure = insecure
        mode = "ALLOW_INVALID_OR_MISSING_CLIENT_CERT" if insecure else "REJECT_INVALID"
        return mode, found

    def _attached_routes(
        self, gateway: dict[str, Any], listeners: list[Listener], result: Sync
    ) -> list[tr.RouteTarget]:
        """HTTPRoutes whose parentRefs name this Gateway (and a listener that allows their namespace),
        with each backendRef resolved to a backend service; route parent status is collected."""
        meta = gateway["metadata"]
        gw_ns, gw_name = meta["namespace"], meta["name"]
        specs = {s.get("name"): s for s in (gateway.get("spec") or {}).get("listeners") or []}
        targets = []
        for route in self.kube.list(HTTP_ROUTE):
            rmeta = route["metadata"]
            if rmeta.get("deletionTimestamp"):
                continue
            for ref in (route.get("spec") or {}).get("parentRefs") or []:
                if ref.get("name") != gw_name or (ref.get("namespace") or rmeta["namespace"]) != gw_ns:
                    continue
                if ref.get("kind", "Gateway") != "Gateway":
                    continue
                section = ref.get("sectionName")
                chosen = [lst for lst in listeners if section in (None, lst.name)]
                allowed = [
                    lst
                    for lst in chosen
                    if self._allows(specs.get(lst.name) or {}, gw_ns, rmeta["namespace"])
                ]
                parent = {"parentRef": ref, "controllerName": gw.CONTROLLER_NAME}
                if not allowed:
                    parent["conditions"] = [
                        (
                            "Accepted",
                            False,
                            "NotAllowedByListeners",
                            "no listener of the Gateway allows this route",
                        ),
                        ("ResolvedRefs", True, "ResolvedRefs", ""),
                    ]
                    self._route_parents.setdefault(_key(route), []).append(parent)
                    continue
                for lst in allowed:
                    lst.attached += 1
                target, missing = self._route_target(route, result)
                targets.append(target)
                parent["conditions"] = [
                    ("Accepted", True, "Accepted", ""),
                    (
                        "ResolvedRefs",
                        not missing,
                        gw.BACKEND_NOT_FOUND if missing else "ResolvedRefs",
                        "; ".join(missing),
                    ),
                ]
                self._route_parents.setdefault(_key(route), []).append(parent)
        return targets

    @staticmethod
    def _allows(listener: dict[str, Any], gw_ns: str, route_ns: str) -> bool:
        allowed = listener.get("allowedRoutes") or {}
        kinds = allowed.get("kinds")
        if kinds and not any(k.get("kind") == "HTTPRoute" for k in kinds):
            return False
        source = (allowed.get("namespaces") or {}).get("from", "Same")
        return source == "All" or (source == "Same" and route_ns == gw_ns) or source == "Selector"

    def _route_target(self, route: dict[str, Any], result: Sync) -> tuple[tr.RouteTarget, list[str]]:
        ns = route["metadata"]["namespace"]
        spec = route.get("spec") or {}
        missing: list[str] = []
        rules = []
        for rule in spec.get("rules") or []:
            services = []
            for ref in rule.get("backendRefs") or []:
                if ref.get("kind", "Service") != "Service" or ref.get("group", "") not in ("", "core"):
                    missing.append(
                        f"backendRef {ref.get('kind')} {ref.get('name')}: only Services are supported"
                    )
                    continue
                ref_ns = ref.get("namespace") or ns
                svc = self.kube.get(SERVICE, ref_ns, ref.get("name", ""))
                port = ref.get("port")
                if svc is None:
                    missing.append(f"Service {ref_ns}/{ref.get('name')} not found")
                    continue
                if not any(p.get("port") == port for p in (svc.get("spec") or {}).get("ports") or []):
                    missing.append(f"Service {ref_ns}/{ref.get('name')} has no port {port}")
                    continue
                bs = self._ensure_service_backend(svc, int(port), result)
                services.append((bs["selfLink"], int(ref.get("weight", 1))))
            rules.append(
                tr.RuleTarget(
                    tuple(rule.get("matches") or ()), tuple(rule.get("filters") or ()), tuple(services)
                )
            )
        return tr.RouteTarget(tuple(spec.get("hostnames") or ()), tuple(rules)), missing

    # ---- backends --------------------------------------------------------------------------------------

    def _policy_for(self, kind: Kind, namespace: str, target_kind: str, target: str) -> dict[str, Any] | None:
        """The policy of `kind` in `namespace` whose targetRef names the object; its verdict is kept."""
        for policy in self.kube.list(kind, namespace):
            ref = (policy.get("spec") or {}).get("targetRef") or {}
            if ref.get("kind") == target_kind and ref.get("name") == target:
                self._policy_verdicts.setdefault(_key(policy), (True, "Attached", "Policy is attached"))
                return policy
        return None

    def _ensure_service_backend(self, svc: dict[str, Any], port: int, result: Sync) -> dict[str, Any]:
        ns, svc_name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        name = tr.backend_name(self.uid, ns, svc_name, port)
        ensure_neg(self.compute, self.project, self.uid, svc, port, OWNER)
        hc_policy = self._policy_for(HEALTH_POLICY, ns, "Service", svc_name)
        hc = self._put("healthChecks", tr.health_check(name, hc_policy), result)
        neg = self_link(self.project, "networkEndpointGroups", neg_name(self.uid, ns, svc_name, port), ZONE)
        backend = self._policy_for(BACKEND_POLICY, ns, "Service", svc_name)
        return self._ensure_backend_service(
            ns, name, {"svc": svc_name, "port": port, "neg": neg, "hc": hc}, backend, result
        )

    def _ensure_backend_service(
        self,
        ns: str,
        name: str,
        target: dict[str, Any] | None,
        policy: dict[str, Any] | None,
        result: Sync,
    ) -> dict[str, Any]:
        """One backend service: on a Service port's NEG, or (no target) the default 404 backend."""
        body: dict[str, Any] = {
            "name": name,
            "protocol": "HTTP",
            "port": 80,
            "timeoutSec": 30,
            "loadBalancingScheme": "EXTERNAL_MANAGED",
            "connectionDraining": {"drainingTimeoutSec": 0},
            **tr.backend_policy_fields(policy),
        }
        if target is None:
            body.update(
                description=json.dumps({"kubernetes.io/service-name": f"{ns}/gw-serve404"}), _answers=404
            )
        else:
            body.update(
                description=json.dumps(
                    {
                        "kubernetes.io/service-name": f"{ns}/{target['svc']}",
                        "kubernetes.io/service-port": str(target["port"]),
                    }
                ),
                portName=f"port{target['port']}",
                backends=[
                    {
                        "group": target["neg"],
                        "balancingMode": "RATE",
                        "maxRatePerEndpoint": 1e8,
                        "capacityScaler": 1,
                    }
                ],
                healthChecks=[target["hc"]["selfLink"]],
            )
            result.backends.append(name)
        return self._put("backendServices", body, result)

    def _collect_backends(self, wanted: set[str]) -> None:
        """Backend services (and their health checks and NEGs) that no Gateway routes to any more."""
        c, p = self.compute, self.project
        prefix = f"{gw.NAME_PREFIX}{tr.cluster_tag(self.uid)}-"
        for bs in c.list(p, "backendServices"):
            name = bs["name"]
            if not name.startswith(prefix) or name in wanted or bs.get("_owner") != OWNER:
                continue
            if c.referrers(bs["selfLink"]):
                continue  # a URL map still routes to it (a Gateway kept as it was)
            c.delete(p, "backendServices", name)
            c.delete(p, "healthChecks", name)
            for backend in bs.get("backends") or []:
                # the cluster's NEG goes once no load balancer (Ingress or Gateway) uses it
                delete_unused_neg(c, p, gw.resource_name(backend.get("group", "")))

    # ---- the frontend ------------------------------------------------------------------------------------

    def _put(
        self,
        coll: str,
        body: dict[str, Any],
        result: Sync,
        prepare: Callable[[ComputeStore, str, dict[str, Any]], dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Create the resource or update it in place (same id, new fingerprint), as PATCH does."""
        c, p = self.compute, self.project
        body = prepare(c, p, dict(body)) if prepare else dict(body)
        current = c.get(p, coll, body["name"])
        if current is None:
            result.changed.append(f"{coll}/{body['name']}")
            return c.create(p, coll, {**body, "_owner": OWNER})
        desired = {**{k: current[k] for k in STAMPS if k in current}, **body}
        if desired == current:
            return current
        if coll in FINGERPRINTED:
            desired["fingerprint"] = new_fingerprint()
        result.changed.append(f"{coll}/{body['name']}")
        return c.save(p, coll, desired)

    def _location_name(self, coll: str, name: str) -> str:
        return f"projects/{self.project}/locations/{LOCATION}/{coll}/{name}"

    def _ensure_mtls(self, name: str, mode: str, found: gateway_refs.CaResolution, result: Sync) -> str:
        """The trust config and server TLS policy; returns the policy's name."""
        store: dict[str, Any] = {}
        if found.anchors:
            store["trustAnchors"] = [{"pemCertificate": pem} for pem in found.anchors]
        if found.intermediates:
            store["intermediateCas"] = [{"pemCertificate": pem} for pem in found.intermediates]
        tc_name = self._location_name("trustConfigs", name)
        before = self.env.store.get("certificatemanager", "trustConfigs", tc_name)
        tc = self.locations.save("trustConfigs", tc_name, {"trustStores": [store]})
        if tc is not before and (before is None or before.get("etag") != tc.get("etag")):
            result.changed.append(f"trustConfigs/{name}")
        stp_name = self._location_name("serverTlsPolicies", name)
        mtls = {"clientValidationMode": mode, "clientValidationTrustConfig": tc_name}
        before = self.env.store.get("networksecurity", "serverTlsPolicies", stp_name)
        stp = self.locations.save("serverTlsPolicies", stp_name, {"mtlsPolicy": mtls})
        if before is None or before.get("updateTime") != stp.get("updateTime"):
            result.changed.append(f"serverTlsPolicies/{name}")
        return stp_name

    def _address(self, gateway: dict[str, Any], name: str, result: Sync) -> str:
        """The IP the forwarding rule takes: the NamedAddress the Gateway names, else its own address."""
        for addr in (gateway.get("spec") or {}).get("addresses") or []:
            if addr.get("type") == "NamedAddress":
                named = self.compute.get(self.project, "addresses", addr.get("value", ""))
                if named is None:
                    raise Blocked(
                        "Programmed",
                        "AddressNotUsable",
                        f"NamedAddress {addr.get('value')} not found among the global addresses of {self.project}",
                    )
                result.address = named["name"]
                return str(named["address"])
            raise Blocked(
                "Accepted", "UnsupportedAddress", f"address type {addr.get('type')} is not supported"
            )
        own = self.compute.get(self.project, "addresses", name)
        if own is None:
            own = self._put(
                "addresses", {"name": name, "addressType": "EXTERNAL"}, result, routing.prepare_address
            )
        result.address = name
        return str(own["address"])

    def _build_frontend(
        self,
        gateway: dict[str, Any],
        default_service: str,
        routes: list[tr.RouteTarget],
        certificates: list[str],
        mtls: tuple[str, gateway_refs.CaResolution] | None,
        result: Sync,
    ) -> str:
        meta = gateway["metadata"]
        ns = meta["namespace"]
        name = tr.gateway_name(self.uid, ns, meta["name"])
        c, p = self.compute, self.project
        ip = self._address(gateway, name, result)
        policy_name = self._ensure_mtls(name, mtls[0], mtls[1], result) if mtls else None
        um = self._put("urlMaps", tr.url_map(name, default_service, routes), result, routing.prepare_url_map)
        proxy: dict[str, Any] = {"name": name, "urlMap": um["selfLink"], "sslCertificates": certificates}
        ssl_policy = self._ssl_policy(gateway)
        if ssl_policy:
            proxy["sslPolicy"] = ssl_policy
        if policy_name:
            proxy["serverTlsPolicy"] = policy_name
        self._put("targetHttpsProxies", proxy, result, routing.prepare_https_proxy)
        if not policy_name:
            self._drop_mtls(name)
        rule = c.get(p, "forwardingRules", name)
        if rule is not None and rule.get("IPAddress") != ip:
            c.delete(p, "forwardingRules", name)  # a forwarding rule's address cannot change
            result.changed.append(f"forwardingRules/{name} (deleted to move to {ip})")
        body = {
            "name": name,
            "IPAddress": ip,
            "IPProtocol": "TCP",
            "portRange": "443-443",
            "target": self_link(p, "targetHttpsProxies", name),
            "loadBalancingScheme": "EXTERNAL_MANAGED",
            "networkTier": "PREMIUM",
        }
        try:
            self._put("forwardingRules", body, result, routing.prepare_forwarding_rule)
        except ApiError as err:
            raise Blocked("Programmed", "AddressNotUsable", err.body["error"]["message"]) from None
        self._release_own_address(name, ip)
        return ip

    def _ssl_policy(self, gateway: dict[str, Any]) -> str | None:
        meta = gateway["metadata"]
        policy = self._policy_for(GATEWAY_POLICY, meta["namespace"], "Gateway", meta["name"])
        wanted = (((policy or {}).get("spec") or {}).get("default") or {}).get("sslPolicy")
        if not wanted:
            return None
        found = self.compute.get(self.project, "sslPolicies", wanted)
        if found is None:
            self._policy_verdicts[_key(policy or {})] = (
                False,
                gw.POLICY_INVALID,
                f"sslPolicy {wanted} not found in project {self.project}",
            )
            return None
        return str(found["selfLink"])

    def _drop_mtls(self, name: str) -> None:
        for coll in ("serverTlsPolicies", "trustConfigs"):
            self.locations.remove(coll, self._location_name(coll, name))

    def _release_own_address(self, name: str, in_use: str) -> None:
        """The Gateway's own address, once it moved to a NamedAddress."""
        own = self.compute.get(self.project, "addresses", name)
        if own is not None and own.get("_owner") == OWNER and own.get("address") != in_use:
            self.compute.delete(self.project, "addresses", name)

    # ---- status ------------------------------------------------------------------------------------------

    def _paths(self, coll: str, names: list[str]) -> str:
        return gw.join_paths([f"/projects/{self.project}/global/{coll}/{n}" for n in names])

    def _write_back(self, gateway: dict[str, Any], result: Sync) -> None:
        meta = gateway["metadata"]
        ns = meta["namespace"]
        name = tr.gateway_name(self.uid, ns, meta["name"])
        c, p = self.compute, self.project

        def built(coll: str) -> list[str]:
            return [name] if c.get(p, coll, name) is not None else []

        backends = sorted({tr.serve404_name(self.uid, ns), *result.backends})
        ann = gw.ANNOTATIONS
        wanted = {
            ann["addresses"]: self._paths("addresses", [result.address] if result.address else []),
            ann["forwarding_rules"]: self._paths("forwardingRules", built("forwardingRules")),
            ann["target_https_proxies"]: self._paths("targetHttpsProxies", built("targetHttpsProxies")),
            ann["target_http_proxies"]: "",
            ann["url_maps"]: self._paths("urlMaps", built("urlMaps")),
            ann["backend_services"]: self._paths(
                "backendServices", [b for b in backends if c.get(p, "backendServices", b)]
            ),
            ann["health_checks"]: self._paths(
                "healthChecks", [b for b in backends if c.get(p, "healthChecks", b)]
            ),
            ann["ssl_certificates"]: "",
            ann["firewalls"]: self._paths("firewalls", [tr.firewall_name(self.uid)]),
        }
        current = meta.get("annotations") or {}
        patch: dict[str, Any] = {k: v for k, v in wanted.items() if current.get(k) != v}
        if patch or result.changed or ann["last_reconcile_time"] not in current:
            patch[ann["last_reconcile_time"]] = kube_time()
            self.kube.patch(GATEWAY, ns, meta["name"], {"metadata": {"annotations": patch}})
        status = self._status(gateway, result)
        if status != {k: (gateway.get("status") or {}).get(k) for k in status}:
            self._patch_status(GATEWAY, gateway, status)

    def _status(self, gateway: dict[str, Any], result: Sync) -> dict[str, Any]:
        generation = int(gateway["metadata"].get("generation", 1))
        old = gateway.get("status") or {}
        prev = old.get("conditions") or []
        accepted, programmed = result.accepted, result.programmed
        conditions = [
            condition("Accepted", *accepted, generation, prev),
            condition("Programmed", *programmed, generation, prev),
            condition(
                "Scheduled",
                accepted[0],
                "Scheduled" if accepted[0] else accepted[1],
                DEPRECATED_SCHEDULED,
                generation,
                prev,
            ),
            condition(
                "Ready",
                programmed[0],
                "Ready" if programmed[0] else programmed[1],
                DEPRECATED_READY,
                generation,
                prev,
            ),
        ]
        if result.insecure:
            conditions.append(
                condition(
                    gw.INSECURE_MODE_CONDITION,
                    True,
                    "ConfigurationChanged",
                    f"{gw.ALLOW_INSECURE_FALLBACK}: clients without a valid certificate are let through",
                    generation,
                    prev,
                )
            )
        old_listeners = {lst.get("name"): lst.get("conditions") or [] for lst in old.get("listeners") or []}
        listeners = []
        for lst in result.listeners:
            before = old_listeners.get(lst.name, [])
            live = lst.usable and programmed[0]
            listeners.append(
                {
                    "name": lst.name,
                    "attachedRoutes": lst.attached,
                    "supportedKinds": [ROUTE_KIND],
                    "conditions": [
                        condition("Accepted", *lst.accepted, generation, before),
                        condition(
                            "Programmed",
                            live,
                            "Programmed" if live else "Invalid",
                            "" if live else (lst.accepted[2] or programmed[2] or "no usable certificate"),
                            generation,
                            before,
                        ),
                        condition("ResolvedRefs", *lst.resolved, generation, before),
                    ],
                }
            )
        addresses = [{"type": "IPAddress", "value": result.ip}] if result.ip else None
        return {"conditions": conditions, "listeners": listeners, "addresses": addresses}

    def _write_route_status(self) -> None:
        for route in self.kube.list(HTTP_ROUTE):
            generation = int(route["metadata"].get("generation", 1))
            old = (route.get("status") or {}).get("parents") or []
            others = [p for p in old if p.get("controllerName") != gw.CONTROLLER_NAME]
            mine = []
            for parent in self._route_parents.get(_key(route), []):
                before = next(
                    (p.get("conditions") or [] for p in old if p.get("parentRef") == parent["parentRef"]), []
                )
                mine.append(
                    {
                        **{k: v for k, v in parent.items() if k != "conditions"},
                        "conditions": [
                            condition(t, ok, r, m, generation, before) for t, ok, r, m in parent["conditions"]
                        ],
                    }
                )
            parents = others + mine
            if parents != old:
                self._patch_status(HTTP_ROUTE, route, {"parents": parents})

    def _write_policy_status(self) -> None:
        for kind in POLICIES:
            for policy in self.kube.list(kind):
                meta = policy["metadata"]
                ref = (policy.get("spec") or {}).get("targetRef") or {}
                target_kind = {"Service": SERVICE, "Gateway": GATEWAY}.get(ref.get("kind", ""))
                exists = target_kind is not None and self.kube.get(
                    target_kind, meta["namespace"], ref.get("name", "")
                )
                verdict = self._policy_verdicts.get(_key(policy)) or (
                    (True, "Attached", "Policy is attached")
                    if exists
                    else (
                        False,
                        gw.POLICY_TARGET_NOT_FOUND,
                        f"target {ref.get('kind')} {meta['namespace']}/{ref.get('name')} not found",
                    )
                )
                old = (policy.get("status") or {}).get("conditions") or []
                generation = int(meta.get("generation", 1))
                conditions = [condition(gw.POLICY_CONDITION, *verdict, generation, old)]
                if conditions != old:
                    self._patch_status(kind, policy, {"conditions": conditions})

    def _patch_status(self, kind: Kind, obj: dict[str, Any], status: dict[str, Any]) -> None:
        """Write `obj`'s status subresource only, as a controller does (its spec is the user's)."""
        meta = obj["metadata"]
        self.kube.patch(kind, meta["namespace"], meta["name"], {"status": status}, status_only=True)

    # ---- deletion ---------------------------------------------------------------------------------------

    def _finalize(self, gateway: dict[str, Any]) -> None:
        """Delete what the Gateway built, then let the API server remove it."""
        meta = gateway["metadata"]
        ns = meta["namespace"]
        self._delete_frontend(tr.gateway_name(self.uid, ns, meta["name"]))
        self.env.store.set_meta(f"gateway-generation:{meta['uid']}", "")
        fins = [f for f in meta.get("finalizers") or [] if f != gw.FINALIZER]
        self.kube.patch(GATEWAY, ns, meta["name"], {"metadata": {"finalizers": fins or None}})
        self.kube.settle(ns)  # a namespace being deleted waited for this finalizer

    def _delete_frontend(self, name: str) -> None:
        """One Gateway's own resources, top down; never an address it did not create."""
        c, p = self.compute, self.project
        for coll in ("forwardingRules", "targetHttpsProxies", "urlMaps"):
            c.delete(p, coll, name)
        self._drop_mtls(name)
        own = c.get(p, "addresses", name)
        if own is not None and own.get("_owner") == OWNER:
            c.delete(p, "addresses", name)

    def _collect_frontends(self, live: set[str]) -> None:
        """Frontends whose Gateway went without its finalizer running (its CRD was removed with it)."""
        prefix = f"{gw.NAME_PREFIX}{tr.cluster_tag(self.uid)}-"
        for rule in self.compute.list(self.project, "forwardingRules"):
            name = rule["name"]
            if name.startswith(prefix) and rule.get("_owner") == OWNER and name not in live:
                self._delete_frontend(name)

    # ---- events -------------------------------------------------------------------------------------------

    def _event(self, gateway: dict[str, Any], reason: str, message: str, type_: str = "Normal") -> None:
        """One event per (reason, message), its count raised when it happens again, as recorders do."""
        meta = gateway["metadata"]
        if self.kube.terminating(meta["namespace"]):
            return
        for ev in self.kube.list(EVENT, meta["namespace"]):
            if (
                ev.get("reason") == reason
                and ev.get("message") == message
                and ev.get("involvedObject", {}).get("uid") == meta.get("uid")
            ):
                self.kube.patch(
                    EVENT,
                    meta["namespace"],
                    ev["metadata"]["name"],
                    {"count": int(ev.get("count", 1)) + 1, "lastTimestamp": kube_time()},
                )
                return
        self.kube.record_event(gateway, GATEWAY, reason, message, type_, component=gw.EVENT_COMPONENT)


def _key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')}/{meta.get('namespace')}/{meta.get('name')}"
