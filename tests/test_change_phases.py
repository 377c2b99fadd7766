"""change.phases and change.apply's diff: which phases a trust change still needs, read from the live
and target trust states alone, and the readable diff of each."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from mtlskit.change import apply, run
from mtlskit.change.phases import ADD, REMOVE, SWITCH, between_phases, trust_phases
from mtlskit.change.state import ALLOW, REJECT, TrustedCert, TrustState
from mtlskit.config.params import Params
from mtlskit.pki import certs
from mtlskit.verify import changerecords
from tests.conftest import sandbox_params


def _ca(name: str) -> certs.Issued:
    return certs.issue(name, ca=True, eku=certs.CLIENT_AUTH)


OLD_ROOT, NEW_ROOT, PARTNER = _ca("old root"), _ca("new root"), _ca("partner root")
OLD_INTER = certs.issue("old intermediate", issuer=OLD_ROOT, ca=True, eku=certs.CLIENT_AUTH)
NEW_INTER = certs.issue("new intermediate", issuer=NEW_ROOT, ca=True, eku=certs.CLIENT_AUTH)
LISTED = certs.issue("listed.example", eku=certs.CLIENT_AUTH)


def tc(role: str, issued: certs.Issued) -> TrustedCert:
    return TrustedCert.from_pem(role, certs.pem(issued.cert))  # type: ignore[arg-type]


def state(*entries: TrustedCert, mode: str = REJECT, attached: bool = True) -> TrustState:
    return TrustState(entries, mode, attached)


OLD = state(tc("anchor", OLD_ROOT), tc("intermediate", OLD_INTER), tc("allowlisted", LISTED))
NEW = state(tc("anchor", NEW_ROOT), tc("intermediate", NEW_INTER), tc("allowlisted", LISTED))


def test_a_rotation_adds_beside_the_old_then_removes_it() -> None:
    first, second = trust_phases(OLD, NEW)
    assert (first.action, first.number, first.of) == (ADD, 1, 2)
    assert {c.subject for c in first.added} == {
        "O=mtlskit demo,CN=new root",
        "O=mtlskit demo,CN=new intermediate",
    }
    assert first.removed == () and first.before == OLD
    assert first.after.cert_keys() == OLD.cert_keys() | NEW.cert_keys()  # the allowlist is kept throughout
    assert (second.action, second.number, second.of, second.after) == (REMOVE, 2, 2, NEW)
    assert {c.subject for c in second.removed} == {
        "O=mtlskit demo,CN=old root",
        "O=mtlskit demo,CN=old intermediate",
    }


def test_the_phase_is_read_from_what_exists_so_a_re_run_continues_and_never_repeats() -> None:
    beside = trust_phases(OLD, NEW)[0].after
    assert between_phases(beside, NEW) and not between_phases(OLD, NEW)
    (left,) = trust_phases(beside, NEW)  # phase 1 is done: only the removal is left
    assert left.action == REMOVE and left.before == beside and left.after == NEW
    assert trust_phases(NEW, NEW) == []  # done: nothing to repeat


def test_addition_only_and_removal_only_changes_are_one_phase() -> None:
    with_partner = state(*OLD.certs, tc("anchor", PARTNER))
    (add,) = trust_phases(OLD, with_partner)
    assert (add.action, add.of, [c.subject for c in add.added]) == (
        ADD,
        1,
        ["O=mtlskit demo,CN=partner root"],
    )
    (revoke,) = trust_phases(with_partner, OLD)
    assert (revoke.action, revoke.of, revoke.removed) == (REMOVE, 1, (tc("anchor", PARTNER),))


def test_a_mode_or_proxy_change_goes_in_the_last_phase() -> None:
    allow_new = TrustState(NEW.certs, ALLOW, True)
    first, second = trust_phases(OLD, allow_new)
    assert first.after.mode == REJECT and second.after.mode == ALLOW
    (switch,) = trust_phases(OLD, TrustState(OLD.certs, REJECT, False))
    assert switch.action == SWITCH and "detach the policy" in switch.describe()


def test_the_diff_names_each_certificate_added_removed_or_kept_and_the_mode() -> None:
    rows = apply.diff_rows(OLD, TrustState(NEW.certs, ALLOW, True))
    by = {(r["change"], r["role"], r["subject"].split("CN=")[-1]) for r in rows}
    assert {
        ("remove", "anchor", "old root"),
        ("remove", "intermediate", "old intermediate"),
        ("add", "anchor", "new root"),
        ("add", "intermediate", "new intermediate"),
        ("keep", "allowlisted", "listed.example"),
        ("mode", "server TLS policy", f"{REJECT} -> {ALLOW}"),
    } == by
    sha = {r["sha256"] for r in rows if r["change"] == "add" and r["role"] == "anchor"}
    assert sha == {NEW_ROOT.cert.fingerprint(certs.hashes.SHA256()).hex()}


# ---- how a phase is named, from the states and the open rotation's record ---------------------------------


def _params(tmp_path: Path) -> Params:
    return sandbox_params(tmp_path, changes={"records": str(tmp_path / "records")})


def _recorded(params: Params, nxt: run.Next, outcome: str = "applied") -> None:
    now = dt.datetime.now(dt.UTC)
    record = changerecords.ChangeRecord(
        stack=changerecords.stack_of(params),
        change_id=nxt.change_id,
        kind=nxt.kind,
        phase=nxt.number,
        phases=nxt.of,
        who="test",
        started=now,
        finished=now,
        before=nxt.phase.before.to_dict(),
        after=nxt.phase.after.to_dict(),
        outcome=outcome,  # type: ignore[arg-type]
        exit_code=0,
    )
    changerecords.write_record(params, record)


def test_a_removal_that_ends_a_recorded_rotation_is_its_phase_2_with_the_same_id(tmp_path: Path) -> None:
    params = _params(tmp_path)
    first = run.next_phase(params, OLD, NEW)
    assert first is not None and (first.kind, first.number, first.of) == ("rotation", 1, 2)
    beside = first.phase.after
    unrecorded = run.next_phase(params, beside, NEW)  # no record: a removal of its own
    assert unrecorded is not None and (unrecorded.kind, unrecorded.number, unrecorded.of) == ("partner", 1, 1)
    _recorded(params, first)
    second = run.next_phase(params, beside, NEW)
    assert second is not None and (second.kind, second.number, second.of) == ("rotation", 2, 2)
    assert second.change_id == first.change_id and second.phase.after == NEW


def test_partner_and_mode_only_changes_are_named_as_such(tmp_path: Path) -> None:
    params = _params(tmp_path)
    with_partner = state(*OLD.certs, tc("anchor", PARTNER))
    added = run.next_phase(params, OLD, with_partner)
    assert added is not None and (added.kind, added.number, added.of) == ("partner", 1, 1)
    relisted = state(*[c for c in OLD.certs if c.role != "allowlisted"], tc("allowlisted", OLD_ROOT))
    swapped = run.next_phase(params, OLD, relisted)  # an allowlisted certificate replaced: two phases
    assert swapped is not None and (swapped.kind, swapped.of) == ("partner", 2)
    mode = run.next_phase(params, OLD, TrustState(OLD.certs, ALLOW, True))
    assert mode is not None and mode.kind == "trust"
    assert run.next_phase(params, OLD, OLD) is None
