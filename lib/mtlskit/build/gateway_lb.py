"""The load balancer the Gateway controller built, found from the Gateway's `networking.gke.io/*`
annotations, and checked through the Compute, Network Security and Certificate Manager APIs: its
target HTTPS proxy must carry a server TLS policy whose trust config holds exactly the certificates
of the kit's CA ConfigMap (compared by SHA-256 of each DER certificate), with the mode the params ask
for. The Gateway's conditions say the controller accepted the configuration; only the resources
themselves say that the load balancer validates clients as intended.

The annotations are read by `lbnames` (the one reader, which verification uses too).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from mtlskit.build import gateway, lbnames
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core.checks import Check
from mtlskit.core.errors import GatewayNotReady
from mtlskit.rules import gateway as gw


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


@dataclass
class LoadBalancerCheck:
    """The check table of gw20's load-balancer section, with the names it resolved (None when the
    Gateway names no load balancer yet)."""

    names: lbnames.LoadBalancerNames | None
    checks: list[Check] = field(default_factory=list)

    def rows(self) -> list[dict[str, str]]:
        return [c.row() for c in self.checks]


def check_load_balancer(clients: Clients, params: Params) -> LoadBalancerCheck:
    """Annotations -> target HTTPS proxy -> server TLS policy -> trust config, each step a check;
    the trust config's certificates must equal the ConfigMap's `ca.crt` exactly."""
    try:
        names = lbnames.gateway_names(clients, params)
    except GatewayNotReady as err:
        return LoadBalancerCheck(None, [Check("load balancer found", "fail", str(err), lbnames.BUILD_FIX)])
    out = LoadBalancerCheck(names)
    describe = lbnames.kubectl_describe_gateway(params)
    built = [names.forwarding_rule, names.target_proxy, names.url_map]
    prefixed = all(n.startswith(gw.NAME_PREFIX) for n in built)
    out.checks.append(
        Check(
            "load balancer found",
            "pass" if prefixed else "warn",
            f"forwarding rule {names.forwarding_rule} ({names.ip}), target HTTPS proxy {names.target_proxy}, "
            f"URL map {names.url_map}, scheme {names.scheme}",
            ""
            if prefixed
            else f"a resource without the controller's prefix {gw.NAME_PREFIX}: read {describe}",
        )
    )
    out.checks += _proxy_checks(params, names)
    if not names.server_tls_policy:
        out.checks.append(
            Check(
                "server TLS policy attached",
                "fail",
                f"target HTTPS proxy {names.target_proxy} has no server TLS policy: the load balancer "
                "validates no client certificate",
                f"read spec.tls.frontend and the listener conditions: {describe}",
            )
        )
        return out
    policy = clients.find(clients.network_security.get_server_tls_policy, name=names.server_tls_policy)
    if policy is None:
        out.checks.append(
            Check(
                "server TLS policy attached",
                "fail",
                f"{names.server_tls_policy} does not exist",
                f"read {describe}",
            )
        )
        return out
    mode = str(policy.mtls_policy.client_validation_mode.name)
    ok = mode == params.mtls.validation_mode
    out.checks.append(
        Check(
            "server TLS policy attached",
            "pass" if ok else "fail",
            f"{names.server_tls_policy_id} on {names.target_proxy}, mode {mode}",
            "" if ok else f"the params ask for {params.mtls.validation_mode}: check spec.tls.frontend's mode",
        )
    )
    out.checks.append(_trust_check(clients, params, names.trust_config))
    return out


def _proxy_checks(params: Params, names: lbnames.LoadBalancerNames) -> list[Check]:
    """The kit's SSL policy and (pre-shared) certificate on the controller's proxy."""
    f = params.frontend
    ssl = names.ssl_policy
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
        certs = list(names.certificates)
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
        clients.find(clients.certificate_manager.get_trust_config, name=trust_config)
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
