"""Request logs: the flattened table from hand-written API-shaped entries, the probe matching on
synthetic probes, and the whole cross-check against a sandbox load balancer that real TLS clients
talked to (plus the 60_logs notebook run headless)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import ssl
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
import yaml
from matplotlib.figure import Figure

from mtlskit.build import stack
from mtlskit.cloud.clients import Clients, build_clients
from mtlskit.config.params import Params
from mtlskit.pki import certs
from mtlskit.runner import execute
from mtlskit.verify import logs, probe
from mtlskit.verify.probe import PROBE_HEADER, PROBE_PATH, ProbeResult
from tests.conftest import PROJECT, ResolveAdapter, free_port, sandbox_call, sandbox_params, wait_serving

T0 = dt.datetime(2026, 5, 1, 10, 0, 0, tzinfo=dt.UTC)
FINGERPRINT = "q1w2e3r4t5y6u7i8o9p0AbCdEfGhIjKlMnOpQrStUvW="


def at(seconds: float) -> str:
    return logs.rfc3339(T0 + dt.timedelta(seconds=seconds))


def lb_entry(
    seconds: float,
    details: str,
    status: int,
    url: str | None = None,
    mtls: dict[str, Any] | None = None,
    backend_service: str = "",
    insert_id: str | None = None,
) -> dict[str, Any]:
    """An http_load_balancer entry as the API returns it (the shape of reference §4.4)."""
    http: dict[str, Any] = {"status": status, "remoteIp": "203.0.113.7", "latency": "0.001s"}
    if url:
        http.update(requestMethod="GET", requestUrl=url, userAgent="python-requests/2.34.2")
    payload: dict[str, Any] = {
        "@type": logs.PAYLOAD_TYPE,
        "statusDetails": details,
        "remoteIp": "203.0.113.7",
        "tls": {"protocol": "TLSv1.3", "cipher": "TLS_AES_128_GCM_SHA256", "earlyDataRequest": False},
    }
    if mtls is not None:
        payload["mtls"] = mtls
    return {
        "insertId": insert_id or uuid.uuid4().hex[:14],
        "logName": "projects/my-proj/logs/requests",
        "resource": {
            "type": "http_load_balancer",
            "labels": {
                "project_id": "my-proj",
                "zone": "global",
                "forwarding_rule_name": "mtls-fr",
                "target_proxy_name": "mtls-proxy",
                "url_map_name": "mtls-um",
                "backend_service_name": backend_service,
            },
        },
        "httpRequest": http,
        "jsonPayload": payload,
        "severity": "INFO",
        "timestamp": at(seconds),
        "receiveTimestamp": at(seconds + 1),
    }


def accepted(seconds: float, probe_id: str = "p-ok") -> dict[str, Any]:
    return lb_entry(
        seconds,
        "response_sent_by_backend",
        200,
        url=f"https://api.example.com{PROBE_PATH}{probe_id}",
        mtls={
            "clientCertPresent": True,
            "clientCertChainVerified": True,
            "clientCertError": "",
            "clientCertSha256Fingerprint": FINGERPRINT,
            "clientCertSerialNumber": "0a:1b",
        },
        backend_service="k8s1-abc-default-web-80-xyz",
        insert_id="ok-1",
    )


def refused(seconds: float, details: str, **mtls: Any) -> dict[str, Any]:
    present = details != "client_cert_not_provided"
    verdict = {"clientCertPresent": present, "clientCertChainVerified": False, "clientCertError": details}
    return lb_entry(seconds, details, 0, mtls={**verdict, **mtls})


def result(
    probe_id: str, expected: str, sent: float, finished: float, case: str | None = None
) -> ProbeResult:
    return ProbeResult(
        probe_id=probe_id,
        case=case or probe_id,
        expected="ok" if expected == "response_sent_by_backend" else expected,
        expected_status_details=expected,
        outcome="",
        http_status=200 if expected == "response_sent_by_backend" else None,
        verdict="pass",
        sent_at=at(sent),
        finished_at=at(finished),
    )


# ---- flattening -----------------------------------------------------------------------------------------


def test_accepted_request_row() -> None:
    row = logs.entries_frame([accepted(1)]).iloc[0]
    assert row["time"] == pd.Timestamp(T0 + dt.timedelta(seconds=1))
    assert row["status"] == 200
    assert row["status_details"] == "response_sent_by_backend"
    assert row["outcome"] == "accepted"
    assert bool(row["client_cert_present"]) and bool(row["client_cert_chain_verified"])
    assert pd.isna(row["client_cert_error"])
    assert row["client_cert_sha256_fingerprint"] == FINGERPRINT
    assert row["client_cert_serial_number"] == "0a:1b"
    assert row["remote_ip"] == "203.0.113.7"
    assert row["method"] == "GET"
    assert row["url"] == f"https://api.example.com{PROBE_PATH}p-ok"
    assert row["user_agent"] == "python-requests/2.34.2"
    assert (row["tls_protocol"], row["tls_cipher"]) == ("TLSv1.3", "TLS_AES_128_GCM_SHA256")
    assert row["backend_service"] == "k8s1-abc-default-web-80-xyz"
    assert row["forwarding_rule"] == "mtls-fr"
    assert row["probe_id"] == "p-ok"
    assert row["insert_id"] == "ok-1"


def test_closed_reject_connection_has_no_url() -> None:
    entry = refused(2, "client_cert_validation_failed", clientCertSha256Fingerprint=FINGERPRINT)
    row = logs.entries_frame([entry]).iloc[0]
    assert row["status"] == 0 and row["outcome"] == "refused"
    assert row["status_details"] == "client_cert_validation_failed"
    assert bool(row["client_cert_present"]) and not bool(row["client_cert_chain_verified"])
    assert row["client_cert_error"] == "client_cert_validation_failed"
    assert row["client_cert_sha256_fingerprint"] == FINGERPRINT
    for col in ("method", "url", "user_agent", "backend_service", "probe_id"):
        assert pd.isna(row[col]), col
    assert row["remote_ip"] == "203.0.113.7" and row["tls_protocol"] == "TLSv1.3"


def test_entry_without_mtls_object_reads_the_verdict_from_status_details() -> None:
    """The global load balancer documents only statusDetails; the table still says what it can."""
    frame = logs.entries_frame(
        [
            lb_entry(1, "client_cert_not_provided", 0),
            lb_entry(2, "client_cert_chain_invalid_eku", 0),
            lb_entry(3, "response_sent_by_backend", 200, url="https://api.example.com/"),
            lb_entry(4, "failed_to_pick_backend", 502, url="https://api.example.com/x"),
        ]
    )
    assert list(frame["outcome"]) == ["refused", "refused", "accepted", "other"]
    assert frame["client_cert_present"].tolist()[:2] == [False, pd.NA]
    assert frame["client_cert_chain_verified"].tolist() == [False, False, pd.NA, pd.NA]
    assert frame["client_cert_error"].tolist()[:2] == [
        "client_cert_not_provided",
        "client_cert_chain_invalid_eku",
    ]
    assert frame["client_cert_error"].iloc[2:].isna().all()
    assert frame["client_cert_sha256_fingerprint"].isna().all()
    assert frame["probe_id"].isna().all()


def test_boolean_strings_and_absent_booleans() -> None:
    """Some Google proxies log "true"/"false" strings, and Logging drops false booleans."""
    entry = refused(1, "client_cert_validation_failed")
    entry["jsonPayload"]["mtls"] = {"clientCertPresent": "true", "clientCertError": "x"}
    row = logs.entries_frame([entry]).iloc[0]
    assert bool(row["client_cert_present"]) is True
    assert bool(row["client_cert_chain_verified"]) is False


def test_exported_json_lines_and_json_array_read_like_api_entries(tmp_path: Path) -> None:
    entries = [refused(2, "client_cert_not_provided"), accepted(1)]
    lines = tmp_path / "requests.json"
    lines.write_text("\n".join(json.dumps(e) for e in entries) + "\n")
    array = tmp_path / "gcloud.json"
    array.write_text(json.dumps(entries, indent=2))
    expected = logs.entries_frame(entries)
    for path in (lines, array):
        frame = logs.entries_frame(logs.read_exported(path))
        pd.testing.assert_frame_equal(frame, expected)
    assert list(expected["status_details"]) == ["response_sent_by_backend", "client_cert_not_provided"]


def test_entry_objects_adapt_to_api_dicts() -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import logging as gl
    from google.cloud.logging_v2.entries import StructEntry

    client = gl.Client(project="my-proj", credentials=AnonymousCredentials(), _use_grpc=False)
    obj = StructEntry.from_api_repr(accepted(1), client=client)
    as_dict = logs.entries_frame([logs.entry_to_dict(obj)])
    pd.testing.assert_frame_equal(as_dict, logs.entries_frame([accepted(1)]))


# ---- summaries ------------------------------------------------------------------------------------------


def sample_frame() -> pd.DataFrame:
    return logs.entries_frame(
        [
            accepted(0, "a"),
            accepted(40, "b"),
            refused(5, "client_cert_not_provided"),
            refused(50, "client_cert_not_provided"),
            refused(60, "client_cert_validation_failed", clientCertSha256Fingerprint="F1"),
            refused(70, "client_cert_validation_failed", clientCertSha256Fingerprint="F1"),
            refused(80, "client_cert_chain_invalid_eku", clientCertSerialNumber="S2"),
        ]
    )


def test_counts_refused_certificates_and_outcomes() -> None:
    frame = sample_frame()
    summary = logs.summaries(frame, bucket="30s")
    assert summary.by_status_details.to_dict("records") == [
        {"status_details": "client_cert_not_provided", "entries": 2},
        {"status_details": "client_cert_validation_failed", "entries": 2},
        {"status_details": "response_sent_by_backend", "entries": 2},
        {"status_details": "client_cert_chain_invalid_eku", "entries": 1},
    ]
    assert summary.by_cert_error["entries"].sum() == 5
    top = summary.top_refused
    assert top[["client_cert_sha256_fingerprint", "client_cert_serial_number", "entries"]].to_dict(
        "records"
    ) == [
        {"client_cert_sha256_fingerprint": "F1", "client_cert_serial_number": "", "entries": 2},
        {"client_cert_sha256_fingerprint": "", "client_cert_serial_number": "S2", "entries": 1},
    ]
    assert summary.over_time.to_dict("list") == {
        "accepted": [1, 1, 0],
        "refused": [1, 1, 3],
        "other": [0, 0, 0],
    }
    gaps = logs.summaries(frame, bucket="10s").over_time  # quiet buckets are zeros, not left out
    assert len(gaps) == 9 and gaps.loc[pd.Timestamp(at(20)), "accepted"] == 0
    fig = logs.plot_outcomes(summary)
    assert isinstance(fig, Figure) and fig.axes[0].get_legend() is not None
    _assert_legend_beside_the_data(fig)
    empty = logs.summaries(logs.entries_frame([]))
    assert empty.top_refused.empty and empty.over_time.empty and empty.entries == 0
    assert isinstance(logs.plot_outcomes(empty), Figure)


def test_filter_and_how_to_look_by_hand(params: Params) -> None:
    since = dt.datetime(2026, 5, 1, 10, 0, tzinfo=dt.UTC)
    assert logs.api_filter(params, since) == (
        'resource.type="http_load_balancer" AND resource.labels.forwarding_rule_name="mtls-fr" '
        f'AND jsonPayload.@type="{logs.PAYLOAD_TYPE}" AND timestamp>="2026-05-01T10:00:00.000000Z"'
    )
    text = logs.by_hand(params)
    assert 'resource.labels.forwarding_rule_name="mtls-fr"\n' in text
    assert "timestamp" not in text  # the Explorer's time range and --freshness do that
    assert 'gcloud logging read \'resource.type="http_load_balancer" AND ' in text
    assert f"--project={PROJECT} --freshness=1h --format=json" in text


# ---- matching -------------------------------------------------------------------------------------------


def test_forwarded_probe_matches_by_id_and_refused_probes_by_time_window() -> None:
    probes = [
        result("p-ok", "response_sent_by_backend", 0.5, 1.2),
        result("p-none", "client_cert_not_provided", 2.0, 2.3),
        result("p-expired", "client_cert_validation_failed", 3.0, 3.2),
    ]
    frame = logs.entries_frame(
        [
            refused(-30, "client_cert_not_provided"),  # someone else, long before
            accepted(1.0, "p-ok"),
            refused(2.1, "client_cert_not_provided"),
            refused(3.1, "client_cert_validation_failed"),
        ]
    )
    matched = logs.match_probes(probes, frame)
    assert list(matched.columns) == logs.MATCH_COLUMNS
    assert matched["found"].all() and matched["match"].all()
    assert list(matched["matched_by"]) == ["probe id in URL", "time window", "time window"]
    assert list(matched["log_time"]) == [pd.Timestamp(at(s)) for s in (1.0, 2.1, 3.1)]
    assert logs.probe_checks(matched, 0)[0].status == "pass"
    assert [c.status for c in logs.probe_checks(matched, 0)] == ["pass", "pass"]


def test_an_entry_serves_one_probe_only() -> None:
    """Two refused probes with overlapping windows and one entry: the second one is missing."""
    probes = [
        result("p1", "client_cert_not_provided", 0, 1),
        result("p2", "client_cert_not_provided", 1, 2),
    ]
    frame = logs.entries_frame([refused(1.5, "client_cert_not_provided")])
    matched = logs.match_probes(probes, frame)
    assert list(matched["found"]) == [True, False]
    frame2 = logs.entries_frame(
        [refused(1.5, "client_cert_not_provided"), refused(1.6, "client_cert_not_provided")]
    )
    assert set(logs.match_probes(probes, frame2)["insert_id"]) == set(frame2["insert_id"])


def test_window_edges_and_preference_for_the_expected_refusal() -> None:
    probe_ = result("p", "client_cert_validation_failed", 10, 11)
    outside = logs.entries_frame([refused(10 - 2.5, "client_cert_validation_failed")])
    assert not logs.match_probes([probe_], outside)["found"].item()
    inside = logs.entries_frame([refused(11 + 1.9, "client_cert_validation_failed")])
    assert logs.match_probes([probe_], inside)["found"].item()
    # A scanner without a certificate refused in the same second does not hide the probe's entry.
    busy = logs.entries_frame(
        [refused(10.1, "client_cert_not_provided"), refused(10.2, "client_cert_validation_failed")]
    )
    assert logs.match_probes([probe_], busy)["match"].item()
    # Refused for the wrong reason: matched, and the reason it got is shown.
    wrong = logs.entries_frame([refused(10.1, "client_cert_chain_invalid_eku")])
    row = logs.match_probes([probe_], wrong).iloc[0]
    assert (
        row["found"] and not row["match"] and row["logged_status_details"] == "client_cert_chain_invalid_eku"
    )


def test_a_probe_refused_instead_of_forwarded_shows_why_it_was_refused() -> None:
    """A valid client refused (a swapped trust anchor) got no HTTP answer, so its entry has no URL:
    it is matched by time and reported as the mismatch it is, not waited for as missing."""
    refused_probe = dataclasses.replace(
        result("p-client", "response_sent_by_backend", 1, 2), http_status=None
    )
    frame = logs.entries_frame([refused(1.5, "client_cert_validation_failed")])
    row = logs.match_probes([refused_probe], frame).iloc[0]
    assert row["found"] and not row["match"] and row["matched_by"] == "time window"
    assert row["logged_status_details"] == "client_cert_validation_failed"
    # Answered over HTTP, the same probe is found by its id or not at all.
    answered = result("p-client", "response_sent_by_backend", 1, 2)
    assert not logs.match_probes([answered], frame)["found"].item()


def test_forwarded_entries_are_not_matched_by_time() -> None:
    """A forwarded entry of another probe sits in the window but is not a candidate."""
    probes = [result("p-none", "client_cert_not_provided", 0, 1)]
    frame = logs.entries_frame([accepted(0.5, "other-probe")])
    assert not logs.match_probes(probes, frame)["found"].item()


def test_checks_name_missing_and_mismatched_probes() -> None:
    probes = [
        result("p-ok", "response_sent_by_backend", 0, 1, case="client"),
        result("p-none", "client_cert_not_provided", 2, 3, case="none"),
        result("p-late", "client_cert_not_provided", 20, 21, case="late"),
    ]
    entries = [accepted(0.5, "p-ok"), refused(2.5, "client_cert_validation_failed")]
    matched = logs.match_probes(probes, logs.entries_frame(entries))
    found, statuses = logs.probe_checks(
        matched, 120, logs.BackendLogging("k8s1-bs", enable=True, sample_rate=1.0)
    )
    assert found.status == "fail"
    assert "p-late (late)" in found.evidence and "waiting 120s" in found.evidence
    assert "sampleRate 1" in found.evidence and "ingestion delay" in found.evidence
    assert "logging.sample_rate: 1.0" in found.fix and "10_ingress" in found.fix
    assert statuses.status == "fail"
    assert "p-none (none): expected client_cert_not_provided, logged client_cert_validation_failed" in (
        statuses.evidence
    )
    off = logs.probe_checks(matched, 5, logs.BackendLogging("k8s1-bs", enable=False, sample_rate=0.0))[0]
    assert "request logging is disabled on backend service k8s1-bs" in off.evidence


def test_no_probes_is_a_warning_to_run_verify_first() -> None:
    (check,) = logs.probe_checks(logs.match_probes([], logs.entries_frame([])), 0)
    assert check.status == "warn" and "50_verify" in check.fix


# ---- end to end against a sandbox load balancer -----------------------------------------------------------

DOMAIN = "logs.mtlskit.test"


@dataclass
class Stack:
    params: Params
    clients: Clients
    ip: str
    pki: Path
    ca: Path
    params_file: Path

    def session(self, case: str | None) -> requests.Session:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        if case:
            spec = {s.name: s for s in certs.demo_pki_specs()}[case]
            bundle = self.pki.parent / f"{case}-bundle.pem"
            parts = [self.pki / f"{case}.pem", *(self.pki / f"{n}.pem" for n in spec.chain)]
            bundle.write_text("".join(p.read_text() for p in parts))
            ctx.load_cert_chain(str(bundle), str(self.pki / f"{case}.key"))
        s = requests.Session()
        s.mount("https://", ResolveAdapter(ctx, DOMAIN))
        s.headers["Host"] = DOMAIN
        return s

    def send(self, case: str | None, expected: str) -> ProbeResult:
        """One probe as 50_verify sends it: id in the path and in a header, times around it."""
        probe_id = uuid.uuid4().hex[:12]
        sent = logs.rfc3339(dt.datetime.now(dt.UTC))
        url = f"https://{self.ip}:{self.clients.https_port}{PROBE_PATH}{probe_id}"
        try:
            r = self.session(case).get(url, headers={PROBE_HEADER: probe_id}, timeout=5)
            outcome, status = f"HTTP {r.status_code}", r.status_code
        except requests.exceptions.ConnectionError:
            outcome, status = "connection closed during TLS", None
        finished = logs.rfc3339(dt.datetime.now(dt.UTC))
        return ProbeResult(probe_id, case or "none", "ok", expected, outcome, status, "pass", sent, finished)


@pytest.fixture(scope="module")
def lb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("logs")
    state = work / "state"
    pki = state / "pki"
    certs.generate_demo_pki(pki)
    params = sandbox_params(
        state,
        stack=f"logs-test-{uuid.uuid4().hex[:8]}",  # its own saved-probes file
        sandbox={
            "state_dir": str(state),
            "data_plane_port": free_port(),
            "managed_cert_delay_seconds": 0.3,
            "operation_delay_seconds": 0.05,
        },
        frontend={"domains": [DOMAIN]},
    )
    params_file = work / "params.yaml"
    params_file.write_text(yaml.safe_dump(params.model_dump(mode="json")))
    clients = build_clients(params)
    stack.build(clients, params, 60)
    fr = clients.compute.forwarding_rules.get(
        project=PROJECT, forwarding_rule=params.frontend.forwarding_rule
    )
    wait_serving(clients, fr.I_p_address)
    yield Stack(params, clients, fr.I_p_address, pki, state / "dataplane" / "ca.pem", params_file)
    probe.results_file(params).unlink(missing_ok=True)
    from mtlskit.sandbox import process

    process.stop(state)


@pytest.fixture(scope="module")
def sent(lb: Stack) -> list[ProbeResult]:
    """A valid certificate (forwarded), no certificate and an expired one (both refused)."""
    probes = [
        lb.send("client", "response_sent_by_backend"),
        lb.send(None, "client_cert_not_provided"),
        lb.send("expired-client", "client_cert_validation_failed"),
    ]
    assert [p.http_status for p in probes] == [200, None, None]
    probe.save_results(lb.params, probes)
    return probes


def test_every_probe_is_found_with_its_status_details(lb: Stack, sent: list[ProbeResult]) -> None:
    saved = probe.load_results(lb.params)
    pull = logs.wait_for_probe_entries(lb.clients, lb.params, saved, timeout=10)
    assert (pull.probes_found, pull.probes_expected, pull.ended) == (3, 3, "all found")
    frame = logs.entries_frame(pull.entries)
    matched = logs.match_probes(saved, frame)
    assert matched[["probe_id", "logged_status_details", "found", "match", "matched_by"]].to_dict(
        "records"
    ) == [
        {
            "probe_id": sent[0].probe_id,
            "logged_status_details": "response_sent_by_backend",
            "found": True,
            "match": True,
            "matched_by": "probe id in URL",
        },
        {
            "probe_id": sent[1].probe_id,
            "logged_status_details": "client_cert_not_provided",
            "found": True,
            "match": True,
            "matched_by": "time window",
        },
        {
            "probe_id": sent[2].probe_id,
            "logged_status_details": "client_cert_validation_failed",
            "found": True,
            "match": True,
            "matched_by": "time window",
        },
    ]
    assert [c.status for c in logs.probe_checks(matched, pull.waited_seconds)] == ["pass", "pass"]
    forwarded = frame[frame["probe_id"] == sent[0].probe_id].iloc[0]
    assert forwarded["backend_service"].startswith("k8s1-") and forwarded["forwarding_rule"] == "mtls-fr"
    assert forwarded["tls_protocol"].startswith("TLSv1.") and forwarded["method"] == "GET"
    none = frame[frame["status_details"] == "client_cert_not_provided"].iloc[0]
    assert not none["client_cert_present"] and pd.isna(none["url"])


def test_a_probe_without_entry_fails_and_says_why(lb: Stack, sent: list[ProbeResult]) -> None:
    now = logs.rfc3339(dt.datetime.now(dt.UTC))
    ghost = ProbeResult(
        "ghost",
        "never-sent",
        "client_cert_not_provided",
        "client_cert_not_provided",
        "",
        None,
        "pass",
        now,
        now,
    )
    probes = [*sent, ghost]
    pull = logs.wait_for_probe_entries(lb.clients, lb.params, probes, timeout=1.0, poll_seconds=0.3)
    assert pull.ended == "time limit" and pull.waited_seconds >= 1.0  # logged at 1.0: waits for every probe
    assert (pull.probes_found, pull.probes_expected) == (3, 4)
    assert pull.sample_rate == 1.0 and pull.backend_logging is not None
    matched = logs.match_probes(probes, logs.entries_frame(pull.entries))
    found, statuses = logs.probe_checks(
        matched, pull.waited_seconds, logs.read_backend_logging(lb.clients, lb.params)
    )
    assert found.status == "fail" and "ghost (never-sent)" in found.evidence
    for reason in ("request logging disabled", "sample rate below 1.0", "ingestion delay", "sampleRate 1"):
        assert reason in found.evidence
    assert "logging.enable: true" in found.fix
    assert statuses.status == "pass"


def test_a_sampled_wait_ends_once_an_entry_after_the_probes_is_readable(
    lb: Stack, sent: list[ProbeResult]
) -> None:
    """A probe whose entry sampling left out (never written) does not hold the wait to its limit: a
    request after the probes shows ingestion has passed them."""
    last = max(logs.parse_time(p.finished_at) for p in sent)
    at_ = logs.rfc3339(last + dt.timedelta(milliseconds=1))
    unlogged = ProbeResult(
        "unlogged",
        "sampled out",
        "client_cert_not_provided",
        "client_cert_not_provided",
        "",
        None,
        "pass",
        at_,
        at_,
    )
    probes = [*sent, unlogged]
    half = logs.BackendLogging("k8s1-bs", enable=True, sample_rate=0.5)
    before = logs.wait_for_probe_entries(
        lb.clients, lb.params, probes, timeout=0.5, poll_seconds=0.1, backend_logging=half
    )
    assert (before.ended, before.probes_found) == ("time limit", 3)  # nothing newer than the probes yet
    pause = (
        last + dt.timedelta(seconds=logs.MATCH_SKEW_SECONDS + 0.1) - dt.datetime.now(dt.UTC)
    ).total_seconds()
    time.sleep(max(0.0, pause))
    lb.send("client", "response_sent_by_backend")  # traffic after the probes, logged
    pull = logs.wait_for_probe_entries(
        lb.clients, lb.params, probes, timeout=60, poll_seconds=0.1, backend_logging=half
    )
    assert (pull.ended, pull.probes_found, pull.probes_expected, pull.sample_rate) == ("caught up", 3, 4, 0.5)
    assert "the wait ended: caught up" in pull.summary() and "2 entries expected" in pull.summary()
    matched = logs.match_probes(probes, logs.entries_frame(pull.entries))
    found, statuses = logs.checks(lb.clients, lb.params, matched, pull)
    assert (found.status, statuses.status) == ("pass", "pass")
    assert found.evidence.startswith("3/4 probes have their log entry at sampleRate 0.5: 2 expected")


def test_with_logging_off_the_wait_reads_once(lb: Stack, sent: list[ProbeResult]) -> None:
    off = logs.BackendLogging("k8s1-bs", enable=False, sample_rate=0.0)
    now = logs.rfc3339(dt.datetime.now(dt.UTC))
    ghost = dataclasses.replace(sent[1], probe_id="ghost", sent_at=now, finished_at=now)
    pull = logs.wait_for_probe_entries(lb.clients, lb.params, [*sent, ghost], timeout=60, backend_logging=off)
    assert (pull.ended, pull.sample_rate, pull.probes_found) == ("logging off", 0.0, 3)
    matched = logs.match_probes([*sent, ghost], logs.entries_frame(pull.entries))
    found, _ = logs.checks(lb.clients, lb.params, matched, pull)
    assert (
        found.status == "fail" and "request logging is disabled on backend service k8s1-bs" in found.evidence
    )


def test_pull_retries_transient_logging_errors(lb: Stack, sent: list[ProbeResult]) -> None:
    since = logs.parse_time(sent[0].sent_at) - dt.timedelta(seconds=5)
    clean = logs.fetch_entries(lb.clients, lb.params, since, page_size=2)
    sandbox_call(lb.clients, "counters", "DELETE")
    sandbox_call(lb.clients, "faults", "POST", {"error_rate": 0.4, "seed": 3, "apis": ["logging"]})
    try:
        entries = logs.fetch_entries(lb.clients, lb.params, since, page_size=2)
    finally:
        sandbox_call(lb.clients, "faults", "POST", {"error_rate": 0.0})
    assert entries == clean and len(entries) >= 3
    counts = sandbox_call(lb.clients, "counters")["counts"]
    assert sum(v for k, v in counts.items() if k.startswith("fault.")) >= 1, counts


def test_notebook_60_logs_runs_headless(lb: Stack, sent: list[ProbeResult], tmp_path: Path) -> None:
    run = execute.run_notebooks(str(lb.params_file), ["60_logs"], apply=False, out_dir=tmp_path, report=False)
    (result,) = run.notebooks
    assert result.status == "ok", result.error
    assert [(c.name, c.status) for c in result.checks] == [
        ("probes found in request logs", "pass"),
        ("logged statusDetails as expected", "pass"),
    ]
    nb = json.loads(Path(result.path).read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    stderr = "".join("".join(o["text"]) for o in outputs if o.get("name") == "stderr")
    assert "Warning" not in stderr, stderr
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 1, "the plot renders inline, once"
    assert "3/3 probes found" in json.dumps(outputs)


def test_notebook_60_logs_without_probes_says_run_verify_first(lb: Stack, tmp_path: Path) -> None:
    data = yaml.safe_load(lb.params_file.read_text())
    data["stack"] = f"{data['stack']}-unverified"  # an environment 50_verify never ran for
    params_file = tmp_path / "unverified.yaml"
    params_file.write_text(yaml.safe_dump(data))
    run = execute.run_notebooks(str(params_file), ["60_logs"], apply=False, out_dir=tmp_path, report=False)
    (result,) = run.notebooks
    assert result.status == "ok", result.error
    assert [(c.status, c.fix) for c in result.checks] == [("warn", "run 50_verify first")]


def _assert_legend_beside_the_data(fig: Figure) -> None:
    """Drawn, the legend's box and the plotting area's box do not overlap (and the legend is on the
    figure): no bar can be hidden behind it, however tall the bars are."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # the figure is detached from pyplot: draw it as the inline backend does
    canvas.draw()
    renderer = canvas.get_renderer()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent(renderer)
    area = ax.get_window_extent(renderer)
    assert legend.x0 >= area.x1 or legend.x1 <= area.x0 or legend.y0 >= area.y1 or legend.y1 <= area.y0, (
        legend,
        area,
    )
    assert fig.bbox.contains(legend.x0, legend.y0) and fig.bbox.contains(legend.x1, legend.y1)


