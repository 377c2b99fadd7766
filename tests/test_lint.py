"""Certificate lint against the demo PKI: each broken kind gives its documented outcome, valid ones pass."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from mtlskit import certs, lint
from mtlskit import params as params_mod


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    d = tmp_path_factory.mktemp("demo-pki")
    return d, certs.generate_demo_pki(d)


def _bundle(d: Path, name: str, chain: list[str]) -> Path:
    """What the client presents: its leaf and the intermediates it sends, as one PEM file."""
    path = d / "bundles" / f"{name}.pem"
    path.parent.mkdir(exist_ok=True)
    path.write_text("".join((d / f"{n}.pem").read_text() for n in [name, *chain]))
    return path


def test_every_demo_certificate_gets_its_documented_outcome(pki: tuple[Path, dict]) -> None:
    d, manifest = pki
    specs = certs.demo_pki_specs()
    params = params_mod.parse(
        {
            "target": "sandbox",
            "project": "mtlskit-sandbox",
            "sandbox": {"state_dir": str(d / "state"), "demo_pki": False},
            "mtls": {
                "trust_anchors": [str(d / "root.pem")],
                "intermediates": [
                    str(d / f"{n}.pem") for n in ["intermediate"] + [f"deep-{i}" for i in range(11)]
                ],
                "allowlisted": [str(d / f"{n}.pem") for n in manifest["allowlisted"]],
            },
            "probe": {"extra_client_certs": [str(_bundle(d, s.name, s.chain)) for s in specs]},
        }
    )
    findings = lint.lint(params)
    for spec in specs:
        mine = [f for f in findings if f.file == f"{spec.name}.pem" and f.role != "trust anchor"]
        assert any(f.rule == "chain" for f in mine), spec.name  # the chain was judged too
        errors = {f.outcome for f in mine if f.severity == "error"}
        if spec.expected == "ok":
            assert not errors, (spec.name, [f.row() for f in mine])
        else:
            assert spec.expected in errors, (spec.name, spec.expected, [f.row() for f in mine])


def test_trust_config_certificates_pass_and_a_near_expiry_warns(pki: tuple[Path, dict]) -> None:
    d, _ = pki
    for role, name in (("trust anchor", "root"), ("intermediate", "intermediate")):
        cert = x509.load_pem_x509_certificate((d / f"{name}.pem").read_bytes())
        assert [f.severity for f in lint.certificate_findings(cert, role, name, 900, horizon_days=30)] == [
            "ok"
        ]
        warned = lint.certificate_findings(cert, role, name, 900, horizon_days=400)
        assert [(f.severity, f.rule) for f in warned] == [("warn", "expiry")]


def test_too_many_reissues_of_one_intermediate_in_the_trust_config(tmp_path: Path) -> None:
    root = certs.issue("lint root", ca=True, eku=certs.CLIENT_AUTH)
    key = certs.new_key()
    files = []
    for i in range(11):
        twin = certs.issue("re-issued CA", issuer=root, key=key, ca=True, eku=certs.CLIENT_AUTH)
        files.append(certs.write_issued(tmp_path, f"twin-{i}", twin)[0])
    anchor = certs.write_issued(tmp_path, "root", root)[0]

    def findings(intermediates: list[Path]) -> list[lint.Finding]:
        params = params_mod.parse(
            {
                "target": "sandbox",
                "project": "mtlskit-sandbox",
                "sandbox": {"state_dir": str(tmp_path / "state"), "demo_pki": False},
                "mtls": {"trust_anchors": [str(anchor)], "intermediates": [str(f) for f in intermediates]},
            }
        )
        return [f for f in lint.lint(params) if f.outcome == "client_cert_pki_too_large"]

    assert findings(files[:10]) == []
    [finding] = findings(files)
    assert finding.severity == "error" and "11 intermediates" in finding.detail
