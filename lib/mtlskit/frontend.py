"""The kit's half of the load balancer: address, managed certificate, SSL policy, URL map -> the
Ingress-owned backend service, target HTTPS proxy with the server TLS policy, forwarding rule on 443.

Planned as data first; applied in dependency order with a request id on every insert (a retried
create cannot make a second resource) and a wait on every operation.
"""

from __future__ import annotations

import shlex
import uuid
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import compute_v1

from mtlskit import paths, trust
from mtlskit.backend import BackendService
from mtlskit.clients import Clients, wait_for_compute
from mtlskit.params import Params
from mtlskit.plan import Change, MissingPrerequisite, decide, owner_description

ORDER = ["Address", "SslCertificate", "SslPolicy", "UrlMap", "TargetHttpsProxy", "ForwardingRule"]


class SchemeMismatch(ValueError):
    pass


@dataclass(frozen=True)
class Kind:
    name: str
    client: str
    resource_arg: str
    name_arg: str
    proto: Any
    collection: str
    patchable: bool
    gcloud_group: str  # `gcloud compute <group>`


KINDS = {
    "Address": Kind(
        "Address",
        "addresses",
        "address_resource",
        "address",
        compute_v1.Address,
        "addresses",
        False,
        "addresses",
    ),
    "SslCertificate": Kind(
        "SslCertificate",
        "ssl_certificates",
        "ssl_certificate_resource",
        "ssl_certificate",
        compute_v1.SslCertificate,
        "sslCertificates",
        False,
        "ssl-certificates",
    ),
    "SslPolicy": Kind(
        "SslPolicy",
        "ssl_policies",
        "ssl_policy_resource",
        "ssl_policy",
        compute_v1.SslPolicy,
        "sslPolicies",
        True,
        "ssl-policies",
    ),
    "UrlMap": Kind(
        "UrlMap", "url_maps", "url_map_resource", "url_map", compute_v1.UrlMap, "urlMaps", True, "url-maps"
    ),
    "TargetHttpsProxy": Kind(
        "TargetHttpsProxy",
        "target_https_proxies",
        "target_https_proxy_resource",
        "target_https_proxy",
        compute_v1.TargetHttpsProxy,
        "targetHttpsProxies",
        True,
        "target-https-proxies",
    ),
    "ForwardingRule": Kind(
        "ForwardingRule",
        "forwarding_rules",
        "forwarding_rule_resource",
        "forwarding_rule",
        compute_v1.ForwardingRule,
        "forwardingRules",
        False,
        "forwarding-rules",
    ),
}


def link(project: str, collection: str, name: str) -> str:
    return f"projects/{project}/global/{collection}/{name}"


def _comparable(value: Any) -> Any:
    """Compute answers with full URLs and repeated-field wrappers; compare relative links and plain lists."""
    if isinstance(value, str):
        return "projects/" + value.split("/projects/", 1)[1] if "/projects/" in value else value
    if isinstance(value, list | tuple) or type(value).__name__.startswith("Repeated"):
        return [_comparable(v) for v in value]
    return value


def resource_names(params: Params) -> dict[str, str]:
    """The frontend resources' names by kind: what the kit builds and what teardown may remove."""
    f = params.frontend
    return {
        "Address": f.address,
        "SslCertificate": f.certificate,
        "SslPolicy": f.ssl_policy,
        "UrlMap": f.url_map,
        "TargetHttpsProxy": f.target_proxy,
        "ForwardingRule": f.forwarding_rule,
    }


def desired_frontend(clients: Clients, params: Params, bs: BackendService) -> dict[str, dict[str, Any]]:
    """Each frontend resource's fields (python names of compute_v1), by kind; names come from
    `resource_names`."""
    f, p = params.frontend, clients.project
    desc = owner_description(params.stack)
    return {
        "Address": {"description": desc, "ip_version": "IPV4", "address_type": "EXTERNAL"},
        "SslCertificate": {
            "description": desc,
            "type_": "MANAGED",
            "managed": compute_v1.SslCertificateManagedSslCertificate(domains=f.domains),
        },
        "SslPolicy": {"description": desc, "profile": f.ssl_profile, "min_tls_version": f.min_tls_version},
        "UrlMap": {"description": desc, "default_service": link(p, "backendServices", bs.name)},
        "TargetHttpsProxy": {
            "description": desc,
            "url_map": link(p, "urlMaps", f.url_map),
            "ssl_certificates": [link(p, "sslCertificates", f.certificate)],
            "ssl_policy": link(p, "sslPolicies", f.ssl_policy),
            "server_tls_policy": trust.policy_reference(clients, params),
        },
        "ForwardingRule": {
            "description": desc,
            "I_p_address": link(p, "addresses", f.address),
            "I_p_protocol": "TCP",
            "port_range": "443-443",
            "target": link(p, "targetHttpsProxies", f.target_proxy),
            "load_balancing_scheme": f.load_balancing_scheme,
            "network_tier": "PREMIUM",
        },
    }


