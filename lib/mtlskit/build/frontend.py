"""The kit's half of the load balancer: address, managed certificate, SSL policy, URL map -> the
Ingress-owned backend service, target HTTPS proxy with the server TLS policy, forwarding rule on 443.

Planned as data first; applied in dependency order with a request id on every insert (a retried
create cannot make a second resource) and a wait on every operation.
"""

from __future__ import annotations

import shlex
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.cloud import compute_v1

from mtlskit.build import trust
from mtlskit.build.backend import BackendService
from mtlskit.build.plan import Change, decide
from mtlskit.cloud import ownership
from mtlskit.cloud.clients import Clients
from mtlskit.config import paths
from mtlskit.config.params import Params
from mtlskit.core.errors import PrerequisiteMissing, SchemeMismatch
from mtlskit.core.poll import poll


@dataclass(frozen=True)
class Inputs:
    """What the desired fields and printed commands of a frontend resource are computed from."""

    params: Params
    backend_service: BackendService | None  # None in the Gateway topology: no URL map of the kit's
    server_tls_policy: str  # the reference a target HTTPS proxy stores

    def link(self, collection: str, name: str) -> str:
        return link(self.params.project, collection, name)

    @property
    def backend_name(self) -> str:
        if self.backend_service is None:
            raise ValueError("the URL map needs the Ingress's backend service (split topology only)")
        return self.backend_service.name


@dataclass(frozen=True)
class Kind:
    """One kind of frontend resource: everything the kit needs to plan, apply, print, read back and
    tear it down. `KINDS` lists them in dependency order; teardown walks it backwards."""

    name: str  # as in plans and checks: "UrlMap"
    collection: str  # REST collection, as in links: "urlMaps"
    gcloud_group: str  # `gcloud compute <group>`: "url-maps"
    client: str  # attribute of `ComputeClients`
    name_arg: str  # the flattened name argument of get/patch/delete: "url_map"
    proto: Any  # the compute_v1 message
    insert_request: Any  # the typed insert request (the flattened insert has no request_id)
    param: str  # the `params.frontend` field holding the resource's name
    desired: Callable[[Inputs], dict[str, Any]]  # fields the kit sets (python names of compute_v1)
    create_flags: Callable[[Inputs], str]  # flags of `gcloud compute <group> create`
    # `gcloud compute <group>` arguments that change an existing resource in place; None when the
    # resource cannot change in place (the kit then refuses to touch it).
    update_args: Callable[[Inputs, str], str] | None = None

    @property
    def resource_arg(self) -> str:
        return f"{self.name_arg}_resource"

    @property
    def patchable(self) -> bool:
        return self.update_args is not None

    def resource_name(self, params: Params) -> str:
        return str(getattr(params.frontend, self.param))

    def get(self, clients: Clients, name: str) -> Any:
        """The resource as Compute has it, or None."""
        return clients.find(
            getattr(clients.compute, self.client).get, project=clients.project, **{self.name_arg: name}
        )

    def delete(self, clients: Clients, name: str) -> Any:
        """Start the deletion; returns the operation to wait for."""
        return clients.call(
            getattr(clients.compute, self.client).delete, project=clients.project, **{self.name_arg: name}
        )


def link(project: str, collection: str, name: str) -> str:
    return f"projects/{project}/global/{collection}/{name}"


def _min_tls_flag(i: Inputs) -> str:
    return i.params.frontend.min_tls_version.removeprefix("TLS_").replace("_", ".")


def _ssl_policy_flags(i: Inputs) -> str:
    return f"--profile={i.params.frontend.ssl_profile} --min-tls-version={_min_tls_flag(i)}"


def _proxy_flags(i: Inputs) -> str:
    f = i.params.frontend
    return (
        f"--url-map={f.url_map} --ssl-certificates={f.certificate} --ssl-policy={f.ssl_policy} "
        f"--server-tls-policy={i.params.mtls.server_tls_policy}"
    )


