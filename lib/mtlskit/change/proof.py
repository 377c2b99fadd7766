"""The proof of a change: every known client, presented on a new connection, gets the verdict the
kit's own rules give it against the state, and the wait until the load balancer applied a change.

Google's load balancer takes minutes to apply a trust-config or policy change, and a connection kept
alive keeps the verdict it had: a runbook that probes too early, or over an old connection, proves
the state before. So the wait sends one case whose verdict differs between before and after, each
time on a fresh connection, until the after verdict shows; then every case is proven. The cases are
the probe certificate and the params' proof clients, a foreign certificate made on the fly (its key
in a private temporary folder, never shown), and no certificate. Each has a category: old CA (trusted
now, not by the params' target), new CA (trusted by the target), foreign, missing. Requests and
their judging are `verify.probe`'s, with the expectation from `rules.verdict.judge` and the state.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
from cryptography import x509

from mtlskit.change.state import TrustState, target_state
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core.checks import Check
from mtlskit.core.poll import poll
from mtlskit.pki import certs
from mtlskit.rules import verdict as verdicts
from mtlskit.rules.logentry import NOT_PROVIDED
from mtlskit.verify import probe

OLD, NEW, FOREIGN, MISSING = "old CA", "new CA", "foreign", "missing"
CATEGORIES = (OLD, NEW, FOREIGN, MISSING)
FOREIGN_CASE = "foreign self-signed"
DETACHED = "no server TLS policy"  # the mode a probe is judged in when the proxy names no policy
# Wait preference: a new-CA certificate shows an added CA, an old-CA one a removed CA.
PREFERENCE = {NEW: 0, OLD: 1, MISSING: 2, FOREIGN: 3}


@dataclass(frozen=True)
class ProofCase:
    """A certificate to present (or none) and its category for this change."""

    case: probe.Case  # name, files and source; its `expected` is set per state by `for_state`
    category: str

    @property
    def name(self) -> str:
        return self.case.name

    def presented(self) -> tuple[x509.Certificate | None, list[x509.Certificate]]:
        """(leaf, issuers sent after it), read from the case's files."""
        if not self.case.cert:
            return None, []
        sent = x509.load_pem_x509_certificates(Path(self.case.cert).read_bytes())
        for f in self.case.chain:
            sent += x509.load_pem_x509_certificates(Path(f).read_bytes())
        return sent[0], sent[1:]

    def expected(self, state: TrustState) -> str:
        """ "ok" or the `client_cert_*` error the load balancer gives it under `state`."""
        if not state.attached:
            return "ok"  # no policy: the proxy asks for no certificate and forwards every request
        leaf, sent = self.presented()
        if leaf is None:
            return NOT_PROVIDED
        return verdicts.judge(leaf, sent, state.material()).error or "ok"

    def for_state(self, state: TrustState) -> probe.Case:
        return dataclasses.replace(self.case, expected=self.expected(state))

    def differs(self, before: TrustState, after: TrustState) -> bool:
        """Would a probe tell `after` from `before`? Its verdict changes, or the mode changes for a
        certificate that does not verify (refused in one mode, forwarded with an error in the other)."""
        old, new = self.expected(before), self.expected(after)
        return old != new or (new != "ok" and _mode(before) != _mode(after))


def _mode(state: TrustState) -> str:
    return str(state.mode) if state.attached else DETACHED


def _category(case: probe.Case, target: TrustState, states: tuple[TrustState, ...]) -> str:
    if not case.cert:
        return MISSING
    one = ProofCase(case, "")
    leaf, sent = one.presented()
    assert leaf is not None

    def trusted(state: TrustState) -> bool:
        return bool(state.certs) and verdicts.judge(leaf, sent, state.material()).ok

    if trusted(target):
        return NEW
    return OLD if any(trusted(s) for s in states) else FOREIGN


@cache
def foreign_certificate() -> tuple[str, str]:
    """A self-signed client certificate nobody trusts, made once per process: (cert, key) paths in a
    private temporary folder (mode 0700, removed at exit). The key is only ever handed to OpenSSL."""
    directory = Path(tempfile.mkdtemp(prefix="mtlskit-foreign-"))
    atexit.register(shutil.rmtree, directory, True)
    issued = certs.issue("foreign-client.mtlskit.invalid", eku=certs.CLIENT_AUTH)
    cert, key = certs.write_issued(directory, "foreign-client", issued)
    return str(cert), str(key)


def proof_cases(params: Params, before: TrustState, after: TrustState) -> list[ProofCase]:
    """The probe certificate, each proof client, a foreign self-signed certificate and no
    certificate, each with its category (by the params' target trust and the two states)."""
    target = target_state(params)
    cases: list[probe.Case] = []
    p = params.probe
    if p.client_cert and p.client_key:
        cases.append(
            probe.Case(probe.PROBE_CERTIFICATE, "ok", p.client_cert, p.client_key, source="probe.client_cert")
        )
    for c in params.changes.proof_clients:
        cases.append(probe.Case(c.name, "ok", c.cert, c.key, tuple(c.chain), source="changes.proof_clients"))
    cert, key = foreign_certificate()
    cases.append(probe.Case(FOREIGN_CASE, "ok", cert, key, source="made for this proof"))
    cases.append(probe.Case(probe.NO_CERTIFICATE, NOT_PROVIDED, source="(none sent)"))
    return [ProofCase(c, _category(c, target, (before, after))) for c in cases]