def _differences(kind: str, desired: dict[str, Any], current: Any, clients: Clients) -> list[str]:
    diff = []
    for attr, want in desired.items():
        have = getattr(current, attr)
        if kind == "ForwardingRule" and attr == "I_p_address":
            address = clients.compute.addresses.get(
                project=clients.project, address=want.rsplit("/", 1)[-1], retry=clients.retry
            )
            want = address.address
        if kind == "SslCertificate" and attr == "managed":
            have, want = list(have.domains), list(want.domains)
        if kind == "ForwardingRule" and attr == "port_range":
            have, want = have.split("-")[0], want.split("-")[0]
        if _comparable(have) != _comparable(want):
            diff.append(attr)
    return diff


def check_scheme(params: Params, bs: BackendService) -> None:
    """Compute refuses a forwarding rule whose scheme differs from its backend service; say so before
    creating anything, so no half-built frontend is left behind."""
    if bs.scheme != params.frontend.load_balancing_scheme:
        raise SchemeMismatch(
            f"frontend.load_balancing_scheme is {params.frontend.load_balancing_scheme} but backend service "
            f"{bs.name} (made by the GKE Ingress controller) is {bs.scheme}; set frontend.load_balancing_scheme: "
            f"{bs.scheme} in the params (Ingress class gce builds a classic load balancer: EXTERNAL)"
        )


def plan_frontend(clients: Clients, params: Params, bs: BackendService) -> list[Change]:
    check_scheme(params, bs)
    try:
        clients.network_security.get_server_tls_policy(
            name=trust.policy_name(clients, params), retry=clients.retry
        )
    except gexc.NotFound:
        raise MissingPrerequisite(
            f"server TLS policy {params.mtls.server_tls_policy} does not exist: run notebook "
            "30_trust with apply=True first"
        ) from None
    changes = []
    names = resource_names(params)
    for kind_name, desired in desired_frontend(clients, params, bs).items():
        name = names[kind_name]
        kind = KINDS[kind_name]
        client = getattr(clients.compute, kind.client)
        try:
            current = client.get(project=clients.project, **{kind.name_arg: name}, retry=clients.retry)
        except gexc.NotFound:
            current = None
        diff = None if current is None else _differences(kind_name, desired, current, clients)
        changes.append(
            decide(
                kind_name,
                name,
                desired,
                current,
                gcloud(kind_name, name, params, bs, current is not None),
                diff,
            )
        )
    return changes


def apply_frontend(
    clients: Clients, params: Params, changes: list[Change], bs: BackendService | None = None
) -> list[Change]:
    """Execute a plan from `plan_frontend` (`bs` is accepted so planner and applier take the same arguments)."""
    for c in sorted(changes, key=lambda c: ORDER.index(c.kind)):
        if c.action == "no change":
            continue
        kind = KINDS[c.kind]
        client = getattr(clients.compute, kind.client)
        if c.action == "create":
            request = {
                "project": clients.project,
                kind.resource_arg: kind.proto(name=c.name, **c.desired),
                "request_id": str(uuid.uuid4()),
            }
            op = client.insert(request=_insert_request(client, request), retry=clients.retry)
        elif kind.patchable:
            body = kind.proto(
                name=c.name, fingerprint=c.current.fingerprint, **{f: c.desired[f] for f in c.fields}
            )
            op = client.patch(
                project=clients.project,
                **{kind.name_arg: c.name, kind.resource_arg: body},
                retry=clients.retry,
            )
        else:
            raise ValueError(
                f"{c.kind} {c.name}: {', '.join(c.fields)} cannot change in place; choose a new name "
                "in the params or run 90_teardown first"
            )
        wait_for_compute(clients, op, f"{c.action} {c.kind} {c.name}")
    return changes


def _insert_request(client: Any, request: dict[str, Any]) -> Any:
    """The typed insert request (the flattened form has no request_id)."""
    name = type(client).__name__.replace("Client", "")
    request_cls = {
        "GlobalAddresses": compute_v1.InsertGlobalAddressRequest,
        "SslCertificates": compute_v1.InsertSslCertificateRequest,
        "SslPolicies": compute_v1.InsertSslPolicyRequest,
        "UrlMaps": compute_v1.InsertUrlMapRequest,
        "TargetHttpsProxies": compute_v1.InsertTargetHttpsProxyRequest,
        "GlobalForwardingRules": compute_v1.InsertGlobalForwardingRuleRequest,
    }[name]
    return request_cls(**request)


