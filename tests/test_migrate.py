"""The migration's decisions without a sandbox: which phase the world calls for, when the old frontend
counts as drained, what retirement keeps, how a Gateway object is read."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from mtlskit.build.plan import Change
from mtlskit.config import params as params_mod
from mtlskit.core.checks import Check
from mtlskit.migrate import drain
from mtlskit.migrate.dns_side import Record
from mtlskit.migrate.gateway_side import GatewayView, view_of
from mtlskit.migrate.page import Migration
from mtlskit.migrate.run import PhaseResult
from mtlskit.migrate.state import DONE, MigrationState, kept_kinds, next_phase
from mtlskit.runner.step import Step, StepFailed
from tests.conftest import sandbox_params

NEW, OLD = "127.0.0.9", "127.0.0.2"
READY = GatewayView(True, True, NEW, "gkegw1-abcd-default-web-gateway-0123456789ab")
FR = Change("ForwardingRule", "mtls-fr", "delete", [])
INGRESS = Change("Ingress", "web-anchor", "delete", [])


def _params(tmp_path: Path, **migration: object) -> params_mod.Params:
    return sandbox_params(
        tmp_path,
        topology="gateway",
        dns={"managed_zone": "mtlskit", "ttl_seconds": 2, "cutover_ttl_seconds": 1},
        migration={"drain_window_seconds": 2, "poll_seconds": 0.5, **migration},
    )


def _state(
    gateway: GatewayView,
    ips: str,
    ttl: int = 1,
    retire: tuple[Change, ...] = (FR, INGRESS),
    strategy: str = "new_ip",
) -> MigrationState:
    return MigrationState(
        strategy, FR in retire, OLD, list(retire), gateway, {"api.mtlskit.test": Record((ips,), ttl)}
    )


def test_each_new_ip_phase_follows_from_what_exists(tmp_path: Path) -> None:
    p = _params(tmp_path)
    assert next_phase(p, _state(GatewayView(False), OLD, ttl=2)) == "build"
    assert next_phase(p, _state(GatewayView(True, False, None, None, "no address"), OLD)) == "build"
    assert next_phase(p, _state(READY, OLD)) == "verify"
    assert next_phase(p, _state(READY, OLD), {"verify"}) == "cutover"
    assert next_phase(p, _state(READY, NEW)) == "drain"  # a re-run after the cut-over never repeats it
    assert next_phase(p, _state(READY, NEW), {"drain"}) == "retire"
    assert next_phase(p, _state(READY, NEW, retire=(INGRESS,))) == "retire"  # retirement half done
    assert next_phase(p, _state(READY, NEW, ttl=1, retire=())) == "retire"  # the usual TTL not back yet
    assert next_phase(p, _state(READY, NEW, ttl=2, retire=())) == DONE


def test_named_address_switches_first_then_verifies_and_retires(tmp_path: Path) -> None:
    p = _params(tmp_path)
    assert next_phase(p, _state(GatewayView(False), OLD, ttl=2, strategy="named_address")) == "switch"
    after = _state(
        GatewayView(True, True, OLD, "gkegw1-x"), OLD, ttl=2, retire=(INGRESS,), strategy="named_address"
    )
    assert next_phase(p, after) == "verify"
    assert next_phase(p, after, {"verify"}) == "retire"


def test_retirement_keeps_what_the_gateway_goes_on_using(tmp_path: Path) -> None:
    p = _params(tmp_path)
    assert kept_kinds(p) == {"SslPolicy", "SslCertificate"}
    named = sandbox_params(
        tmp_path,
        topology="gateway",
        gateway={"address": "named_address", "certificate": "certificate_map", "certificate_map": "m"},
    )
    assert kept_kinds(named) == {"SslPolicy", "Address"}


def _at(seconds: float) -> dt.datetime:
    return dt.datetime(2026, 12, 4, 3, 0, tzinfo=dt.UTC) + dt.timedelta(seconds=seconds)


def test_drained_only_after_a_whole_window_at_or_below_the_threshold(tmp_path: Path) -> None:
    p = _params(tmp_path, drain_window_seconds=60, poll_seconds=10, drained_requests_per_minute=1)
    times = {"old": [_at(5), _at(30)], "new": [_at(s) for s in range(0, 120, 2)]}
    early = drain.rates(times, "old", "new", _at(0), _at(40), 60)
    assert (early.old_requests, early.window_seconds) == (2, 40)
    assert not drain.drained(early, p)  # the window has not passed yet
    busy = drain.rates(times, "old", "new", _at(0), _at(60), 60)
    assert busy.old_per_minute == 2 and not drain.drained(busy, p)
    quiet = drain.rates(times, "old", "new", _at(0), _at(100), 60)
    assert quiet.old_requests == 0 and quiet.new_requests == 30 and drain.drained(quiet, p)
    assert "old: 0.0/min (0), new: 30.0/min (30)" in quiet.line()


def test_drain_filter_names_the_rule_and_the_time() -> None:
    text = drain.rule_filter("p", "mtls-fr", _at(0))
    assert (
        'resource.labels.forwarding_rule_name="mtls-fr"' in text and 'timestamp>="2026-12-04T03:00:00' in text
    )


def test_window_must_not_be_shorter_than_a_poll(tmp_path: Path) -> None:
    with pytest.raises(params_mod.ParamsError, match="must not exceed drain_window_seconds"):
        _params(tmp_path, drain_window_seconds=1, poll_seconds=5)


def test_gateway_object_read_as_the_migration_needs_it(tmp_path: Path) -> None:
    p = _params(tmp_path)
    assert not view_of(p, None).exists and "does not exist" in view_of(p, None).reason
    obj = {
        "metadata": {
            "annotations": {
                "networking.gke.io/forwarding-rules": "/projects/p/global/forwardingRules/gkegw1-a-fr",
                "networking.gke.io/target-https-proxies": "/projects/p/global/targetHttpsProxies/gkegw1-a-tp",
            }
        },
        "status": {
            "addresses": [{"type": "IPAddress", "value": NEW}],
            "conditions": [{"type": "Programmed", "status": "True", "reason": "Programmed"}],
        },
    }
    assert view_of(p, obj) == GatewayView(True, True, NEW, "gkegw1-a-fr")
    pending = {
        "status": {
            "conditions": [
                {"type": "Programmed", "status": "False", "reason": "Pending", "message": "syncing"}
            ]
        }
    }
    v = view_of(p, pending)
    assert not v.ready and "Programmed=False (Pending: syncing)" in v.reason


def test_a_refused_gate_fails_the_step_naming_the_phase_and_its_way_back(tmp_path: Path) -> None:
    step = Step(_params(tmp_path), clients=None, apply=True)  # type: ignore[arg-type]
    migration = Migration(step, ops=None)  # type: ignore[arg-type]
    migration.results = [
        PhaseResult("build", 1.0, [Check("Gateway programmed", "pass", "on 127.0.0.9")]),
        PhaseResult(
            "verify", 0.5, [Check("probe demo/expired (Gateway at 127.0.0.9)", "fail", "HTTP 200", "…")]
        ),
    ]
    checks = migration.checks()
    gates = {c.name: c for c in checks if c.name.startswith("gate ")}
    assert gates["gate build"].status == "pass" and gates["gate verify"].status == "fail"
    assert (
        "continues at verify" in gates["gate verify"].fix and "delete the Gateway" in gates["gate verify"].fix
    )
    assert "verify: probe demo/expired (Gateway at 127.0.0.9)" in {c.name for c in checks}
    assert (
        migration.gates() == "build: PASS (1 checks)\nverify: FAIL: probe demo/expired (Gateway at 127.0.0.9)"
    )
    with pytest.raises(StepFailed, match="gate verify: refused"):
        step.finish(checks)
