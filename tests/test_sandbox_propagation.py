"""Which mTLS setting the sandbox's data plane enforces while a change propagates (`sandbox.propagation`),
on a clock the test moves: no sandbox, no waiting. The wire behaviour is in test_sandbox_day2.py."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import serialization

from mtlskit.pki import certs
from mtlskit.rules.verdict import TrustMaterial
from mtlskit.sandbox.propagation import MtlsView, Propagation

REJECT, ALLOW = "REJECT_INVALID", "ALLOW_INVALID_OR_MISSING_CLIENT_CERT"
IP = "127.16.0.1"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def view(mode: str | None, etag: str = "e1") -> MtlsView:
    return MtlsView(mode, None, "policy", "trust" if mode else "", etag if mode else "")


def test_without_a_delay_every_change_is_in_force_at_once() -> None:
    p = Propagation(0.0, Clock())
    for v in (view(REJECT), view(ALLOW), view(None), view(REJECT, "e2")):
        assert p.enforced(IP, v) == v
        assert p.pending(IP) == []


def test_a_change_is_in_force_only_after_the_delay_and_a_new_frontend_at_once() -> None:
    clock = Clock()
    p = Propagation(2.0, clock)
    assert p.enforced(IP, view(REJECT)) == view(REJECT)  # a new frontend is not a change
    assert p.enforced(IP, view(ALLOW)) == view(REJECT)
    assert [c["mode"] for c in p.pending(IP)] == [ALLOW]
    assert p.pending(IP)[0]["applies_in_seconds"] == 2.0
    clock.now += 1.9
    assert p.enforced(IP, view(ALLOW)) == view(REJECT)  # seeing it again does not restart the wait
    clock.now += 0.1
    assert p.enforced(IP, view(ALLOW)) == view(ALLOW)
    assert p.pending(IP) == []


def test_changes_apply_in_the_order_they_were_made() -> None:
    clock = Clock()
    p = Propagation(1.0, clock)
    p.enforced(IP, view(REJECT))
    p.enforced(IP, view(REJECT, "e2"))  # a trust config PATCH
    clock.now += 0.5
    p.enforced(IP, view(None))  # then the policy detached
    assert [c["mode"] for c in p.pending(IP)] == [REJECT, "off"]
    clock.now += 0.5
    assert p.enforced(IP, view(None)) == view(REJECT, "e2")
    clock.now += 0.5
    assert p.enforced(IP, view(None)) == view(None)


def test_a_delay_changed_at_run_time_keeps_when_changes_were_made() -> None:
    clock = Clock()
    p = Propagation(60.0, clock)
    p.enforced(IP, view(REJECT))
    p.enforced(IP, view(ALLOW))
    clock.now += 1.0
    p.set_delay(0.5)
    assert p.enforced(IP, view(ALLOW)) == view(ALLOW)
    with pytest.raises(ValueError, match="propagation_delay_seconds"):
        p.set_delay(-1)


def test_a_frontend_built_again_is_new() -> None:
    p = Propagation(5.0, Clock())
    p.enforced(IP, view(REJECT))
    p.keep_only([])
    assert p.enforced(IP, view(ALLOW)) == view(ALLOW)


def test_status_names_the_certificates_in_force_by_sha256() -> None:
    root = certs.issue("root.test", ca=True)
    described = MtlsView(REJECT, TrustMaterial(anchors=(root.cert,)), "p", "t", "e").describe()
    der = root.cert.public_bytes(serialization.Encoding.DER)
    assert described["anchors"] == [hashlib.sha256(der).hexdigest()]
    assert described["mode"] == REJECT and described["intermediates"] == []
    assert MtlsView(None).describe()["mode"] == "off"


def test_an_update_mask_changes_only_the_fields_it_names_nested_ones_too() -> None:
    """FieldMask semantics of the location APIs' PATCH (the mode alone, keeping the trust config)."""
    from mtlskit.sandbox.locations import _masked

    current = {
        "name": "n",
        "createTime": "t0",
        "description": "d",
        "mtlsPolicy": {
            "clientValidationMode": "ALLOW_INVALID_OR_MISSING_CLIENT_CERT",
            "clientValidationTrustConfig": "tc",
        },
    }
    patch = {"name": "other", "createTime": "t1", "mtlsPolicy": {"clientValidationMode": REJECT}}
    updated = _masked(current, patch, "mtls_policy.client_validation_mode,create_time,description")
    assert updated == {
        "name": "n",
        "createTime": "t0",  # output only: never from the patch
        "mtlsPolicy": {"clientValidationMode": REJECT, "clientValidationTrustConfig": "tc"},
    }  # description named but absent: cleared
    assert current["mtlsPolicy"]["clientValidationMode"] != REJECT  # the stored body is not touched
    assert _masked(current, patch, "mtlsPolicy")["mtlsPolicy"] == {"clientValidationMode": REJECT}
