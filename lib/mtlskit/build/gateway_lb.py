"""The load balancer the Gateway controller built, found from the Gateway's `networking.gke.io/*`
annotations, and checked through the Compute, Network Security and Certificate Manager APIs: its
target HTTPS proxy must carry a server TLS policy whose trust config holds exactly the certificates
of the kit's CA ConfigMap (compared by SHA-256 of each DER certificate), with the mode the params ask
for. The Gateway's conditions say the controller accepted the configuration; only the resources
themselves say that the load balancer validates clients as intended.

`load_balancer(clients, params)` is the one reading of the annotations: verification and teardown
use it too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from mtlskit.build import gateway
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core.checks import Check
from mtlskit.rules import gateway as gw


@dataclass(frozen=True)
class GatewayLoadBalancer:
    """The controller's resources by annotation key (`forwarding_rules`, `target_https_proxies`, ...),
    each a list of resource paths as annotated (`/projects/P/global/urlMaps/gkegw1-...`)."""

    gateway: str  # namespace/name
    paths: dict[str, list[str]] = field(default_factory=dict)

    def names(self, key: str) -> list[str]:
        """The short names of one kind (`target_https_proxies`)."""
        return [p.rstrip("/").rsplit("/", 1)[-1] for p in self.paths.get(key, [])]

    def first(self, key: str) -> str | None:
        names = self.names(key)
        return names[0] if names else None

    @property
    def found(self) -> bool:
        return bool(self.paths.get("target_https_proxies") or self.paths.get("forwarding_rules"))

    def rows(self) -> list[dict[str, str]]:
        return [{"resource": key, "name": name} for key in self.paths for name in self.names(key)]


def annotation_paths(value: str) -> list[str]:
    """An annotation's resource paths: a comma-separated list (what GKE writes) or a JSON array."""
    text = (value or "").strip()
    if text.startswith("["):
        try:
            return [str(v).strip() for v in json.loads(text) if str(v).strip()]
        except ValueError:
            pass
    return [p.strip() for p in text.split(",") if p.strip()]


def load_balancer_of(obj: dict[str, Any] | None) -> GatewayLoadBalancer:
    """What a Gateway object's annotations name (pure, for a Gateway read once)."""
    meta = (obj or {}).get("metadata") or {}
    annotations = meta.get("annotations") or {}
    paths = {key: annotation_paths(annotations.get(a, "")) for key, a in gw.ANNOTATIONS.items()}
    where = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    return GatewayLoadBalancer(where, {k: v for k, v in paths.items() if v and k != "last_reconcile_time"})


def load_balancer(clients: Clients, params: Params) -> GatewayLoadBalancer:
    """The params' Gateway's load balancer as the controller annotated it (empty until it has)."""
    return load_balancer_of(gateway.read_object(clients, params, "Gateway"))


def fingerprints(pems: list[str]) -> dict[str, str]:
    """SHA-256 of each certificate (DER) in PEM blocks -> its subject, for comparing two bundles."""
    out = {}
    for pem in pems:
        for cert in x509.load_pem_x509_certificates(pem.encode()):
            digest = cert.fingerprint(hashes.SHA256()).hex()
            out[digest] = cert.subject.rfc4514_string()
    return out


def _short(digests: set[str], subjects: dict[str, str]) -> str:
    return "; ".join(f"{subjects.get(d, '?')} ({d[:16]}...)" for d in sorted(digests))


def _policy_path(reference: str) -> str:
    """`//networksecurity.googleapis.com/projects/...` or a URL -> `projects/...`."""
    return "projects/" + reference.split("projects/", 1)[1] if "projects/" in reference else reference


@dataclass
class LoadBalancerCheck:
    """The check table of gw20's load-balancer section, with what it read."""

    lb: GatewayLoadBalancer
    checks: list[Check] = field(default_factory=list)

    def rows(self) -> list[dict[str, str]]:
        return [c.row() for c in self.checks]


