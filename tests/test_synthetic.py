"""Synthetic request-log entries: reproducible, in the sandbox's shape, in the documented mix, and
readable by the runbook's own flattening without surprises."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mtlskit.rules.logentry import DOCUMENTED_OUTCOMES
from mtlskit.sandbox.dataplane import DataPlane, Frontend
from mtlskit.verify import logs, synthetic


def paths(node: Any, prefix: str = "") -> set[str]:
    """Every dotted key path of a JSON object (leaves and inner objects)."""
    if not isinstance(node, dict):
        return set()
    out = set()
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else key
        out |= {path} | paths(value, path)
    return out


def sandbox_entries() -> tuple[dict[str, Any], dict[str, Any]]:
    """One answered and one refused entry as the sandbox data plane writes them (its own code)."""
    frontend = Frontend("p", "127.1.0.2", "mtls-fr", "mtls-proxy", "um", [], "REJECT_INVALID", None)
    values = {
        "client_cert_present": "true",
        "client_cert_chain_verified": "true",
        "client_cert_error": "",
        "client_cert_sha256_fingerprint": "abc",
        "client_cert_serial_number": "0A",
        "client_cert_valid_not_before": "2026-01-01T00:00:00Z",
        "client_cert_valid_not_after": "2027-01-01T00:00:00Z",
        "client_cert_issuer_dn": "MBkxFzAVBgNVBAMMDm10bHNraXQgaXNzdWVy",
        "client_cert_subject_dn": "MBkxFzAVBgNVBAMMDmNsaWVudC5leGFtcGxl",
    }
    conn = SimpleNamespace(
        frontend=frontend, values=values, remote_ip="198.51.100.1", protocol="TLSv1.3", cipher="X"
    )
    http = {"requestMethod": "GET", "requestUrl": "https://h/", "requestSize": "0", "status": 200}
    http |= {"responseSize": "2", "userAgent": "curl/8"}
    answered = DataPlane._entry(None, conn, http, "response_sent_by_backend", "bs", "um", 0.0)  # type: ignore[arg-type]
    refused_values = values | {
        "client_cert_chain_verified": "false",
        "client_cert_error": "client_cert_validation_failed",
    }
    closed = SimpleNamespace(**{**conn.__dict__, "values": refused_values})
    refused = DataPlane._entry(None, closed, {"status": 0}, "client_cert_validation_failed", "", "um", 0.0)  # type: ignore[arg-type]
    for entry in (answered, refused):  # what append_entry adds on write
        entry |= {"timestamp": "2026-05-01T00:00:00.000000Z", "receiveTimestamp": "x", "insertId": "i"}
    return answered, refused


def test_same_seed_same_entries_other_seed_other_entries() -> None:
    assert list(synthetic.lines(50, seed=7)) == list(synthetic.lines(50, seed=7))
    assert list(synthetic.lines(50, seed=7)) != list(synthetic.lines(50, seed=8))


def test_mix_is_mostly_forwarded_then_no_certificate_then_every_other_documented_refusal() -> None:
    entries = synthetic.entries(20_000, seed=1)
    counts = Counter(e["jsonPayload"]["statusDetails"] for e in entries)
    share = {k: v / len(entries) for k, v in counts.items()}
    assert 0.92 < share["response_sent_by_backend"] < 0.94
    assert 0.04 < share["client_cert_not_provided"] < 0.06
    others = [o for o in DOCUMENTED_OUTCOMES if o != "client_cert_not_provided"]
    assert all(counts[o] > 0 for o in others), {o: counts[o] for o in others}
    assert all(counts[o] < counts["client_cert_not_provided"] for o in others)
    assert counts["client_cert_validation_failed"] > counts["client_cert_pki_too_large"]
    times = [e["timestamp"] for e in entries]
    assert (
        times == sorted(times)
        and times[0].startswith("2026-05-01T00")
        and times[-1].startswith("2026-05-01T23")
    )


def test_entries_flatten_with_no_unexpected_nulls() -> None:
    frame = logs.entries_frame(synthetic.entries(3000, seed=2))
    answered = frame["status"] != 0
    refused = frame["outcome"] == "refused"
    always = ["time", "status", "status_details", "outcome", "remote_ip", "tls_protocol", "forwarding_rule"]
    always += ["insert_id", "client_cert_present", "client_cert_chain_verified"]
    assert frame[always].notna().all().all()
    for col in ("method", "url", "user_agent", "backend_service"):
        assert frame[col].notna().eq(answered).all(), col  # a closed connection has no HTTP request
    assert frame["client_cert_error"].notna().eq(refused).all()
    no_cert = frame["status_details"] == "client_cert_not_provided"
    assert frame["client_cert_sha256_fingerprint"].isna().eq(no_cert).all()
    assert frame["probe_id"].isna().all()
    assert set(frame["outcome"]) == {"accepted", "refused", "other"}


def test_synthetic_entries_have_the_sandbox_entries_fields() -> None:
    answered, refused = sandbox_entries()
    by_kind = {"response_sent_by_backend": None, "client_cert_validation_failed": None}
    for entry in synthetic.entries(2000, seed=3):
        details = entry["jsonPayload"]["statusDetails"]
        if details in by_kind and by_kind[details] is None:
            by_kind[details] = entry
    assert paths(by_kind["response_sent_by_backend"]) == paths(answered)
    assert paths(by_kind["client_cert_validation_failed"]) == paths(refused)
    ours = logs.entries_frame([by_kind["response_sent_by_backend"], by_kind["client_cert_validation_failed"]])
    theirs = logs.entries_frame([answered, refused])
    assert list(ours.columns) == list(theirs.columns)
    assert (ours.notna() == theirs.notna()).all().all()  # the same facts are present in both


def test_documented_format_has_no_mtls_object() -> None:
    entries = synthetic.entries(200, seed=4, shape=synthetic.Shape(mtls_object=False))
    assert all("mtls" not in e["jsonPayload"] for e in entries)
    frame = logs.entries_frame(entries)
    refused = frame[frame["outcome"] == "refused"]
    assert (refused["client_cert_error"] == refused["status_details"]).all()


def test_written_files_are_json_lines_or_one_array(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(synthetic, "CHUNK", 7)  # several chunks, the last one partial
    lines = synthetic.write(tmp_path / "a.json", 45, seed=5)
    array = synthetic.write(tmp_path / "b.json", 45, seed=5, array=True)
    text = lines.read_text()
    assert text.endswith("}\n") and text.count("\n") == 45
    parsed = [json.loads(line) for line in text.splitlines()]
    assert json.loads(array.read_text()) == parsed == synthetic.entries(45, seed=5)
    assert synthetic.write(tmp_path / "none.json", 0).read_text() == ""
    assert json.loads(synthetic.write(tmp_path / "none2.json", 0, array=True).read_text()) == []


# ---- client populations ------------------------------------------------------------------------------------


def _issuer(cn: str) -> str:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    from mtlskit.rules import dn

    return dn.field(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))


def test_population_clients_keep_their_identity_and_get_their_mode_s_outcome() -> None:
    from mtlskit.rules import dn

    pop = synthetic.rotation_population(
        _issuer("old CA"), _issuer("new CA"), _issuer("foreign CA"), clients=200
    )
    shape = synthetic.Shape(population=pop)
    assert list(synthetic.lines(300, seed=9, shape=shape)) == list(synthetic.lines(300, seed=9, shape=shape))
    got = synthetic.entries(8000, seed=9, shape=shape)
    members = {m.ip: m for group in synthetic.members(pop, seed=9) for m in group}
    kinds = Counter()
    for e in got:
        m = members[e["httpRequest"]["remoteIp"]]  # every entry comes from a member, from its own address
        kinds[m.kind] += 1
        mtls = e["jsonPayload"]["mtls"]
        assert (
            mtls["clientCertSha256Fingerprint"] == m.fingerprint
            and mtls["clientCertSerialNumber"] == m.serial
        )
        assert mtls["clientCertIssuerDn"] == m.issuer_dn
        refused = m.kind in (
            synthetic.NEW_CA,
            synthetic.FOREIGN,
            synthetic.NO_CERTIFICATE,
        )  # REJECT, new CA untrusted
        assert e["httpRequest"]["status"] == 0 if refused else e["httpRequest"]["status"] > 0
        assert e["jsonPayload"]["statusDetails"] == (m.error if refused else "response_sent_by_backend")
    share = {k: v / len(got) for k, v in kinds.items()}
    assert share[synthetic.OLD_CA] == pytest.approx(0.80, abs=0.02) and share[
        synthetic.NEW_CA
    ] == pytest.approx(0.15, abs=0.02)
    assert share[synthetic.NO_CERTIFICATE] == pytest.approx(0.03, abs=0.01)
    old = next(m for m in members.values() if m.kind == synthetic.OLD_CA)
    assert dn.text(old.issuer_dn) == "CN=old CA" and dn.text(old.subject_dn).startswith("CN=old-ca-")
    assert (
        len({m.fingerprint for m in members.values() if m.fingerprint}) == 194
    )  # 200 clients, 6 without one


def test_population_in_allow_mode_forwards_everyone_with_the_verdict_logged() -> None:
    pop = synthetic.rotation_population("T2xk", "TmV3", "Rm9y", clients=50, mode=synthetic.ALLOW)
    frame = logs.entries_frame(synthetic.entries(2000, seed=10, shape=synthetic.Shape(population=pop)))
    assert (frame["status_details"] == "response_sent_by_backend").all()
    unverified = frame[~frame["client_cert_chain_verified"].astype(bool)]
    assert set(unverified["client_cert_error"]) == {
        "client_cert_validation_failed",
        "client_cert_not_provided",
    }
    assert frame["client_cert_issuer_dn"].notna().sum() == frame["client_cert_present"].astype(bool).sum()


def test_population_refuses_groups_that_cannot_be() -> None:
    with pytest.raises(
        ValueError, match="kind 'other' is not one of old-ca, new-ca, no-certificate, foreign"
    ):
        synthetic.ClientGroup("other", 1, 0.5)
    with pytest.raises(ValueError, match="an unverified group names its client_cert_"):
        synthetic.ClientGroup(synthetic.FOREIGN, 1, 0.5, verified=False)
