"""70_drift and the change records, judged from state alone (no sandbox): a rotation left half done
past `changes.half_done_warning_days` warns, a CA expiring within the horizon without a successor
warns, and a trust config that is exactly an open rotation's phase 1 is "mid-rotation", a warning,
not drift. Records carry old timestamps; nothing sleeps."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from google.cloud import certificate_manager_v1 as cm

from mtlskit.config.params import Params
from mtlskit.core.checks import Check
from mtlskit.pki import certs
from mtlskit.verify import changedrift, drift
from mtlskit.verify.changedrift import ChangeHistory
from mtlskit.verify.changerecords import BrokenRecord
from tests.conftest import sandbox_params
from tests.recordstates import NOW, ca, record, state


@pytest.fixture(scope="module")
def cas() -> dict[str, certs.Issued]:
    old = ca("old root", days=400)
    return {
        "old": old,
        "new": ca("new root", days=3650),
        "inter": ca("old intermediate", days=400, issuer=old),
        "soon": ca("root expiring soon", days=10),
        "soon_inter": ca("intermediate expiring soon", days=10, issuer=old),
    }


def trust_config(*anchors: certs.Issued, intermediates: tuple[certs.Issued, ...] = ()) -> cm.TrustConfig:
    store = {
        "trust_anchors": [{"pem_certificate": certs.pem(a.cert)} for a in anchors],
        "intermediate_cas": [{"pem_certificate": certs.pem(i.cert)} for i in intermediates],
    }
    return cm.TrustConfig(name="tc", trust_stores=[store])


def params_naming(tmp_path: Path, *anchors: certs.Issued, days: float = 14.0) -> Params:
    files = []
    for i, a in enumerate(anchors):
        f = tmp_path / f"anchor{i}.pem"
        f.write_text(certs.pem(a.cert))
        files.append(str(f))
    return sandbox_params(
        tmp_path / "state",
        mtls={"trust_anchors": files, "intermediates": []},
        changes={"half_done_warning_days": days},
    )


def phase_one(cas: dict[str, certs.Issued], days_ago: float, change_id: str = "rot-1") -> tuple:
    before = state(("anchor", cas["old"]))
    after = state(("anchor", cas["old"]), ("anchor", cas["new"]))
    one = record(
        "rotation", 1, before, after, change_id=change_id, finished=NOW - dt.timedelta(days=days_ago)
    )
    return before, after, one


def test_a_rotation_half_done_longer_than_the_limit_warns(
    cas: dict[str, certs.Issued], tmp_path: Path
) -> None:
    params = params_naming(tmp_path, cas["new"], days=14)
    live = trust_config(cas["old"], cas["new"])
    _, _, old_one = phase_one(cas, days_ago=20)
    check = changedrift.check_half_done(params, ChangeHistory("recs", [old_one]), live, NOW)
    assert check.status == "warn", check
    assert "rotation phase 1 of 2 since" in check.evidence and "rot-1" in check.evidence
    assert "20.0 days, warned after 14" in check.evidence and "c10_trust_change" in check.fix

    _, _, fresh = phase_one(cas, days_ago=3)
    check = changedrift.check_half_done(params, ChangeHistory("recs", [fresh]), live, NOW)
    assert check.status == "pass" and "3.0 days" in check.evidence


def test_a_rotation_moved_on_or_not_live_is_not_half_done(
    cas: dict[str, certs.Issued], tmp_path: Path
) -> None:
    params = params_naming(tmp_path, cas["new"])
    before, after, one = phase_one(cas, days_ago=30)
    two = record("rotation", 2, after, state(("anchor", cas["new"])), change_id="rot-1", finished=NOW)
    done = changedrift.check_half_done(
        params, ChangeHistory("recs", [one, two]), trust_config(cas["new"]), NOW
    )
    assert done.status == "pass" and done.evidence == "no rotation in progress (2 change records in recs)"
    # the records say phase 1, but someone changed the trust config since: that is the trust check's drift
    elsewhere = changedrift.check_half_done(
        params, ChangeHistory("recs", [one]), trust_config(cas["new"]), NOW
    )
    assert elsewhere.status == "pass"


def test_broken_or_unreadable_records_warn_without_stopping_drift(
    cas: dict[str, certs.Issued], tmp_path: Path
) -> None:
    params = params_naming(tmp_path, cas["new"])
    live = trust_config(cas["new"])
    broken = ChangeHistory("recs", [], [BrokenRecord("recs/x.json", "Expecting value: line 1")])
    check = changedrift.check_half_done(params, broken, live, NOW)
    assert check.status == "warn" and "recs/x.json: Expecting value" in check.evidence
    unreadable = ChangeHistory("gs://b/p", error="Forbidden: 403 no access")
    check = changedrift.check_half_done(params, unreadable, live, NOW)
    assert check.status == "warn" and "could not be read: Forbidden: 403 no access" in check.evidence


def test_a_ca_expiring_within_the_horizon_warns_only_without_a_successor(
    cas: dict[str, certs.Issued], tmp_path: Path
) -> None:
    params = params_naming(tmp_path, cas["new"])  # expiry_horizon_days: 30
    alone = changedrift.check_successors(params, trust_config(cas["soon"]), NOW)
    assert alone.status == "warn", alone
    assert (
        "CN=root expiring soon" in alone.evidence and "no other trust anchor is valid past" in alone.evidence
    )

    covered = changedrift.check_successors(params, trust_config(cas["soon"], cas["new"]), NOW)
    assert covered.status == "pass", covered
    assert "successor O=mtlskit demo,CN=new root until" in covered.evidence

    # an intermediate needs an intermediate: a long-lived anchor beside it is no successor
    inter = trust_config(cas["new"], intermediates=(cas["soon_inter"],))
    assert changedrift.check_successors(params, inter, NOW).status == "warn"
    both = trust_config(cas["new"], intermediates=(cas["soon_inter"], cas["inter"]))
    assert changedrift.check_successors(params, both, NOW).status == "pass"

    far = changedrift.check_successors(params, trust_config(cas["old"], cas["new"]), NOW)
    assert far.status == "pass" and "expires within 30 days" in far.evidence


def _split_state(tc: cm.TrustConfig, history: ChangeHistory) -> drift.DriftState:
    return drift.DriftState(
        anchor=None,
        backend_config=None,
        named_backends=[],
        missing_backends=[],
        url_map=None,
        url_map_backend=None,
        proxy=None,
        forwarding_rule=None,
        ssl_policy=None,
        certificate=None,
        address=None,
        policy=None,
        trust_config=tc,
        read_at=NOW,
        names=drift.looked_up(sandbox_params(Path("/nonexistent"))),
        changes=history,
    )


def _trust(checks: list[Check]) -> Check:
    return next(c for c in checks if c.name == drift.TRUST)


def test_the_trust_check_says_mid_rotation_instead_of_failing(
    cas: dict[str, certs.Issued], tmp_path: Path
) -> None:
    params = params_naming(tmp_path, cas["new"])  # the rotation's end: the new root only
    live = trust_config(cas["old"], cas["new"])  # phase 1: old and new
    _, _, one = phase_one(cas, days_ago=2)

    checks = drift.evaluate(params, _split_state(live, ChangeHistory("recs", [one])), NOW)
    trust = _trust(checks)
    assert trust.status == "warn", trust
    assert trust.evidence.startswith("rotation phase 1 of 2 since 2026-12-02 08:00 UTC (record rot-1")
    assert (
        "trust anchors in the trust config but not in mtls.trust_anchors: O=mtlskit demo,CN=old root"
        in trust.evidence
    )
    names = [c.name for c in checks]
    assert names.index(drift.EXPIRY) + 1 == names.index(drift.SUCCESSOR) == names.index(drift.HALF_DONE) - 1

    rows = _split_state(live, ChangeHistory("recs", [one])).rows()
    assert (
        rows[-1]["resource"] == "change records"
        and "last: rotation phase 1 of 2 on 2026-12-02" in rows[-1]["detail"]
    )
    assert "0 for this stack" in _split_state(live, ChangeHistory("recs")).rows()[-1]["detail"]

    # without the record, or with a trust config that is not what phase 1 applied, it is drift
    assert _trust(drift.evaluate(params, _split_state(live, ChangeHistory("recs")), NOW)).status == "fail"
    other = trust_config(cas["old"], cas["new"], cas["soon"])
    assert (
        _trust(drift.evaluate(params, _split_state(other, ChangeHistory("recs", [one])), NOW)).status
        == "fail"
    )
