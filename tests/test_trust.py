"""trust: trust config and server TLS policy planned from the params' certificates, applied, re-planned."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtlskit.build import trust
from mtlskit.cloud import ownership
from mtlskit.cloud.clients import Clients
from tests.test_frontend import own_stack


def test_registry_names_both_resources_in_creation_order() -> None:
    assert list(trust.TRUST_KINDS) == ["TrustConfig", "ServerTlsPolicy"]
    for kind in trust.TRUST_KINDS.values():
        assert kind.message.__name__ == kind.name


def test_trust_config_diff_sees_a_list_the_params_dropped() -> None:
    desired = {"description": "d"}
    current = {"description": "d", "allowlisted_certificates": [{"pem_certificate": "x"}]}
    assert trust._trust_config_diff(desired, current) == ["allowlisted_certificates"]
    assert trust._trust_config_diff(desired, {"description": "d"}) == []
    assert trust._trust_config_diff(desired, None) is None


@pytest.mark.e2e
def test_desired_resources_carry_labels_and_the_policy_points_at_the_trust_config(
    clients: Clients, state_dir: Path, unique: str
) -> None:
    p = own_stack(state_dir, unique)
    tc = trust.desired_trust_config(p)
    assert ownership.owns_labelled(tc["labels"], unique)
    assert tc["trust_stores"][0]["trust_anchors"][0]["pem_certificate"].startswith(
        "-----BEGIN CERTIFICATE-----"
    )
    policy = trust.desired_policy(clients, p)
    assert policy["mtls_policy"]["client_validation_trust_config"].endswith(
        f"/trustConfigs/{p.mtls.trust_config}"
    )
    assert unique in p.mtls.trust_config
    assert trust.policy_reference(clients, p).startswith("//networksecurity.googleapis.com/projects/")


@pytest.mark.e2e
def test_apply_then_replan_is_no_change_and_a_mode_change_is_one_update(
    clients: Clients, state_dir: Path, unique: str
) -> None:
    p = own_stack(state_dir, unique)
    first = trust.plan_trust(clients, p)
    assert [(c.kind, c.action) for c in first] == [("TrustConfig", "create"), ("ServerTlsPolicy", "create")]
    trust.apply_trust(clients, p, first)
    assert {c.action for c in trust.plan_trust(clients, p)} == {"no change"}
    allow = p.model_copy(
        update={"mtls": p.mtls.model_copy(update={"validation_mode": "ALLOW_INVALID_OR_MISSING_CLIENT_CERT"})}
    )
    changes = trust.plan_trust(clients, allow)
    assert [(c.kind, c.action) for c in changes] == [
        ("TrustConfig", "no change"),
        ("ServerTlsPolicy", "update"),
    ]
    trust.apply_trust(clients, allow, changes)
    assert {c.action for c in trust.plan_trust(clients, allow)} == {"no change"}
