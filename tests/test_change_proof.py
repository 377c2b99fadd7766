"""change.proof and change.apply without a load balancer: the proof cases' categories and expected
verdicts for each phase of a rotation, the foreign certificate kept private, and the refusal of a
Gateway-topology params file before anything is called."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mtlskit.change import apply, proof
from mtlskit.change.phases import trust_phases
from mtlskit.change.state import TrustState, target_state
from mtlskit.config import params as params_mod
from mtlskit.config import paths
from mtlskit.config.params import Params
from mtlskit.core.errors import TopologyUnsupported
from mtlskit.pki import certs
from mtlskit.rules.logentry import NOT_PROVIDED
from mtlskit.verify import probe

FAILED = "client_cert_validation_failed"


def _moved(name: str, state_dir: Path) -> Params:
    certs.ensure_demo_pki(state_dir / "pki")
    return params_mod.parse(params_mod.sandbox_default(state_dir, paths.repo_root() / "params" / name), name)


@pytest.fixture(scope="module")
def rotation(tmp_path_factory: pytest.TempPathFactory) -> tuple[Params, Params]:
    d = tmp_path_factory.mktemp("proof-pki")
    return _moved("sandbox.yaml", d), _moved("sandbox-rotation.yaml", d)


def test_each_case_has_its_category_and_its_verdict_in_each_phase(rotation: tuple[Params, Params]) -> None:
    old_params, new_params = rotation
    live, target = target_state(old_params), target_state(new_params)
    first, second = trust_phases(live, target)
    cases = {c.name: c for c in proof.proof_cases(new_params, first.before, first.after)}
    assert {n: c.category for n, c in cases.items()} == {
        probe.PROBE_CERTIFICATE: proof.NEW,  # next-client: trusted by the params' target
        "old-ca-client": proof.OLD,
        proof.FOREIGN_CASE: proof.FOREIGN,
        probe.NO_CERTIFICATE: proof.MISSING,
    }
    verdicts = {
        n: (c.expected(live), c.expected(first.after), c.expected(second.after)) for n, c in cases.items()
    }
    assert verdicts == {
        probe.PROBE_CERTIFICATE: (FAILED, "ok", "ok"),
        "old-ca-client": ("ok", "ok", FAILED),
        proof.FOREIGN_CASE: (FAILED, FAILED, FAILED),
        probe.NO_CERTIFICATE: (NOT_PROVIDED, NOT_PROVIDED, NOT_PROVIDED),
    }
    # The wait presents a case the phase changes: the new CA's in phase 1, the old CA's in phase 2.
    assert [n for n, c in cases.items() if c.differs(first.before, first.after)] == [probe.PROBE_CERTIFICATE]
    assert [n for n, c in cases.items() if c.differs(second.before, second.after)] == ["old-ca-client"]


def test_a_mode_or_proxy_change_is_told_apart_by_the_certificates_that_do_not_verify(
    rotation: tuple[Params, Params],
) -> None:
    old_params, _ = rotation
    reject = target_state(old_params)
    allow = TrustState(reject.certs, "ALLOW_INVALID_OR_MISSING_CLIENT_CERT", True)
    detached = TrustState(reject.certs, reject.mode, False)
    cases = {c.name: c for c in proof.proof_cases(old_params, reject, allow)}
    assert cases[probe.NO_CERTIFICATE].differs(reject, allow)
    assert not cases[probe.PROBE_CERTIFICATE].differs(reject, allow)  # accepted either way
    assert cases[proof.FOREIGN_CASE].expected(detached) == "ok"  # no policy: every request is answered


def test_the_foreign_certificate_is_made_once_and_its_key_stays_private() -> None:
    cert, key = proof.foreign_certificate()
    assert proof.foreign_certificate() == (cert, key)
    assert stat.S_IMODE(Path(key).parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(Path(key).stat().st_mode) == 0o600
    assert "PRIVATE KEY" in Path(key).read_text() and "PRIVATE KEY" not in Path(cert).read_text()


def test_a_gateway_topology_is_refused_by_name_before_any_call(tmp_path: Path) -> None:
    gateway = _moved("sandbox-gateway.yaml", tmp_path)
    with pytest.raises(TopologyUnsupported, match="topology gateway: day-2 changes"):
        apply.plan_state(None, gateway, target_state(gateway))  # type: ignore[arg-type]
    with pytest.raises(TopologyUnsupported, match=r"gateway\.ca_configmap"):
        apply.apply_state(None, gateway, target_state(gateway))  # type: ignore[arg-type]