@dataclass(frozen=True)
class Proven:
    """One case presented against one state: what was expected, what happened, the verdict."""

    category: str
    result: probe.ProbeResult

    def row(self) -> dict[str, Any]:
        r = self.result
        return {
            "category": self.category,
            "case": r.case,
            "expected": _expectation(r),
            "outcome": r.outcome,
            "verdict": r.verdict,
            "detail": r.detail,
        }

    def check(self) -> Check:
        r = self.result
        return Check(
            f"proof {self.category}: {r.case}",
            r.verdict,  # type: ignore[arg-type]
            f"expected {_expectation(r)}; got {r.outcome}" + (f" ({r.detail})" if r.detail else ""),
            r.fix,
        )


def _expectation(r: probe.ProbeResult) -> str:
    if r.validation_mode == DETACHED:
        return "answered (no client certificate asked)"
    return probe.expectation_text(r.expected, r.validation_mode)


@dataclass(frozen=True)
class Prober:
    """The frontend as the probe finds it, with the mTLS header names its judging reads."""

    target: probe.Frontend
    names: dict[str, str]
    work: Path  # where a case's certificate bundle is written (certificates only)

    def present(self, one: ProofCase, state: TrustState) -> Proven:
        """One fresh connection for one case, judged against `state` by the probe's own rules."""
        if state.attached:
            target = dataclasses.replace(self.target, validation_mode=str(state.mode))
            return Proven(one.category, probe.probe(target, one.for_state(state), self.names, self.work))
        # No policy: the probe's judging of an accepted certificate does not apply; answered is all.
        result = probe.probe(self.target, one.for_state(state), self.names, self.work)
        answered = result.http_status is not None and result.http_status < 500
        return Proven(
            one.category,
            dataclasses.replace(
                result,
                validation_mode=DETACHED,
                verdict="pass" if answered else "fail",
                detail="" if answered else "the proxy names no policy, so every request should be answered",
                fix="" if answered else "see 50_verify's check 'frontend answers'",
            ),
        )


@contextlib.contextmanager
def prober(clients: Clients, params: Params) -> Iterator[Prober]:
    target = probe.locate_frontend(clients, params)
    with tempfile.TemporaryDirectory(prefix="mtlskit-proof-") as work:
        yield Prober(target, probe.mtls_header_names(params), Path(work))


def proof_results(
    clients: Clients, params: Params, state: TrustState, before: TrustState | None = None
) -> list[Proven]:
    """Every proof case, each on a new connection, judged against `state` (categories by `before`
    and `state`)."""
    cases = proof_cases(params, before or state, state)
    with prober(clients, params) as p:
        return [p.present(c, state) for c in cases]


def prove(
    clients: Clients, params: Params, state: TrustState, before: TrustState | None = None
) -> list[Check]:
    """One check per proof case: its outcome against what `rules.verdict.judge` says of `state`."""
    return [p.check() for p in proof_results(clients, params, state, before)]


def proof_frame(proven: list[Proven]) -> pd.DataFrame:
    return pd.DataFrame([p.row() for p in proven])


@dataclass(frozen=True)
class Applied:
    """How the wait for the load balancer ended."""

    done: bool
    elapsed: float
    case: str  # the case whose verdict told before from after ("" when none could)
    tries: int
    last: str  # the last outcome seen
    timeout: float

    def check(self) -> Check:
        name = "load balancer applied the change"
        if not self.case:
            return Check(
                name,
                "warn",
                "no proof case's verdict differs between before and after, so no probe can tell when "
                "the load balancer applied it",
                "add a proof client (changes.proof_clients) whose certificate the change affects",
            )
        if self.done:
            return Check(
                name,
                "pass",
                f"case {self.case!r} showed the new verdict on a new connection after {self.elapsed:.1f}s "
                f"({self.tries} tries)",
            )
        return Check(
            name,
            "fail",
            f"case {self.case!r} still showed the old verdict after {self.elapsed:.0f}s ({self.tries} "
            f"tries; last: {self.last})",
            f"the load balancer has not applied the change within changes.propagation_timeout_seconds "
            f"({self.timeout:g}s): re-run to wait again, or raise it; a rollback restores the state before",
        )


Progress = Callable[[str, float], None]


def wait_applied(
    clients: Clients,
    params: Params,
    before: TrustState,
    after: TrustState,
    on_progress: Progress | None = None,
) -> Applied:
    """Present a case whose verdict differs between `before` and `after` on new connections (never a
    kept-alive one) until it shows the `after` verdict, or `changes.propagation_timeout_seconds` pass."""
    timeout = params.changes.propagation_timeout_seconds
    telling = sorted(
        (c for c in proof_cases(params, before, after) if c.differs(before, after)),
        key=lambda c: PREFERENCE[c.category],
    )
    if not telling:
        return Applied(True, 0.0, "", 0, "", timeout)
    one = telling[0]
    tries = 0
    with prober(clients, params) as p:

        def read() -> Proven:
            nonlocal tries
            tries += 1
            return p.present(one, after)

        def shown(p: Proven, elapsed: float) -> None:
            if on_progress:
                on_progress(f"{one.name}: {p.result.outcome}", elapsed)

        polled = poll(
            read,
            lambda p: p.result.verdict == "pass",
            timeout,
            every=params.changes.poll_seconds,
            on_read=shown,
        )
    return Applied(polled.done, polled.elapsed, one.name, tries, polled.value.result.outcome, timeout)
