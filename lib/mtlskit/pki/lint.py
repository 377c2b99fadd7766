"""Certificate lint against the load balancer's client-certificate rules, before anything is built.

The original team found late that their client CA broke one of these rules. Each finding says which
certificate (by its params field), which rule, the `client_cert_*` outcome the load balancer would
log, and the fix. The same rules serve twice: loading params refuses every *error* (so a DER file or
an expired trust anchor never gets past `mtlskit check-params`), and 00_preflight shows the full
report, warnings and passes included.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from mtlskit.pki.files import TRUST_FIELDS, NamedFiles, ParamsFile
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

if TYPE_CHECKING:
    from mtlskit.core.checks import Status

MAX_PEM_BYTES = 5 * 1024
WEAK_HASHES = (hashes.SHA1, hashes.MD5)

Severity = Literal["error", "warn", "ok"]
SEVERITIES: tuple[Severity, ...] = ("ok", "warn", "error")  # mildest first
# The lint keeps its own severity column (it reads naturally in a findings table); wherever findings
# are shown as checks, this is the one translation into the checks' pass / warn / fail.
_CHECK_STATUS: dict[str, Status] = {"error": "fail", "warn": "warn", "ok": "pass"}
# Roles of the files the lint reads as certificates, in the order they must be read: a client chain
# is judged against the trust material loaded before it. A probe case is deliberately broken at
# times, so only its readability is checked.
TRUST_ROLES = tuple(TRUST_FIELDS)
CERTIFICATE_ROLES = (*TRUST_ROLES, "client", "probe case")


def check_status(severity: str) -> Status:
    """The check status (pass / warn / fail) that a finding of this severity stands for."""
    return _CHECK_STATUS[severity]


def worst_status(findings: Iterable[Finding]) -> Status:
    """The status of a set of findings taken together: the worst of theirs (pass when empty)."""
    return check_status(max((f.severity for f in findings), key=SEVERITIES.index, default="ok"))


@dataclass
class Finding:
    role: str
    file: str  # the file's name, for the table; `field` says where the params name it
    subject: str
    rule: str
    severity: Severity
    outcome: str  # the statusDetails the load balancer would log, or "" when not applicable
    detail: str
    fix: str
    field: str = ""  # the params key that names the file, e.g. mtls.trust_anchors[0]

    def row(self) -> dict[str, str]:
        return asdict(self)

    @property
    def status(self) -> Status:
        return check_status(self.severity)


PEM_FIX = "give a PEM X.509 certificate (-----BEGIN CERTIFICATE-----)"


def unreadable_certificate(data: bytes) -> tuple[str, str] | None:
    """Why `data` is not a PEM file of X.509 certificates the load balancer can take, and the fix;
    None when it is one.

    The answer describes the file's kind (DER, a private key, a truncated block...) and never quotes
    its content: a private key given by mistake must not end up in any output.
    """
    if not data.strip():
        return "the file is empty", PEM_FIX
    if b"PRIVATE KEY-----" in data:
        return (
            "the file holds a private key",
            "give the certificate's own file here; a private key never goes into the trust config",
        )
    if b"-----BEGIN CERTIFICATE-----" not in data:
        if data.lstrip()[:1] == b"\x30":
            try:
                x509.load_der_x509_certificate(data)
            except ValueError:
                return "binary data that is not a certificate", PEM_FIX
            return (
                "a DER (binary) certificate",
                "convert it to PEM: openssl x509 -inform der -in FILE -out FILE.pem",
            )
        labels = sorted({line.strip() for line in data.splitlines() if line.startswith(b"-----BEGIN ")})
        if labels:
            kinds = ", ".join(
                label.decode("ascii", "replace").strip("-").removeprefix("BEGIN ") for label in labels
            )
            return f"a PEM file without a certificate (it holds: {kinds})", PEM_FIX
        return "not a PEM certificate (no -----BEGIN CERTIFICATE----- block)", PEM_FIX
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError:
        return (
            "a PEM certificate block that does not decode (truncated or edited?)",
            "export the certificate again",
        )
    return None


def unreadable_key(key_file: Path, cert_file: Path | None = None) -> str | None:
    """Why the probe cannot use `key_file` as the private key of `cert_file`, or None.

    Only the key's kind and whether it matches are reported; its content is never shown.
    """
    data = key_file.read_bytes()
    if not data.strip():
        return "the file is empty"
    if b"PRIVATE KEY-----" not in data:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return "the file holds a certificate, not a private key"
        return "not a PEM private key (no -----BEGIN ... PRIVATE KEY----- block)"
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        return "the private key is encrypted; the probe needs an unencrypted PEM key (mode 0600)"
    except UnsupportedAlgorithm as e:
        return f"a private key of a kind the probe's TLS library cannot use ({e})"
    except ValueError:
        return "a PEM private key block that does not decode (truncated or edited?)"
    if cert_file is None or not cert_file.is_file():
        return None
    try:
        cert = x509.load_pem_x509_certificates(cert_file.read_bytes())[0]
    except ValueError:
        return None  # the certificate's own field reports that
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        return f"this private key does not belong to the certificate {cert_file.name}"
    return None


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

    def add(rule: str, severity: Severity, outcome: str, detail: str, fix: str) -> None:
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
        sev: Severity = "warn" if allowlisted else "error"
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
    severity: Severity = "ok" if v.ok else "error"
    return Finding(
        "client", file, _subject(leaf), "chain", severity, v.error, v.detail, CHAIN_FIXES.get(v.error, "")
    )


def lint(params: NamedFiles, now: dt.datetime | None = None) -> list[Finding]:
    """Every certificate the params name, against every rule that applies to its role."""
    files = [f for f in params.files() if f.role in CERTIFICATE_ROLES and f.role != "probe case"]
    return lint_files(files, params.expiry_horizon_days, now)


def lint_files(
    files: Sequence[ParamsFile], horizon_days: int, now: dt.datetime | None = None
) -> list[Finding]:
    """Findings for certificate files in trust-config-then-client order; see `CERTIFICATE_ROLES`."""
    findings: list[Finding] = []
    loaded: dict[str, list[x509.Certificate]] = {role: [] for role in TRUST_ROLES}
    for ref in files:
        name = ref.path.name
        read = _read(ref)
        if isinstance(read, Finding):
            findings.append(read)
            continue
        certs, data = read
        if ref.role == "probe case":
            continue  # a case may break the load balancer's rules on purpose; it states the outcome
        if ref.role != "client":
            if len(certs) > 1:
                findings.append(
                    _refused(
                        ref,
                        "one certificate per entry",
                        f"the file holds {len(certs)} certificates; each trust config entry is one certificate",
                        "split the file and list each certificate under its own entry",
                    )
                )
                continue
            findings += _tagged(
                certificate_findings(certs[0], ref.role, name, len(data), horizon_days, now), ref.field
            )
            loaded[ref.role].extend(certs)
            continue
        # An allowlisted client certificate is judged by the allowlist rules (expiry does not matter).
        leaf_role = "allowlisted" if certs[0] in loaded["allowlisted"] else "client"
        mine = certificate_findings(certs[0], leaf_role, name, len(data), horizon_days, now)
        for issuer in certs[1:]:  # intermediates the client sends must obey the issuer rules too
            mine += certificate_findings(issuer, "intermediate", name, 0, horizon_days, now)
        trust = TrustMaterial(
            tuple(loaded["trust anchor"]), tuple(loaded["intermediate"]), tuple(loaded["allowlisted"])
        )
        mine.append(chain_finding(certs[0], certs[1:], trust, name, now))
        findings += _tagged(mine, ref.field)
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
                "mtls.intermediates",
            )
        )
    # Counts (<= 200 anchors, <= 100 intermediates) are enforced by the params schema.
    return findings


def _refused(ref: ParamsFile, rule: str, detail: str, fix: str) -> Finding:
    return Finding(ref.role, ref.path.name, "", rule, "error", "", detail, fix, ref.field)


def _read(ref: ParamsFile) -> tuple[list[x509.Certificate], bytes] | Finding:
    """The certificates in the file, or the finding that says why it cannot be read."""
    if not ref.path.is_file():
        return _refused(
            ref, "file", f"file not found: {ref.path}", "fix the path (relative to the params file)"
        )
    data = ref.path.read_bytes()
    unreadable = unreadable_certificate(data)
    if unreadable:
        reason, fix = unreadable
        return _refused(ref, "parse", reason, fix)
    return x509.load_pem_x509_certificates(data), data


def _tagged(findings: list[Finding], field: str) -> list[Finding]:
    for f in findings:
        f.field = field
    return findings
