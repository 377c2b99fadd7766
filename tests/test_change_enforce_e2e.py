"""Enforcement and break-glass on a sandbox of their own, with real TLS clients from distinct loopback
addresses: two frontends in ALLOW mode in front of the same backend service, each with its own
forwarding rule (so each has its own request logs).

- frontend A: 100 clients, 3 of them without a certificate; the flip's gate refuses, names those
  three, and changes nothing;
- frontend B: 100 clients, all with a certificate; the flip passes its gate, is applied, proven and
  watched, and a client without a certificate is refused afterwards; then break-glass (to ALLOW, and
  detached) lets that client through, and each way back restores exactly the enforcing state.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mtlskit.build import frontend, stack
from mtlskit.change import breakglass, enforce, traffic
from mtlskit.change.state import ALLOW, REJECT, TrustState, live_state
from mtlskit.cloud.clients import Clients, build_clients
from mtlskit.config import params as params_mod
from mtlskit.core.errors import ChangeRefused
from mtlskit.core.poll import poll
from mtlskit.migrate import rehearsal
from mtlskit.sandbox import process
from mtlskit.verify import changerecords, probe
from tests.conftest import sandbox_call
from tests.test_runbook import mutating_calls

pytestmark = pytest.mark.e2e

FAST = {
    "report_window_seconds": 600,
    "propagation_timeout_seconds": 20,
    "poll_seconds": 0.2,
    "watch_seconds": 1.0,
}
FRONTEND = {
    "address": "mtls-ip",
    "certificate": "mtls-cert",
    "ssl_policy": "mtls-ssl",
    "url_map": "mtls-urlmap",
    "target_proxy": "mtls-proxy",
    "forwarding_rule": "mtls-fr",
}


def _names(suffix: str) -> dict[str, dict[str, str]]:
    """Another frontend in front of the same backend service: its own forwarding rule (and logs)."""
    return {
        "frontend": {k: f"{v}-{suffix}" for k, v in FRONTEND.items()},
        "mtls": {"trust_config": f"mtls-trust-{suffix}", "server_tls_policy": f"mtls-policy-{suffix}"},
    }


@dataclass
class Frontend:
    allow: params_mod.Params  # what built it: ALLOW mode
    params: params_mod.Params  # the params after the operator's edit: REJECT_INVALID
    clients: Clients

    def target(self) -> probe.Frontend:
        return probe.locate_frontend(self.clients, self.params)


def _params(
    d: Path, names: dict[str, dict[str, str]], mode: str, records: str, **changes: Any
) -> params_mod.Params:
    mtls = {**names.get("mtls", {}), "validation_mode": mode}
    return rehearsal.moved(
        "sandbox.yaml",
        d,
        {
            **names,
            "mtls": mtls,
            "sandbox": {"operation_delay_seconds": 0.05, "propagation_delay_seconds": 0.5},
            "changes": {**FAST, "records": records, **changes},
        },
    )


def _built(d: Path, names: dict[str, dict[str, str]], records: str, **changes: Any) -> Frontend:
    allow = _params(d, names, ALLOW, records, **changes)
    clients = build_clients(allow)
    stack.build(clients, allow)
    frontend.wait_for_certificate(clients, allow, 30, poll_seconds=0.2)
    built = Frontend(allow, _params(d, names, REJECT, records, **changes), clients)
    one = traffic.population(allow, 1, 0, first_source="127.0.0.251")
    answered = poll(lambda: traffic.send(built.target(), one)[0], lambda s: s.status == 200, 15, every=0.2)
    assert answered.done, answered.value  # the data plane serves the new frontend
    return built


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    d = tmp_path_factory.mktemp("enforce-state")
    try:
        yield d
    finally:
        process.stop(d)


@pytest.fixture(scope="module")
def a(sandbox: Path) -> Frontend:
    return _built(sandbox, {}, str(sandbox / "records-a"))


@pytest.fixture(scope="module")
def b(sandbox: Path, a: Frontend) -> Frontend:
    return _built(sandbox, _names("b"), str(sandbox / "records-b"))


@pytest.fixture(scope="module")
def c(sandbox: Path, b: Frontend) -> Frontend:
    return _built(
        sandbox, _names("c"), str(sandbox / "records-c"), rollback_on_failure=True, watch_seconds=3.0
    )


BARE = "127.0.0.250"


def _bare(f: Frontend, source: str = BARE) -> traffic.Sent:
    """One request without a certificate from an address no population client uses."""
    return traffic.send(f.target(), [traffic.Client("bare", source)])[0]


def test_gate_refuses_the_flip_while_3_percent_of_clients_send_no_certificate(a: Frontend) -> None:
    clients = traffic.population(a.params, 100, 3)
    bare = {c.source_ip for c in clients if c.cert is None}
    sent = traffic.send(a.target(), clients)
    assert len(bare) == 3 and all(s.status == 200 for s in sent)  # ALLOW mode forwards them all
    before = live_state(a.clients, a.params)
    sandbox_call(a.clients, "counters", "DELETE")

    result = enforce.enforce(a.clients, a.params)

    gate = result.checks()[0]
    assert gate.status == "fail", gate
    named = set(result.prepared.report.gate().names) if result.prepared.report else set()
    said = " ".join(named) + gate.evidence
    assert all(ip in said for ip in bare), (bare, named, gate.evidence)
    others = {c.source_ip for c in clients} - bare
    assert not any(f"{ip} " in f"{n} " for ip in others for n in named), (
        named
    )  # no client with a certificate named
    assert live_state(a.clients, a.params) == before and before.mode == ALLOW  # nothing changed
    assert mutating_calls(sandbox_call(a.clients, "counters")["counts"]) == {}
    record = changerecords.last_record(a.params, "enforcement")
    assert record is not None and record.outcome == "refused" and record.exit_code == 1
    assert record.mode_before == record.mode_after == ALLOW
    assert _bare(a).status == 200  # still let through


def test_c20_and_c30_pages_show_the_refusal_as_a_failed_check_and_change_nothing(a: Frontend) -> None:
    """The notebooks' calls in process, on frontend A after its refused gate: the readiness tables
    name the clients without a certificate, the run is a failed check (what `mtlskit run` turns into exit 1 with the
    reason on stderr), and c30's way back refuses when no break-glass is open."""
    from mtlskit import runbook
    from mtlskit.runner.step import Step, StepFailed

    before = live_state(a.clients, a.params)
    page = runbook.enforcement(Step(a.params, a.clients, apply=True))
    assert page.state()["after the flip"].tolist()[0] == REJECT
    bare = {c.source_ip for c in traffic.population(a.params, 100, 3) if c.cert is None} | {BARE}
    assert set(page.by_client()["remote_ip"]) == bare  # the three, and the bare request after the gate
    assert page.by_error()["error"].tolist() == ["client_cert_not_provided"]
    page.run()
    checks = page.checks()
    assert [c.status for c in checks] == ["fail", "pass"] and "127.0.0.52" in checks[0].evidence
    assert checks[1].name == "change recorded"
    with pytest.raises(StepFailed, match="127.0.0.18"):
        Step(a.params, a.clients, apply=True).finish(checks)
    glass = runbook.break_glass(Step(a.params, a.clients, apply=True), way_back=True)
    glass.run()
    assert [(c.name, c.status) for c in glass.checks()] == [("way back", "fail")]
    assert "no break-glass" in glass.checks()[0].evidence
    assert live_state(a.clients, a.params) == before


