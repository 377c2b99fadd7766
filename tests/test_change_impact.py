"""change.impact and change.seen: the trust-config diff, every client seen in the logs with its expected
outcome and the basis it rests on, the gate with and without intended refusals, the known certificates,
and one query for pulled entries and exported files."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from mtlskit.change import impact, seen
from mtlskit.change.impact import ChangeReportError, KnownClient
from mtlskit.change.state import ALLOW, REJECT, TrustedCert, TrustState
from mtlskit.pki import certs
from mtlskit.rules import dn
from mtlskit.verify import logs, logscan
from tests.conftest import sandbox_params

OLD_ROOT = certs.issue("impact old root", ca=True, eku=certs.CLIENT_AUTH)
OLD_INTER = certs.issue("impact old intermediate", issuer=OLD_ROOT, ca=True, eku=certs.CLIENT_AUTH)
NEW_ROOT = certs.issue("impact new root", ca=True, eku=certs.CLIENT_AUTH)
NEW_INTER = certs.issue("impact new intermediate", issuer=NEW_ROOT, ca=True, eku=certs.CLIENT_AUTH)
OLD_CLIENT = certs.issue("old-client.impact.test", issuer=OLD_INTER, eku=certs.CLIENT_AUTH)
NEW_CLIENT = certs.issue("new-client.impact.test", issuer=NEW_INTER, eku=certs.CLIENT_AUTH)
PARTNER = certs.issue("partner.impact.test", eku=certs.CLIENT_AUTH)  # self-signed, for the allowlist
# A CA the trust config never holds, under the old root: its clients send it themselves.
OWN_INTER = certs.issue("impact own intermediate", issuer=OLD_ROOT, ca=True, eku=certs.CLIENT_AUTH)


def cert(role: Any, issued: certs.Issued) -> TrustedCert:
    return TrustedCert.from_pem(role, certs.pem(issued.cert))


OLD = (cert("anchor", OLD_ROOT), cert("intermediate", OLD_INTER))
NEW = (cert("anchor", NEW_ROOT), cert("intermediate", NEW_INTER))
LIVE = TrustState(OLD, REJECT, True)
PHASE_1 = TrustState(OLD + NEW, REJECT, True)
PHASE_2 = TrustState(NEW, REJECT, True)


def sha(issued: certs.Issued) -> str:
    return issued.cert.fingerprint(certs.hashes.SHA256()).hex()


def entry(
    ip: str,
    client: certs.Issued | None = None,
    *,
    issuer: certs.Issued | None = None,
    verified: bool = True,
    error: str = "",
    mode: str = REJECT,
    mtls: bool = True,
    second: int = 0,
) -> dict[str, Any]:
    """One request log entry as the load balancer writes it (certificate fields in their logged forms)."""
    refused = (client is None or not verified) and mode == REJECT
    details = (error or "client_cert_not_provided") if refused else "response_sent_by_backend"
    payload: dict[str, Any] = {"@type": "x", "statusDetails": details, "remoteIp": ip}
    if mtls:
        fields = {
            "clientCertPresent": client is not None,
            "clientCertChainVerified": verified and client is not None,
        }
        fields["clientCertError"] = error if client is not None else "client_cert_not_provided"
        if client is not None:
            digest = client.cert.fingerprint(certs.hashes.SHA256())
            fields |= {
                "clientCertSha256Fingerprint": base64.b64encode(digest).decode().rstrip("="),
                "clientCertSerialNumber": format(client.cert.serial_number, "x"),
                "clientCertIssuerDn": dn.field(
                    (issuer or client).cert.subject if issuer else client.cert.issuer
                ),
                "clientCertSubjectDn": dn.field(client.cert.subject),
            }
        payload["mtls"] = fields
    return {
        "resource": {"type": "http_load_balancer", "labels": {"forwarding_rule_name": "fr"}},
        "httpRequest": {"status": 0 if refused else 200, "remoteIp": ip},
        "jsonPayload": payload,
        "timestamp": f"2026-05-01T00:00:{second:02d}.000000Z",
        "insertId": f"{ip}-{second}",
    }


def report(
    entries: list[dict[str, Any]], before: TrustState, after: TrustState, **kw: Any
) -> impact.ImpactReport:
    return impact.impact_report(before, after, seen.clients_seen(logs.entries_frame(entries)), **kw)


def by_name(r: impact.ImpactReport) -> dict[str, impact.ClientImpact]:
    return {c.client: c for c in r.clients}


def by_ip(r: impact.ImpactReport) -> dict[str, impact.ClientImpact]:
    return {c.remote_ip: c for c in r.clients}


# ---- the diff ---------------------------------------------------------------------------------------------


def test_diff_names_each_certificate_added_removed_or_kept_by_role_subject_and_sha256() -> None:
    diff = impact.trust_diff(PHASE_1, PHASE_2)
    rows = {(c.role, c.change, c.subject) for c in diff}
    assert rows == {
        ("anchor", "removed", OLD_ROOT.cert.subject.rfc4514_string()),
        ("intermediate", "removed", OLD_INTER.cert.subject.rfc4514_string()),
        ("anchor", "kept", NEW_ROOT.cert.subject.rfc4514_string()),
        ("intermediate", "kept", NEW_INTER.cert.subject.rfc4514_string()),
    }
    assert {c.sha256 for c in diff if c.change == "removed"} == {sha(OLD_ROOT), sha(OLD_INTER)}
    moved = impact.trust_diff(
        TrustState((cert("anchor", PARTNER),)), TrustState((cert("allowlisted", PARTNER),))
    )
    assert [(c.role, c.change) for c in moved] == [("anchor", "removed"), ("allowlisted", "added")]


# ---- expected outcomes and their basis ----------------------------------------------------------------------


def test_a_known_certificate_is_judged_by_the_verdict_rules_against_the_target() -> None:
    known = [KnownClient("old", "probe.cases", OLD_CLIENT.cert), KnownClient("new", "proof", NEW_CLIENT.cert)]
    entries = [
        entry("10.0.0.1", OLD_CLIENT),
        entry("10.0.0.2", NEW_CLIENT, verified=False, error="client_cert_validation_failed"),
    ]
    one = by_name(report(entries, LIVE, PHASE_1, known=known))
    assert (one["old"].outcome_now, one["old"].expected_after, one["old"].basis) == (
        "accepted",
        "accepted",
        "certificate",
    )
    assert (one["new"].outcome_now, one["new"].expected_after) == ("refused", "accepted")  # phase 1 trusts it
    two = by_name(report(entries, PHASE_1, PHASE_2, known=known))
    assert (two["old"].expected_after, two["old"].basis) == ("refused", "certificate")
    assert two["old"].error_after == "client_cert_validation_failed" and two["old"].newly_refused
    assert two["old"].known_as == "old (probe.cases)" and two["old"].fingerprint == sha(OLD_CLIENT)


def test_a_client_without_a_certificate_is_judged_as_sending_none() -> None:
    entries = [entry("203.0.113.9", None, mode=ALLOW), entry("203.0.113.9", None, mode=ALLOW, second=1)]
    flip = report(entries, TrustState(OLD, ALLOW, True), TrustState(OLD, REJECT, True))
    (client,) = flip.clients
    assert client.client == "203.0.113.9, no certificate" and client.requests == 2
    assert (client.outcome_now, client.expected_after, client.basis) == ("accepted", "refused", "certificate")
    assert client.error_after == "client_cert_not_provided" and flip.newly_refused() == [client]


def test_only_log_fields_known_the_issuer_decides_and_an_own_intermediate_is_unknown() -> None:
    entries = [
        entry("10.0.0.1", OLD_CLIENT),  # issuer: the old intermediate, in the trust config
        entry("10.0.0.2", NEW_CLIENT, verified=False, error="client_cert_validation_failed"),
        entry("10.0.0.3", certs.issue("own.impact.test", issuer=OWN_INTER, eku=certs.CLIENT_AUTH)),
    ]
    one = by_ip(report(entries, LIVE, PHASE_1))
    assert [(one[ip].expected_after, one[ip].basis) for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3")] == [
        ("accepted", "issuer"),
        ("unknown", "unknown"),  # refused today; its issuer is trusted after, but expiry etc. cannot be read
        ("unknown", "unknown"),  # verified through an intermediate it sends: the log names no root
    ]
    two = by_ip(report(entries, PHASE_1, PHASE_2))
    old, new, own = two["10.0.0.1"], two["10.0.0.2"], two["10.0.0.3"]
    assert (old.expected_after, old.basis, old.error_after) == (
        "refused",
        "issuer",
        "client_cert_validation_failed",
    )
    assert OLD_INTER.cert.subject.rfc4514_string() in old.detail
    assert old.issuer == OLD_INTER.cert.subject.rfc4514_string()
    assert (own.expected_after, own.basis) == ("unknown", "unknown") and "sends itself" in own.detail
    assert new.outcome_now == "refused" and not new.newly_refused


def test_an_intermediate_leaving_while_its_root_stays_is_unknown_not_refused() -> None:
    """A client of an intermediate the trust config drops still passes if it sends that
    intermediate itself; the log cannot say whether it does."""
    without = TrustState((cert("anchor", OLD_ROOT),), REJECT, True)
    (client,) = report([entry("10.0.0.1", OLD_CLIENT)], LIVE, without).clients
    assert (client.expected_after, client.basis) == ("unknown", "unknown")
    assert "sends that intermediate itself" in client.detail


def test_anchors_and_intermediates_unchanged_the_logged_verdict_holds() -> None:
    partner = TrustState(OLD + (cert("allowlisted", PARTNER),), REJECT, True)
    entries = [
        entry("10.0.0.1", OLD_CLIENT),
        entry(
            "10.0.0.4",
            certs.issue("x.impact.test", issuer=OWN_INTER, eku=certs.CLIENT_AUTH),
            verified=False,
            error="client_cert_validation_failed",
        ),
        entry("10.0.0.5", PARTNER, verified=False, error="client_cert_validation_failed"),
    ]
    added = by_name(report(entries, LIVE, partner))
    basis = {c.client: (c.expected_after, c.basis) for c in added.values()}
    assert sorted(basis.values()) == [
        ("accepted", "certificate"),
        ("accepted", "logged"),
        ("refused", "logged"),
    ]
    # the partner's certificate is known from the allowlist itself, so it is judged, not guessed
    partner_row = next(c for c in added.values() if c.fingerprint == sha(PARTNER))
    assert partner_row.basis == "certificate" and partner_row.known_as.endswith("(trust config allowlist)")


def test_after_allow_mode_or_detach_every_client_is_accepted_by_mode() -> None:
    entries = [entry("10.0.0.3", certs.issue("own2.impact.test", issuer=OWN_INTER, eku=certs.CLIENT_AUTH))]
    for after in (TrustState(NEW, ALLOW, True), TrustState(NEW, REJECT, False)):
        (client,) = report(entries, LIVE, after).clients
        assert (client.expected_after, client.basis) == ("accepted", "mode")


def test_the_documented_log_without_certificate_fields_gives_unknown_never_a_guess() -> None:
    entries = [entry("198.51.100.7", OLD_CLIENT, mtls=False), entry("198.51.100.8", None, mtls=False)]
    r = report(entries, LIVE, PHASE_2)
    accepted, missing = r.clients
    assert accepted.key_kind == "source" and accepted.client == "198.51.100.7"
    assert (accepted.expected_after, accepted.basis) == ("unknown", "unknown")
    assert (missing.certificate, missing.expected_after, missing.basis) == ("none", "refused", "certificate")
    gate = r.gate()
    assert gate.passed and "198.51.100.7" in gate.warning and gate.check().status == "warn"


# ---- the gate ----------------------------------------------------------------------------------------------


def test_gate_refuses_a_client_accepted_today_that_would_be_refused_and_names_it() -> None:
    known = [KnownClient("payments", "changes.client_certificates", OLD_CLIENT.cert)]
    entries = [
        entry("10.0.0.1", OLD_CLIENT),
        entry("10.0.0.2", NEW_CLIENT),
        entry("10.0.0.2", NEW_CLIENT, second=1),
    ]
    r = report(entries, PHASE_1, PHASE_2, known=known)
    gate = r.gate()
    assert not gate.passed and gate.names == ("payments",)
    assert "1 client(s) accepted today would be refused (33.33% of requests): payments" in gate.reason
    check = gate.check()
    assert (check.name, check.status) == (impact.IMPACT_GATE, "fail") and "intended_refusals" in check.fix
    assert gate.check("phase 2 gate").name == "phase 2 gate"


def test_gate_passes_when_the_params_name_the_refused_client_as_intended() -> None:
    known = [KnownClient("payments", "changes.client_certificates", OLD_CLIENT.cert)]
    r = report(
        [entry("10.0.0.1", OLD_CLIENT)], PHASE_1, PHASE_2, known=known, intended=[sha(OLD_CLIENT).upper()]
    )
    gate = r.gate()
    assert gate.passed and gate.names == ("payments",) and "1 intended refusal(s): payments" in gate.reason
    assert r.newly_refused()[0].intended and gate.check().status == "pass"


def test_report_dict_is_json_safe_and_bounded() -> None:
    entries = [entry(f"10.1.0.{i}", None) for i in range(1, 8)] + [entry("10.0.0.1", OLD_CLIENT)]
    r = report(entries, LIVE, PHASE_2)
    data = json.loads(json.dumps(r.to_dict(limit=3)))
    assert len(data["clients"]) == 3 and data["clients_not_listed"] == 5
    assert data["before"]["fingerprint"] == LIVE.fingerprint() and data["after"]["mode"] == REJECT
    assert {d["change"] for d in data["diff"]} == {"added", "removed"} and data["kept"] == 0
    assert data["gate"]["passed"] is False and data["counts"] == {
        "refused/certificate": 7,
        "refused/issuer": 1,
    }
    assert "BEGIN CERTIFICATE" not in json.dumps(data)


# ---- what the params know ---------------------------------------------------------------------------------------


def test_known_clients_come_from_proof_clients_probe_folder_and_demo_pki(tmp_path: Path) -> None:
    certs.ensure_demo_pki(tmp_path / "pki")
    pki = certs.DemoPki.in_state_dir(tmp_path)
    folder = tmp_path / "clients"
    (folder / "team").mkdir(parents=True)
    (folder / "team" / "billing.pem").write_text(certs.pem(OLD_CLIENT.cert) + certs.pem(OLD_INTER.cert))
    (folder / "billing.key").write_text("not read")
    proof = {
        "name": "next-ca-client",
        "cert": str(pki.cert("next-client")),
        "key": str(pki.key("next-client")),
    }
    proof["chain"] = [str(pki.cert("next-intermediate"))]
    p = sandbox_params(
        tmp_path,
        probe={"client_cert": str(pki.cert("client")), "client_key": str(pki.key("client"))},
        changes={"client_certificates": str(folder), "proof_clients": [proof]},
    )
    known = {c.name: c for c in impact.known_clients(p)}
    assert known["next-ca-client"].source == "changes.proof_clients"
    assert [c.subject for c in known["next-ca-client"].chain] == [
        x.subject for x in [certs.x509.load_pem_x509_certificate(pki.cert("next-intermediate").read_bytes())]
    ]
    assert known["probe certificate"].source == "probe.client_cert"
    assert known["team/billing"].sha256 == sha(OLD_CLIENT) and len(known["team/billing"].chain) == 1
    assert (
        "demo/partner-client" in known and "demo/client" not in known
    )  # the same certificate as the probe's
    assert len({c.sha256 for c in known.values()}) == len(known)


def test_client_certificate_files_gone_or_wrong_since_the_params_loaded_name_the_field(
    tmp_path: Path,
) -> None:
    certs.ensure_demo_pki(tmp_path / "pki")
    folder, revoked = tmp_path / "clients", tmp_path / "revoked.pem"
    folder.mkdir()
    (folder / "broken.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    revoked.write_text(certs.pem(PARTNER.cert))
    p = sandbox_params(
        tmp_path, changes={"client_certificates": str(folder), "intended_refusals": [str(revoked)]}
    )
    with pytest.raises(
        ChangeReportError, match="changes.client_certificates: .*broken.pem holds no PEM certificate"
    ):
        impact.known_clients(p)
    (folder / "broken.pem").unlink()
    folder.rmdir()
    with pytest.raises(ChangeReportError, match=r"changes.client_certificates: .*clients is not a folder"):
        impact.known_clients(p)
    revoked.unlink()
    with pytest.raises(ChangeReportError, match="changes.intended_refusals: .*revoked.pem does not exist"):
        impact.intended_fingerprints(p)


def test_intended_refusals_are_fingerprints_or_certificate_files(tmp_path: Path) -> None:
    certs.ensure_demo_pki(tmp_path / "pki")
    f = tmp_path / "revoked.pem"
    f.write_text(certs.pem(PARTNER.cert))
    colons = ":".join(sha(OLD_CLIENT)[i : i + 2] for i in range(0, 64, 2)).upper()
    p = sandbox_params(tmp_path, changes={"intended_refusals": [colons, str(f)]})
    assert impact.intended_fingerprints(p) == {sha(OLD_CLIENT), sha(PARTNER)}


# ---- log values and one query --------------------------------------------------------------------------------


def test_logged_fingerprints_serials_and_dns_read_in_one_form() -> None:
    digest = OLD_CLIENT.cert.fingerprint(certs.hashes.SHA256())
    assert seen.fingerprint_hex(base64.b64encode(digest).decode().rstrip("=")) == digest.hex()
    assert seen.fingerprint_hex(digest.hex().upper()) == digest.hex()
    assert seen.fingerprint_hex("abc") == "" and seen.fingerprint_hex(None) == ""
    assert seen.normal_serial("00:8F:0a") == seen.normal_serial("8f0a") == "8f0a"
    assert dn.text(dn.field(OLD_INTER.cert.subject)) == OLD_INTER.cert.subject.rfc4514_string()
    assert dn.text("CN=already text") == "CN=already text"


def test_clients_seen_is_the_same_for_pulled_entries_and_exported_files(tmp_path: Path) -> None:
    entries = [entry("10.0.0.1", OLD_CLIENT, second=s) for s in range(3)]
    entries += [
        entry("10.0.0.2", None, second=4),
        entry("10.0.0.9", NEW_CLIENT, verified=False, error="client_cert_validation_failed", second=5),
    ]
    path = tmp_path / "export.json"
    path.write_text("\n".join(json.dumps(e) for e in entries) + "\n")
    pulled = seen.clients_seen(logs.entries_frame(entries))
    derivation = logscan.Derivation(forwarded="response_sent_by_backend", probe_path="/p/")
    with logscan.LogScan(path, derivation) as scan:
        exported = seen.clients_seen(scan)
    with logscan.LogScan(path, derivation, columns=seen.READ_COLUMNS) as lean:  # what the reports load
        assert lean.con.execute("SELECT count(*) FROM flat").fetchone() == (5,)
        assert seen.clients_seen(lean).to_dict("records") == exported.to_dict("records")
    with pytest.raises(logscan.LogScanError, match=r"columns \['nope'\] are not columns of the flat table"):
        logscan.LogScan(path, derivation, columns=["nope"])
    assert pulled.to_dict("records") == exported.to_dict("records")
    first = pulled.iloc[0]
    assert (first["requests"], first["outcome_now"], first["key_kind"]) == (3, "accepted", "fingerprint")
    assert abs(float(pulled["share"].sum()) - 1.0) < 1e-9
