"""Trust config (Certificate Manager) and server TLS policy (Network Security), planned then applied."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import certificate_manager_v1 as cm
from google.cloud import network_security_v1 as ns
from google.protobuf import field_mask_pb2, json_format

from mtlskit import paths
from mtlskit.clients import Clients
from mtlskit.params import Params
from mtlskit.plan import Change, changed_fields, decide, owner_labels

LRO_TIMEOUT = 600.0


def _pems(files: list[str]) -> list[str]:
    return [Path(f).read_text() for f in files]


def trust_config_name(clients: Clients, params: Params) -> str:
    return f"{clients.location}/trustConfigs/{params.mtls.trust_config}"


def policy_name(clients: Clients, params: Params) -> str:
    return f"{clients.location}/serverTlsPolicies/{params.mtls.server_tls_policy}"


def policy_reference(clients: Clients, params: Params) -> str:
    """The form a target HTTPS proxy stores in `serverTlsPolicy`."""
    return f"//networksecurity.googleapis.com/{policy_name(clients, params)}"


def desired_trust_config(params: Params) -> dict[str, Any]:
    store: dict[str, Any] = {}
    if params.mtls.trust_anchors:
        store["trust_anchors"] = [{"pem_certificate": p} for p in _pems(params.mtls.trust_anchors)]
    if params.mtls.intermediates:
        store["intermediate_cas"] = [{"pem_certificate": p} for p in _pems(params.mtls.intermediates)]
    body: dict[str, Any] = {
        "description": f"mTLS trust for {params.stack}",
        "labels": owner_labels(params.stack),
    }
    if store:
        body["trust_stores"] = [store]
    if params.mtls.allowlisted:
        body["allowlisted_certificates"] = [{"pem_certificate": p} for p in _pems(params.mtls.allowlisted)]
    return body


def desired_policy(clients: Clients, params: Params) -> dict[str, Any]:
    mtls: dict[str, Any] = {
        "client_validation_mode": params.mtls.validation_mode,
        "client_validation_trust_config": trust_config_name(clients, params),
    }
    return {
        "description": f"mTLS client validation for {params.stack}",
        "labels": owner_labels(params.stack),
        "mtls_policy": mtls,
    }


def _current(clients: Clients, getter: Callable[..., Any], name: str) -> dict[str, Any] | None:
    try:
        message = getter(name=name, retry=clients.retry)
    except gexc.NotFound:
        return None
    return type(message).to_dict(message, preserving_proto_field_name=True, use_integers_for_enums=False)


def plan_trust(clients: Clients, params: Params) -> list[Change]:
    tc_desired = desired_trust_config(params)
    tc_current = _current(
        clients, clients.certificate_manager.get_trust_config, trust_config_name(clients, params)
    )
    tc_diff = None
    if tc_current is not None:
        # A list the params no longer name must be removed, which the generic comparison cannot see.
        removed = [
            k
            for k in ("trust_stores", "allowlisted_certificates")
            if k not in tc_desired and tc_current.get(k)
        ]
        tc_diff = changed_fields(tc_desired, tc_current) + removed
    pol_desired = desired_policy(clients, params)
    pol_current = _current(
        clients, clients.network_security.get_server_tls_policy, policy_name(clients, params)
    )
    return [
        decide(
            "TrustConfig",
            params.mtls.trust_config,
            tc_desired,
            tc_current,
            _tc_gcloud(params, tc_desired),
            tc_diff,
        ),
        decide(
            "ServerTlsPolicy",
            params.mtls.server_tls_policy,
            pol_desired,
            pol_current,
            _policy_gcloud(params, pol_desired),
        ),
    ]


def apply_trust(clients: Clients, params: Params, changes: list[Change]) -> list[Change]:
    """Trust config first: the policy refers to it."""
    for c in changes:
        if c.action == "no change":
            continue
        if c.kind == "TrustConfig":
            tc = cm.TrustConfig(c.desired)
            if c.action == "create":
                op = clients.certificate_manager.create_trust_config(
                    parent=clients.location, trust_config_id=c.name, trust_config=tc, retry=clients.retry
                )
            else:
                tc.name = trust_config_name(clients, params)
                mask = field_mask_pb2.FieldMask(
                    paths=["description", "labels", "trust_stores", "allowlisted_certificates"]
                )
                op = clients.certificate_manager.update_trust_config(
                    trust_config=tc, update_mask=mask, retry=clients.retry
                )
            op.result(timeout=LRO_TIMEOUT, retry=clients.retry)
        elif c.kind == "ServerTlsPolicy":
            policy = ns.ServerTlsPolicy(c.desired)
            policy.name = policy_name(clients, params)
            if c.action == "create":
                op = clients.network_security.create_server_tls_policy(
                    parent=clients.location,
                    server_tls_policy_id=c.name,
                    server_tls_policy=policy,
                    retry=clients.retry,
                )
            else:
                op = clients.network_security.update_server_tls_policy(
                    server_tls_policy=policy, retry=clients.retry
                )
            op.result(timeout=LRO_TIMEOUT, retry=clients.retry)
    return changes


def _import_source(params: Params, kind: str, name: str, message: Any) -> str:
    """Write `message` as the YAML that `gcloud ... import --source` reads; return the file's path.

    The file holds exactly what the kit sends (camelCase API fields, labels included, so a resource
    made by hand is still recognised as the stack's by teardown); trust configs carry certificates
    only, which are public. `import` creates or replaces, so one command serves create and update.
    """
    body = json_format.MessageToDict(type(message).pb(message))
    return shlex.quote(str(paths.write_manifest(params.project, params.stack, f"{kind}-{name}.yaml", body)))


def _tc_gcloud(params: Params, desired: dict[str, Any]) -> str:
    name = params.mtls.trust_config
    source = _import_source(params, "trustconfig", name, cm.TrustConfig(desired))
    return (
        f"gcloud certificate-manager trust-configs import {name} --source={source} "
        f"--location=global --project={params.project}"
    )


def _policy_gcloud(params: Params, desired: dict[str, Any]) -> str:
    name = params.mtls.server_tls_policy
    source = _import_source(params, "servertlspolicy", name, ns.ServerTlsPolicy(desired))
    return (
        f"gcloud network-security server-tls-policies import {name} --source={source} "
        f"--location=global --project={params.project}"
    )
