"""Test PKI for the sandbox and for training.

The load balancer rejects client certificates for reasons that are easy to miss (an issuer with a
serverAuth-only EKU, an RSA-1024 key, a SHA-1 signature...). The demo PKI holds one valid chain and
one certificate for each of those mistakes, so every rule can be seen failing on purpose.
Private keys are written with mode 0600 and never returned as text by any function here.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
MANIFEST = "manifest.json"
PKI_VERSION = 1
# Where the demo PKI lives inside a sandbox state directory, and its two issuers a trust config takes.
DEMO_PKI_DIR = "pki"
TRUST_ANCHOR = "root"
INTERMEDIATE = "intermediate"


@dataclass
class Issued:
    cert: x509.Certificate
    key: PrivateKey
    chain: tuple[x509.Certificate, ...] = ()  # issuers served along with the certificate


@dataclass
class CertSpec:
    """What a demo certificate is for, and what the load balancer should say about it."""

    name: str
    purpose: str
    expected: str  # the statusDetails / client_cert_* outcome under REJECT_INVALID
    chain: list[str] = field(default_factory=list)  # names of issuers to send along (TLS order)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def new_key(kind: str = "ec256") -> PrivateKey:
    if kind == "ec256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "ec521":
        return ec.generate_private_key(ec.SECP521R1())
    if kind.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:]))
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown key kind {kind!r}")


def issue(
    common_name: str,
    *,
    issuer: Issued | None = None,
    key: PrivateKey | None = None,
    ca: bool = False,
    eku: list[x509.ObjectIdentifier] | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    hash_alg: hashes.HashAlgorithm | None = None,
    dns_names: list[str] | None = None,
    uris: list[str] | None = None,
    path_length: int | None = None,
) -> Issued:
    """Issue one certificate. `issuer=None` makes it self-signed."""
    key = key or new_key()
    now = _now()
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mtlskit demo"),
        ]
    )
    signer_key = issuer.key if issuer else key
    issuer_name = issuer.cert.subject if issuer else subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - dt.timedelta(hours=1))
        .not_valid_after(not_after or now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    # Issuers sign certificates; leaves sign handshakes (and RSA leaves may encipher keys).
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not ca and isinstance(key, rsa.RSAPrivateKey),
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )
    builder = builder.add_extension(usage, critical=True)
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
        )
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names or []]
    sans += [x509.UniformResourceIdentifier(u) for u in uris or []]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    alg = None if isinstance(signer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    cert = builder.sign(signer_key, alg)
    if isinstance(hash_alg, hashes.SHA1):
        cert = _resign_sha1(cert, signer_key)
    return Issued(cert, key)


def _resign_sha1(cert: x509.Certificate, signer_key: PrivateKey) -> x509.Certificate:
    """cryptography refuses to sign with SHA-1, rightly; the demo needs one such certificate to show the
    load balancer refusing it, so pyOpenSSL re-signs that single certificate."""
    import warnings

    from OpenSSL import crypto

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        legacy = crypto.X509.from_cryptography(cert)
        legacy.sign(crypto.PKey.from_cryptography_key(signer_key), "sha1")
        return legacy.to_cryptography()


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass(frozen=True)
class PkiFiles:
    """A directory of issued certificates, each `<name>.pem` beside its key `<name>.key`: the one
    place that knows how an issued certificate's files are named."""

    directory: Path

    def cert(self, name: str) -> Path:
        return self.directory / f"{name}.pem"

    def key(self, name: str) -> Path:
        """The key's path (handed to OpenSSL by path; nothing here reads it)."""
        return self.directory / f"{name}.key"


def write_issued(directory: Path, name: str, issued: Issued) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    files = PkiFiles(directory)
    cert_path, key_path = files.cert(name), files.key(name)
    cert_path.write_text(pem(issued.cert))
    key_bytes = issued.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_bytes)
    return cert_path, key_path


CLIENT_AUTH = [ExtendedKeyUsageOID.CLIENT_AUTH]
SERVER_AUTH = [ExtendedKeyUsageOID.SERVER_AUTH]


