"""Trust config (Certificate Manager) and server TLS policy (Network Security), planned then applied."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.cloud import certificate_manager_v1 as cm
from google.cloud import network_security_v1 as ns
from google.protobuf import field_mask_pb2, json_format

from mtlskit.build.plan import Change, changed_fields, decide
from mtlskit.cloud import ownership
from mtlskit.cloud.clients import Clients
from mtlskit.config import paths
from mtlskit.config.params import Params


@dataclass(frozen=True)
class TrustKind:
    """One of the two trust resources: where it lives, how it is named, and how to print it.

    Both are global resources of a `projects/*/locations/global` parent with the same method shapes
    (`get_<x>`, `create_<x>(parent, <x>_id, <x>)`, `update_<x>`, `delete_<x>`), so one description
    serves plan, apply and teardown.
    """

    name: str  # as in plans: "TrustConfig"
    service: str  # attribute of `Clients`
    collection: str  # "trustConfigs"
    method_suffix: str  # "trust_config"
    message: Any  # the proto-plus message class
    param: str  # the `params.mtls` field holding the resource's id
    gcloud_group: str  # `gcloud <group>`
    import_file_prefix: str  # the file the printed `import` reads: "<prefix>-<name>.yaml"
    update_mask: tuple[str, ...] = ()  # empty: the update replaces the resource

    def resource_id(self, params: Params) -> str:
        return str(getattr(params.mtls, self.param))

    def full_name(self, clients: Clients, params: Params) -> str:
        return f"{clients.location}/{self.collection}/{self.resource_id(params)}"

    def method(self, clients: Clients, verb: str) -> Any:
        return getattr(getattr(clients, self.service), f"{verb}_{self.method_suffix}")

    def get(self, clients: Clients, full_name: str) -> Any:
        """The resource as the API has it, or None."""
        return clients.find(self.method(clients, "get"), name=full_name)

    def delete(self, clients: Clients, full_name: str) -> Any:
        """Start the deletion; returns the operation to wait for."""
        return clients.call(self.method(clients, "delete"), name=full_name)


TRUST_CONFIG = TrustKind(
    "TrustConfig",
    "certificate_manager",
    "trustConfigs",
    "trust_config",
    cm.TrustConfig,
    "trust_config",
    "certificate-manager trust-configs",
    "trustconfig",
    update_mask=("description", "labels", "trust_stores", "allowlisted_certificates"),
)
SERVER_TLS_POLICY = TrustKind(
    "ServerTlsPolicy",
    "network_security",
    "serverTlsPolicies",
    "server_tls_policy",
    ns.ServerTlsPolicy,
    "server_tls_policy",
    "network-security server-tls-policies",
    "servertlspolicy",
)
# In the order they are created: the policy refers to the trust config.
TRUST_KINDS: dict[str, TrustKind] = {k.name: k for k in (TRUST_CONFIG, SERVER_TLS_POLICY)}


def _pems(files: list[str]) -> list[str]:
    return [Path(f).read_text() for f in files]


def trust_config_name(clients: Clients, params: Params) -> str:
    return TRUST_CONFIG.full_name(clients, params)


def policy_name(clients: Clients, params: Params) -> str:
    return SERVER_TLS_POLICY.full_name(clients, params)


def policy_reference(clients: Clients, params: Params) -> str:
    """The form a target HTTPS proxy stores in `serverTlsPolicy`."""
    return f"//networksecurity.googleapis.com/{policy_name(clients, params)}"


def desired_trust_config(params: Params) -> dict[str, Any]:
    m = params.mtls
    return trust_config_body(params, _pems(m.trust_anchors), _pems(m.intermediates), _pems(m.allowlisted))


def trust_config_body(
    params: Params, anchors: list[str], intermediates: list[str], allowlisted: list[str]
) -> dict[str, Any]:
    """A trust config holding these PEM certificates, with the stack's description and labels: what
    30_trust builds from the params' files and what a day-2 change patches from a trust state."""
    store: dict[str, Any] = {}
    if anchors:
        store["trust_anchors"] = [{"pem_certificate": p} for p in anchors]
    if intermediates:
        store["intermediate_cas"] = [{"pem_certificate": p} for p in intermediates]
    body: dict[str, Any] = {
        "description": f"mTLS trust for {params.stack}",
        "labels": ownership.cloud_labels(params.stack),
    }
    if store:
        body["trust_stores"] = [store]
    if allowlisted:
        body["allowlisted_certificates"] = [{"pem_certificate": p} for p in allowlisted]
    return body


