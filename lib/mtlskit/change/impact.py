"""Who a change would refuse, before it is made: the trust-config diff and the mode change, then every
client the request logs saw over `changes.report_window_seconds`, with its outcome today and its
expected outcome after the change, and a gate that refuses the change when a client accepted today
would be refused and the params do not name it in `changes.intended_refusals`.

An expected outcome is never guessed; it says what it rests on (`basis`):
- `certificate`: the client's certificate is known (the probe certificate, probe cases, proof
  clients, the `changes.client_certificates` folder, the demo PKI, the trust config's own
  allowlist) or it sent none, so `rules.verdict.judge` decides against the target trust config,
  exactly as the load balancer (and the sandbox) will;
- `mode`: after the change the load balancer forwards every request whatever the certificate (ALLOW
  mode, or no server TLS policy on the proxy);
- `logged`: the change leaves the anchors and intermediates that decide this client's chain as
  they are, so the chain verdict the log records today still holds and only the mode decides;
- `issuer`: only log fields are known, and the client's issuer (its DN) is, or stops being, an
  anchor or an intermediate under one;
- `unknown` otherwise (for example a client that sends its own intermediate, whose root the log
  does not name), listed as such and warned about, never counted as accepted or refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from mtlskit.change import state
from mtlskit.change.seen import (
    READ_COLUMNS,
    cell_text,
    client_label,
    clients_seen,
    fingerprint_hex,
    listed,
    normal_serial,
)
from mtlskit.change.state import ROLES, Role, TrustedCert, TrustState
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params, is_fingerprint
from mtlskit.core.checks import Check
from mtlskit.core.errors import KitError
from mtlskit.pki import certs
from mtlskit.rules import dn
from mtlskit.rules.verdict import TrustMaterial, Verdict, judge
from mtlskit.verify import logs
from mtlskit.verify.probe import PROBE_CERTIFICATE

Basis = Literal["certificate", "mode", "logged", "issuer", "unknown"]
ACCEPTED, REFUSED, UNKNOWN = "accepted", "refused", "unknown"
NOT_SEEN = "not seen"
VALIDATION_FAILED = "client_cert_validation_failed"
IMPACT_GATE = "no accepted client refused"
READINESS_GATE = "refused share within max_refused_share"
LIMIT = 50  # clients listed in a report's dict (records, summary.json): the rest are counted
CERT_SUFFIXES = (".pem", ".crt", ".cer")
PULL_LIMIT = 200_000  # entries pulled through the Logging API; exported files have no limit


class ChangeReportError(KitError, ValueError):
    """A day-2 report cannot be made from these params: the message names the field, why, and the fix."""


# ---- the clients whose certificates are known --------------------------------------------------------


@dataclass(frozen=True)
class KnownClient:
    """A client certificate the kit can judge itself, with the issuers it sends (TLS order)."""

    name: str
    source: str  # which params field (or the demo PKI, or the trust config's allowlist) named it
    leaf: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def sha256(self) -> str:
        return self.leaf.fingerprint(hashes.SHA256()).hex()

    @property
    def serial(self) -> str:
        return normal_serial(format(self.leaf.serial_number, "x"))

    @property
    def subject(self) -> str:
        return self.leaf.subject.rfc4514_string()

    @property
    def issuer(self) -> str:
        return self.leaf.issuer.rfc4514_string()

    def verdict(self, material: TrustMaterial) -> Verdict:
        """What the load balancer makes of this client against a trust config's material."""
        return judge(self.leaf, list(self.chain), material)

    @classmethod
    def from_file(
        cls, name: str, source: str, path: str | Path, chain: Iterable[str | Path] = ()
    ) -> KnownClient:
        """The leaf is the first certificate of `path`; issuers after it in the file, then `chain`'s."""
        found = _read_certs(path, source)
        sent = [*found[1:], *(c for p in chain for c in _read_certs(p, source))]
        return cls(name, source, found[0], tuple(sent))