def _forwarding_rule(i: Inputs) -> dict[str, Any]:
    f = i.params.frontend
    return {
        "I_p_address": i.link("addresses", f.address),
        "I_p_protocol": "TCP",
        "port_range": "443-443",
        "target": i.link("targetHttpsProxies", f.target_proxy),
        "load_balancing_scheme": f.load_balancing_scheme,
        "network_tier": "PREMIUM",
    }


def _proxy(i: Inputs) -> dict[str, Any]:
    f = i.params.frontend
    return {
        "url_map": i.link("urlMaps", f.url_map),
        "ssl_certificates": [i.link("sslCertificates", f.certificate)],
        "ssl_policy": i.link("sslPolicies", f.ssl_policy),
        "server_tls_policy": i.server_tls_policy,
    }


_ALL = (
    Kind(
        "Address", "addresses", "addresses", "addresses", "address",
        compute_v1.Address, compute_v1.InsertGlobalAddressRequest, "address",
        desired=lambda i: {"ip_version": "IPV4", "address_type": "EXTERNAL"},
        create_flags=lambda i: "--ip-version=IPV4",
    ),
    Kind(
        "SslCertificate", "sslCertificates", "ssl-certificates", "ssl_certificates", "ssl_certificate",
        compute_v1.SslCertificate, compute_v1.InsertSslCertificateRequest, "certificate",
        desired=lambda i: {
            "type_": "MANAGED",
            "managed": compute_v1.SslCertificateManagedSslCertificate(domains=i.params.frontend.domains),
        },
        create_flags=lambda i: f"--domains={','.join(i.params.frontend.domains)}",
    ),
    Kind(
        "SslPolicy", "sslPolicies", "ssl-policies", "ssl_policies", "ssl_policy",
        compute_v1.SslPolicy, compute_v1.InsertSslPolicyRequest, "ssl_policy",
        desired=lambda i: {
            "profile": i.params.frontend.ssl_profile,
            "min_tls_version": i.params.frontend.min_tls_version,
        },
        create_flags=_ssl_policy_flags,
        update_args=lambda i, name: f"update {name} {_ssl_policy_flags(i)}",
    ),
    Kind(
        "UrlMap", "urlMaps", "url-maps", "url_maps", "url_map",
        compute_v1.UrlMap, compute_v1.InsertUrlMapRequest, "url_map",
        desired=lambda i: {"default_service": i.link("backendServices", i.backend_name)},
        create_flags=lambda i: f"--default-service={i.backend_name}",
        update_args=lambda i, name: f"set-default-service {name} --default-service={i.backend_name}",
    ),
    Kind(
        "TargetHttpsProxy", "targetHttpsProxies", "target-https-proxies", "target_https_proxies",
        "target_https_proxy", compute_v1.TargetHttpsProxy, compute_v1.InsertTargetHttpsProxyRequest,
        "target_proxy",
        desired=_proxy,
        create_flags=_proxy_flags,
        update_args=lambda i, name: f"update {name} {_proxy_flags(i)}",
    ),
    Kind(
        "ForwardingRule", "forwardingRules", "forwarding-rules", "forwarding_rules", "forwarding_rule",
        compute_v1.ForwardingRule, compute_v1.InsertGlobalForwardingRuleRequest, "forwarding_rule",
        desired=_forwarding_rule,
        create_flags=lambda i: (
            f"--load-balancing-scheme={i.params.frontend.load_balancing_scheme} "
            f"--address={i.params.frontend.address} --target-https-proxy={i.params.frontend.target_proxy} "
            "--ports=443"
        ),
    ),
)  # fmt: skip

# The registry, in the order the resources must be created (each refers only to earlier ones).
KINDS: dict[str, Kind] = {k.name: k for k in _ALL}


def resource_names(params: Params) -> dict[str, str]:
    """The frontend resources' names by kind: what the kit builds and what teardown may remove."""
    return {k.name: k.resource_name(params) for k in KINDS.values()}


def _inputs(clients: Clients, params: Params, bs: BackendService) -> Inputs:
    return Inputs(params, bs, trust.policy_reference(clients, params))


def desired_frontend(clients: Clients, params: Params, bs: BackendService) -> dict[str, dict[str, Any]]:
    """Each frontend resource's fields by kind, every one carrying the stack's ownership marker."""
    i = _inputs(clients, params, bs)
    description = ownership.compute_description(params.stack)
    return {k.name: {"description": description, **k.desired(i)} for k in KINDS.values()}


