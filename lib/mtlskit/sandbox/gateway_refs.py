"""The Gateway's client-CA references (GEP-91), judged as the Gateway API v1.5 says a controller must.

`spec.tls.frontend.{default, perPort[]}.validation.caCertificateRefs` name ConfigMaps whose `ca.crt`
holds PEM certificates. Each reference is resolved on its own: a missing ConfigMap or key gives the
listener `ResolvedRefs=False` with `InvalidCACertificateRef`, another kind `InvalidCACertificateKind`,
a ConfigMap in another namespace without a ReferenceGrant `RefNotPermitted`; when none resolves, the
listener is also `Accepted=False` with `NoValidCACertificate`, and the load balancer must not start
skipping validation. The certificates found become a trust store: self-signed ones are trust anchors,
the others intermediates (the API has no field to say which is which).

Pure functions over the objects as dicts: the controller looks the objects up, this module judges them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding

from mtlskit.rules import gateway as gw

ConfigMapLookup = Callable[[str, str], dict[str, Any] | None]
HTTPS_PORT = 443


@dataclass(frozen=True)
class Validation:
    """The validation that applies to one port: the perPort entry for it, else the default."""

    refs: tuple[dict[str, Any], ...]
    mode: str


@dataclass
class CaResolution:
    """What the references gave: the trust store's PEMs and one (reason, message) per bad reference."""

    anchors: list[str] = field(default_factory=list)
    intermediates: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    total: int = 0

    @property
    def all_invalid(self) -> bool:
        return self.total > 0 and len(self.problems) == self.total


def validation_for_port(gateway: dict[str, Any], port: int = HTTPS_PORT) -> Validation | None:
    """`spec.tls.frontend`'s validation for `port`, or None when the Gateway asks for none."""
    frontend = ((gateway.get("spec") or {}).get("tls") or {}).get("frontend") or {}
    chosen = next(
        (
            (entry.get("tls") or {}).get("validation")
            for entry in frontend.get("perPort") or []
            if entry.get("port") == port
        ),
        None,
    ) or (frontend.get("default") or {}).get("validation")
    if not chosen:
        return None
    return Validation(tuple(chosen.get("caCertificateRefs") or ()), chosen.get("mode") or gw.ALLOW_VALID_ONLY)


def permitted(grants: list[dict[str, Any]], from_namespace: str, to_name: str) -> bool:
    """Whether a ReferenceGrant (in the ConfigMap's namespace) lets Gateways of `from_namespace` refer
    to the ConfigMap `to_name`."""
    for grant in grants:
        spec = grant.get("spec") or {}
        froms = any(
            f.get("group") == gw.GROUP and f.get("kind") == "Gateway" and f.get("namespace") == from_namespace
            for f in spec.get("from") or []
        )
        tos = any(
            t.get("group", "") in ("", "core")
            and t.get("kind") == "ConfigMap"
            and t.get("name") in (None, "", to_name)
            for t in spec.get("to") or []
        )
        if froms and tos:
            return True
    return False


def resolve(
    namespace: str,
    validation: Validation,
    configmap: ConfigMapLookup,
    grants_in: Callable[[str], list[dict[str, Any]]],
) -> CaResolution:
    """Judge every reference of `validation` for a Gateway in `namespace`."""
    out = CaResolution(total=len(validation.refs))
    for i, ref in enumerate(validation.refs):
        where = f"spec.tls.frontend caCertificateRefs[{i}]"
        kind, group = ref.get("kind", ""), ref.get("group", "")
        name, ref_ns = ref.get("name", ""), ref.get("namespace") or namespace
        if kind != "ConfigMap" or group not in ("", "core"):
            out.problems.append(
                (
                    "InvalidCACertificateKind",
                    f"{where}: kind {group + '/' if group else ''}{kind} is not supported; "
                    f'use a ConfigMap (group "") with the CA in key {gw.CA_KEY}',
                )
            )
            continue
        if ref_ns != namespace and not permitted(grants_in(ref_ns), namespace, name):
            out.problems.append(
                (
                    "RefNotPermitted",
                    f"{where}: ConfigMap {ref_ns}/{name} is in another namespace and no ReferenceGrant "
                    f"in {ref_ns} lets Gateways of {namespace} refer to it",
                )
            )
            continue
        body = configmap(ref_ns, name)
        if body is None:
            out.problems.append(("InvalidCACertificateRef", f"{where}: ConfigMap {ref_ns}/{name} not found"))
            continue
        pem = (body.get("data") or {}).get(gw.CA_KEY)
        if not pem:
            out.problems.append(
                ("InvalidCACertificateRef", f"{where}: ConfigMap {ref_ns}/{name} has no key {gw.CA_KEY}")
            )
            continue
        try:
            certs = x509.load_pem_x509_certificates(pem.encode())
        except ValueError:
            out.problems.append(
                (
                    "InvalidCACertificateRef",
                    f"{where}: {gw.CA_KEY} of ConfigMap {ref_ns}/{name} holds no parseable PEM certificate",
                )
            )
            continue
        for cert in certs:
            text = cert.public_bytes(Encoding.PEM).decode()
            (out.anchors if self_signed(cert) else out.intermediates).append(text)
    return out


def self_signed(cert: x509.Certificate) -> bool:
    """Issued by itself: its subject is its issuer and its own key verifies its signature."""
    if cert.subject != cert.issuer:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