def demo_pki_specs() -> list[CertSpec]:
    return [
        CertSpec("client", "valid leaf: root -> intermediate -> leaf", "ok", ["intermediate"]),
        CertSpec(
            "client-no-chain",
            "valid leaf sent without its intermediate (intermediate is in the trust config)",
            "ok",
        ),
        CertSpec(
            "untrusted-client",
            "leaf from a CA that is not a trust anchor",
            "client_cert_validation_failed",
            ["untrusted-root"],
        ),
        CertSpec(
            "expired-client",
            "leaf whose notAfter has passed",
            "client_cert_validation_failed",
            ["intermediate"],
        ),
        CertSpec(
            "not-yet-valid-client",
            "leaf whose notBefore is in the future",
            "client_cert_validation_failed",
            ["intermediate"],
        ),
        CertSpec(
            "no-clientauth-client",
            "leaf whose EKU is serverAuth only",
            "client_cert_chain_invalid_eku",
            ["intermediate"],
        ),
        CertSpec(
            "serverauth-issuer-client",
            "valid leaf under an issuer whose EKU is serverAuth only",
            "client_cert_chain_invalid_eku",
            ["serverauth-intermediate"],
        ),
        CertSpec(
            "ca-leaf-client",
            "leaf with basicConstraints CA=true",
            "client_cert_validation_failed",
            ["intermediate"],
        ),
        CertSpec(
            "rsa1024-client",
            "leaf with an RSA-1024 key",
            "client_cert_invalid_rsa_key_size",
            ["intermediate"],
        ),
        CertSpec(
            "p521-client",
            "leaf with a P-521 key",
            "client_cert_unsupported_elliptic_curve_key",
            ["intermediate"],
        ),
        CertSpec(
            "ed25519-client",
            "leaf with an Ed25519 key",
            "client_cert_unsupported_key_algorithm",
            ["intermediate"],
        ),
        CertSpec("sha1-client", "leaf signed with SHA-1", "client_cert_validation_failed", ["intermediate"]),
        CertSpec("selfsigned-client", "self-signed leaf, not allowlisted", "client_cert_validation_failed"),
        CertSpec("allowlisted-client", "self-signed leaf that the trust config allowlists", "ok"),
        CertSpec(
            "allowlisted-expired-client", "expired self-signed leaf that the trust config allowlists", "ok"
        ),
        CertSpec(
            "deep-client",
            "leaf under a chain of 11 intermediates (deeper than 10)",
            "client_cert_validation_search_limit_exceeded",
            [f"deep-{i}" for i in range(10, -1, -1)],
        ),
    ]


# Certificates for the day-2 changes, not probed by 50_verify (their verdict depends on the phase a
# change is in, so the change runbooks judge them against each phase's trust config): the CA a
# rotation moves to, with a client it issued, and a partner's CA with one of its clients.
NEXT_ANCHOR = "next-root"
NEXT_INTERMEDIATE = "next-intermediate"
NEXT_CLIENT = "next-client"
PARTNER_ANCHOR = "partner-root"
PARTNER_CLIENT = "partner-client"
DAY2_CERTIFICATES = (NEXT_ANCHOR, NEXT_INTERMEDIATE, NEXT_CLIENT, PARTNER_ANCHOR, PARTNER_CLIENT)

# The issuers of the demo PKI; every other certificate in it is a `demo_pki_specs()` case.
DEMO_ISSUERS = (
    TRUST_ANCHOR,
    INTERMEDIATE,
    "untrusted-root",
    "serverauth-intermediate",
    *(f"deep-{i}" for i in range(11)),
)