def test_a_long_entries_table_shows_its_last_rows_and_folds_the_rest_under_a_click_and_a_variable() -> None:
    from mtlskit.runner.tables import FOLDED_ROWS, entries_view

    frame = pd.DataFrame({"status": range(FOLDED_ROWS + 500), "url": ["https://a/"] * (FOLDED_ROWS + 500)})
    view = entries_view(frame, "frame", n=20)
    assert len(view.shown) == 20 and view.full is frame
    page = view._repr_html_()
    shown, folded = page.split("<details>")
    assert "<td>2480</td>" in shown and "<td>2499</td>" in shown and "<td>2479</td>" not in shown
    assert "20 of 2500 rows shown; all of them: the variable `frame`" in shown
    assert f"show all 2500 rows (the last {FOLDED_ROWS})" in folded
    assert "<td>2499</td>" in folded and "<td>500</td>" in folded  # the newest, as the rows above
    assert "<td>499</td>" not in folded
    assert repr(view).endswith(
        "20 of 2500 rows shown; all of them: the variable `frame` (a pandas DataFrame)"
    )
    small = entries_view(frame.head(3), "frame")._repr_html_()
    assert "show all 3 rows</summary>" in small


def test_recent_entries_blank_what_an_entry_lacks_whatever_the_column_type() -> None:
    """Refused handshakes have no URL and no verdict booleans: the table shows blanks, not <NA>,
    and a nullable boolean column must not stop the notebook."""
    from mtlskit.runner.tables import recent_entries

    frame = pd.DataFrame(
        {
            "client_cert_present": pd.array([True, None, False], dtype="boolean"),
            "url": ["https://a/", None, "https://b/"],
            "status": [200, 0, 200],
        }
    )
    shown = recent_entries(frame, n=2)
    assert list(shown["client_cert_present"]) == ["", False]
    assert list(shown["url"]) == ["", "https://b/"]
    assert shown.index.name == "entry (last 2 of 3)"


