"""The Gateway topology's build: the same mTLS frontend expressed as Kubernetes objects that GKE's
Gateway controller turns into a load balancer, plus the few Compute resources the kit still owns.

Two steps, each planned as data and applied only when asked:

- prerequisites (gw10): the namespace(s), the Service (the split build's, without its BackendConfig
  annotation: a Gateway reads none), the CA ConfigMap (`ca.crt` = trust anchors then intermediates),
  and the kit's Compute resources (`frontend.gateway_kinds`: SSL policy, managed certificate for a
  pre-shared listener certificate, the address for `address: named_address`);
- the Gateway (gw20): Gateway with GEP-91 `spec.tls.frontend.default.validation`, HTTPRoute with the
  mTLS headers rebuilt as a rule-level RequestHeaderModifier, GCPGatewayPolicy (SSL policy),
  GCPBackendPolicy (request logging) and HealthCheckPolicy.

Kubernetes objects go through server-side apply under the kit's field manager (`gateway_kube`);
every object carries the stack's ownership labels. No URL map, proxy, forwarding rule, trust config
or server TLS policy of the kit's: the controller builds and owns those.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from mtlskit.build import frontend, gateway_api, k8s
from mtlskit.build import gateway_kube as kube
from mtlskit.build.plan import Change
from mtlskit.cloud import ownership
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core.errors import PrerequisiteMissing
from mtlskit.rules import gateway as gw

LISTENER = "https"
PREREQ_KINDS = ("Namespace", "Service", "ConfigMap")
# Apply order: what the Gateway uses before the Gateway itself, so the controller's first pass over it
# builds the proxy with its SSL policy, routes and backend settings. Applied after it, a policy reaches
# the load balancer one pass later, and a verification in between sees a proxy without its SSL policy.
GATEWAY_KINDS = ("GCPGatewayPolicy", "GCPBackendPolicy", "HealthCheckPolicy", "HTTPRoute", "Gateway")
# The health check the GKE Ingress controller gives a NEG backend whose BackendConfig names none (the
# split build's BackendConfig names none): HTTP on the serving port, path "/". The HealthCheckPolicy
# states it, so the Gateway's backend is judged healthy by the same probe.
HEALTH_CHECK = {
    "type": "HTTP",
    "httpHealthCheck": {"portSpecification": "USE_SERVING_PORT", "requestPath": "/"},
}


def require_gateway_topology(params: Params) -> None:
    if params.topology != "gateway":
        raise PrerequisiteMissing(
            "these params are topology split: the Gateway notebooks (gw10, gw20, gw90) build topology "
            "gateway; run 10_ingress .. 40_frontend for split, or set topology: gateway"
        )


def _meta(params: Params, name: str, namespace: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": ownership.kube_labels(params.stack), **extra}


def ca_bundle(params: Params) -> str:
    """`ca.crt`: every trust anchor, then every intermediate, as one PEM bundle (the Gateway API has
    no separate intermediate store)."""
    pems = [Path(f).read_text().strip() for f in [*params.mtls.trust_anchors, *params.mtls.intermediates]]
    return "\n".join(pems) + "\n"


def header_additions(params: Params) -> list[dict[str, str]]:
    """The params' mTLS custom headers ("Name:{client_cert_...}") as RequestHeaderModifier `add`s."""
    out = []
    for header in params.mtls.custom_headers:
        name, _, value = header.partition(":")
        out.append({"name": name.strip(), "value": value.strip()})
    return out


def sample_rate(params: Params) -> int:
    """GCPBackendPolicy's sampleRate is in millionths (0..1000000)."""
    return round(params.logging.sample_rate * 1_000_000)


def service_manifest(params: Params) -> dict[str, Any]:
    """The split build's Service without its BackendConfig annotation: the Gateway takes health check
    and logging from its policies. Server-side apply removes only fields the kit applied before, so a
    split stack's annotation (set by 10_ingress) stays during a migration."""
    service = k8s.manifests(params)["Service"]
    annotations = dict(service["metadata"]["annotations"])
    annotations.pop("cloud.google.com/backend-config", None)
    return {**service, "metadata": {**service["metadata"], "annotations": annotations}}


def prerequisite_manifests(params: Params) -> dict[str, dict[str, Any]]:
    """Service and CA ConfigMap (namespaces are planned from what exists)."""
    g = params.gateway
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(params, g.ca_configmap, params.gateway_namespace),
        "data": {gw.CA_KEY: ca_bundle(params)},
    }
    return {"Service": service_manifest(params), "ConfigMap": configmap}


