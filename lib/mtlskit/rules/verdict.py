"""The load balancer's decision on one client certificate: present? verified? which `client_cert_*` error?

Chain building and signature checks are `cryptography`'s X.509 verifier; the rules the load balancer
adds on top (key types and sizes, EKU on issuers, name-constraint and same-Subject+SPKI limits) are
checked here on the chain the verifier built. The lint and the sandbox data plane share this code,
so what the preflight predicts is what the sandbox enforces.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    ClientVerifier,
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from mtlskit.rules.logentry import NOT_PROVIDED

MAX_INTERMEDIATES = 8  # a chain holds at most 10 certificates, root and leaf included
OK_CURVES = (ec.SECP256R1, ec.SECP384R1)
MAX_NAME_CONSTRAINTS = 10
MAX_SAME_SUBJECT_SPKI = 10


@dataclass(frozen=True)
class TrustMaterial:
    """What a trust config holds, parsed once."""

    anchors: tuple[x509.Certificate, ...] = ()
    intermediates: tuple[x509.Certificate, ...] = ()
    allowlisted: tuple[x509.Certificate, ...] = ()


@dataclass
class Verdict:
    present: bool
    verified: bool
    error: str = ""  # a `client_cert_*` string, empty when the certificate is accepted
    detail: str = ""  # why, for people: which certificate broke which rule
    chain: list[x509.Certificate] = field(default_factory=list)  # validated path, leaf first

    @property
    def ok(self) -> bool:
        return self.present and self.verified


def extended_key_usages(cert: x509.Certificate) -> list[x509.ObjectIdentifier] | None:
    try:
        return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return None


def name_constraint_count(cert: x509.Certificate) -> int:
    try:
        nc = cert.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return 0
    return len(nc.permitted_subtrees or []) + len(nc.excluded_subtrees or [])


def _subject_spki(cert: x509.Certificate) -> tuple[bytes, bytes]:
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return cert.subject.public_bytes(), spki


def key_problem(cert: x509.Certificate) -> tuple[str, str] | None:
    """(outcome, detail) when the key is one the load balancer refuses."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if not 2048 <= key.key_size <= 4096:
            return "client_cert_invalid_rsa_key_size", f"RSA-{key.key_size} (allowed: 2048 to 4096 bits)"
        return None
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, OK_CURVES):
            return (
                "client_cert_unsupported_elliptic_curve_key",
                f"curve {key.curve.name} (allowed: P-256, P-384)",
            )
        return None
    return (
        "client_cert_unsupported_key_algorithm",
        f"{type(key).__name__.replace('PublicKey', '')} (RSA or ECDSA only)",
    )


def largest_subject_spki_group(certs: list[x509.Certificate]) -> int:
    """How many distinct certificates share one Subject and public key (the load balancer caps it)."""
    unique = {c.fingerprint(hashes.SHA256()): c for c in certs}.values()
    groups = Counter(_subject_spki(c) for c in unique)
    return max(groups.values(), default=0)


def client_verifier(
    anchors: list[x509.Certificate], max_depth: int, now: dt.datetime | None
) -> ClientVerifier:
    """The web-PKI client profile, minus its SAN requirement (the load balancer does not ask for
    one) and minus EKU checks on CAs (the load balancer's own EKU rule is applied to the built chain,
    so it can report `client_cert_chain_invalid_eku` instead of a generic failure)."""
    ee = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
    )
    ca = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None
    )
    builder = PolicyBuilder().store(Store(anchors)).max_chain_depth(max_depth)
    if now is not None:
        builder = builder.time(now)
    return builder.extension_policies(ca_policy=ca, ee_policy=ee).build_client_verifier()


def judge(
    leaf: x509.Certificate | None,
    sent: list[x509.Certificate],
    trust: TrustMaterial | None,
    now: dt.datetime | None = None,
) -> Verdict:
    """`trust` is None when the server TLS policy names no trust config."""
    if leaf is None:
        return Verdict(False, False, NOT_PROVIDED, "no client certificate was sent")
    if trust is not None and any(leaf == a for a in trust.allowlisted):
        # Parseable and proof of possession (already checked by the handshake) is all an
        # allowlisted certificate needs: expiry and the chain rules do not apply.
        return Verdict(True, True, "", "allowlisted (exact match)", [leaf])

    def refused(error: str, detail: str) -> Verdict:
        return Verdict(True, False, error, detail)

    if trust is None:
        return refused("client_cert_validation_not_performed", "the server TLS policy names no trust config")
    for cert in [leaf, *sent]:
        problem = key_problem(cert)
        if problem:
            return refused(problem[0], f"{_who(cert, leaf)}: {problem[1]}")
    eku = extended_key_usages(leaf)
    if eku is None or ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        return refused("client_cert_chain_invalid_eku", "leaf EKU lacks clientAuth")
    pool = [*trust.intermediates, *sent]
    same = largest_subject_spki_group(pool)
    if same > MAX_SAME_SUBJECT_SPKI:
        return refused(
            "client_cert_pki_too_large",
            f"{same} intermediates share one Subject and public key (max {MAX_SAME_SUBJECT_SPKI})",
        )
    anchors = list(trust.anchors)
    if not anchors:
        return refused("client_cert_validation_failed", "no trust anchors configured and not allowlisted")
    try:
        verified = client_verifier(anchors, MAX_INTERMEDIATES, now).verify(leaf, pool)
    except VerificationError as exc:
        try:  # chains when depth is unlimited? then depth was the only problem
            client_verifier(anchors, 64, now).verify(leaf, pool)
        except VerificationError:
            return refused("client_cert_validation_failed", f"does not chain to a trust anchor: {exc}")
        return refused(
            "client_cert_validation_search_limit_exceeded",
            f"chain longer than {MAX_INTERMEDIATES + 2} certificates (root and leaf included)",
        )
    chain = list(verified.chain)
    for issuer in chain[1:]:
        who = _who(issuer, leaf)
        issuer_eku = extended_key_usages(issuer)
        if issuer_eku is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in issuer_eku:
            return refused("client_cert_chain_invalid_eku", f"{who}: EKU lacks clientAuth")
        count = name_constraint_count(issuer)
        if count > MAX_NAME_CONSTRAINTS:
            return refused(
                "client_cert_chain_max_name_constraints_exceeded",
                f"{who}: {count} name constraints (max {MAX_NAME_CONSTRAINTS})",
            )
        problem = key_problem(issuer)
        if problem:
            return refused(problem[0], f"{who}: {problem[1]}")
    return Verdict(True, True, "", "chains to a trust anchor", chain)


def _who(cert: x509.Certificate, leaf: x509.Certificate) -> str:
    return "leaf" if cert == leaf else f"issuer {cert.subject.rfc4514_string()}"