# ---- sampled request logs -------------------------------------------------------------------------------


def test_binomial_cdf_is_exact() -> None:
    assert logs.binomial_cdf(0, 10, 0.5) == pytest.approx(1 / 1024)
    assert logs.binomial_cdf(2, 4, 0.5) == pytest.approx(11 / 16)
    assert logs.binomial_cdf(4, 4, 0.3) == 1.0 and logs.binomial_cdf(-1, 4, 0.3) == 0.0
    assert logs.binomial_cdf(0, 18, 0.01) == pytest.approx(0.99**18)


@pytest.mark.parametrize(
    ("found", "probes", "rate", "passed", "words"),
    [
        (
            9,
            18,
            0.5,
            True,
            ["9/18 probes", "sampleRate 0.5", "9 expected", "the 9 missing are what sampling"],
        ),
        (3, 18, 0.5, True, ["3/18 probes"]),  # unlucky, but P(X <= 3) = 0.0038
        (2, 18, 0.5, False, ["2/18 probes", "probability 0.00066", "sampling does not explain"]),
        (0, 10, 0.5, False, ["0/10 probes", "below 0.001"]),
        (0, 18, 0.01, True, ["0.18 expected", "can expect 0.18 entries", "raise logging.sample_rate"]),
        (0, 18, 0.2, True, ["3.6 expected"]),  # P(X = 0) = 0.018
        (0, 40, 0.2, False, ["8 expected"]),
    ],
)
def test_the_sampled_count_passes_unless_implausible(
    found: int, probes: int, rate: float, passed: bool, words: list[str]
) -> None:
    verdict = logs.judge_sample(found, probes, rate)
    assert verdict.passed is passed
    assert verdict.expected == pytest.approx(probes * rate)
    assert verdict.probability == pytest.approx(logs.binomial_cdf(found, probes, rate))
    for word in words:
        assert word in verdict.message(), verdict.message()


