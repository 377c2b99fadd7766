"""The load balancer's custom request headers: `{variable}` expansion in Google's value formats.

Formats follow the documented variables and values observed on a real load balancer: unpadded
Base64 SHA-256 fingerprint, colon-joined lowercase hex serial, Base64 SANs and DER DNs, RFC 3339
validity, RFC 9440 `:base64:` leaf and chain (only after validation), and the size limits that
blank a value and add a `*_exceeded_size_limit` error.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from mtlskit.rules import dn
from mtlskit.rules import logentry as le
from mtlskit.rules.logentry import fingerprint_value, serial_value
from mtlskit.rules.verdict import Verdict

VARIABLES = (
    "client_cert_present",
    "client_cert_chain_verified",
    "client_cert_error",
    "client_cert_sha256_fingerprint",
    "client_cert_serial_number",
    "client_cert_spiffe_id",
    "client_cert_uri_sans",
    "client_cert_dnsname_sans",
    "client_cert_valid_not_before",
    "client_cert_valid_not_after",
    "client_cert_issuer_dn",
    "client_cert_subject_dn",
    "client_cert_leaf",
    "client_cert_chain",
)
# The request log's `jsonPayload.mtls` fields and the variable whose value each carries.
LOG_FIELDS = {
    le.CERT_PRESENT: "client_cert_present",
    le.CERT_CHAIN_VERIFIED: "client_cert_chain_verified",
    le.CERT_ERROR: "client_cert_error",
    le.CERT_FINGERPRINT: "client_cert_sha256_fingerprint",
    le.CERT_SERIAL: "client_cert_serial_number",
    le.CERT_ISSUER_DN: "client_cert_issuer_dn",
    le.CERT_SUBJECT_DN: "client_cert_subject_dn",
    le.CERT_VALID_START: "client_cert_valid_not_before",
    le.CERT_VALID_END: "client_cert_valid_not_after",
}
LIMITS = {  # bytes; over the limit the value is blank and the error is added
    "serial_number": 50,
    "spiffe_id": 2048,
    "uri_sans": 512,
    "dnsname_sans": 512,
    "issuer_dn": 512,
    "subject_dn": 512,
}
LEAF_LIMIT = 16 * 1024
TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _rfc3339(value: object) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S+00:00")  # type: ignore[attr-defined]


def _sans(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return san.get_values_for_type(x509.DNSName), san.get_values_for_type(x509.UniformResourceIdentifier)


def variables(
    mtls: bool, leaf: x509.Certificate | None, sent: list[x509.Certificate], verdict: Verdict | None
) -> dict[str, str]:
    """Values of every mTLS variable for one connection; all blank when the proxy has no mTLS."""
    if not mtls or verdict is None:
        return dict.fromkeys(VARIABLES, "")
    values = dict.fromkeys(VARIABLES, "")
    errors = [verdict.error] if verdict.error else []
    values["client_cert_present"] = "true" if verdict.present else "false"
    values["client_cert_chain_verified"] = "true" if verdict.verified else "false"
    if leaf is not None:
        dns, uris = _sans(leaf)
        spiffe = [u for u in uris if u.startswith("spiffe://")]
        raw = {
            "serial_number": serial_value(leaf.serial_number),
            "spiffe_id": spiffe[0] if len(spiffe) == 1 else "",
            "uri_sans": ",".join(_b64(u.encode()) for u in uris if u not in spiffe),
            "dnsname_sans": ",".join(_b64(d.encode()) for d in dns),
            "issuer_dn": dn.field(leaf.issuer),
            "subject_dn": dn.field(leaf.subject),
        }
        serial_bytes = (leaf.serial_number.bit_length() + 8) // 8
        for name, value in raw.items():
            size = serial_bytes if name == "serial_number" else len(value.encode())
            if size > LIMITS[name]:
                value = ""
                errors.append(f"client_cert_{name}_exceeded_size_limit")
            values[f"client_cert_{name}"] = value
        values["client_cert_sha256_fingerprint"] = fingerprint_value(leaf.fingerprint(hashes.SHA256()))
        values["client_cert_valid_not_before"] = _rfc3339(leaf.not_valid_before_utc)
        values["client_cert_valid_not_after"] = _rfc3339(leaf.not_valid_after_utc)
        if verdict.verified:
            leaf_der = _der(leaf)
            chain_der = [_der(c) for c in sent]
            if len(leaf_der) > LEAF_LIMIT:
                errors.append("client_cert_validated_leaf_exceeded_size_limit")
            else:
                values["client_cert_leaf"] = f":{_b64(leaf_der)}:"
            if len(leaf_der) + sum(map(len, chain_der)) > LEAF_LIMIT:
                errors.append("client_cert_validated_chain_exceeded_size_limit")
            else:
                values["client_cert_chain"] = ",".join(f":{_b64(d)}:" for d in chain_der)
    values["client_cert_error"] = ",".join(errors)
    return values


def log_fields(values: Mapping[str, str]) -> dict[str, str | bool]:
    """The `jsonPayload.mtls` object of one connection's log entries, from its variables."""
    return {
        name: values[variable] == "true" if name in le.MTLS_BOOLEANS else values[variable]
        for name, variable in LOG_FIELDS.items()
    }


def expand(template: str, values: Mapping[str, str]) -> str:
    """`{{`/`}}` are literal braces; an unknown `{name}` expands to nothing."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "{{":
            return "{"
        if m.group(0) == "}}":
            return "}"
        return values.get(m.group(1), "")

    return TOKEN.sub(sub, template)


def request_headers(custom: list[str], values: Mapping[str, str]) -> list[tuple[str, str]]:
    """The backend service's `customRequestHeaders` ("Name:value"), expanded."""
    out = []
    for item in custom:
        name, _, template = item.partition(":")
        out.append((name.strip(), expand(template.strip(), values)))
    return out