def _listener(params: Params) -> dict[str, Any]:
    domains = params.frontend.domains
    listener: dict[str, Any] = {"name": LISTENER, "protocol": "HTTPS", "port": 443}
    if len(domains) == 1:
        listener["hostname"] = domains[0]
    if params.gateway.certificate == "pre_shared":
        listener["tls"] = {
            "mode": "Terminate",
            "options": {gw.PRE_SHARED_CERTS_OPTION: params.frontend.certificate},
        }
    # with a certificate map the listener names no certificate: the Gateway's annotation does
    route_ns = params.kubernetes.namespace
    if route_ns == params.gateway_namespace:
        listener["allowedRoutes"] = {"namespaces": {"from": "Same"}}
    else:
        selector = {"matchLabels": {"kubernetes.io/metadata.name": route_ns}}
        listener["allowedRoutes"] = {"namespaces": {"from": "Selector", "selector": selector}}
    return listener


def gateway_manifest(params: Params) -> dict[str, Any]:
    g = params.gateway
    annotations = {gw.CERTMAP_ANNOTATION: g.certificate_map} if g.certificate == "certificate_map" else {}
    validation = {
        "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": g.ca_configmap}],
        "mode": gw.MODE_FOR_VALIDATION[params.mtls.validation_mode],
    }
    spec: dict[str, Any] = {
        "gatewayClassName": g.class_name,
        "listeners": [_listener(params)],
        "tls": {"frontend": {"default": {"validation": validation}}},
    }
    if g.address == "named_address":
        spec["addresses"] = [{"type": "NamedAddress", "value": params.frontend.address}]
    meta = _meta(params, g.name, params.gateway_namespace)
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": f"{gw.GROUP}/{gw.VERSION}", "kind": "Gateway", "metadata": meta, "spec": spec}


