"""The CA that stands in for Google's public CAs when the sandbox "provisions" a managed certificate.

It is kept on disk (`<state>/dataplane/ca.pem`) so clients can trust it across restarts
(`curl --cacert`); its key is written with mode 0600 next to it.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_NAME = "mtlskit sandbox public CA"
CA_DAYS = 3650
MANAGED_DAYS = 90  # how long Google's managed certificates last


@dataclass(frozen=True)
class Served:
    """A certificate the data plane presents, its key, and the issuers sent along with it."""

    cert: x509.Certificate
    key: PrivateKeyTypes
    chain: tuple[x509.Certificate, ...] = ()


def load_or_create(directory: Path) -> Served:
    """The stand-in CA of this state directory, created on first use."""
    cert_path, key_path = directory / "ca.pem", directory / "ca.key"
    if cert_path.is_file() and key_path.is_file():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        return Served(cert, serialization.load_pem_private_key(key_path.read_bytes(), None))
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    cert = _sign(name, key, key, name, days=CA_DAYS, ca=True, extensions=[])
    directory.mkdir(parents=True, exist_ok=True)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pkcs8)
    return Served(cert, key)


def issue_managed(ca: Served, domains: tuple[str, ...]) -> Served:
    """A serverAuth certificate for `domains`, as a managed certificate turns ACTIVE with one."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domains[0])])
    extensions: list[x509.ExtensionType] = [
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
        x509.SubjectAlternativeName([x509.DNSName(d) for d in domains]),
        x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.cert.public_key()),  # type: ignore[arg-type]
    ]
    cert = _sign(subject, key, ca.key, ca.cert.subject, days=MANAGED_DAYS, ca=False, extensions=extensions)
    return Served(cert, key)


def _sign(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    signer: PrivateKeyTypes,
    issuer: x509.Name,
    *,
    days: int,
    ca: bool,
    extensions: list[x509.ExtensionType],
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    usage = x509.KeyUsage(True, False, False, False, False, ca, ca, False, False)
    builder = x509.CertificateBuilder(
        issuer_name=issuer,
        subject_name=subject,
        public_key=key.public_key(),
        serial_number=x509.random_serial_number(),
        not_valid_before=now - dt.timedelta(hours=1),
        not_valid_after=now + dt.timedelta(days=days),
    )
    for ext, critical in [
        (x509.BasicConstraints(ca=ca, path_length=None), True),
        (usage, True),
        (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False),
        *((e, False) for e in extensions),
    ]:
        builder = builder.add_extension(ext, critical=critical)
    return builder.sign(signer, hashes.SHA256())  # type: ignore[arg-type]


def issue_for_state(state_dir: Path, domains: tuple[str, ...]) -> tuple[str, str]:
    """A managed certificate for `domains` from the stand-in CA of `state_dir`, as (certificate PEM,
    PKCS#8 key PEM): what the Compute API reports for an ACTIVE certificate and what the data plane
    serves are then the same certificate."""
    served = issue_managed(load_or_create(state_dir / "dataplane"), domains)
    key = served.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return served.cert.public_bytes(serialization.Encoding.PEM).decode(), key.decode()
