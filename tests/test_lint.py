"""Certificate lint against the demo PKI: each broken kind gives its documented outcome, valid ones pass."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtlskit.config.params import ParamsFile
from mtlskit.pki import certs, lint


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


def _files(role: str, field: str, paths: list[Path]) -> list[ParamsFile]:
    return [ParamsFile(f"{field}[{i}]", p, role) for i, p in enumerate(paths)]  # type: ignore[arg-type]


def test_every_demo_certificate_gets_its_documented_outcome(pki: tuple[Path, dict]) -> None:
    """Broken on purpose, so linted directly: loading params would refuse these client certificates."""
    d, manifest = pki
    specs = certs.demo_pki_specs()
    files = (
        _files("trust anchor", "mtls.trust_anchors", [d / "root.pem"])
        + _files(
            "intermediate",
            "mtls.intermediates",
            [d / f"{n}.pem" for n in ["intermediate"] + [f"deep-{i}" for i in range(11)]],
        )
        + _files("allowlisted", "mtls.allowlisted", [d / f"{n}.pem" for n in manifest["allowlisted"]])
        + _files("client", "probe.extra_client_certs", [_bundle(d, s.name, s.chain) for s in specs])
    )
    findings = lint.lint_files(files, horizon_days=30)
    for i, spec in enumerate(specs):
        mine = [f for f in findings if f.field == f"probe.extra_client_certs[{i}]"]
        assert {f.file for f in mine} == {f"{spec.name}.pem"}, spec.name
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
        files = _files("trust anchor", "mtls.trust_anchors", [anchor])
        files += _files("intermediate", "mtls.intermediates", intermediates)
        return [f for f in lint.lint_files(files, 30) if f.outcome == "client_cert_pki_too_large"]

    assert findings(files[:10]) == []
    [finding] = findings(files)
    assert finding.severity == "error" and "11 intermediates" in finding.detail


def test_severities_map_onto_check_statuses_in_one_place() -> None:
    assert [lint.check_status(s) for s in ("ok", "warn", "error")] == ["pass", "warn", "fail"]
    finding = lint.Finding("client", "c.pem", "", "expiry", "warn", "", "expires soon", "renew")
    assert finding.status == "warn"
    assert lint.worst_status([]) == "pass"
    assert (
        lint.worst_status([finding, lint.Finding("client", "c.pem", "", "x", "error", "", "", "")]) == "fail"
    )


def test_unreadable_files_are_described_without_quoting_them(tmp_path: Path) -> None:
    issued = certs.issue("reader", ca=True, eku=certs.CLIENT_AUTH)
    _, key = certs.write_issued(tmp_path, "reader", issued)
    key_text = key.read_bytes()
    der = issued.cert.public_bytes(serialization.Encoding.DER)
    for data, words in [
        (b"", "empty"),
        (der, "DER (binary) certificate"),
        (key_text, "holds a private key"),
        (certs.pem(issued.cert).encode() + key_text, "holds a private key"),
        (
            b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            "CERTIFICATE REQUEST",
        ),
        (b"hello", "no -----BEGIN CERTIFICATE----- block"),
    ]:
        problem = lint.unreadable_certificate(data)
        assert problem is not None and words in problem[0], (words, problem)
        assert "PRIVATE KEY" not in " ".join(problem) and key_text[40:80].decode() not in " ".join(problem)
    assert lint.unreadable_certificate(certs.pem(issued.cert).encode()) is None
    assert lint.unreadable_key(key, tmp_path / "reader.pem") is None
    assert "certificate, not a private key" in (lint.unreadable_key(tmp_path / "reader.pem") or "")


def test_a_trust_config_entry_holds_one_certificate(tmp_path: Path) -> None:
    a = certs.issue("a", ca=True, eku=certs.CLIENT_AUTH)
    b = certs.issue("b", ca=True, eku=certs.CLIENT_AUTH)
    both = tmp_path / "both.pem"
    both.write_text(certs.pem(a.cert) + certs.pem(b.cert))
    [finding] = lint.lint_files(_files("trust anchor", "mtls.trust_anchors", [both]), 30)
    assert (
        finding.severity == "error"
        and finding.field == "mtls.trust_anchors[0]"
        and "2 certificates" in finding.detail
    )


def test_a_key_of_an_unsupported_kind_is_named_not_a_crash(tmp_path: Path) -> None:
    """An EC key on secp112r1: OpenSSL writes it, cryptography refuses its curve."""
    key = tmp_path / "weird.key"
    raw = subprocess.run(
        ["openssl", "ecparam", "-name", "secp112r1", "-genkey", "-noout"], capture_output=True, check=True
    ).stdout
    pkcs8 = subprocess.run(
        ["openssl", "pkcs8", "-topk8", "-nocrypt"], input=raw, capture_output=True, check=True
    ).stdout
    key.write_bytes(pkcs8)
    why = lint.unreadable_key(key) or ""
    assert "cannot use" in why and "1.3.132.0.6" in why