def _read_certs(path: str | Path, source: str) -> list[x509.Certificate]:
    path = Path(path)
    try:
        found = x509.load_pem_x509_certificates(path.read_bytes())
    except FileNotFoundError:
        raise ChangeReportError(
            f"{source}: {path} does not exist; fix the path in the params (relative paths are taken "
            "from the params file's folder)"
        ) from None
    except ValueError:
        found = []
    if not found:
        raise ChangeReportError(
            f"{source}: {path} holds no PEM certificate; give the client's certificate "
            "(-----BEGIN CERTIFICATE-----), leaf first, never its key"
        )
    return found


def known_clients(params: Params) -> list[KnownClient]:
    """Every client certificate the params and the demo PKI name, once each (by SHA-256; the first
    name wins, most specific first): proof clients, the probe certificate and cases, the team's
    `changes.client_certificates` folder, then the demo PKI when the sandbox generates one."""
    out: list[KnownClient] = []
    for c in params.changes.proof_clients:
        out.append(KnownClient.from_file(c.name, "changes.proof_clients", c.cert, c.chain))
    probe = params.probe
    if probe.client_cert:
        out.append(KnownClient.from_file(PROBE_CERTIFICATE, "probe.client_cert", probe.client_cert))
    out += [KnownClient.from_file(c.name, "probe.cases", c.cert) for c in probe.cases]
    out += _folder(params.changes.client_certificates)
    out += _demo(params)
    unique: dict[str, KnownClient] = {}
    for client in out:
        unique.setdefault(client.sha256, client)
    return list(unique.values())


def _folder(folder: str | None) -> list[KnownClient]:
    if folder is None:
        return []
    where = Path(folder)
    if not where.is_dir():
        raise ChangeReportError(
            f"changes.client_certificates: {where} is not a folder; name a folder of the team's client "
            "certificates (PEM, one client a file, leaf first), or remove the setting"
        )
    files = sorted(p for p in where.rglob("*") if p.is_file() and p.suffix.lower() in CERT_SUFFIXES)
    source = "changes.client_certificates"
    return [KnownClient.from_file(str(p.relative_to(where).with_suffix("")), source, p) for p in files]


def _demo(params: Params) -> list[KnownClient]:
    """The demo PKI's client certificates (every case, and the next and partner CAs' clients), when
    the params' sandbox generates one: their verdicts are what the labs and tests predict."""
    directory = params.demo_pki_dir()
    if directory is None:
        return []
    pki = certs.DemoPki(directory)
    if pki.manifest() is None:
        return []
    named = [(s.name, s.chain) for s in pki.cases()]
    named += [(certs.NEXT_CLIENT, [certs.NEXT_INTERMEDIATE]), (certs.PARTNER_CLIENT, [])]
    return [
        KnownClient.from_file(f"demo/{name}", "demo PKI", pki.cert(name), [pki.cert(c) for c in chain])
        for name, chain in named
        if pki.cert(name).is_file()
    ]


def intended_fingerprints(params: Params) -> set[str]:
    """`changes.intended_refusals` as SHA-256 hex: fingerprints as given, files by their first certificate."""
    out = set()
    for item in params.changes.intended_refusals:
        if is_fingerprint(item):
            out.add(item.replace(":", "").lower())
        else:
            out.add(KnownClient.from_file(item, "changes.intended_refusals", item).sha256)
    return out


# ---- the diff -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CertChange:
    """One trust-config certificate and what the change does to it."""

    role: Role
    change: Literal["added", "removed", "kept"]
    subject: str
    sha256: str
    not_after: str

    def row(self) -> dict[str, str]:
        return {
            "role": self.role,
            "change": self.change,
            "subject": self.subject,
            "sha256": self.sha256,
            "not_after": self.not_after,
        }