@dataclass(frozen=True)
class DemoPki(PkiFiles):
    """The demo PKI in one directory: which file is the demo's trust anchor, intermediate, a case's
    certificate, key and chain, and what the manifest says. The probe, the command line and the
    by-hand commands ask here instead of knowing the file names themselves."""

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> DemoPki:
        """The demo PKI of a sandbox state directory (where the kit and `mtlskit certs demo-pki` put it)."""
        return cls(Path(state_dir) / DEMO_PKI_DIR)

    @property
    def manifest_file(self) -> Path:
        return self.directory / MANIFEST

    @property
    def trust_anchor(self) -> Path:
        return self.cert(TRUST_ANCHOR)

    @property
    def intermediate(self) -> Path:
        """The intermediate of the valid chain (the one a trust config built from the demo holds)."""
        return self.cert(INTERMEDIATE)

    def manifest(self) -> dict[str, object] | None:
        """What `generate_demo_pki` recorded, or None when no demo PKI was generated here."""
        if not self.manifest_file.is_file():
            return None
        return dict(json.loads(self.manifest_file.read_text()))

    def cases(self) -> list[CertSpec]:
        """Every demo certificate a client can present, with the outcome it should get."""
        return demo_pki_specs()

    def chain(self, spec: CertSpec) -> tuple[Path, ...]:
        """The issuer files a client sends after the case's certificate, in TLS order."""
        return tuple(self.cert(n) for n in spec.chain)

    def meant_for_allowlist(self) -> set[str]:
        """The cases that are valid only when a trust config allowlists them (self-signed leaves)."""
        listed = (self.manifest() or {}).get("allowlisted", [])
        return {str(n) for n in listed} if isinstance(listed, list) else set()

    @staticmethod
    def file_names() -> frozenset[str]:
        """The file names the demo PKI consists of (certificates, keys and the manifest)."""
        stems = [*DEMO_ISSUERS, *DAY2_CERTIFICATES, *(s.name for s in demo_pki_specs())]
        files = PkiFiles(Path())
        return frozenset(
            {MANIFEST, *(files.cert(n).name for n in stems), *(files.key(n).name for n in stems)}
        )


def demo_pki_files() -> frozenset[str]:
    """The file names `generate_demo_pki` writes (certificates, keys and the manifest), so params
    pointing at one of them can be accepted before the PKI exists."""
    return DemoPki.file_names()


def ensure_demo_pki(directory: Path) -> dict[str, object]:
    """Create the demo PKI once; later calls reuse it, so fingerprints stay stable across runs."""
    pki = DemoPki(directory)
    manifest = pki.manifest()
    if manifest is not None:
        certificates = manifest.get("certificates", {})
        if manifest.get("version") == PKI_VERSION and all(
            pki.cert(str(n)).is_file() for n in (certificates if isinstance(certificates, dict) else {})
        ):
            return ensure_day2_certificates(directory, manifest)
    return generate_demo_pki(directory)


def ensure_day2_certificates(directory: Path, manifest: dict[str, object]) -> dict[str, object]:
    """Add the day-2 certificates to a demo PKI made before they existed, keeping every other file:
    a sandbox's load balancer trusts the demo root, which must not change under it."""
    pki = DemoPki(directory)
    if all(pki.cert(n).is_file() and pki.key(n).is_file() for n in DAY2_CERTIFICATES):
        return manifest
    for name, issued in _day2_certificates().items():
        write_issued(directory, name, issued)
    certificates = manifest.get("certificates")
    if isinstance(certificates, dict):
        certificates.update(_day2_manifest())
    pki.manifest_file.write_text(json.dumps(manifest, indent=2))
    return manifest


def _day2_certificates() -> dict[str, Issued]:
    out: dict[str, Issued] = {}
    nxt = out[NEXT_ANCHOR] = issue("mtlskit demo next root CA", ca=True, eku=CLIENT_AUTH)
    inter = out[NEXT_INTERMEDIATE] = issue(
        "mtlskit demo next intermediate CA", issuer=nxt, ca=True, eku=CLIENT_AUTH
    )
    out[NEXT_CLIENT] = issue("next-client.mtlskit.test", issuer=inter, eku=CLIENT_AUTH)
    partner = out[PARTNER_ANCHOR] = issue("mtlskit demo partner root CA", ca=True, eku=CLIENT_AUTH)
    out[PARTNER_CLIENT] = issue("partner-client.mtlskit.test", issuer=partner, eku=CLIENT_AUTH)
    return out


def _day2_manifest() -> dict[str, object]:
    purposes = {
        NEXT_ANCHOR: "CA: the root a client-CA rotation moves to",
        NEXT_INTERMEDIATE: "CA: the next root's intermediate",
        NEXT_CLIENT: "client under next-root -> next-intermediate (send next-intermediate with it)",
        PARTNER_ANCHOR: "CA: a partner's root, for adding or revoking a partner CA",
        PARTNER_CLIENT: "client under partner-root",
    }
    chains = {NEXT_CLIENT: [NEXT_INTERMEDIATE]}
    return {n: {"purpose": p, "expected": "", "chain": chains.get(n, [])} for n, p in purposes.items()}