def desired_policy(clients: Clients, params: Params) -> dict[str, Any]:
    mtls: dict[str, Any] = {
        "client_validation_mode": params.mtls.validation_mode,
        "client_validation_trust_config": trust_config_name(clients, params),
    }
    return {
        "description": f"mTLS client validation for {params.stack}",
        "labels": ownership.cloud_labels(params.stack),
        "mtls_policy": mtls,
    }


def _current(clients: Clients, kind: TrustKind, params: Params) -> dict[str, Any] | None:
    message = kind.get(clients, kind.full_name(clients, params))
    if message is None:
        return None
    return type(message).to_dict(message, preserving_proto_field_name=True, use_integers_for_enums=False)


def _trust_config_diff(desired: dict[str, Any], current: dict[str, Any] | None) -> list[str] | None:
    """A list the params no longer name must be removed, which the generic comparison cannot see."""
    if current is None:
        return None
    removed = [k for k in ("trust_stores", "allowlisted_certificates") if k not in desired and current.get(k)]
    return changed_fields(desired, current) + removed


def plan_trust(clients: Clients, params: Params) -> list[Change]:
    """Trust config and server TLS policy: create, update or no change, from what the APIs have."""
    desired = {
        TRUST_CONFIG.name: desired_trust_config(params),
        SERVER_TLS_POLICY.name: desired_policy(clients, params),
    }
    changes = []
    for kind in TRUST_KINDS.values():
        current = _current(clients, kind, params)
        diff = _trust_config_diff(desired[kind.name], current) if kind is TRUST_CONFIG else None
        command = import_command(params, kind, desired[kind.name], exists=current is not None)
        changes.append(
            decide(kind.name, kind.resource_id(params), desired[kind.name], current, command, diff)
        )
    return changes


def apply_trust(clients: Clients, params: Params, changes: list[Change]) -> list[Change]:
    """Execute a plan from `plan_trust`, in its order (trust config first: the policy refers to it)."""
    ownership.may_apply(params, apply=True)
    for c in changes:
        if c.action == "no change":
            continue
        kind = TRUST_KINDS[c.kind]
        message = kind.message(c.desired)
        if c.action == "create":
            op = clients.call(
                kind.method(clients, "create"),
                parent=clients.location,
                **{f"{kind.method_suffix}_id": c.name, kind.method_suffix: message},
            )
        else:
            message.name = kind.full_name(clients, params)
            mask = (
                {"update_mask": field_mask_pb2.FieldMask(paths=list(kind.update_mask))}
                if kind.update_mask
                else {}
            )
            op = clients.call(kind.method(clients, "update"), **{kind.method_suffix: message}, **mask)
        clients.wait(op, f"{c.action} {c.kind} {c.name}")
    return changes


def _import_source(params: Params, kind: str, name: str, message: Any) -> str:
    """Write `message` as the YAML that `gcloud ... import --source` reads; return the file's path.

    The file holds exactly what the kit sends (camelCase API fields, labels included, so a resource
    made by hand is still recognised as the stack's by teardown); trust configs carry certificates
    only, which are public. `import` creates or replaces, so one command serves create and update.
    """
    body = json_format.MessageToDict(type(message).pb(message))
    return shlex.quote(str(paths.write_manifest(params.project, params.stack, f"{kind}-{name}.yaml", body)))


def import_command(params: Params, kind: TrustKind, desired: dict[str, Any], exists: bool = False) -> str:
    """`gcloud ... import`, which creates or replaces, so one command serves create and update. An
    update of a kind whose API requires an update mask (the trust config's PATCH) names the same
    fields the kit's own update sends: without it the API answers "updateMask is required"."""
    name = kind.resource_id(params)
    source = _import_source(params, kind.import_file_prefix, name, kind.message(desired))
    mask = f" --update-mask={','.join(kind.update_mask)}" if exists and kind.update_mask else ""
    return (
        f"gcloud {kind.gcloud_group} import {name} --source={source}{mask} "
        f"--location=global --project={params.project}"
    )