def trust_diff(before: TrustState, after: TrustState) -> list[CertChange]:
    """Anchors, intermediates and allowlisted certificates, each added, removed or kept (by role and
    SHA-256: the same certificate moved from one role to another is removed there and added here)."""
    old, new = before.keys(), after.keys()
    out = []
    for cert, change in [
        *((c, "removed") for c in before.certs if c.key not in new),
        *((c, "added") for c in after.certs if c.key not in old),
        *((c, "kept") for c in after.certs if c.key in old),
    ]:
        out.append(CertChange(cert.role, change, cert.subject, cert.sha256, cert.not_after.isoformat()))  # type: ignore[arg-type]
    order = {"removed": 0, "added": 1, "kept": 2}
    return sorted(out, key=lambda c: (ROLES.index(c.role), order[c.change], c.subject, c.sha256))


# ---- what a client can expect -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Expectation:
    outcome: str  # accepted | refused | unknown
    basis: Basis
    error: str = ""  # the client_cert_* error after the change (refused, or forwarded unverified)
    detail: str = ""  # why, for people


def trusted_names(state: TrustState) -> dict[str, str]:
    """The DNs a certificate can be issued by and still chain: each anchor's subject, and each
    intermediate's whose issuer is (in turn) trusted. Value: the role it is trusted as."""
    names = {c.subject: "anchor" for c in state.of_role("anchor")}
    pending = list(state.of_role("intermediate"))
    grew = True
    while grew:
        grew = False
        for c in list(pending):
            if c.issuer in names:
                names.setdefault(c.subject, "intermediate under an anchor")
                pending.remove(c)
                grew = True
    return names


@dataclass
class _Judge:
    """The states and what is derived from them once, for every client of a report."""

    before: TrustState
    after: TrustState
    material: TrustMaterial = field(init=False)
    before_material: TrustMaterial = field(init=False)
    trusted_before: dict[str, str] = field(init=False)
    trusted_after: dict[str, str] = field(init=False)
    chain_unchanged: bool = field(init=False)
    allowlist_unchanged: bool = field(init=False)
    grows: bool = field(init=False)

    def __post_init__(self) -> None:
        self.material = self.after.material()
        self.before_material = self.before.material()
        self.trusted_before = trusted_names(self.before)
        self.trusted_after = trusted_names(self.after)
        chain_keys = [{c.key for c in s.certs if c.role != "allowlisted"} for s in (self.before, self.after)]
        self.chain_unchanged = chain_keys[0] == chain_keys[1]
        allow = [{c.sha256 for c in s.of_role("allowlisted")} for s in (self.before, self.after)]
        self.allowlist_unchanged = allow[0] == allow[1]
        self.grows = bool(chain_keys[1] - chain_keys[0])

    def by_mode(self, error: str = "") -> Expectation | None:
        if self.after.enforcing:
            return None
        why = (
            "the proxy names no server TLS policy after the change: no certificate is asked for"
            if not self.after.attached or self.after.mode is None
            else f"{self.after.mode} forwards every request, verified or not"
        )
        return Expectation(ACCEPTED, "mode", error, why)

    def certificate(self, client: KnownClient | None) -> Expectation:
        """Judged by the kit's verdict rules: a known certificate, or none at all."""
        verdict = client.verdict(self.material) if client else judge(None, [], self.material)
        mode = self.by_mode(verdict.error)
        if mode is not None:
            return Expectation(ACCEPTED, "certificate", verdict.error, f"{verdict.detail}; {mode.detail}")
        return Expectation(ACCEPTED if verdict.ok else REFUSED, "certificate", verdict.error, verdict.detail)

    def from_log(
        self, fingerprint: str, issuer: str, verified_now: bool | None, error_now: str
    ) -> Expectation:
        """Only log fields are known: the mode, the chain verdict logged today, the issuer."""
        mode = self.by_mode()
        if mode is not None:
            return mode
        if self.chain_unchanged and (fingerprint or self.allowlist_unchanged) and verified_now is not None:
            why = "the anchors and intermediates stay as they are, so today's logged chain verdict holds"
            return (
                Expectation(ACCEPTED, "logged", "", why)
                if verified_now
                else Expectation(REFUSED, "logged", error_now or VALIDATION_FAILED, why)
            )
        if not issuer:
            return Expectation(UNKNOWN, "unknown", "", "the log names neither its certificate nor its issuer")
        return self.by_issuer(issuer, verified_now, error_now)

    def by_issuer(self, issuer: str, verified_now: bool | None, error_now: str) -> Expectation:
        after_role = self.trusted_after.get(issuer)
        before_role = self.trusted_before.get(issuer)
        if after_role is not None:
            if verified_now:
                return Expectation(
                    ACCEPTED, "issuer", "", f"its issuer {issuer} stays trusted ({after_role})"
                )
            return Expectation(
                UNKNOWN,
                "unknown",
                "",
                f"refused today ({error_now or 'unverified'}); its issuer {issuer} is trusted after the "
                "change, but the log cannot tell whether its chain will verify",
            )
        if verified_now and before_role is not None:
            sent_itself = [
                c
                for c in self.before.of_role("intermediate")
                if c.subject == issuer and c.issuer in self.trusted_after
            ]
            if sent_itself:
                return Expectation(
                    UNKNOWN,
                    "unknown",
                    "",
                    f"its issuer {issuer} leaves the trust config, but what issued it stays an anchor: it "
                    "is accepted only if the client sends that intermediate itself",
                )
            return Expectation(
                REFUSED,
                "issuer",
                VALIDATION_FAILED,
                f"its issuer {issuer} ({before_role}) is no longer trusted",
            )
        if verified_now:
            return Expectation(
                UNKNOWN,
                "unknown",
                "",
                f"it chains through {issuer}, an intermediate it sends itself, to a root the log does not name",
            )
        if not self.grows:
            return Expectation(
                REFUSED,
                "issuer",
                error_now or VALIDATION_FAILED,
                f"refused today and its issuer {issuer} is trusted neither before nor after the change",
            )
        return Expectation(
            UNKNOWN,
            "unknown",
            "",
            f"refused today; the change trusts new certificates and the log does not say whether {issuer} chains to one",
        )