def generate_demo_pki(directory: Path) -> dict[str, object]:
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    now = _now()
    out: dict[str, Issued] = {}
    root = out[TRUST_ANCHOR] = issue("mtlskit demo root CA", ca=True, eku=CLIENT_AUTH)
    inter = out[INTERMEDIATE] = issue("mtlskit demo intermediate CA", issuer=root, ca=True, eku=CLIENT_AUTH)
    out["untrusted-root"] = issue("mtlskit untrusted root CA", ca=True, eku=CLIENT_AUTH)
    out["serverauth-intermediate"] = issue(
        "mtlskit serverAuth-only intermediate", issuer=root, ca=True, eku=SERVER_AUTH
    )
    out["client"] = issue(
        "client.mtlskit.test",
        issuer=inter,
        eku=CLIENT_AUTH,
        dns_names=["client.mtlskit.test"],
        uris=["spiffe://mtlskit.test/ns/default/sa/client"],
    )
    out["client-no-chain"] = issue("client-no-chain.mtlskit.test", issuer=inter, eku=CLIENT_AUTH)
    out["untrusted-client"] = issue("untrusted.mtlskit.test", issuer=out["untrusted-root"], eku=CLIENT_AUTH)
    out["expired-client"] = issue(
        "expired.mtlskit.test",
        issuer=inter,
        eku=CLIENT_AUTH,
        not_before=now - dt.timedelta(days=60),
        not_after=now - dt.timedelta(days=1),
    )
    out["not-yet-valid-client"] = issue(
        "future.mtlskit.test",
        issuer=inter,
        eku=CLIENT_AUTH,
        not_before=now + dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=90),
    )
    out["no-clientauth-client"] = issue("serveronly.mtlskit.test", issuer=inter, eku=SERVER_AUTH)
    out["serverauth-issuer-client"] = issue(
        "badissuer.mtlskit.test", issuer=out["serverauth-intermediate"], eku=CLIENT_AUTH
    )
    out["ca-leaf-client"] = issue("caleaf.mtlskit.test", issuer=inter, ca=True, eku=CLIENT_AUTH)
    out["rsa1024-client"] = issue(
        "rsa1024.mtlskit.test", issuer=inter, key=new_key("rsa1024"), eku=CLIENT_AUTH
    )
    out["p521-client"] = issue("p521.mtlskit.test", issuer=inter, key=new_key("ec521"), eku=CLIENT_AUTH)
    out["ed25519-client"] = issue(
        "ed25519.mtlskit.test", issuer=inter, key=new_key("ed25519"), eku=CLIENT_AUTH
    )
    out["sha1-client"] = issue("sha1.mtlskit.test", issuer=inter, eku=CLIENT_AUTH, hash_alg=hashes.SHA1())
    out["selfsigned-client"] = issue("selfsigned.mtlskit.test", eku=CLIENT_AUTH)
    out["allowlisted-client"] = issue("allowlisted.mtlskit.test", eku=CLIENT_AUTH)
    out["allowlisted-expired-client"] = issue(
        "allowlisted-expired.mtlskit.test",
        eku=CLIENT_AUTH,
        not_before=now - dt.timedelta(days=60),
        not_after=now - dt.timedelta(days=1),
    )
    parent = root
    for i in range(11):
        parent = out[f"deep-{i}"] = issue(
            f"mtlskit deep intermediate {i}", issuer=parent, ca=True, eku=CLIENT_AUTH
        )
    out["deep-client"] = issue("deep.mtlskit.test", issuer=parent, eku=CLIENT_AUTH)

    out.update(_day2_certificates())
    for name, issued in out.items():
        write_issued(directory, name, issued)
    specs = {
        s.name: {"purpose": s.purpose, "expected": s.expected, "chain": s.chain} for s in demo_pki_specs()
    }
    manifest: dict[str, object] = {
        "version": PKI_VERSION,
        "created": now.isoformat(),
        "trust_anchors": [TRUST_ANCHOR],
        "intermediates": [INTERMEDIATE, "serverauth-intermediate"] + [f"deep-{i}" for i in range(11)],
        "allowlisted": ["allowlisted-client", "allowlisted-expired-client"],
        "certificates": {
            **{n: specs.get(n, {"purpose": "CA", "expected": "", "chain": []}) for n in out},
            **_day2_manifest(),
        },
    }
    DemoPki(directory).manifest_file.write_text(json.dumps(manifest, indent=2))
    return manifest