def sampled_run() -> tuple[list[ProbeResult], list[dict[str, Any]]]:
    """Six refused probes sent one after another; sampling kept the entries of the 2nd and 5th."""
    details = ["client_cert_not_provided", "client_cert_validation_failed", "client_cert_chain_invalid_eku"]
    probes = [result(f"p{i}", details[i % 3], i * 0.1, i * 0.1 + 0.05) for i in range(6)]
    kept = [refused(p_sent + 0.04, probes[i].expected_status_details) for i, p_sent in ((1, 0.1), (4, 0.4))]
    return probes, kept


def test_a_neighbour_entry_is_not_taken_for_a_probe_whose_entry_was_sampled_out() -> None:
    probes, kept = sampled_run()
    matched = logs.match_probes(probes, logs.entries_frame(kept))
    assert list(matched["found"]) == [False, True, False, False, True, False]
    assert matched["match"][matched["found"]].all()
    found, statuses = logs.probe_checks(matched, 3, logs.BackendLogging("bs", True, 0.5), "caught up")
    assert (found.status, statuses.status) == ("pass", "pass")
    assert "2/6 probes have their log entry at sampleRate 0.5: 3 expected" in found.evidence
    assert "time limit" not in found.evidence


def test_a_forwarded_probe_is_never_matched_by_time() -> None:
    probes = [
        result("p-ok", "response_sent_by_backend", 0, 0.1),
        result("p-x", "client_cert_not_provided", 0.1, 0.2),
    ]
    matched = logs.match_probes(probes, logs.entries_frame([refused(0.15, "client_cert_not_provided")]))
    assert list(matched["found"]) == [False, True]