def check_load_balancer(clients: Clients, params: Params) -> LoadBalancerCheck:
    """Annotations -> target HTTPS proxy -> server TLS policy -> trust config, each step a check;
    the trust config's certificates must equal the ConfigMap's `ca.crt` exactly."""
    obj = gateway.read_object(clients, params, "Gateway")
    lb = load_balancer_of(obj)
    out = LoadBalancerCheck(lb)
    g = params.gateway
    describe = f"kubectl describe gateway {g.name} -n {params.gateway_namespace}"
    if obj is None:
        out.checks.append(
            Check("load balancer found", "fail", "no Gateway", "run gw20_gateway with apply=True")
        )
        return out
    proxy_name = lb.first("target_https_proxies")
    if proxy_name is None:
        key = gw.ANNOTATIONS["target_https_proxies"]
        out.checks.append(
            Check(
                "load balancer found",
                "fail",
                f"the Gateway has no {key} annotation yet",
                f"wait, then read {describe}",
            )
        )
        return out
    prefixed = all(n.startswith(gw.NAME_PREFIX) for key in lb.paths for n in lb.names(key))
    out.checks.append(
        Check(
            "load balancer found",
            "pass" if prefixed else "warn",
            f"{len(lb.rows())} resources annotated; target HTTPS proxy {proxy_name}",
            ""
            if prefixed
            else f"a resource without the controller's prefix {gw.NAME_PREFIX}: read {describe}",
        )
    )
    proxy = clients.find(
        clients.compute.target_https_proxies.get, project=clients.project, target_https_proxy=proxy_name
    )
    if proxy is None:
        out.checks.append(
            Check(
                "target HTTPS proxy",
                "fail",
                f"{proxy_name} is annotated but does not exist",
                f"read {describe}",
            )
        )
        return out
    out.checks += _proxy_checks(params, proxy)
    if not proxy.server_tls_policy:
        out.checks.append(
            Check(
                "server TLS policy attached",
                "fail",
                f"target HTTPS proxy {proxy_name} has no server TLS policy: the load balancer validates no client",
                f"read spec.tls.frontend and the listener conditions: {describe}",
            )
        )
        return out
    policy_name = _policy_path(proxy.server_tls_policy)
    policy = clients.find(clients.network_security.get_server_tls_policy, name=policy_name)
    if policy is None:
        out.checks.append(
            Check("server TLS policy attached", "fail", f"{policy_name} does not exist", f"read {describe}")
        )
        return out
    mode = str(policy.mtls_policy.client_validation_mode.name)
    out.checks.append(
        Check(
            "server TLS policy attached",
            "pass" if mode == params.mtls.validation_mode else "fail",
            f"{policy_name.rsplit('/', 1)[-1]} on {proxy_name}, mode {mode}",
            ""
            if mode == params.mtls.validation_mode
            else f"the params ask for {params.mtls.validation_mode}: check spec.tls.frontend's mode",
        )
    )
    out.checks.append(_trust_check(clients, params, policy.mtls_policy.client_validation_trust_config))
    return out


def _proxy_checks(params: Params, proxy: Any) -> list[Check]:
    """The kit's SSL policy and (pre-shared) certificate on the controller's proxy."""
    f = params.frontend
    ssl = str(proxy.ssl_policy or "").rsplit("/", 1)[-1]
    checks = [
        Check(
            "SSL policy on the proxy",
            "pass" if ssl == f.ssl_policy else "fail",
            f"{ssl or 'none'}",
            ""
            if ssl == f.ssl_policy
            else f"the GCPGatewayPolicy names {f.ssl_policy}: read its Attached condition",
        )
    ]
    if params.gateway.certificate == "pre_shared":
        certs = [str(c).rsplit("/", 1)[-1] for c in proxy.ssl_certificates]
        ok = f.certificate in certs
        checks.append(
            Check(
                "certificate on the proxy",
                "pass" if ok else "fail",
                ", ".join(certs) or "none",
                ""
                if ok
                else f"the listener names {f.certificate} ({gw.PRE_SHARED_CERTS_OPTION}): read the listener conditions",
            )
        )
    return checks


def _trust_check(clients: Clients, params: Params, trust_config: str) -> Check:
    name = "trust config equals the ConfigMap"
    config = (
        clients.find(clients.certificate_manager.get_trust_config, name=_policy_path(trust_config))
        if trust_config
        else None
    )
    if config is None:
        return Check(
            name,
            "fail",
            f"the server TLS policy names trust config {trust_config or '(none)'}, which does not exist",
            "read the Gateway's events",
        )
    pems = [a.pem_certificate for s in config.trust_stores for a in s.trust_anchors]
    pems += [i.pem_certificate for s in config.trust_stores for i in s.intermediate_cas]
    have = fingerprints(pems)
    cm = gateway.read_object(clients, params, "ConfigMap")
    bundle = ((cm or {}).get("data") or {}).get(gw.CA_KEY, "")
    want = fingerprints([bundle]) if bundle else {}
    if not want:
        return Check(
            name,
            "fail",
            f"ConfigMap {params.gateway.ca_configmap} has no {gw.CA_KEY}",
            "run gw10_gateway_prereqs with apply=True",
        )
    subjects = {**have, **want}
    missing, extra = set(want) - set(have), set(have) - set(want)
    if missing or extra:
        parts = [
            f"missing {_short(missing, subjects)}" if missing else "",
            f"extra {_short(extra, subjects)}" if extra else "",
        ]
        return Check(
            name,
            "fail",
            f"trust config {config.name.rsplit('/', 1)[-1]}: " + "; ".join(p for p in parts if p),
            "the controller has not caught up with the ConfigMap, or something else edits the trust config: "
            "re-read after the Gateway's next reconcile (networking.gke.io/last-reconcile-time)",
        )
    anchors = sum(len(s.trust_anchors) for s in config.trust_stores)
    return Check(
        name,
        "pass",
        f"trust config {config.name.rsplit('/', 1)[-1]}: the same {len(want)} certificate(s) by SHA-256 "
        f"({anchors} as trust anchors, {len(want) - anchors} as intermediates)",
    )
