"""A trust state applied in place: the trust config PATCHed with an update mask, the server TLS
policy's mode updated, the policy attached to or detached from the proxy.

Operators' recurring trouble with client-CA changes is an update that replaces what it should add
to (a trust config deleted and made again loses its allowlist and, for minutes, every client). So a
change here never deletes or creates: it refuses when a resource it patches is missing or is not the
stack's, and each PATCH carries the trust config's etag, so a change made by someone else since it
was read is refused rather than overwritten. The plan is a `build.plan.Change` per resource, as in
every step, plus a readable diff of the certificates (by subject and SHA-256) and of the mode.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import field_mask_pb2

from mtlskit.build import frontend, trust
from mtlskit.build.plan import Change
from mtlskit.change.state import TrustState, live_state, require_split
from mtlskit.cloud import ownership
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core.errors import ChangeRefused

PROXY = "TargetHttpsProxy"


def trust_config_body(params: Params, state: TrustState) -> dict[str, Any]:
    """The trust config holding the state's certificates, as 30_trust would write it."""

    def pems(role: str) -> list[str]:
        return [c.pem for c in state.certs if c.role == role]

    return trust.trust_config_body(params, pems("anchor"), pems("intermediate"), pems("allowlisted"))


def _missing(what: str, name: str, notebook: str) -> ChangeRefused:
    return ChangeRefused(
        f"{what} {name} does not exist: a day-2 change patches it in place and never creates it; "
        f"run {notebook} with apply=True first"
    )


def _trust_config_change(clients: Clients, params: Params, live: TrustState, target: TrustState) -> Change:
    name = trust.trust_config_name(clients, params)
    current = trust.TRUST_CONFIG.get(clients, name)
    if current is None:
        raise _missing("trust config", params.mtls.trust_config, "30_trust")
    if not ownership.owns_labelled(current.labels, params.stack):
        raise ChangeRefused(
            f"trust config {params.mtls.trust_config} does not carry stack {params.stack}'s labels: the "
            "kit changes only what it made; check mtls.trust_config and stack in the params"
        )
    desired = trust_config_body(params, target)
    fields = [
        f
        for f, roles in (
            ("trust_stores", ("anchor", "intermediate")),
            ("allowlisted_certificates", ("allowlisted",)),
        )
        if any({c.key for c in live.of_role(r)} != {c.key for c in target.of_role(r)} for r in roles)  # type: ignore[arg-type]
    ]
    if not fields:
        return Change(trust.TRUST_CONFIG.name, params.mtls.trust_config, "no change", current=current)
    command = trust.import_command(params, trust.TRUST_CONFIG, desired, exists=True)
    # The etag read now: a trust config changed by someone else since is refused, not overwritten.
    return Change(
        trust.TRUST_CONFIG.name,
        params.mtls.trust_config,
        "update",
        fields,
        command,
        {**desired, "etag": current.etag},
        current,
    )


def _policy_change(clients: Clients, params: Params, live: TrustState, target: TrustState) -> Change:
    name = trust.policy_name(clients, params)
    current = trust.SERVER_TLS_POLICY.get(clients, name)
    if current is None:
        raise _missing("server TLS policy", params.mtls.server_tls_policy, "30_trust")
    if target.mode is None or target.mode == live.mode:
        return Change(
            trust.SERVER_TLS_POLICY.name, params.mtls.server_tls_policy, "no change", current=current
        )
    desired = trust.desired_policy(clients, params)
    desired["mtls_policy"]["client_validation_mode"] = target.mode
    command = trust.import_command(params, trust.SERVER_TLS_POLICY, desired, exists=True)
    return Change(
        trust.SERVER_TLS_POLICY.name,
        params.mtls.server_tls_policy,
        "update",
        ["mtls_policy.client_validation_mode"],
        command,
        desired,
        current,
    )


def proxy_command(params: Params, attach: bool) -> str:
    flag = f"--server-tls-policy={params.mtls.server_tls_policy}" if attach else "--clear-server-tls-policy"
    return (
        f"gcloud compute target-https-proxies update {params.frontend.target_proxy} {flag} "
        f"--global --project={params.project}"
    )


def _proxy_change(clients: Clients, params: Params, live: TrustState, target: TrustState) -> Change:
    kind = frontend.KINDS[PROXY]
    current = kind.get(clients, params.frontend.target_proxy)
    if current is None:
        raise _missing("target HTTPS proxy", params.frontend.target_proxy, "40_frontend")
    if target.attached == live.attached:
        return Change(PROXY, params.frontend.target_proxy, "no change", current=current)
    reference = trust.policy_reference(clients, params) if target.attached else ""
    return Change(
        PROXY,
        params.frontend.target_proxy,
        "update",
        ["server_tls_policy"],
        proxy_command(params, target.attached),
        {"server_tls_policy": reference},
        current,
    )


def plan_state(clients: Clients, params: Params, target: TrustState) -> list[Change]:
    """What moving the live state to `target` updates, resource by resource, in the order it is
    applied (the trust config before the policy that names it, the proxy last)."""
    require_split(params)
    live = live_state(clients, params)
    return [
        _trust_config_change(clients, params, live, target),
        _policy_change(clients, params, live, target),
        _proxy_change(clients, params, live, target),
    ]


def apply_state(clients: Clients, params: Params, target: TrustState) -> list[Change]:
    """Plan from what exists now and apply it in place, waiting for each operation; returns the
    plan it applied. A second call with the same target plans "no change" and sends nothing."""
    ownership.may_apply(params, apply=True)
    changes = plan_state(clients, params, target)
    trust.apply_trust(clients, params, [c for c in changes if c.kind == trust.TRUST_CONFIG.name])
    for c in changes:
        if c.kind == trust.SERVER_TLS_POLICY.name and c.action == "update":
            _patch_mode(clients, params, c)
    frontend.apply_frontend(clients, params, [c for c in changes if c.kind == PROXY])
    return changes


def _patch_mode(clients: Clients, params: Params, change: Change) -> None:
    """The policy's mode alone, by an update mask naming it: whatever else the policy holds (its
    trust config, labels someone added) stays as it is."""
    kind = trust.SERVER_TLS_POLICY
    message = kind.message(change.desired)
    message.name = kind.full_name(clients, params)
    mask = field_mask_pb2.FieldMask(paths=change.fields)
    op = clients.call(kind.method(clients, "update"), server_tls_policy=message, update_mask=mask)
    clients.wait(op, f"update {kind.name} {change.name}")


def diff_rows(before: TrustState, after: TrustState) -> list[dict[str, str]]:
    """The change as people read it: each certificate added, removed or kept (by role, subject and
    SHA-256), then the mode and the proxy's policy when they change."""
    old, new = before.cert_keys(), after.cert_keys()
    rows = []
    for cert in TrustState((*before.certs, *after.certs)).certs:
        change = "keep" if cert.key in old and cert.key in new else ("add" if cert.key in new else "remove")
        rows.append(
            {
                "change": change,
                "role": cert.role,
                "subject": cert.subject,
                "sha256": cert.sha256,
                "not after": f"{cert.not_after:%Y-%m-%d}",
            }
        )
    if before.mode != after.mode and after.mode is not None:
        rows.append(
            {"change": "mode", "role": "server TLS policy", "subject": f"{before.mode} -> {after.mode}"}
        )
    if before.attached != after.attached:
        how = "attach the server TLS policy" if after.attached else "detach the server TLS policy"
        rows.append({"change": "proxy", "role": "target HTTPS proxy", "subject": how})
    return rows
