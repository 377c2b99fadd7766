"""change.state: trust states from PEM, params and the APIs; compared, judged and round-tripped."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtlskit.change import apply, state
from mtlskit.change.state import TrustedCert, TrustState
from mtlskit.cloud.clients import Clients
from mtlskit.core.errors import ChangeRefused
from mtlskit.pki import certs
from mtlskit.rules import verdict
from tests.conftest import sandbox_params

ROOT = certs.issue("state test root", ca=True, eku=certs.CLIENT_AUTH)
INTER = certs.issue("state test intermediate", issuer=ROOT, ca=True, eku=certs.CLIENT_AUTH)
LEAF = certs.issue("leaf.state.test", issuer=INTER, eku=certs.CLIENT_AUTH)
OTHER = certs.issue("state test other root", ca=True, eku=certs.CLIENT_AUTH)


def _cert(role: state.Role, issued: certs.Issued) -> TrustedCert:
    return TrustedCert.from_pem(role, certs.pem(issued.cert))


def test_trusted_cert_names_its_certificate_by_the_sha256_of_its_der() -> None:
    c = _cert("anchor", ROOT)
    assert c.sha256 == ROOT.cert.fingerprint(certs.hashes.SHA256()).hex()
    assert c.sha256 == c.sha256.lower() and len(c.sha256) == 64
    assert "state test root" in c.subject and c.subject == c.issuer
    assert c.not_after == ROOT.cert.not_valid_after_utc
    assert TrustedCert.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="role 'root' is not one of anchor, intermediate, allowlisted"):
        TrustedCert.from_pem("root", c.pem)  # type: ignore[arg-type]


def test_states_with_the_same_certificates_in_another_order_are_equal() -> None:
    a, i, o = _cert("anchor", ROOT), _cert("intermediate", INTER), _cert("anchor", OTHER)
    one = TrustState((a, i, o), state.REJECT, True)
    two = TrustState((i, o, a, a), state.REJECT, True)
    assert one == two and one.fingerprint() == two.fingerprint()
    assert one.of_role("anchor") == tuple(sorted((a, o), key=lambda c: c.sha256))
    assert TrustState((a, i), state.REJECT, True).fingerprint() != one.fingerprint()
    # the same certificate in another role is another trust config
    assert TrustState((_cert("allowlisted", ROOT), i)).fingerprint() != TrustState((a, i)).fingerprint()


def test_state_round_trips_through_a_json_safe_dict() -> None:
    import json

    s = TrustState((_cert("anchor", ROOT), _cert("intermediate", INTER)), state.ALLOW, False)
    data = json.loads(json.dumps(s.to_dict()))
    assert data["fingerprint"] == s.fingerprint()
    assert TrustState.from_dict(data) == s


def test_enforcing_needs_reject_mode_and_the_policy_attached() -> None:
    assert TrustState((), state.REJECT, True).enforcing
    assert not TrustState((), state.REJECT, False).enforcing
    assert not TrustState((), state.ALLOW, True).enforcing
    assert not TrustState((), None, False).enforcing


def test_material_is_what_the_verdict_rules_judge() -> None:
    s = TrustState((_cert("anchor", ROOT), _cert("intermediate", INTER)), state.REJECT, True)
    assert verdict.judge(LEAF.cert, [], s.material()).ok
    moved = TrustState((_cert("anchor", OTHER),), state.REJECT, True)
    assert verdict.judge(LEAF.cert, [INTER.cert], moved.material()).error == "client_cert_validation_failed"


def test_target_state_reads_the_params_trust_files(tmp_path: Path) -> None:
    certs.ensure_demo_pki(tmp_path / "pki")
    pki = certs.DemoPki.in_state_dir(tmp_path)
    p = sandbox_params(tmp_path, mtls={"allowlisted": [str(pki.cert("allowlisted-client"))]})
    t = state.target_state(p)
    assert [c.role for c in t.certs] == ["anchor", "intermediate", "allowlisted"]
    assert t.of_role("anchor")[0].pem == pki.trust_anchor.read_text()
    assert t.mode == "REJECT_INVALID" and t.attached


@pytest.mark.e2e
def test_live_state_reads_trust_config_policy_and_proxy_through_the_clients(
    clients: Clients, state_dir: Path, unique: str
) -> None:
    from mtlskit.build import trust
    from tests.test_frontend import own_stack

    p = own_stack(state_dir, unique)
    assert state.live_state(clients, p) == TrustState((), None, False)
    trust.apply_trust(clients, p, trust.plan_trust(clients, p))
    live = state.live_state(clients, p)
    assert live.certs == state.target_state(p).certs
    assert live.mode == "REJECT_INVALID" and not live.attached  # no proxy yet
    # A change patches in place and never creates: the missing proxy is named, with the step to run.
    with pytest.raises(
        ChangeRefused, match=f"target HTTPS proxy {p.frontend.target_proxy} does not exist.*40_frontend"
    ):
        apply.plan_state(clients, p, state.target_state(p))
