"""What the split and the Gateway drift checks share: the check names both report, the certificates
compared by SHA-256 (the params' files against what a trust config or a CA bundle holds), the
expiry horizon, the managed certificate's status and the DNS answers clients get.

A Gateway's load balancer is built by Google's controller, not the kit, but the certificate it serves,
the trust it enforces and the names clients resolve are judged the same way as the split frontend's;
stating those judgments once keeps the two topologies' verdicts comparable (a migration compares them).
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from google.cloud import certificate_manager_v1 as cm
from google.cloud import compute_v1

from mtlskit.build import dns
from mtlskit.config.params import Params
from mtlskit.core.checks import Check, Status
from mtlskit.pki.files import TRUST_FIELDS

# Check names: stable, because summaries, reports and alerts key on them.
WIRING = "forwarding rule -> proxy -> URL map"
TLS_POLICY = "server TLS policy attached"
TRUST = "trust config holds the params' certificates"
EXPIRY = "certificates far from expiry"
MANAGED_CERT = "managed certificate ACTIVE for every domain"
DNS = "DNS A records point at the address"

DNS_TIMEOUT_SECONDS = 10.0


# ---- reading ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolution:
    """What the system resolver answered for one domain (IPv4 only: the kit reserves an IPv4 address)."""

    domain: str
    addresses: tuple[str, ...] = ()
    error: str = ""  # why nothing came back: no such name, a resolver timeout, ...


Resolver = Callable[[str], Resolution]


def resolver_for(nameserver: str | None) -> Resolver:
    """The machine's resolver, or the name server the params (dns.nameserver) or the sandbox name:
    there the records a cut-over wrote are what clients of that zone see."""
    if not nameserver:
        return system_resolver

    def ask(domain: str) -> Resolution:
        answer = dns.resolve([domain], nameserver)[domain]
        if isinstance(answer, str):
            return Resolution(domain, (), f"{answer}, asked {nameserver}")
        return Resolution(domain, answer)

    return ask


def system_resolver(domain: str) -> Resolution:
    """The answer clients get: the machine's own resolver, not a query to one authoritative server."""
    try:
        infos = socket.getaddrinfo(domain, None, family=socket.AF_INET, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        return Resolution(domain, (), err.strerror or str(err))
    return Resolution(domain, tuple(sorted({str(info[4][0]) for info in infos})))


def resolve_all(
    domains: list[str], resolver: Resolver, timeout: float = DNS_TIMEOUT_SECONDS
) -> list[Resolution]:
    """Resolve in parallel with one overall deadline: a hung resolver must not stall a scheduled run."""
    if not domains:
        return []
    pool = ThreadPoolExecutor(max_workers=min(8, len(domains)))
    futures = [pool.submit(resolver, d) for d in domains]
    out = []
    try:
        for domain, future in zip(domains, futures, strict=True):
            try:
                out.append(future.result(timeout=timeout))
            except FutureTimeout:
                out.append(Resolution(domain, (), f"resolver gave no answer within {timeout:.0f}s"))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return out


def relative(link: str) -> str:
    """Compute, Network Security and the proxy each spell references differently (full URL,
    `//service/projects/...`, `projects/...`); compare what follows `projects/`."""
    if not link:
        return ""
    return "projects/" + link.split("projects/", 1)[1] if "projects/" in link else link


def tail(link: str) -> str:
    return link.rsplit("/", 1)[-1] if link else "(none)"


# ---- certificates ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CertificateEntry:
    """One certificate, from a params file or from the trust config as the API returns it."""

    role: str
    source: str  # the params field and file ("mtls.trust_anchors[0] root.pem") or "trust config"
    subject: str
    sha256: str
    not_after: dt.datetime | None

    def days_left(self, now: dt.datetime) -> int | None:
        return None if self.not_after is None else (self.not_after - now).days


def _parse(pem: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError:
        return []


def pem_entries(role: str, source: str, pem: bytes) -> list[CertificateEntry]:
    """The certificates in one PEM text, each with its role and where it came from; one unreadable
    entry when the text holds no certificate."""
    certs = _parse(pem)
    if not certs:
        return [CertificateEntry(role, source, "(not a PEM certificate)", "", None)]
    return [
        CertificateEntry(
            role,
            source,
            c.subject.rfc4514_string(),
            c.fingerprint(hashes.SHA256()).hex(),
            c.not_valid_after_utc,
        )
        for c in certs
    ]


def params_certificates(params: Params) -> list[CertificateEntry]:
    """Every certificate the params name for the trust config, and the probe's client certificate."""
    out: list[CertificateEntry] = []
    groups = [
        *((role, fld, getattr(params.mtls, fld.split(".")[1])) for role, fld in TRUST_FIELDS.items()),
        ("client", "probe.client_cert", [params.probe.client_cert] if params.probe.client_cert else []),
    ]
    for role, fld, files in groups:
        for i, f in enumerate(files):
            where = f"{fld}[{i}]" if fld.startswith("mtls.") else fld
            try:
                pem = Path(f).read_bytes()
            except OSError as err:
                out.append(
                    CertificateEntry(
                        role, f"{where} {Path(f).name}", f"(unreadable: {err.strerror})", "", None
                    )
                )
                continue
            out += pem_entries(role, f"{where} {Path(f).name}", pem)
    return out


def trust_config_certificates(tc: cm.TrustConfig) -> list[CertificateEntry]:
    out: list[CertificateEntry] = []
    for store in tc.trust_stores:
        for a in store.trust_anchors:
            out += pem_entries("trust anchor", "trust config", a.pem_certificate.encode())
        for c in store.intermediate_cas:
            out += pem_entries("intermediate", "trust config", c.pem_certificate.encode())
    for c in tc.allowlisted_certificates:
        out += pem_entries("allowlisted", "trust config", c.pem_certificate.encode())
    return out


def role_counts(entries: list[CertificateEntry]) -> str:
    return ", ".join(f"{sum(1 for e in entries if e.role == r)} {r}" for r in TRUST_FIELDS)


class HasCertificate(Protocol):
    """A drift state that read the managed certificate (the split's and the Gateway's)."""

    certificate: compute_v1.SslCertificate | None


def judged(name: str, problems: list[str], fix: str, evidence: str, where: str = "") -> Check:
    """The verdict most checks reach: every problem found (after `where`, when it names the object)
    fails the check with the fix; none passes it with the evidence of what was compared."""
    if problems:
        return Check(name, "fail", where + "; ".join(problems), fix)
    return Check(name, "pass", evidence)


def check_expiry(params: Params, now: dt.datetime) -> Check:
    """Renewal takes a change window; a certificate inside the horizon is a failure today, not on the
    day it expires. An allowlisted certificate is a warning: the load balancer accepts it expired."""
    horizon = params.expiry_horizon_days
    entries = params_certificates(params)
    bad: list[tuple[Status, str]] = []
    for e in entries:
        days = e.days_left(now)
        if days is None or e.not_after is None:
            bad.append(("fail", f"{e.source}: {e.subject}"))
            continue
        if days >= horizon:
            continue
        status: Status = "warn" if e.role == "allowlisted" else "fail"
        when = (
            f"expired on {e.not_after:%Y-%m-%d}"
            if days < 0
            else f"expires {e.not_after:%Y-%m-%d} ({days} days)"
        )
        bad.append((status, f"{e.source} ({e.subject}) {when}"))
    if bad:
        status = "fail" if any(s == "fail" for s, _ in bad) else "warn"
        return Check(
            EXPIRY,
            status,
            f"inside the {horizon}-day horizon: " + "; ".join(text for _, text in bad),
            "issue replacements, point the params' fields named here at the new files, run 00_preflight, then "
            "30_trust with apply=True (the probe's client certificate: replace probe.client_cert and client_key)",
        )
    soonest = min((e for e in entries if e.not_after), key=lambda e: e.not_after or now, default=None)
    if soonest is None or soonest.not_after is None:
        return Check(EXPIRY, "pass", "no certificates named in the params")
    return Check(
        EXPIRY,
        "pass",
        f"{len(entries)} certificates, all beyond {horizon} days; soonest {soonest.source} on "
        f"{soonest.not_after:%Y-%m-%d} ({soonest.days_left(now)} days)",
    )


FAILED_CERT_STATES = {"PROVISIONING_FAILED", "PROVISIONING_FAILED_PERMANENTLY", "RENEWAL_FAILED"}


def check_managed_certificate(params: Params, state: HasCertificate) -> Check:
    f = params.frontend
    cert = state.certificate
    if cert is None:
        return Check(
            MANAGED_CERT,
            "fail",
            f"certificate {f.certificate} does not exist",
            "run 40_frontend with apply=True",
        )
    covered = list(cert.managed.domains)
    uncovered = [d for d in f.domains if d not in covered]
    status = cert.managed.status
    if cert.type_ != "MANAGED":
        return Check(
            MANAGED_CERT,
            "fail",
            f"certificate {f.certificate} is {cert.type_ or 'SELF_MANAGED'}, not Google-managed",
            "set frontend.certificate to a new name and re-run 40_frontend with apply=True",
        )
    if uncovered:
        return Check(
            MANAGED_CERT,
            "fail",
            f"certificate {f.certificate} covers {covered}; params also ask {uncovered}",
            "a managed certificate's domains cannot change: set frontend.certificate to a new name, re-run "
            "40_frontend with apply=True (it creates the new one and moves the proxy), then delete the old one",
        )
    per_domain = ", ".join(f"{d}={s}" for d, s in cert.managed.domain_status.items())
    detail = f"certificate {f.certificate} {status} for {', '.join(covered)}" + (
        f" ({per_domain})" if per_domain else ""
    )
    if status == "ACTIVE":
        return Check(MANAGED_CERT, "pass", detail)
    if status in FAILED_CERT_STATES:
        return Check(
            MANAGED_CERT,
            "fail",
            detail,
            "point every domain's A record at the address (see the DNS check) and check CAA records; "
            "gcloud compute ssl-certificates describe " + f"{f.certificate} --global shows why",
        )
    return Check(
        MANAGED_CERT,
        "warn",
        detail,
        "Google provisions it once every domain's A record points at the address (see the DNS check); "
        "this can take up to an hour after DNS resolves",
    )


def check_dns_answers(
    resolutions: list[Resolution],
    ip: str,
    *,
    whose: str = "",
    wrong_fix: Callable[[str, str], str],
    good_in_evidence: bool = True,
) -> Check:
    """Each domain should resolve to exactly `ip` (`whose` names the address, e.g. "the Gateway's").
    A domain pointing elsewhere fails (clients reach another load balancer); one that does not resolve
    only warns (no client reaches anything yet). `wrong_fix(domain, ip)` says how to repoint a record."""
    wrong = [r for r in resolutions if r.addresses and set(r.addresses) != {ip}]
    unresolved = [r for r in resolutions if not r.addresses]
    good = [r.domain for r in resolutions if set(r.addresses) == {ip}]
    if not wrong and not unresolved:
        return Check(DNS, "pass", f"{', '.join(good)} -> {ip}" + (f" ({whose} address)" if whose else ""))
    not_ip = f"{whose} {ip}" if whose else ip
    evidence = [f"{r.domain} -> {', '.join(r.addresses)}, not {not_ip}" for r in wrong]
    evidence += [f"{r.domain} does not resolve ({r.error})" for r in unresolved]
    if good and good_in_evidence:
        evidence.append(f"{', '.join(good)} -> {ip}")
    fixes = [wrong_fix(r.domain, ip) for r in wrong]
    fixes += [f"create an A record {r.domain} -> {ip}" for r in unresolved]
    return Check(DNS, "fail" if wrong else "warn", "; ".join(evidence), "; ".join(fixes))
