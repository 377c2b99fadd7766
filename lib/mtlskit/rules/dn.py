"""Distinguished names as the load balancer writes them (the `client_cert_issuer_dn` and
`client_cert_subject_dn` header variables, and `jsonPayload.mtls.clientCertIssuerDn` /
`clientCertSubjectDn` in a log entry): Base64 of the DER-encoded Name, and back to RFC 4514 text.

The writer (the sandbox's data plane, the synthetic logs) and the readers (the impact report, which
compares a client's issuer with the trust config's anchors) must agree on one form; comparing the
RFC 4514 text of the same `x509.Name` is what `change.state.TrustedCert.subject` holds. `cryptography`
encodes a Name but has no public decoder for a bare one, hence the few lines of DER below.
"""

from __future__ import annotations

import base64
import binascii

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

_SEQUENCE, _SET, _OID = 0x30, 0x31, 0x06
_TEXT = {12: "utf-8", 19: "ascii", 22: "ascii", 20: "latin-1", 30: "utf-16-be", 28: "utf-32-be"}


def field(name: x509.Name) -> str:
    """A Name as the load balancer logs it: Base64 of its DER bytes (padded, as the header is)."""
    return base64.b64encode(name.public_bytes()).decode()


def text(value: str | None) -> str:
    """A logged DN as RFC 4514 text: decoded when it is Base64 DER, else the value itself (a log
    that already writes text), empty for nothing."""
    if not value:
        return ""
    try:
        return decode(base64.b64decode(value, validate=True)).rfc4514_string()
    except (binascii.Error, ValueError):
        return value


def decode(der: bytes) -> x509.Name:
    """A DER Name (SEQUENCE of SET of SEQUENCE {OID, string}); ValueError when it is not one."""
    tag, body, rest = _tlv(der)
    if tag != _SEQUENCE or rest:
        raise ValueError("not a DER Name")
    rdns = []
    while body:
        tag, rdn, body = _tlv(body)
        if tag != _SET:
            raise ValueError("not a DER Name")
        attributes = []
        while rdn:
            tag, pair, rdn = _tlv(rdn)
            oid_tag, oid, value = _tlv(pair)
            if tag != _SEQUENCE or oid_tag != _OID:
                raise ValueError("not a DER Name")
            string_tag, raw, tail = _tlv(value)
            if tail or string_tag not in _TEXT:
                raise ValueError("not a DER Name")
            attributes.append(x509.NameAttribute(ObjectIdentifier(_oid(oid)), raw.decode(_TEXT[string_tag])))
        rdns.append(x509.RelativeDistinguishedName(attributes))
    return x509.Name(rdns)


def _tlv(data: bytes) -> tuple[int, bytes, bytes]:
    if len(data) < 2:
        raise ValueError("truncated DER")
    tag, length, at = data[0], data[1], 2
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= 4 or len(data) < 2 + count:
            raise ValueError("bad DER length")
        length, at = int.from_bytes(data[2 : 2 + count], "big"), 2 + count
    if len(data) < at + length:
        raise ValueError("truncated DER")
    return tag, data[at : at + length], data[at + length :]


def _oid(raw: bytes) -> str:
    if not raw:
        raise ValueError("empty OID")
    arcs, value = [], 0
    for byte in raw:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(map(str, [first, arcs[0] - 40 * first, *arcs[1:]]))