def _comparable(value: Any) -> Any:
    """Compute answers with full URLs and repeated-field wrappers; compare relative links and plain lists."""
    if isinstance(value, str):
        return "projects/" + value.split("/projects/", 1)[1] if "/projects/" in value else value
    if isinstance(value, list | tuple) or type(value).__name__.startswith("Repeated"):
        return [_comparable(v) for v in value]
    return value


def _differences(desired: dict[str, Any], current: Any, clients: Clients) -> list[str]:
    """The fields of `desired` that `current` does not hold, compared as Compute stores them."""
    diff = []
    for attr, want in desired.items():
        have = getattr(current, attr)
        if attr == "I_p_address":  # the rule stores the IP; the kit names the address resource
            address = KINDS["Address"].get(clients, want.rsplit("/", 1)[-1])
            want = address.address if address is not None else want
        if attr == "managed":
            have, want = list(have.domains), list(want.domains)
        if attr == "port_range":  # "443" and "443-443" are the same range
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
    """Each frontend resource: create, update, or no change, from what Compute has now."""
    check_scheme(params, bs)
    if (
        clients.find(clients.network_security.get_server_tls_policy, name=trust.policy_name(clients, params))
        is None
    ):
        raise PrerequisiteMissing(
            f"server TLS policy {params.mtls.server_tls_policy} does not exist: run notebook "
            "30_trust with apply=True first"
        )
    return plan_kinds(clients, params, list(KINDS), _inputs(clients, params, bs))


def plan_kinds(clients: Clients, params: Params, kinds: list[str], inputs: Inputs) -> list[Change]:
    """Create, update or no change for the named kinds, from what Compute has now. The Gateway
    topology plans only the kinds the kit still owns there (`gateway_kinds`)."""
    description = ownership.compute_description(params.stack)
    changes = []
    for kind_name in kinds:
        kind = KINDS[kind_name]
        desired = {"description": description, **kind.desired(inputs)}
        name = kind.resource_name(params)
        current = kind.get(clients, name)
        diff = None if current is None else _differences(desired, current, clients)
        command = gcloud(kind_name, name, params, inputs.backend_service, current is not None)
        changes.append(decide(kind_name, name, desired, current, command, diff))
    return changes


def gateway_kinds(params: Params) -> list[str]:
    """The Compute resources the kit itself creates in the Gateway topology, in creation order: the
    SSL policy (named by the GCPGatewayPolicy), the managed certificate when the listener takes a
    pre-shared certificate, and the address when the Gateway takes a named one. The controller
    builds the rest (URL map, proxy, forwarding rule, trust config, server TLS policy)."""
    kinds = ["SslPolicy"]
    if params.gateway.certificate == "pre_shared":
        kinds.insert(0, "SslCertificate")
    if params.gateway.address == "named_address":
        kinds.insert(0, "Address")
    return kinds


def kit_kinds(params: Params) -> list[Kind]:
    """The Compute kinds the kit creates for the params' topology (what permissions, quotas and
    teardown count)."""
    if params.topology == "gateway":
        return [KINDS[k] for k in gateway_kinds(params)]
    return list(KINDS.values())


def apply_frontend(
    clients: Clients, params: Params, changes: list[Change], bs: BackendService | None = None
) -> list[Change]:
    """Execute a plan from `plan_frontend` in dependency order, waiting for each operation (`bs` is
    accepted so planner and applier take the same arguments)."""
    ownership.may_apply(params, apply=True)
    order = list(KINDS)
    for c in sorted(changes, key=lambda c: order.index(c.kind)):
        if c.action == "no change":
            continue
        kind = KINDS[c.kind]
        client = getattr(clients.compute, kind.client)
        if c.action == "create":
            request = kind.insert_request(
                project=clients.project,
                request_id=str(uuid.uuid4()),  # a retried insert cannot make a second resource
                **{kind.resource_arg: kind.proto(name=c.name, **c.desired)},
            )
            op = clients.call(client.insert, request=request)
        elif kind.patchable:
            body = kind.proto(
                name=c.name, fingerprint=c.current.fingerprint, **{f: c.desired[f] for f in c.fields}
            )
            op = clients.call(
                client.patch, project=clients.project, **{kind.name_arg: c.name, kind.resource_arg: body}
            )
        else:
            raise ValueError(
                f"{c.kind} {c.name}: {', '.join(c.fields)} cannot change in place; choose a new name "
                "in the params or run 90_teardown first"
            )
        clients.wait(op, f"{c.action} {c.kind} {c.name}")
    return changes