def test_without_such_clients_the_flip_passes_and_is_proven_and_watched(b: Frontend) -> None:
    clients = traffic.population(b.params, 100, 0)
    sent = traffic.send(b.target(), clients)
    assert all(s.status == 200 for s in sent), {(s.status, s.ended) for s in sent}
    # 50_verify's probes (no certificate, foreign, expired, ...) are the kit's own, not clients
    assert len(probe.send_probes(b.clients, b.allow, b.target())) > 5

    result = enforce.enforce(b.clients, b.params)

    checks = result.checks()
    assert checks and all(c.status == "pass" for c in checks), [c for c in checks if c.status != "pass"]
    names = {c.name for c in checks}
    assert {"load balancer applied the change", "watch: proof cases", "watch: refused clients"} <= names
    assert any(n.startswith("proof missing") for n in names)
    after = live_state(b.clients, b.params)
    assert after.enforcing and after.certs == result.prepared.live.certs  # only the mode moved
    assert _bare(b).ended == "closed"  # a new connection without a certificate is refused
    assert all(s.status == 200 for s in traffic.send(b.target(), clients[:5]))
    record = changerecords.last_record(b.params, "enforcement")
    assert record is not None and record.outcome == "applied"
    assert (record.mode_before, record.mode_after) == (ALLOW, REJECT)
    assert enforce.enforce(b.clients, b.params).run is None  # a re-run finds nothing to flip


