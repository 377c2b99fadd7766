"""The mTLS custom-header variables and templates (ref §3 of reference/gcp-mtls.md): escapes, size
limits that blank a value and add its `client_cert_*_exceeded_size_limit` error, and no values
without mTLS."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from mtlskit.pki import certs
from mtlskit.rules import dn
from mtlskit.rules import logentry as le
from mtlskit.rules.verdict import Verdict
from mtlskit.sandbox import contract
from mtlskit.sandbox.mtls_headers import expand, log_fields, request_headers, variables


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


def test_log_fields_carry_the_certificate_in_the_documented_words_and_formats() -> None:
    """gcp-mtls.md section 4.2: the `jsonPayload.mtls` fields the impact report reads, whose values
    the report can turn back into the kit's own names (hex fingerprint, issuer DER)."""
    issuer = certs.issue("issuer.test", ca=True)
    leaf = certs.issue("leaf.test", issuer=issuer, eku=certs.CLIENT_AUTH)
    fields = log_fields(variables(True, leaf.cert, [], Verdict(True, False, "client_cert_validation_failed")))
    assert tuple(fields) == le.MTLS_FIELDS
    assert set(le.MTLS_FIELDS) <= contract.LB_MTLS_FIELDS  # every one a documented field
    assert fields[le.CERT_PRESENT] is True and fields[le.CERT_CHAIN_VERIFIED] is False
    assert fields[le.CERT_FINGERPRINT] == le.fingerprint_value(leaf.cert.fingerprint(hashes.SHA256()))
    assert "=" not in str(fields[le.CERT_FINGERPRINT])  # unpadded, as the header variable
    assert dn.text(str(fields[le.CERT_ISSUER_DN])) == issuer.cert.subject.rfc4514_string()
    assert dn.text(str(fields[le.CERT_SUBJECT_DN])) == leaf.cert.subject.rfc4514_string()
    assert fields[le.CERT_SERIAL] == le.serial_value(leaf.cert.serial_number)
    assert le.mtls_path(le.CERT_ISSUER_DN) == "jsonPayload.mtls.clientCertIssuerDn"
    missing = log_fields(variables(True, None, [], Verdict(False, False, le.NOT_PROVIDED)))
    assert missing[le.CERT_PRESENT] is False and missing[le.CERT_ISSUER_DN] == ""