# ---- the report -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientImpact:
    """One client: who it is, what it gets today, and what it can expect after the change."""

    client: str  # a known name, else the fingerprint (hex), serial or source IP
    key_kind: str  # fingerprint | serial | source | known (not seen in the logs)
    certificate: str  # present | none | unknown
    fingerprint: str  # SHA-256 hex, empty when not logged
    serial: str
    issuer: str  # RFC 4514
    subject: str
    remote_ip: str
    requests: int
    share: float
    outcome_now: str  # accepted | refused | other (answered by the load balancer) | not seen
    verified_now: bool | None
    error_now: str
    expected_after: str  # accepted | refused | unknown
    basis: Basis
    error_after: str
    detail: str
    intended: bool
    known_as: str  # "NAME (SOURCE)" when the certificate is known
    first_seen: str
    last_seen: str

    @property
    def accepted_now(self) -> bool:
        """Passed the load balancer's mTLS today (a request the load balancer answered itself
        also passed it); a client not seen in the window is not counted."""
        return self.outcome_now in (ACCEPTED, "other")

    @property
    def newly_refused(self) -> bool:
        return self.accepted_now and self.expected_after == REFUSED

    def row(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Gate:
    """Whether a change (or a flip) may go ahead, why, and the clients that decide it."""

    passed: bool
    reason: str
    names: tuple[str, ...] = ()
    warning: str = ""  # a passed gate with something a person should read (unknown outcomes)
    title: str = IMPACT_GATE
    fix: str = ""

    def check(self, name: str | None = None) -> Check:
        """The gate as a check: fail when refused, warn when it passed with something to read.
        Named after the gate (`IMPACT_GATE`, `readiness.READINESS_GATE`) unless `name` is given;
        a caller's own name is a check name like any other (TROUBLESHOOTING lists it)."""
        status = "fail" if not self.passed else ("warn" if self.warning else "pass")
        evidence = self.reason if not self.warning else f"{self.reason}; {self.warning}"
        if self.title == READINESS_GATE:
            made = Check(READINESS_GATE, status, evidence, self.fix)
        else:
            made = Check(IMPACT_GATE, status, evidence, self.fix)
        return made if name is None else dataclasses.replace(made, name=name)


@dataclass
class ImpactReport:
    """The change (diff and mode), the window read and every client with its expected outcome."""

    before: TrustState
    after: TrustState
    diff: list[CertChange]
    clients: list[ClientImpact]
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    requests: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def mode_before(self) -> str | None:
        return self.before.mode if self.before.attached else None

    @property
    def mode_after(self) -> str | None:
        return self.after.mode if self.after.attached else None

    def newly_refused(self) -> list[ClientImpact]:
        """Clients accepted today that the change would refuse, intended ones included."""
        return [c for c in self.clients if c.newly_refused]

    def unknown(self) -> list[ClientImpact]:
        """Clients accepted today whose outcome after the change the report cannot tell."""
        return [c for c in self.clients if c.accepted_now and c.expected_after == UNKNOWN]

    def gate(self) -> Gate:
        refused = self.newly_refused()
        blocking = [c for c in refused if not c.intended]
        intended = [c for c in refused if c.intended]
        unknown = self.unknown()
        share = sum(c.share for c in blocking)
        warning = (
            f"{len(unknown)} client(s) accepted today with an outcome the logs cannot tell "
            f"({_names(unknown)}): add their certificates to changes.client_certificates to judge them"
            if unknown
            else ""
        )
        if blocking:
            return Gate(
                False,
                f"{len(blocking)} client(s) accepted today would be refused ({share:.2%} of requests): "
                f"{_names(blocking)}",
                tuple(c.client for c in blocking),
                warning,
                fix="move those clients first (a rotation: keep phase 1 until the old CA's clients are gone "
                "from the logs), or, if refusing them is the point (a revocation), name each certificate "
                "file or SHA-256 in changes.intended_refusals",
            )
        reason = f"no client accepted today would be refused ({len(self.clients)} clients judged"
        reason += f"; {len(intended)} intended refusal(s): {_names(intended)})" if intended else ")"
        return Gate(True, reason, tuple(c.client for c in intended), warning)

    def counts(self) -> dict[str, int]:
        """Clients by expected outcome and basis, e.g. {'refused/issuer': 3}."""
        out: dict[str, int] = {}
        for c in self.clients:
            key = f"{c.expected_after}/{c.basis}"
            out[key] = out.get(key, 0) + 1
        return dict(sorted(out.items()))

    def frame(self) -> pd.DataFrame:
        """Every client as a row (for a notebook's table)."""
        return pd.DataFrame([c.row() for c in self.clients], columns=list(ClientImpact.__dataclass_fields__))

    def to_dict(self, limit: int = LIMIT) -> dict[str, Any]:
        """JSON-safe and bounded (a record and summary.json carry it): the diff, the modes, the
        gate, the counts, and at most `limit` clients of each list (the rest counted)."""
        gate = self.gate()
        listed = {
            "newly_refused": self.newly_refused(),
            "unknown": self.unknown(),
            "clients": self.clients,
        }
        return {
            "window": {"since": _iso(self.since), "until": _iso(self.until)},
            "requests": self.requests,
            "before": {"fingerprint": self.before.fingerprint(), "mode": self.mode_before},
            "after": {"fingerprint": self.after.fingerprint(), "mode": self.mode_after},
            "diff": [c.row() for c in self.diff if c.change != "kept"],
            "kept": sum(c.change == "kept" for c in self.diff),
            "gate": {"passed": gate.passed, "reason": gate.reason, "names": list(gate.names[:limit])},
            "counts": self.counts(),
            **{k: [_json_row(c) for c in v[:limit]] for k, v in listed.items()},
            **{f"{k}_not_listed": max(0, len(v) - limit) for k, v in listed.items()},
            "notes": list(self.notes),
        }


def _names(clients: list[ClientImpact]) -> str:
    return listed([c.client for c in clients])


def _iso(when: Any) -> str | None:
    return None if when is None else pd.Timestamp(when).isoformat()


def _json_row(c: ClientImpact) -> dict[str, Any]:
    row = c.row()
    row["share"] = round(float(row["share"]), 6)
    return row


def impact_report(
    before: TrustState,
    after: TrustState,
    seen: pd.DataFrame,
    known: Iterable[KnownClient] = (),
    intended: Iterable[str] = (),
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> ImpactReport:
    """The report of moving `before` to `after` for the clients `seen` (`clients_seen`'s table).
    `known` certificates are judged by the verdict rules, every certificate the trust configs
    allowlist too; `intended` are SHA-256 fingerprints (hex) of clients the change means to refuse.
    Known clients not seen in the window are listed last, with the outcome today's trust state
    gives them ("not seen"); they are reported, not gated (nothing says they are still in use)."""
    judge_ = _Judge(before, after)
    wanted = {fingerprint_hex(i) or i.lower() for i in intended}
    by_sha = {c.sha256: c for c in known}
    for side in (before, after):
        for cert in side.of_role("allowlisted"):
            by_sha.setdefault(cert.sha256, KnownClient(_short(cert), "trust config allowlist", cert.x509()))
    by_serial = {(c.serial, c.issuer): c for c in by_sha.values()}
    clients: list[ClientImpact] = []
    matched: set[str] = set()
    for row in seen.itertuples(index=False):
        clients.append(_seen_client(row, judge_, by_sha, by_serial, wanted, matched))
    for sha, client in by_sha.items():
        if sha not in matched and client.source != "trust config allowlist":
            clients.append(_unseen_client(client, judge_, wanted))
    requests = int(seen["requests"].sum()) if len(seen) else 0
    return ImpactReport(before, after, trust_diff(before, after), clients, since, until, requests)


def _short(cert: TrustedCert) -> str:
    return f"allowlisted {cert.subject} ({cert.sha256[:12]})"


def _seen_client(
    row: Any,
    judge_: _Judge,
    by_sha: dict[str, KnownClient],
    by_serial: dict[tuple[str, str], KnownClient],
    wanted: set[str],
    matched: set[str],
) -> ClientImpact:
    fingerprint = fingerprint_hex(cell_text(row.fingerprint))
    serial, issuer = cell_text(row.serial), dn.text(cell_text(row.issuer_dn))
    known = by_sha.get(fingerprint) or (by_serial.get((normal_serial(serial), issuer)) if serial else None)
    if known is not None:
        matched.add(known.sha256)
        fingerprint = known.sha256
    verified_now = None if pd.isna(row.verified_now) else bool(row.verified_now)
    if verified_now is None and judge_.before.enforcing and row.outcome_now in (ACCEPTED, "other"):
        verified_now = True  # the documented log has no verdict, but an enforcing load balancer let it in
    error_now = cell_text(row.error)
    if known is not None or row.certificate == "none":
        expectation = judge_.certificate(known)
    else:
        expectation = judge_.from_log(fingerprint, issuer, verified_now, error_now)
    name = known.name if known else client_label(row)
    return ClientImpact(
        client=name,
        key_kind=str(row.key_kind),
        certificate=str(row.certificate),
        fingerprint=fingerprint,
        serial=serial,
        issuer=known.issuer if known else issuer,
        subject=known.subject if known else dn.text(cell_text(row.subject_dn)),
        remote_ip=cell_text(row.remote_ip),
        requests=int(row.requests),
        share=float(row.share),
        outcome_now=str(row.outcome_now),
        verified_now=verified_now,
        error_now=error_now,
        expected_after=expectation.outcome,
        basis=expectation.basis,
        error_after=expectation.error,
        detail=expectation.detail,
        intended=bool(fingerprint) and fingerprint in wanted,
        known_as=f"{known.name} ({known.source})" if known else "",
        first_seen=_iso(row.first_seen) or "",
        last_seen=_iso(row.last_seen) or "",
    )


def _source(row: Any) -> str:
    what = {"none": "no certificate", "present": "a certificate the log does not name"}.get(
        row.certificate, ""
    )
    ips = int(row.source_ips)
    where = cell_text(row.remote_ip) + (f" (+{ips - 1} more)" if ips > 1 else "")
    return f"{where}, {what}" if what else where


def _unseen_client(client: KnownClient, judge_: _Judge, wanted: set[str]) -> ClientImpact:
    today = client.verdict(judge_.before_material)
    expectation = judge_.certificate(client)
    return ClientImpact(
        client=client.name,
        key_kind="known",
        certificate="present",
        fingerprint=client.sha256,
        serial=client.serial,
        issuer=client.issuer,
        subject=client.subject,
        remote_ip="",
        requests=0,
        share=0.0,
        outcome_now=NOT_SEEN,
        verified_now=today.ok,
        error_now=today.error,
        expected_after=expectation.outcome,
        basis=expectation.basis,
        error_after=expectation.error,
        detail=expectation.detail,
        intended=client.sha256 in wanted,
        known_as=f"{client.name} ({client.source})",
        first_seen="",
        last_seen="",
    )


# ---- from the live stack ------------------------------------------------------------------------------


def log_window(params: Params, now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    until = now or dt.datetime.now(dt.UTC)
    return until - dt.timedelta(seconds=params.changes.report_window_seconds), until


@contextlib.contextmanager
def window_entries(
    clients: Clients, params: Params, since: dt.datetime, sources: Any = None
) -> Iterator[tuple[Any, list[str]]]:
    """The window's request log entries as the reports' SQL reads them, with notes on what was read:
    exported files (`sources`: paths, globs, gs:// globs) through `LogScan`, else a DataFrame of the
    entries pulled through the Logging API (at most `PULL_LIMIT`, the newest)."""
    notes: list[str] = []
    if sources:
        with logs.scan_exported(sources, params, since=since, columns=READ_COLUMNS) as scan:
            yield scan, notes
        return
    entries = logs.fetch_entries(clients, params, since, max_entries=PULL_LIMIT)
    if len(entries) >= PULL_LIMIT:
        notes.append(
            f"the Logging API pull stopped at {PULL_LIMIT:,} entries (the newest): older clients of the "
            "window may be missing; pass an export of the request logs (sources) for the whole window"
        )
    if not entries:
        notes.append("no request log entries in the window")
    yield logs.entries_frame(entries), notes


def report_for_change(
    clients: Clients,
    params: Params,
    before: TrustState,
    after: TrustState,
    sources: Any = None,
    now: dt.datetime | None = None,
) -> ImpactReport:
    """The impact report of moving the live `before` to `after`, from the request logs of the last
    `changes.report_window_seconds` and the certificates the params know."""
    state.require_split(params)
    since, until = log_window(params, now)
    known, intended = known_clients(params), intended_fingerprints(params)
    with window_entries(clients, params, since, sources) as (entries, notes):
        seen = clients_seen(entries, since, until)
    report = impact_report(before, after, seen, known, intended, since, until)
    report.notes += notes
    unmatched = intended - {c.fingerprint for c in report.clients}
    if unmatched:
        report.notes.append(
            f"{len(unmatched)} intended refusal(s) match no client seen or known: "
            + ", ".join(sorted(f[:16] for f in unmatched))
        )
    return report
