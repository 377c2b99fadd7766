"""The trust state a change moves: which certificates the trust config holds, the server TLS
policy's validation mode, and whether the target HTTPS proxy names the policy.

Every day-2 change is a move from one `TrustState` to another, so the same value serves the
impact report (what would be refused), the plan (a readable diff), the proof (each client judged by
`rules.verdict.judge` against it), the phases of a rotation (read from what exists) and the change
record (the state saved before a change is the way back). Certificates are compared by the SHA-256
of their DER bytes, as the load balancer reports client fingerprints, never by file name.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtlskit.build import frontend, trust
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core.errors import TopologyUnsupported
from mtlskit.rules.verdict import TrustMaterial

Role = Literal["anchor", "intermediate", "allowlisted"]
ROLES: tuple[Role, ...] = ("anchor", "intermediate", "allowlisted")
REJECT = "REJECT_INVALID"
ALLOW = "ALLOW_INVALID_OR_MISSING_CLIENT_CERT"


@dataclass(frozen=True)
class TrustedCert:
    """One certificate of a trust config, in the role it has there."""

    role: Role
    sha256: str  # hex of the DER bytes, lowercase
    subject: str
    issuer: str
    not_after: dt.datetime
    pem: str

    @classmethod
    def from_pem(cls, role: Role, pem: str) -> TrustedCert:
        """The first certificate of `pem` (a trust-config entry holds one)."""
        if role not in ROLES:
            raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}")
        cert = x509.load_pem_x509_certificate(pem.encode())
        return cls.from_x509(role, cert)

    @classmethod
    def from_x509(cls, role: Role, cert: x509.Certificate) -> TrustedCert:
        der = cert.public_bytes(serialization.Encoding.DER)
        return cls(
            role=role,
            sha256=hashlib.sha256(der).hexdigest(),
            subject=cert.subject.rfc4514_string(),
            issuer=cert.issuer.rfc4514_string(),
            not_after=cert.not_valid_after_utc,
            pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        )

    @property
    def key(self) -> tuple[str, str]:
        """What makes two entries the same: role and certificate."""
        return self.role, self.sha256

    def x509(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.pem.encode())

    def to_dict(self) -> dict[str, str]:
        return {
            "role": self.role,
            "sha256": self.sha256,
            "subject": self.subject,
            "issuer": self.issuer,
            "not_after": self.not_after.isoformat(),
            "pem": self.pem,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrustedCert:
        """Rebuilt from the PEM (the other fields are derived from it, so a record edited by hand
        cannot claim a fingerprint its certificate does not have)."""
        return cls.from_pem(data["role"], data["pem"])

    def label(self) -> str:
        return f"{self.role} {self.subject} ({self.sha256[:12]})"


@dataclass(frozen=True)
class TrustState:
    """What decides a client's verdict at the load balancer. `mode` is None when no server TLS
    policy exists (or it has no mTLS section); `attached` says whether the proxy names it."""

    certs: tuple[TrustedCert, ...] = ()
    mode: str | None = None
    attached: bool = False

    def __post_init__(self) -> None:
        # One canonical order (role, then fingerprint) so equal states compare and hash equal.
        unique = {c.key: c for c in self.certs}
        ordered = tuple(unique[k] for k in sorted(unique, key=lambda k: (ROLES.index(k[0]), k[1])))
        object.__setattr__(self, "certs", ordered)

    def of_role(self, role: Role) -> tuple[TrustedCert, ...]:
        return tuple(c for c in self.certs if c.role == role)

    def cert_keys(self) -> frozenset[tuple[str, str]]:
        """(role, sha256) of every certificate: what two states are compared by."""
        return frozenset(c.key for c in self.certs)

    def keys(self) -> frozenset[tuple[str, str]]:
        """The same as `cert_keys` (the first name of it, kept for callers that use it)."""
        return self.cert_keys()

    def material(self) -> TrustMaterial:
        """The trust config as `rules.verdict.judge` reads it."""
        return TrustMaterial(
            anchors=tuple(c.x509() for c in self.of_role("anchor")),
            intermediates=tuple(c.x509() for c in self.of_role("intermediate")),
            allowlisted=tuple(c.x509() for c in self.of_role("allowlisted")),
        )

    @property
    def enforcing(self) -> bool:
        """True when the load balancer refuses a client whose certificate does not verify."""
        return self.attached and self.mode == REJECT

    def fingerprint(self) -> str:
        """A short, stable name of the trust config's content (certificates and roles only), to
        compare the state before and after a change in records and drift checks."""
        joined = "\n".join(f"{role}:{sha}" for role, sha in (c.key for c in self.certs))
        return hashlib.sha256(joined.encode()).hexdigest()[:16]

    def with_certs(self, certs: tuple[TrustedCert, ...]) -> TrustState:
        return TrustState(certs, self.mode, self.attached)

    def to_dict(self) -> dict[str, Any]:
        return {
            "certs": [c.to_dict() for c in self.certs],
            "mode": self.mode,
            "attached": self.attached,
            "fingerprint": self.fingerprint(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrustState:
        return cls(
            tuple(TrustedCert.from_dict(c) for c in data.get("certs", [])),
            data.get("mode"),
            bool(data.get("attached", False)),
        )


def _from_pems(role: Role, pems: list[str]) -> list[TrustedCert]:
    """Each certificate of each PEM text (a file or an entry may hold a bundle)."""
    out: list[TrustedCert] = []
    for text in pems:
        out += [TrustedCert.from_x509(role, c) for c in x509.load_pem_x509_certificates(text.encode())]
    return out


def require_split(params: Params) -> None:
    """Day-2 changes patch the split topology's trust config, policy and proxy; say so, naming the
    topology, before anything is read or changed."""
    if params.topology != "split":
        raise TopologyUnsupported(
            f"topology {params.topology}: day-2 changes (rotation, partner certificates, enforcement, "
            "break-glass) move the split frontend's trust config, server TLS policy and proxy; a "
            "Gateway's client CA bundle is its ConfigMap (gateway.ca_configmap), which the Gateway "
            "build (gw20) applies: change the bundle there, or use a params file with topology: split"
        )


def target_state(params: Params) -> TrustState:
    """The state the params ask for: their trust files, their mode, the policy attached."""
    m = params.mtls
    certs: list[TrustedCert] = []
    for role, files in (
        ("anchor", m.trust_anchors),
        ("intermediate", m.intermediates),
        ("allowlisted", m.allowlisted),
    ):
        certs += _from_pems(role, [Path(f).read_text() for f in files])  # type: ignore[arg-type]
    return TrustState(tuple(certs), m.validation_mode, attached=True)


def trust_config_certs(tc: Any) -> tuple[TrustedCert, ...]:
    """The certificates of a `certificate_manager_v1.TrustConfig` message, by role."""
    if tc is None:
        return ()
    certs: list[TrustedCert] = []
    for store in tc.trust_stores:
        certs += _from_pems("anchor", [a.pem_certificate for a in store.trust_anchors])
        certs += _from_pems("intermediate", [c.pem_certificate for c in store.intermediate_cas])
    certs += _from_pems("allowlisted", [c.pem_certificate for c in tc.allowlisted_certificates])
    return tuple(certs)


def _names_policy(proxy_reference: str, policy_name: str) -> bool:
    """A proxy stores the policy as `//networksecurity.googleapis.com/projects/...` or a relative
    name; compare the `projects/...` part."""
    return (
        bool(proxy_reference)
        and proxy_reference.split("projects/", 1)[-1] == policy_name.split("projects/", 1)[-1]
    )


def live_state(clients: Clients, params: Params) -> TrustState:
    """What the APIs hold now: the params' trust config, server TLS policy and target HTTPS proxy,
    read through the real clients. A missing resource reads as empty (no certificates, no mode, not
    attached), so a change can still be planned and its report explains what is missing."""
    tc = trust.TRUST_CONFIG.get(clients, trust.trust_config_name(clients, params))
    policy_name = trust.policy_name(clients, params)
    policy = trust.SERVER_TLS_POLICY.get(clients, policy_name)
    mode: str | None = None
    if policy is not None and policy.mtls_policy:
        name = policy.mtls_policy.client_validation_mode.name
        mode = None if name.endswith("UNSPECIFIED") else name
    proxy = frontend.KINDS["TargetHttpsProxy"].get(clients, params.frontend.target_proxy)
    attached = proxy is not None and _names_policy(proxy.server_tls_policy, policy_name)
    return TrustState(trust_config_certs(tc), mode, attached)