@pytest.mark.parametrize("how", ["allow", "detach"])
def test_break_glass_lets_a_client_without_certificate_through_and_the_way_back_restores(
    b: Frontend, how: str
) -> None:
    params = _with(b.params, how)
    enforcing = live_state(b.clients, params)
    assert enforcing.enforcing, "runs after the flip"

    broke = breakglass.break_glass(b.clients, params)

    checks = broke.checks()
    assert all(c.status == "pass" for c in checks), [c for c in checks if c.status != "pass"]
    assert breakglass.THROUGH in {c.name for c in checks}
    relaxed = live_state(b.clients, params)
    expected = (
        TrustState(enforcing.certs, ALLOW, True)
        if how == "allow"
        else TrustState(enforcing.certs, REJECT, False)
    )
    assert relaxed == expected
    assert _bare(b).status == 200
    record = changerecords.last_record(params, "break-glass")
    assert record is not None and TrustState.from_dict(record.before) == enforcing

    back = breakglass.way_back(b.clients, params)

    checks = back.checks()
    assert all(c.status == "pass" for c in checks), [c for c in checks if c.status != "pass"]
    assert {"state before break-glass restored", breakglass.REFUSED_AGAIN} <= {c.name for c in checks}
    assert live_state(b.clients, params) == enforcing
    assert _bare(b).ended == "closed"
    with pytest.raises(ChangeRefused, match="no break-glass"):
        breakglass.way_back(b.clients, params)  # taken already: nothing to take back


def _with(p: params_mod.Params, how: str) -> params_mod.Params:
    return p.model_copy(update={"changes": p.changes.model_copy(update={"break_glass": how})})


def test_a_client_refused_during_the_watch_fails_the_flip_and_the_way_back_is_taken(c: Frontend) -> None:
    """A client without a certificate that was quiet in the report's window starts calling once the
    flip is under way: the watch sees it refused, and changes.rollback_on_failure takes the way back."""
    target, late = c.target(), traffic.Client("late", "127.0.0.240")
    stop, calling = threading.Event(), threading.Event()

    def keep_calling() -> None:
        calling.wait(30)
        while not stop.is_set():
            traffic.send(target, [late])
            stop.wait(0.05)

    sender = threading.Thread(target=keep_calling, daemon=True)
    sender.start()
    try:
        result = enforce.enforce(c.clients, c.params, on_progress=lambda _line, _elapsed: calling.set())
    finally:
        stop.set()
        calling.set()
        sender.join(10)

    checks = {ch.name: ch for ch in result.checks()}
    assert checks["watch: refused clients"].status == "fail", checks["watch: refused clients"]
    assert late.source_ip in checks["watch: refused clients"].evidence
    assert result.went_back is not None and result.went_back.passed, result.went_back
    assert checks["way back"].status == "pass" and "taken" in checks["way back"].evidence
    assert live_state(c.clients, c.params) == result.prepared.live  # back in ALLOW mode
    assert _bare(c).status == 200
    kinds = [(r.kind, r.outcome) for r in changerecords.read_records(c.params)]
    assert kinds[-2:] == [("enforcement", "failed"), ("rollback", "applied")], kinds
