"""SSL certificates and SSL policies: what the proxy serves and which TLS it allows.

A SELF_MANAGED certificate must parse and match its key; the key is kept internal (`_privateKey`)
for the data plane and never returned. A MANAGED certificate turns ACTIVE after the managed-cert
delay (see `ComputeStore.render`).
"""

from __future__ import annotations

import time
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtlskit.sandbox.compute.resources import ComputeStore, invalid
from mtlskit.sandbox.web import rfc3339


def prepare_ssl_certificate(res: ComputeStore, project: str, body: dict[str, Any]) -> dict[str, Any]:
    kind = body.setdefault("type", "MANAGED" if body.get("managed") else "SELF_MANAGED")
    if kind == "MANAGED":
        domains = (body.get("managed") or {}).get("domains") or []
        if not domains:
            raise invalid(
                "Invalid value for field 'resource.managed.domains': a MANAGED certificate needs "
                "at least one domain."
            )
        if body.get("certificate") or body.get("privateKey"):
            raise invalid("A MANAGED certificate must not carry 'certificate' or 'privateKey'.")
        body["_provisionStart"] = time.time()
        body["managed"] = {"domains": domains}
        return body
    if not body.get("certificate") or not body.get("privateKey"):
        raise invalid("A SELF_MANAGED certificate needs both 'certificate' and 'privateKey'.")
    try:
        leaf = x509.load_pem_x509_certificates(body["certificate"].encode())[0]
    except ValueError:
        raise invalid(
            "Invalid value for field 'resource.certificate': the certificate could not be parsed."
        ) from None
    try:
        key = serialization.load_pem_private_key(body["privateKey"].encode(), None)
    except (ValueError, TypeError):
        raise invalid(
            "Invalid value for field 'resource.privateKey': the private key could not be parsed."
        ) from None
    der, spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(der, spki) != leaf.public_key().public_bytes(der, spki):
        raise invalid("Invalid value for field 'resource.privateKey': it does not match the certificate.")
    body["expireTime"] = rfc3339(leaf.not_valid_after_utc, compute=True)
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        body["subjectAlternativeNames"] = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        body["subjectAlternativeNames"] = []
    body["_privateKey"] = body.pop("privateKey")
    return body


def prepare_ssl_policy(res: ComputeStore, project: str, body: dict[str, Any]) -> dict[str, Any]:
    body.setdefault("profile", "COMPATIBLE")
    body.setdefault("minTlsVersion", "TLS_1_0")
    if body["profile"] == "CUSTOM" and not body.get("customFeatures"):
        raise invalid("Invalid value for field 'resource.customFeatures': required for profile CUSTOM.")
    if body["profile"] != "CUSTOM" and body.get("customFeatures"):
        raise invalid("Invalid value for field 'resource.customFeatures': allowed only with profile CUSTOM.")
    return body
