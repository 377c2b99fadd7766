"""The load balancer's rules that the demo PKI does not exercise, and the header formatting rules."""

from __future__ import annotations

import datetime as dt
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from mtlskit import certs
from mtlskit.rules.verdict import TrustMaterial, Verdict, judge
from mtlskit.sandbox.mtls_headers import expand, request_headers, variables


def _name_constrained_ca(root: certs.Issued, count: int) -> certs.Issued:
    key = certs.new_key()
    subtrees = [x509.IPAddress(ipaddress.ip_network(f"10.{i}.0.0/16")) for i in range(count)]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"constrained {count}")]))
        .issuer_name(root.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(root.cert.not_valid_before_utc)
        .not_valid_after(root.cert.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(
            x509.NameConstraints(permitted_subtrees=None, excluded_subtrees=subtrees), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root.key.public_key()), critical=False
        )
        .sign(root.key, hashes.SHA256())
    )
    return certs.Issued(cert, key)


def test_name_constraints_limit_is_ten_per_issuer() -> None:
    root = certs.issue("nc root", ca=True, eku=certs.CLIENT_AUTH)
    for count, expected in ((10, ""), (11, "client_cert_chain_max_name_constraints_exceeded")):
        ca = _name_constrained_ca(root, count)
        leaf = certs.issue("leaf.nc.test", issuer=ca, eku=certs.CLIENT_AUTH)
        verdict = judge(leaf.cert, [ca.cert], TrustMaterial(anchors=(root.cert,)))
        assert verdict.error == expected, count


def test_more_than_ten_intermediates_with_one_subject_and_key_is_too_large() -> None:
    root = certs.issue("pki root", ca=True, eku=certs.CLIENT_AUTH)
    key = certs.new_key()
    twins = [certs.issue("twin CA", issuer=root, key=key, ca=True, eku=certs.CLIENT_AUTH) for _ in range(11)]
    leaf = certs.issue("leaf.twins.test", issuer=twins[0], eku=certs.CLIENT_AUTH)
    trust = TrustMaterial(anchors=(root.cert,), intermediates=tuple(t.cert for t in twins))
    assert judge(leaf.cert, [], trust).error == "client_cert_pki_too_large"
    fewer = TrustMaterial(anchors=(root.cert,), intermediates=tuple(t.cert for t in twins[:10]))
    assert judge(leaf.cert, [], fewer).ok


def test_without_a_trust_config_validation_is_not_performed() -> None:
    leaf = certs.issue("leaf.test", eku=certs.CLIENT_AUTH)
    assert judge(leaf.cert, [], None).error == "client_cert_validation_not_performed"
    assert judge(None, [], None).error == "client_cert_not_provided"


def test_template_escapes_and_unknown_variables() -> None:
    values = {"client_cert_present": "true"}
    assert expand("{{literal}} {client_cert_present}", values) == "{literal} true"
    assert expand("x{no_such_variable}y", values) == "xy"
    assert expand("present:{client_cert_present} }}", values) == "present:true }"
    assert request_headers(["X-A: {client_cert_present}", "X-B:"], values) == [("X-A", "true"), ("X-B", "")]


def test_oversized_subject_is_blanked_with_its_error() -> None:
    attrs = [
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"unit-{i:02d}-" + "u" * 50) for i in range(10)
    ]
    key = certs.new_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attrs))
        .issuer_name(x509.Name(attrs))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(dt.datetime.now(dt.UTC))
        .not_valid_after(dt.datetime.now(dt.UTC))
        .sign(key, hashes.SHA256())
    )
    v = variables(True, cert, [], Verdict(True, False, "client_cert_validation_failed"))
    assert v["client_cert_subject_dn"] == ""
    assert v["client_cert_error"].split(",") == [
        "client_cert_validation_failed",
        "client_cert_issuer_dn_exceeded_size_limit",
        "client_cert_subject_dn_exceeded_size_limit",
    ]
    assert v["client_cert_serial_number"] == "01"
    assert v["client_cert_leaf"] == ""  # only a validated leaf is forwarded


def test_no_mtls_means_every_variable_is_empty() -> None:
    leaf = certs.issue("leaf.test", eku=certs.CLIENT_AUTH)
    assert set(variables(False, leaf.cert, [], None).values()) == {""}
