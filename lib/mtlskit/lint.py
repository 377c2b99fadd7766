"""Certificate lint against the load balancer's client-certificate rules, before anything is built.

The original team found late that their client CA broke one of these rules. Each finding says which
certificate, which rule, the `client_cert_*` outcome the load balancer would log, and the fix.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from mtlskit.params import Params
from mtlskit.rules.verdict import (
    MAX_NAME_CONSTRAINTS,
    MAX_SAME_SUBJECT_SPKI,
    TrustMaterial,
    extended_key_usages,
    judge,
    key_problem,
    largest_subject_spki_group,
    name_constraint_count,
)

MAX_PEM_BYTES = 5 * 1024
WEAK_HASHES = (hashes.SHA1, hashes.MD5)


@dataclass
class Finding:
    role: str
    file: str
    subject: str
    rule: str
    severity: str  # error | warn | ok
    outcome: str  # the statusDetails the load balancer would log, or "" when not applicable
    detail: str
    fix: str

    def row(self) -> dict[str, str]:
        return asdict(self)


def _subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def certificate_findings(
    cert: x509.Certificate,
    role: str,
    file: str,
    pem_bytes: int,
    horizon_days: int,
    now: dt.datetime | None = None,
) -> list[Finding]:
    """Rules that apply to one certificate in its role (anchor, intermediate, allowlisted, client)."""
    now = now or dt.datetime.now(dt.UTC)
    subj = _subject(cert)
    out: list[Finding] = []

    def add(rule: str, severity: str, outcome: str, detail: str, fix: str) -> None:
        out.append(Finding(role, file, subj, rule, severity, outcome, detail, fix))

    allowlisted = role == "allowlisted"
    if pem_bytes > MAX_PEM_BYTES:
        add(
            "PEM size",
            "error",
            "",
            f"{pem_bytes} bytes (max 5 kB)",
            "use a smaller certificate (fewer extensions)",
        )
    problem = key_problem(cert)
    if problem and not allowlisted:
        add(
            "key type and size",
            "error",
            problem[0],
            problem[1],
            "reissue with RSA 2048-4096 or ECDSA P-256/P-384",
        )
    algo = cert.signature_hash_algorithm  # None for Ed25519, which the key rule already refuses
    if role != "trust anchor" and not allowlisted and isinstance(algo, WEAK_HASHES):
        add(
            "signature hash",
            "error",
            "client_cert_validation_failed",
            f"signed with {algo.name}",
            "reissue signed with SHA-256 or stronger",
        )
    ca = _is_ca(cert)
    eku = extended_key_usages(cert)
    if role in ("trust anchor", "intermediate"):
        if not ca:
            add(
                "basicConstraints",
                "error",
                "client_cert_validation_failed",
                "CA=false on an issuer",
                "issuers need basicConstraints CA=true and keyUsage keyCertSign",
            )
        if eku is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
            add(
                "issuer EKU",
                "error",
                "client_cert_chain_invalid_eku",
                "issuer EKU lacks clientAuth",
                "add clientAuth to the issuer's extendedKeyUsage, or drop the EKU extension",
            )
        count = name_constraint_count(cert)
        if count > MAX_NAME_CONSTRAINTS:
            add(
                "name constraints",
                "error",
                "client_cert_chain_max_name_constraints_exceeded",
                f"{count} name constraints (max 10)",
                "split the CA or reduce its name constraints",
            )
    if role == "client":
        if ca:
            add(
                "basicConstraints",
                "error",
                "client_cert_validation_failed",
                "leaf has CA=true",
                "issue the client certificate with basicConstraints CA=false",
            )
        if eku is None or ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
            add(
                "leaf EKU",
                "error",
                "client_cert_chain_invalid_eku",
                "leaf EKU lacks clientAuth",
                "issue the client certificate with extendedKeyUsage clientAuth",
            )
    not_after, not_before = cert.not_valid_after_utc, cert.not_valid_before_utc
    days = (not_after - now).days
    if not_after < now:
        sev = "warn" if allowlisted else "error"
        add(
            "validity",
            sev,
            "" if allowlisted else "client_cert_validation_failed",
            f"expired {-days} days ago",
            "allowlisted certificates are accepted expired" if allowlisted else "renew the certificate",
        )
    elif not_before > now:
        add(
            "validity",
            "error",
            "client_cert_validation_failed",
            f"not valid before {not_before:%Y-%m-%d}",
            "wait, or reissue with a notBefore in the past",
        )
    elif days < horizon_days:
        add("expiry", "warn", "", f"expires in {days} days ({not_after:%Y-%m-%d})", "plan the renewal now")
    if not out:
        add("all rules", "ok", "", f"valid until {not_after:%Y-%m-%d} ({days} days)", "")
    return out


# What to do about the load balancer's verdict; the per-certificate rows say which rule broke.
CHAIN_FIXES = {
    "client_cert_validation_failed": "see this file's other findings; otherwise add the issuing CA or "
    "intermediate to the trust config",
    "client_cert_validation_search_limit_exceeded": "shorten the CA hierarchy",
    "client_cert_chain_invalid_eku": "issue the leaf and its issuers with extendedKeyUsage clientAuth",
    "client_cert_invalid_rsa_key_size": "reissue with RSA 2048-4096 or ECDSA P-256/P-384",
    "client_cert_unsupported_elliptic_curve_key": "reissue with RSA 2048-4096 or ECDSA P-256/P-384",
    "client_cert_unsupported_key_algorithm": "reissue with RSA 2048-4096 or ECDSA P-256/P-384",
    "client_cert_pki_too_large": "keep only the current re-issues of that intermediate in the trust config",
    "client_cert_chain_max_name_constraints_exceeded": "split the CA or reduce its name constraints",
}


def chain_finding(
    leaf: x509.Certificate,
    sent: list[x509.Certificate],
    trust: TrustMaterial,
    file: str,
    now: dt.datetime | None = None,
) -> Finding:
    """The load balancer's verdict on this client certificate: the same code the sandbox data plane
    runs on every handshake, so the preflight predicts exactly what the data plane will log."""
    v = judge(leaf, sent, trust, now)
    severity = "ok" if v.ok else "error"
    return Finding(
        "client", file, _subject(leaf), "chain", severity, v.error, v.detail, CHAIN_FIXES.get(v.error, "")
    )


def lint(params: Params, now: dt.datetime | None = None) -> list[Finding]:
    """Every certificate the params name, against every rule that applies to its role."""
    findings: list[Finding] = []
    loaded: dict[str, list[x509.Certificate]] = {"trust anchor": [], "intermediate": [], "allowlisted": []}
    clients = [p for p in [params.probe.client_cert, *params.probe.extra_client_certs] if p]
    roles = [
        ("trust anchor", params.mtls.trust_anchors),
        ("intermediate", params.mtls.intermediates),
        ("allowlisted", params.mtls.allowlisted),
        ("client", clients),  # last: client chains are checked against everything loaded before
    ]
    for role, files in roles:
        for f in files:
            data = Path(f).read_bytes()
            name = Path(f).name
            try:
                certs = x509.load_pem_x509_certificates(data)
            except ValueError:
                findings.append(
                    Finding(
                        role,
                        name,
                        "",
                        "parse",
                        "error",
                        "",
                        "not a PEM X.509 certificate",
                        "export the certificate as PEM",
                    )
                )
                continue
            if role != "client":
                findings += certificate_findings(
                    certs[0], role, name, len(data), params.expiry_horizon_days, now
                )
                loaded[role].extend(certs)
                continue
            # An allowlisted client certificate is judged by the allowlist rules (expiry does not matter).
            leaf_role = "allowlisted" if certs[0] in loaded["allowlisted"] else "client"
            findings += certificate_findings(
                certs[0], leaf_role, name, len(data), params.expiry_horizon_days, now
            )
            for issuer in certs[1:]:  # intermediates the client sends must obey the issuer rules too
                findings += certificate_findings(
                    issuer, "intermediate", name, 0, params.expiry_horizon_days, now
                )
            trust = TrustMaterial(
                tuple(loaded["trust anchor"]), tuple(loaded["intermediate"]), tuple(loaded["allowlisted"])
            )
            findings.append(chain_finding(certs[0], certs[1:], trust, name, now))
    same = largest_subject_spki_group(loaded["intermediate"])
    if same > MAX_SAME_SUBJECT_SPKI:
        findings.append(
            Finding(
                "intermediate",
                "(trust config)",
                "",
                "same Subject and key",
                "error",
                "client_cert_pki_too_large",
                f"{same} intermediates share one Subject and public key (max {MAX_SAME_SUBJECT_SPKI})",
                CHAIN_FIXES["client_cert_pki_too_large"],
            )
        )
    # Counts (<= 200 anchors, <= 100 intermediates) are enforced when the params are loaded.
    return findings