def http_route_manifest(params: Params) -> dict[str, Any]:
    g, k = params.gateway, params.kubernetes
    rule: dict[str, Any] = {
        "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
        "backendRefs": [
            {"group": "", "kind": "Service", "name": k.service, "port": k.service_port, "weight": 1}
        ],
    }
    headers = header_additions(params)
    if headers:  # on the rule: GKE does not claim backendRef-level header filters
        rule["filters"] = [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": headers}}]
    parent = {
        "group": gw.GROUP,
        "kind": "Gateway",
        "name": g.name,
        "namespace": params.gateway_namespace,
        "sectionName": LISTENER,
    }
    return {
        "apiVersion": f"{gw.GROUP}/{gw.VERSION}",
        "kind": "HTTPRoute",
        "metadata": _meta(params, g.http_route, k.namespace),
        "spec": {"parentRefs": [parent], "hostnames": list(params.frontend.domains), "rules": [rule]},
    }


def _policy(
    params: Params, kind: str, name: str, namespace: str, target: dict[str, str], default: Any
) -> dict[str, Any]:
    return {
        "apiVersion": f"{gw.POLICY_GROUP}/{gw.POLICY_VERSION}",
        "kind": kind,
        "metadata": _meta(params, name, namespace),
        "spec": {"default": default, "targetRef": target},
    }


def gateway_manifests(params: Params) -> dict[str, dict[str, Any]]:
    """Gateway, HTTPRoute and the three GKE policies, in apply order (`GATEWAY_KINDS`)."""
    g, k = params.gateway, params.kubernetes
    gateway_ref = {"group": gw.GROUP, "kind": "Gateway", "name": g.name}
    service_ref = {"group": "", "kind": "Service", "name": k.service}
    logging = {"enabled": params.logging.enable, "sampleRate": sample_rate(params)}
    made = {
        "Gateway": gateway_manifest(params),
        "HTTPRoute": http_route_manifest(params),
        "GCPGatewayPolicy": _policy(
            params, "GCPGatewayPolicy", g.gateway_policy, params.gateway_namespace, gateway_ref,
            {"sslPolicy": params.frontend.ssl_policy},
        ),
        "GCPBackendPolicy": _policy(
            params, "GCPBackendPolicy", g.backend_policy, k.namespace, service_ref, {"logging": logging}
        ),
        "HealthCheckPolicy": _policy(
            params, "HealthCheckPolicy", g.health_check_policy, k.namespace, service_ref,
            {"config": HEALTH_CHECK},
        ),
    }  # fmt: skip
    return {kind: made[kind] for kind in GATEWAY_KINDS}


def manifests(params: Params) -> dict[str, dict[str, Any]]:
    """Every Kubernetes object of the topology (namespaces aside), prerequisites first."""
    return {**prerequisite_manifests(params), **gateway_manifests(params)}


def _kubectl(params: Params, manifest: dict[str, Any]) -> str:
    """`kubectl apply --server-side` of the exact manifest the kit sends, as the kit's field manager."""
    file = k8s.manifest_file(params, manifest)
    namespace = manifest["metadata"].get("namespace")
    flags = [f"-n {shlex.quote(namespace)}"] if namespace else []
    flags += [f for f in k8s.kubectl_target(params, namespaced=False).split(" ") if f]
    return " ".join(
        [
            f"kubectl apply --server-side --field-manager={ownership.FIELD_MANAGER}",
            f"-f {shlex.quote(str(file))}",
            *flags,
        ]
    )


def _namespace_changes(clients: Clients, params: Params) -> list[Change]:
    out = []
    for ns in dict.fromkeys([params.kubernetes.namespace, params.gateway_namespace]):
        if kube.read(clients, kube.KUBE_KINDS["Namespace"], None, ns) is None:
            manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
            out.append(kube.plan_object(manifest, None, _kubectl(params, manifest)))
    return out


def _plan_objects(clients: Clients, params: Params, objects: dict[str, dict[str, Any]]) -> list[Change]:
    changes = []
    for kind, manifest in objects.items():
        meta = manifest["metadata"]
        current = kube.read(clients, kube.KUBE_KINDS[kind], meta.get("namespace"), meta["name"])
        changes.append(kube.plan_object(manifest, current, _kubectl(params, manifest)))
    return changes


def _compute_inputs(params: Params) -> frontend.Inputs:
    return frontend.Inputs(params, backend_service=None, server_tls_policy="")


def plan_prerequisites(clients: Clients, params: Params) -> list[Change]:
    """gw10: namespaces, Service, CA ConfigMap, then the kit's Compute resources. Refuses (before
    reading anything else) a cluster whose Gateway schema cannot carry frontend validation."""
    require_gateway_topology(params)
    gateway_api.require_frontend_validation(clients, params)
    changes = _namespace_changes(clients, params)
    changes += _plan_objects(clients, params, prerequisite_manifests(params))
    kinds = frontend.gateway_kinds(params)
    return changes + frontend.plan_kinds(clients, params, kinds, _compute_inputs(params))


def apply_prerequisites(clients: Clients, params: Params, changes: list[Change]) -> list[Change]:
    """Execute a plan from `plan_prerequisites`: Kubernetes objects by server-side apply (a conflict
    with another manager stays in its row), Compute resources in dependency order."""
    ownership.may_apply(params, apply=True)
    kube.apply_changes(clients, changes)
    frontend.apply_frontend(clients, params, [c for c in changes if c.kind in frontend.KINDS])
    return changes


def _require_prerequisites(clients: Clients, params: Params) -> None:
    g = params.gateway
    missing = []
    if kube.read(clients, kube.KUBE_KINDS["ConfigMap"], params.gateway_namespace, g.ca_configmap) is None:
        missing.append(f"ConfigMap {params.gateway_namespace}/{g.ca_configmap}")
    for kind in frontend.gateway_kinds(params):
        name = frontend.KINDS[kind].resource_name(params)
        if frontend.KINDS[kind].get(clients, name) is None:
            missing.append(f"{kind} {name}")
    if missing:
        raise PrerequisiteMissing(
            f"{', '.join(missing)} not there yet: run notebook gw10_gateway_prereqs with apply=True first"
        )


def plan_gateway(clients: Clients, params: Params) -> list[Change]:
    """gw20: Gateway, HTTPRoute and the three policies against what the cluster has."""
    require_gateway_topology(params)
    gateway_api.require_frontend_validation(clients, params)
    _require_prerequisites(clients, params)
    return _plan_objects(clients, params, gateway_manifests(params))


def apply_gateway(clients: Clients, params: Params, changes: list[Change]) -> list[Change]:
    """Execute a plan from `plan_gateway` by server-side apply; a conflict stays in its row."""
    ownership.may_apply(params, apply=True)
    return kube.apply_changes(clients, changes)


def read_object(clients: Clients, params: Params, kind: str) -> dict[str, Any] | None:
    """The params' object of `kind` as the cluster has it, or None."""
    meta = manifests(params)[kind]["metadata"]
    return kube.read(clients, kube.KUBE_KINDS[kind], meta["namespace"], meta["name"])