def gcloud(kind: str, name: str, params: Params, bs: BackendService | None, exists: bool = False) -> str:
    """The `gcloud compute` command that does what the kit's plan row does.

    A create carries the kit's ownership description, so a resource made by hand from this command
    is still one teardown recognises. For a resource that `exists`, patchable kinds print their
    update command. The others cannot change in place and the kit refuses to touch them (the
    resource may not even be the kit's: a missing ownership marker shows up as a changed
    description), so the row offers the safe first step, `describe`, never a delete.
    """
    f, spec = params.frontend, KINDS[kind]
    scope = f"--global --project={params.project}"
    if kind == "SslPolicy" and not _ga_flags_express(f.ssl_profile, f.min_tls_version):
        return _ssl_policy_import(name, params)
    # the reference is not part of any printed command; the flags name the policy by its short name
    i = Inputs(params, bs, server_tls_policy="")
    prefix = f"gcloud compute {spec.gcloud_group}"
    if exists and spec.update_args is not None:
        return f"{prefix} {spec.update_args(i, name)} {scope}"
    if exists:
        return f"{prefix} describe {name} {scope}"
    description = shlex.quote(ownership.compute_description(params.stack))
    return f"{prefix} create {name} {spec.create_flags(i)} --description={description} {scope}"


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
        "description": ownership.compute_description(params.stack),
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
    """The address and the certificate's status, for the DNS records the reader must create; raises
    `errors.NotFound` until the frontend is built."""
    f = params.frontend
    address = clients.call(clients.compute.addresses.get, project=clients.project, address=f.address)
    cert = clients.call(
        clients.compute.ssl_certificates.get, project=clients.project, ssl_certificate=f.certificate
    )
    return FrontendStatus(address.address, cert.managed.status, list(cert.managed.domains))


# Google keeps a managed certificate PROVISIONING until every domain's A record points at the address;
# once DNS is right that takes up to an hour. A notebook waits a few minutes and then says why.
CERTIFICATE_TIMEOUT_SECONDS = 300.0


def certificate_timeout(params: Params) -> float:
    """How long a reader waits: the sandbox's own delay plus a margin, or a few minutes on Google Cloud."""
    if params.target == "sandbox":
        return params.sandbox.managed_cert_delay_seconds + 30.0
    return CERTIFICATE_TIMEOUT_SECONDS


def certificate_status(clients: Clients, params: Params) -> str:
    """PROVISIONING, ACTIVE, ... for a managed certificate; SELF_MANAGED or MISSING otherwise."""
    cert = KINDS["SslCertificate"].get(clients, params.frontend.certificate)
    if cert is None:
        return "MISSING"
    return str(cert.managed.status) if cert.type_ == "MANAGED" else "SELF_MANAGED"


def wait_for_certificate(
    clients: Clients,
    params: Params,
    timeout: float,
    on_progress: Callable[[str, float], None] | None = None,
    poll_seconds: float = 2.0,
) -> str:
    """The managed certificate's status once it has left PROVISIONING, or PROVISIONING after `timeout`.

    Only PROVISIONING is worth waiting for: ACTIVE is done, and the FAILED states need DNS or a new
    certificate, which no wait brings. A self-managed certificate is SELF_MANAGED, an absent one MISSING.
    `on_progress(status, elapsed)` is called after each read.
    """
    return poll(
        lambda: certificate_status(clients, params),
        lambda status: status != "PROVISIONING",
        timeout,
        every=poll_seconds,
        on_read=on_progress,
    ).value