def gcloud(kind: str, name: str, params: Params, bs: BackendService, exists: bool = False) -> str:
    """The `gcloud compute` command that does what the kit's plan row does.

    A create carries the kit's ownership description, so a resource made by hand from this command
    is still one teardown recognises. For a resource that `exists`, patchable kinds print their
    update command. The others cannot change in place and the kit refuses to touch them (the
    resource may not even be the kit's: a missing ownership marker shows up as a changed
    description), so the row offers the safe first step, `describe`, never a delete.
    """
    f, p = params.frontend, params.project
    group = KINDS[kind].gcloud_group
    scope = f"--global --project={p}"
    min_tls = f.min_tls_version.removeprefix("TLS_").replace("_", ".")
    proxy_flags = (
        f"--url-map={f.url_map} --ssl-certificates={f.certificate} --ssl-policy={f.ssl_policy} "
        f"--server-tls-policy={params.mtls.server_tls_policy}"
    )
    if kind == "SslPolicy" and not _ga_flags_express(f.ssl_profile, f.min_tls_version):
        return _ssl_policy_import(name, params)
    if exists and KINDS[kind].patchable:
        return {
            "SslPolicy": f"gcloud compute {group} update {name} --profile={f.ssl_profile} "
            f"--min-tls-version={min_tls} {scope}",
            "UrlMap": f"gcloud compute {group} set-default-service {name} --default-service={bs.name} {scope}",
            "TargetHttpsProxy": f"gcloud compute {group} update {name} {proxy_flags} {scope}",
        }[kind]
    flags = {
        "Address": "--ip-version=IPV4",
        "SslCertificate": f"--domains={','.join(f.domains)}",
        "SslPolicy": f"--profile={f.ssl_profile} --min-tls-version={min_tls}",
        "UrlMap": f"--default-service={bs.name}",
        "TargetHttpsProxy": proxy_flags,
        "ForwardingRule": f"--load-balancing-scheme={f.load_balancing_scheme} --address={f.address} "
        f"--target-https-proxy={f.target_proxy} --ports=443",
    }[kind]
    if exists:
        return f"gcloud compute {group} describe {name} {scope}"
    description = shlex.quote(owner_description(params.stack))
    return f"gcloud compute {group} create {name} {flags} --description={description} {scope}"


# What `gcloud compute ssl-policies create/update` accept (Google Cloud CLI 528): the API also has
# the FIPS_202205 profile and TLS 1.3, which only the alpha track's `import` can express.
GCLOUD_SSL_PROFILES = ("COMPATIBLE", "MODERN", "RESTRICTED")
GCLOUD_MIN_TLS_VERSIONS = ("TLS_1_0", "TLS_1_1", "TLS_1_2")


def _ga_flags_express(profile: str, min_tls_version: str) -> bool:
    return profile in GCLOUD_SSL_PROFILES and min_tls_version in GCLOUD_MIN_TLS_VERSIONS


def _ssl_policy_import(name: str, params: Params) -> str:
    """An SSL policy the GA flags cannot describe, as the file the kit sends plus the import that
    creates or replaces it (needs the alpha component: `gcloud components install alpha`)."""
    f = params.frontend
    body = {
        "description": owner_description(params.stack),
        "profile": f.ssl_profile,
        "minTlsVersion": f.min_tls_version,
    }
    source = paths.write_manifest(params.project, params.stack, f"sslpolicy-{name}.yaml", body)
    return (
        f"gcloud alpha compute ssl-policies import {name} --source={shlex.quote(str(source))} "
        f"--global --project={params.project}"
    )


@dataclass
class FrontendStatus:
    ip: str
    certificate_status: str
    domains: list[str]

    def dns_records(self) -> list[dict[str, str]]:
        return [{"name": d, "type": "A", "value": self.ip} for d in self.domains]


def frontend_status(clients: Clients, params: Params) -> FrontendStatus:
    f = params.frontend
    address = clients.compute.addresses.get(project=clients.project, address=f.address, retry=clients.retry)
    cert = clients.compute.ssl_certificates.get(
        project=clients.project, ssl_certificate=f.certificate, retry=clients.retry
    )
    return FrontendStatus(address.address, cert.managed.status, list(cert.managed.domains))