def test_a_sampled_contradiction_fails() -> None:
    probes, kept = sampled_run()
    # p4 expects client_cert_validation_failed; no probe expects what its entry says
    kept[1] = refused(0.44, "client_cert_invalid_rsa_key_size")
    matched = logs.match_probes(probes, logs.entries_frame(kept))
    found, statuses = logs.probe_checks(matched, 3, logs.BackendLogging("bs", True, 0.5), "caught up")
    assert found.status == "pass"
    assert statuses.status == "fail"
    assert (
        "probe p4 (p4): expected client_cert_validation_failed, logged client_cert_invalid_rsa_key_size"
        in (statuses.evidence)
    )


def test_an_implausibly_low_sampled_count_fails_and_says_the_wait_ended_at_its_limit() -> None:
    probes = [result(f"p{i}", "client_cert_not_provided", i, i + 0.5) for i in range(12)]
    matched = logs.match_probes(probes, logs.entries_frame([]))
    found, _ = logs.probe_checks(matched, 120, logs.BackendLogging("bs", True, 0.5), "time limit")
    assert found.status == "fail"
    assert "0/12 probes" in found.evidence and "sampling does not explain" in found.evidence
    assert "time limit (120s)" in found.evidence
    assert "sampleRate" in found.fix and "exclusion" in found.fix
    # logging off is not sampling: every missing probe fails as at 1.0
    off, _ = logs.probe_checks(matched, 0, logs.BackendLogging("bs", False, 0.0), "logging off")
    assert off.status == "fail" and "request logging is disabled" in off.evidence
