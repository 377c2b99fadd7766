"""A simulated GKE Ingress controller (class `gce`), faithful in the ways that matter to the kit.

- Only an Ingress makes backend services: per referenced Service port it creates the NEG, health
  check and backend service under ingress-gce's NEG name, scheme EXTERNAL, logging on at 1.0.
- BackendConfig is applied on every sync: logging enable/sampleRate, and customRequestHeaders
  replacing the whole list (out-of-band header edits are lost, as on GKE).
- The Ingress's own frontend (URL map, target HTTP proxy, port-80 forwarding rule) is built unless
  `kubernetes.io/ingress.allow-http: "false"`.
- On Ingress deletion the frontend goes, backend services no Ingress uses are garbage-collected, and
  a backend service still used by someone else's URL map fails to delete and is left orphaned and
  no longer synced: the failure the anchor Ingress exists to prevent.
Reconciliation runs synchronously after every Kubernetes write (the API publishes it as an event),
so nothing waits on a timer. Like the real controller, it works on Compute and Kubernetes through
their stores, never through another emulator's handler.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from mtlskit.sandbox.compute.lists import ZONE
from mtlskit.sandbox.compute.resources import ComputeStore, self_link
from mtlskit.sandbox.env import Env
from mtlskit.sandbox.kube import KINDS, Kind, KubeObjects
from mtlskit.sandbox.web import ApiError, new_fingerprint

INGRESS = KINDS[("networking.k8s.io", "ingresses")]
SERVICE = KINDS[("", "services")]
BACKEND_CONFIG = KINDS[("cloud.google.com", "backendconfigs")]
FINALIZER = "networking.gke.io/ingress-finalizer-V2"
OWNER = "ingress-controller"
ANN = "ingress.kubernetes.io/"
FRONTEND_ANNOTATIONS = ("url-map", "target-proxy", "forwarding-rule")


def trim_fields_evenly(limit: int, *fields: str) -> list[str]:
    """ingress-gce's TrimFieldsEvenly: shorten fields in proportion to their length."""
    total = sum(len(f) for f in fields)
    if limit <= 0 or total <= limit:
        return list(fields)
    excess = total - limit
    lengths = [len(f) - len(f) * excess // total - 1 for f in fields]
    remaining = limit - sum(lengths)
    for i in range(remaining):
        lengths[i] += 1
    return [f[:n] for f, n in zip(fields, lengths, strict=True)]


def neg_name(cluster_uid: str, namespace: str, service: str, port: int) -> str:
    """`k8s1-<uid8>-<ns>-<svc>-<port>-<hash8>`: the NEG, health check and backend service share it."""
    port_s = str(port)
    ns, name, p = trim_fields_evenly(38, namespace, service, port_s)
    digest = hashlib.sha256(";".join([cluster_uid[:8], namespace, service, port_s]).encode()).hexdigest()[:8]
    return f"k8s1-{cluster_uid[:8]}-{ns}-{name}-{p}-{digest}"


def frontend_name(kind: str, cluster_uid: str, namespace: str, ingress: str) -> str:
    """v2 frontend names `k8s2-<kind>-<uid8>-<ns>-<ing>-<hash8>` (kind: um, tp, fr, ...)."""
    ns, name = trim_fields_evenly(36, namespace, ingress)
    digest = hashlib.sha256(";".join([cluster_uid, namespace, ingress]).encode()).hexdigest()[:8]
    return f"k8s2-{kind}-{cluster_uid[:8]}-{ns}-{name}-{digest}"


def ensure_neg(
    compute: ComputeStore, project: str, cluster_uid: str, svc: dict[str, Any], port: int, owner: str
) -> bool:
    """The zonal NEG of one Service port, as the cluster's NEG controller keeps it for whichever load
    balancer (Ingress or Gateway) uses that port; True when it had to be created."""
    ns, svc_name = svc["metadata"]["namespace"], svc["metadata"]["name"]
    name = neg_name(cluster_uid, ns, svc_name, port)
    if compute.get(project, "networkEndpointGroups", name, ZONE) is not None:
        return False
    target_port = next(
        (p.get("targetPort", port) for p in svc["spec"].get("ports", []) if p.get("port") == port), port
    )
    compute.create(
        project,
        "networkEndpointGroups",
        {
            "name": name,
            "networkEndpointType": "GCE_VM_IP_PORT",
            "size": 1,
            "defaultPort": target_port,
            "description": json.dumps(
                {"cluster-uid": cluster_uid, "namespace": ns, "service-name": svc_name, "port": str(port)}
            ),
            "_endpoints": [{"ip": "127.0.0.1", "port": target_port}],
            "_owner": owner,
        },
        ZONE,
    )
    return True


def delete_unused_neg(compute: ComputeStore, project: str, name: str) -> bool:
    """Delete a NEG no backend service uses any more (another load balancer may still use it)."""
    if compute.get(project, "networkEndpointGroups", name, ZONE) is None:
        return False
    if compute.referrers(self_link(project, "networkEndpointGroups", name, ZONE)):
        return False
    return compute.delete(project, "networkEndpointGroups", name, ZONE)


def is_gce_ingress(ing: dict[str, Any]) -> bool:
    cls = (ing["metadata"].get("annotations") or {}).get("kubernetes.io/ingress.class")
    if cls is not None:
        return cls == "gce"
    return not (ing.get("spec") or {}).get("ingressClassName")


class ClusterController:
    """What every simulated GKE controller has: the cluster it runs in (its uid goes into the names it
    builds, its project is where it builds them) and the objects it reads and writes."""

    def __init__(self, env: Env, kube: KubeObjects, compute: ComputeStore):
        self.env = env
        self.kube = kube
        self.compute = compute

    @property
    def uid(self) -> str:
        return self.env.cluster_uid

    @property
    def project(self) -> str:
        return self.env.cluster_project


class IngressController(ClusterController):
    # ---- entry point ----------------------------------------------------------------------------------

    def on_kube_write(self, kind: Kind, obj: dict[str, Any]) -> None:
        """What the controller watches: Ingresses, Services and BackendConfigs."""
        if kind.plural in ("ingresses", "services", "backendconfigs"):
            with self.env.store.lock:
                self.reconcile()

    def reconcile(self) -> None:
        kube = self.kube
        wanted: set[str] = set()
        deleting = []
        for ing in kube.list(INGRESS):
            if not is_gce_ingress(ing):
                continue
            if ing["metadata"].get("deletionTimestamp"):
                deleting.append(ing)
                continue
            wanted |= self._sync_ingress(ing)
        for ing in deleting:
            self._delete_frontend(ing)
        self._garbage_collect(wanted, deleting)
        for ing in deleting:
            meta = ing["metadata"]
            fins = [f for f in meta.get("finalizers", []) if f != FINALIZER]
            kube.patch(INGRESS, meta["namespace"], meta["name"], {"metadata": {"finalizers": fins or None}})

    # ---- one Ingress --------------------------------------------------------------------------------------

    def _backend_refs(self, ing: dict[str, Any]) -> list[dict[str, Any]]:
        spec = ing.get("spec") or {}
        refs = []
        if (spec.get("defaultBackend") or {}).get("service"):
            refs.append(spec["defaultBackend"]["service"])
        for rule in spec.get("rules") or []:
            for path in (rule.get("http") or {}).get("paths") or []:
                if (path.get("backend") or {}).get("service"):
                    refs.append(path["backend"]["service"])
        return refs

    def _sync_ingress(self, ing: dict[str, Any]) -> set[str]:
        kube = self.kube
        meta = ing["metadata"]
        ns = meta["namespace"]
        if FINALIZER not in (meta.get("finalizers") or []):
            kube.patch(
                INGRESS,
                ns,
                meta["name"],
                {"metadata": {"finalizers": [*meta.get("finalizers", []), FINALIZER]}},
            )
            ing = kube.get(INGRESS, ns, meta["name"]) or ing
            meta = ing["metadata"]
        backends: dict[str, str] = {}
        default_bs: str | None = None
        for ref in self._backend_refs(ing):
            svc = kube.get(SERVICE, ns, ref.get("name", ""))
            if svc is None:
                self._event(
                    ing,
                    "Translate",
                    f'Translation failed: service "{ns}/{ref.get("name")}" not found',
                    "Warning",
                )
                continue
            port = self._service_port(svc, ref.get("port") or {})
            if port is None:
                self._event(
                    ing,
                    "Translate",
                    f'Translation failed: service "{ns}/{svc["metadata"]["name"]}" has no '
                    f"port {json.dumps(ref.get('port'))}",
                    "Warning",
                )
                continue
            bs = self._ensure_backend(ing, svc, port)
            backends[bs["name"]] = "HEALTHY"
            default_bs = default_bs or bs["selfLink"]
        annotations = dict(meta.get("annotations") or {})
        allow_http = annotations.get("kubernetes.io/ingress.allow-http", "true").lower() != "false"
        new_ann = {k: v for k, v in annotations.items() if not k.startswith(ANN)}
        if backends:
            new_ann[ANN + "backends"] = json.dumps(backends, sort_keys=True)
        status: dict[str, Any] = {"loadBalancer": {}}
        if allow_http and default_bs:
            names = self._ensure_frontend(ing, default_bs)
            new_ann.update({ANN + k: names[k] for k in FRONTEND_ANNOTATIONS})
            status = {"loadBalancer": {"ingress": [{"ip": names["ip"]}]}}
        else:
            self._delete_frontend(ing)
            if not ing.get("spec", {}).get("tls"):
                self._event(
                    ing,
                    "Sync",
                    'HTTP is disabled (kubernetes.io/ingress.allow-http: "false") and the '
                    "Ingress has no TLS: it exposes no frontend of its own",
                    once=True,
                )
        if new_ann != annotations:
            patch = {k: None for k in annotations if k not in new_ann}
            patch.update({k: v for k, v in new_ann.items() if annotations.get(k) != v})
            kube.patch(INGRESS, ns, meta["name"], {"metadata": {"annotations": patch}})
        if (ing.get("status") or {}).get("loadBalancer") != status["loadBalancer"]:
            # a merge patch keeps keys it does not name: an address that is gone must be nulled
            lb = {"ingress": status["loadBalancer"].get("ingress")}
            kube.patch(INGRESS, ns, meta["name"], {"status": {"loadBalancer": lb}}, status_only=True)
        return set(backends)

    @staticmethod
    def _service_port(svc: dict[str, Any], port_ref: dict[str, Any]) -> int | None:
        for p in (svc.get("spec") or {}).get("ports") or []:
            if "number" in port_ref and p.get("port") == port_ref["number"]:
                return int(p["port"])
            if "name" in port_ref and p.get("name") == port_ref["name"]:
                return int(p["port"])
        return None

    def _ensure_backend(self, ing: dict[str, Any], svc: dict[str, Any], port: int) -> dict[str, Any]:
        c = self.compute
        ns, svc_name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        name = neg_name(self.uid, ns, svc_name, port)
        if ensure_neg(c, self.project, self.uid, svc, port, OWNER):
            self._event(ing, "Create", f'Created NEG "{name}" for {ns}/{svc_name}-{port} in "{ZONE}"')
        if c.get(self.project, "healthChecks", name) is None:
            c.create(
                self.project,
                "healthChecks",
                {
                    "name": name,
                    "type": "HTTP",
                    "checkIntervalSec": 15,
                    "timeoutSec": 15,
                    "httpHealthCheck": {"portSpecification": "USE_SERVING_PORT", "requestPath": "/"},
                    "_owner": OWNER,
                },
            )
        bs = c.get(self.project, "backendServices", name)
        created = bs is None
        if bs is None:
            bs = c.stamp_new(
                self.project,
                "backendServices",
                {
                    "name": name,
                    "description": json.dumps(
                        {
                            "kubernetes.io/service-name": f"{ns}/{svc_name}",
                            "kubernetes.io/service-port": str(port),
                            "x-features": ["NEG"],
                        }
                    ),
                    "protocol": "HTTP",
                    "port": 80,
                    "portName": f"port{port}",
                    "timeoutSec": 30,
                    "loadBalancingScheme": "EXTERNAL",
                    "connectionDraining": {"drainingTimeoutSec": 0},
                    "backends": [
                        {
                            "group": self_link(self.project, "networkEndpointGroups", name, ZONE),
                            "balancingMode": "RATE",
                            "maxRatePerEndpoint": 1,
                            "capacityScaler": 1,
                        }
                    ],
                    "healthChecks": [self_link(self.project, "healthChecks", name)],
                    "logConfig": {"enable": True, "sampleRate": 1.0},
                    "_owner": OWNER,
                },
            )
        desired = self._apply_backend_config(ing, svc, port, dict(bs))
        desired.pop("_orphaned", None)  # an Ingress that names it again adopts it again
        if created or desired != bs:
            if not created:
                desired["fingerprint"] = new_fingerprint()
            c.save(self.project, "backendServices", desired)
            self._event(ing, "Sync", f'{"Created" if created else "Updated"} backend service "{name}"')
        return desired

    def _apply_backend_config(
        self, ing: dict[str, Any], svc: dict[str, Any], port: int, bs: dict[str, Any]
    ) -> dict[str, Any]:
        ann = svc["metadata"].get("annotations") or {}
        raw = ann.get("cloud.google.com/backend-config") or ann.get("beta.cloud.google.com/backend-config")
        if not raw:
            return bs
        try:
            mapping = json.loads(raw)
        except ValueError:
            self._event(
                ing,
                "Sync",
                f"invalid cloud.google.com/backend-config annotation on service "
                f"{svc['metadata']['name']}: not JSON",
                "Warning",
            )
            return bs
        port_names = {str(p.get("port")): p.get("name") for p in svc["spec"].get("ports", [])}
        ports = mapping.get("ports") or {}
        bc_name = ports.get(str(port)) or ports.get(port_names.get(str(port)) or "") or mapping.get("default")
        if not bc_name:
            return bs
        bc = self.kube.get(BACKEND_CONFIG, svc["metadata"]["namespace"], bc_name)
        if bc is None:
            self._event(
                ing,
                "Sync",
                f"Error syncing backend service: BackendConfig "
                f"{svc['metadata']['namespace']}/{bc_name} not found",
                "Warning",
                once=True,
            )
            return bs
        spec = bc.get("spec") or {}
        logging = spec.get("logging")
        if logging is not None:
            log = dict(bs.get("logConfig") or {})
            if logging.get("enable"):
                log["enable"] = True
                if "sampleRate" in logging:
                    log["sampleRate"] = float(logging["sampleRate"])
                elif not log.get("sampleRate"):
                    log["sampleRate"] = 1.0
            else:
                log.update(enable=False, sampleRate=0.0)
            bs["logConfig"] = log
        headers = (spec.get("customRequestHeaders") or {}).get("headers")
        if headers is not None:
            if headers:
                bs["customRequestHeaders"] = list(headers)
            else:
                bs.pop("customRequestHeaders", None)
        if "timeoutSec" in spec:
            bs["timeoutSec"] = int(spec["timeoutSec"])
        return bs

    # ---- the Ingress's own frontend ------------------------------------------------------------------------

    def _ensure_frontend(self, ing: dict[str, Any], default_bs: str) -> dict[str, str]:
        c, p = self.compute, self.project
        ns, name = ing["metadata"]["namespace"], ing["metadata"]["name"]
        um, tp, fr = (frontend_name(k, self.uid, ns, name) for k in ("um", "tp", "fr"))
        current = c.get(p, "urlMaps", um)
        if current is None:
            c.create(p, "urlMaps", {"name": um, "defaultService": default_bs, "_owner": OWNER})
        elif current.get("defaultService") != default_bs:
            c.save(p, "urlMaps", {**current, "defaultService": default_bs, "fingerprint": new_fingerprint()})
        if c.get(p, "targetHttpProxies", tp) is None:
            c.create(
                p, "targetHttpProxies", {"name": tp, "urlMap": self_link(p, "urlMaps", um), "_owner": OWNER}
            )
        rule = c.get(p, "forwardingRules", fr)
        if rule is None:
            rule = c.create(
                p,
                "forwardingRules",
                {
                    "name": fr,
                    "IPAddress": self.env.allocate_ip(),
                    "IPProtocol": "TCP",
                    "portRange": "80-80",
                    "target": self_link(p, "targetHttpProxies", tp),
                    "loadBalancingScheme": "EXTERNAL",
                    "networkTier": "PREMIUM",
                    "_owner": OWNER,
                },
            )
            self._event(ing, "Sync", f"Created HTTP frontend {fr} ({rule['IPAddress']}:80)")
        return {"url-map": um, "target-proxy": tp, "forwarding-rule": fr, "ip": rule["IPAddress"]}

    def _delete_frontend(self, ing: dict[str, Any]) -> None:
        c, p = self.compute, self.project
        ns, name = ing["metadata"]["namespace"], ing["metadata"]["name"]
        for coll, kind in (("forwardingRules", "fr"), ("targetHttpProxies", "tp"), ("urlMaps", "um")):
            fname = frontend_name(kind, self.uid, ns, name)
            if c.get(p, coll, fname) is not None:
                c.delete(p, coll, fname)
                self._event(ing, "Sync", f"Deleted {coll[:-1]} {fname}")

    # ---- garbage collection -------------------------------------------------------------------------------

    def _garbage_collect(self, wanted: set[str], deleting: list[dict[str, Any]]) -> None:
        c, p = self.compute, self.project
        prefix = f"k8s1-{self.uid[:8]}-"
        for bs in c.list(p, "backendServices"):
            name = bs["name"]
            if not name.startswith(prefix) or name in wanted or bs.get("_orphaned"):
                continue
            try:
                c.delete_checked(p, "backendServices", name)
            except ApiError as err:
                message = err.body["error"]["message"]
                c.save(p, "backendServices", {**bs, "_orphaned": True})
                for ing in deleting:
                    self._event(
                        ing,
                        "GarbageCollection",
                        f"Error deleting backend service {name}: {message}. "
                        "It is left in place and no longer synced from Kubernetes.",
                        "Warning",
                    )
                continue
            c.delete(p, "healthChecks", name)
            delete_unused_neg(c, p, name)
            for ing in deleting:
                self._event(ing, "GarbageCollection", f"Deleted backend service {name}")

    def _event(
        self, ing: dict[str, Any], reason: str, message: str, type_: str = "Normal", once: bool = False
    ) -> None:
        if once:
            for ev in self.kube.list(KINDS[("", "events")], ing["metadata"]["namespace"]):
                if ev.get("message") == message and ev["involvedObject"].get("uid") == ing["metadata"].get(
                    "uid"
                ):
                    return
        self.kube.record_event(ing, INGRESS, reason, message, type_)
