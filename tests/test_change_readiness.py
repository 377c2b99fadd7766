"""change.readiness: what REJECT_INVALID would refuse of ALLOW-mode traffic, by error, client and hour,
counted against the entries themselves, and the gate at max_refused_share."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from typing import Any

import pytest

from mtlskit.change import readiness
from mtlskit.change.impact import READINESS_GATE
from mtlskit.verify import logs, synthetic

WINDOW = dt.timedelta(hours=6)


def population(
    shares: tuple[float, float, float, float], mode: str = synthetic.ALLOW
) -> synthetic.Population:
    return synthetic.rotation_population("T0xE", "TkVX", "Rk9S", clients=100, shares=shares, mode=mode)


def entries(shares: tuple[float, float, float, float], n: int = 6000, **shape: Any) -> list[dict[str, Any]]:
    return synthetic.entries(
        n, seed=21, shape=synthetic.Shape(population=population(shares), window=WINDOW, **shape)
    )


def would_refuse(e: dict[str, Any]) -> str | None:
    """Read from the entry itself, independently of the SQL: the error REJECT_INVALID would close with."""
    m = e["jsonPayload"]["mtls"]
    if not m["clientCertPresent"]:
        return "client_cert_not_provided"
    return None if m["clientCertChainVerified"] else m["clientCertError"]


@pytest.fixture(scope="module")
def mixed() -> tuple[list[dict[str, Any]], readiness.Readiness]:
    got = entries((0.90, 0.04, 0.03, 0.03))
    return got, readiness.readiness(logs.entries_frame(got))


def test_counts_by_error_client_and_hour_match_the_entries(mixed: Any) -> None:
    got, r = mixed
    refused = [(e, would_refuse(e)) for e in got if would_refuse(e)]
    assert r.requests == len(got) and r.refused == len(refused) > 0 and r.no_verdict == 0
    assert r.refused_share == pytest.approx(len(refused) / len(got))
    by_error = Counter(err for _, err in refused)
    assert dict(zip(r.by_error["error"], r.by_error["requests"], strict=True)) == dict(by_error)
    by_ip = Counter(e["httpRequest"]["remoteIp"] for e, _ in refused)
    assert dict(zip(r.by_client["remote_ip"], r.by_client["requests"], strict=True)) == dict(by_ip)
    assert r.refused_clients == len(by_ip) == len(r.by_client)
    assert list(r.by_client["requests"]) == sorted(r.by_client["requests"], reverse=True)
    no_cert = r.by_client[r.by_client["certificate"] == "none"]
    assert set(no_cert["client"]) == {f"{ip}, no certificate" for ip in no_cert["remote_ip"]}
    assert (no_cert["error"] == "client_cert_not_provided").all()
    hours = Counter(e["timestamp"][:13] for e, _ in refused)
    assert len(r.by_hour) == 6 and int(r.by_hour["requests"].sum()) == len(got)
    assert [int(x) for x in r.by_hour["refused"]] == [hours[k] for k in sorted(hours)]


def test_gate_refuses_above_max_share_naming_the_clients_and_passes_within(mixed: Any) -> None:
    _, r = mixed
    refused = r.gate(0.0)
    assert not refused.passed and refused.names == tuple(r.by_client["client"])
    assert "above changes.max_refused_share 0.00%" in refused.reason and "no certificate" in refused.reason
    check = refused.check()
    assert (check.name, check.status) == (READINESS_GATE, "fail") and "max_refused_share" in check.fix
    allowed = r.gate(0.5)
    assert allowed.passed and allowed.check().status == "pass" and "within" in allowed.reason
    data = json.loads(json.dumps(r.to_dict(limit=4)))
    assert len(data["by_client"]) == 4 and data["by_client_not_listed"] == len(r.by_client) - 4
    assert data["refused"] == r.refused and len(data["by_hour"]) == 6


def test_traffic_where_everyone_verifies_passes_at_zero() -> None:
    r = readiness.readiness(logs.entries_frame(entries((1.0, 0.0, 0.0, 0.0), n=500)))
    assert (r.refused, r.refused_share, len(r.by_client), len(r.by_error)) == (0, 0.0, 0, 0)
    gate = r.gate(0.0)
    assert gate.passed and gate.names == () and gate.check().status == "pass"


def test_a_log_without_verdicts_cannot_pass_the_gate() -> None:
    got = entries((0.95, 0.0, 0.05, 0.0), n=300, mtls_object=False)
    r = readiness.readiness(logs.entries_frame(got))
    assert r.no_verdict == r.requests and not r.gate(1.0).passed
    assert "carry no chain verdict" in r.gate(1.0).reason


def test_window_selects_the_hours_asked_for(mixed: Any) -> None:
    got, whole = mixed
    start = synthetic.Shape().start
    r = readiness.readiness(
        logs.entries_frame(got), since=start + dt.timedelta(hours=2), until=start + dt.timedelta(hours=3)
    )
    assert len(r.by_hour) == 1 and r.requests == int(whole.by_hour["requests"].iloc[2])
