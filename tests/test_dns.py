"""DNS for a migration's cut-over: the sandbox's Cloud DNS stand-in through the kit's client
(google-cloud-dns), its DNS responder answering what the API wrote (the real `dig` when installed,
dnspython otherwise), the cut-over planned, applied, waited for by name and reversed, and refusals
that change nothing. Each test publishes names of its own in the sandbox's zone."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from mtlskit.build import dns as kit_dns
from mtlskit.build.dns import DnsCutoverError, DnsPlan, Record, Step
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core import errors
from mtlskit.rules import dns as rules
from mtlskit.sandbox import clouddns
from mtlskit.sandbox.clouddns import CloudDns
from mtlskit.sandbox.dnsserver import DnsResponder
from mtlskit.sandbox.env import Env, Settings
from mtlskit.verify import driftcommon
from tests.conftest import sandbox_params

OLD, NEW = "192.0.2.10", "198.51.100.20"


def _params(state_dir: Path, unique: str, **dns_settings: Any) -> Params:
    settings = {
        "managed_zone": rules.SANDBOX_ZONE,
        "ttl_seconds": 2,
        "cutover_ttl_seconds": 1,
        **dns_settings,
    }
    domains = [f"{unique}.mtlskit.test", f"www.{unique}.mtlskit.test"]
    return sandbox_params(state_dir, frontend={"domains": domains}, dns=settings)


def _changes(clients: Clients) -> list[str]:
    return [c.name for c in clients.dns.zone(rules.SANDBOX_ZONE).list_changes()]


def _query(clients: Clients, name: str, rdtype: str = "A", tcp: bool = False) -> dns.message.Message:
    host, port = rules.nameserver_address(clients.nameserver or "")
    query = dns.message.make_query(name, rdtype)
    ask = dns.query.tcp if tcp else dns.query.udp
    return ask(query, host, port=port, timeout=2)


# ---- the sandbox's API and responder --------------------------------------------------------------------


def test_the_responder_answers_what_the_api_wrote(clients: Clients, state_dir: Path, unique: str) -> None:
    params = _params(state_dir, unique)
    kit_dns.apply(clients, params, kit_dns.plan_records(clients, params, OLD))
    assert kit_dns.current_records(clients, params) == [
        Record(f"{unique}.mtlskit.test.", 2, (OLD,)),
        Record(f"www.{unique}.mtlskit.test.", 2, (OLD,)),
    ]
    answer = _query(clients, f"{unique}.mtlskit.test")
    assert answer.rcode() == dns.rcode.NOERROR and answer.flags & dns.flags.AA
    [rrset] = answer.answer
    assert [r.to_text() for r in rrset] == [OLD] and rrset.ttl == 2
    assert [r.to_text() for r in _query(clients, f"www.{unique}.mtlskit.test", tcp=True).answer[0]] == [OLD]
    no_data = _query(clients, f"{unique}.mtlskit.test", "AAAA")
    assert no_data.rcode() == dns.rcode.NOERROR and not no_data.answer
    assert no_data.authority[0].rdtype == dns.rdatatype.SOA
    assert _query(clients, f"absent-{unique}.mtlskit.test").rcode() == dns.rcode.NXDOMAIN
    assert _query(clients, "api.example.com").rcode() == dns.rcode.REFUSED
    dig = shutil.which("dig")
    if dig:  # the tool a person types
        host, port = rules.nameserver_address(clients.nameserver or "")
        out = subprocess.run(
            [dig, f"@{host}", "-p", str(port), "+noall", "+answer", f"{unique}.mtlskit.test", "A"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.split()
        assert out == [f"{unique}.mtlskit.test.", "2", "IN", "A", OLD]


def test_cloud_dns_refuses_a_change_whole_as_google_does(
    clients: Clients, state_dir: Path, unique: str
) -> None:
    params = _params(state_dir, unique)
    kit_dns.apply(clients, params, kit_dns.plan_records(clients, params, OLD))
    zone = clients.dns.zone(rules.SANDBOX_ZONE)
    before, changes = kit_dns.current_records(clients, params), _changes(clients)

    def create(deletions: list[Record], additions: list[Record]) -> errors.ApiError:
        change = zone.changes()
        for r in deletions:
            change.delete_record_set(zone.resource_record_set(r.name, r.type, r.ttl, list(r.rrdatas)))
        for r in additions:
            change.add_record_set(zone.resource_record_set(r.name, r.type, r.ttl, list(r.rrdatas)))
        with pytest.raises(errors.ApiError) as raised:
            clients.call(change.create)
        return raised.value

    name = f"{unique}.mtlskit.test."
    stale = create([Record(name, 99, (OLD,))], [Record(name, 1, (NEW,))])
    assert stale.status == 412 and "Precondition not met for 'entity.change.deletions[0]'" in stale.message
    taken = create([], [Record(name, 1, (NEW,))])
    assert isinstance(taken, errors.Conflict) and f"named '{name} (A)' already exists" in taken.message
    gone = create([Record(f"gone.{name}", 1, (OLD,))], [])
    assert isinstance(gone, errors.NotFound) and "entity.change.deletions[0]" in gone.message
    outside = create([], [Record("api.example.com.", 1, (NEW,))])
    assert outside.status == 400 and "'entity.change.additions[0].name'" in outside.message
    not_v4 = create([], [Record(f"v6.{name}", 1, ("2001:db8::1",))])
    assert not_v4.status == 400 and "'entity.change.additions[0].rrdata[0]'" in not_v4.message
    assert kit_dns.current_records(clients, params) == before and _changes(clients) == changes


# ---- the cut-over ---------------------------------------------------------------------------------------


def test_cut_over_then_back_planned_applied_and_proved_by_name(
    clients: Clients, state_dir: Path, unique: str
) -> None:
    params = _params(state_dir, unique)
    kit_dns.apply(clients, params, kit_dns.plan_records(clients, params, OLD))
    plan = kit_dns.plan_cutover(clients, params, NEW)
    assert [s.purpose for s in plan.steps] == ["lower the TTL to 1s", f"point at {NEW}"]
    assert [s.wait_after_seconds for s in plan.steps] == [2, 0]  # the old TTL, then the caller's
    rows = [c.row() for c in plan.changes()]
    assert [(r["resource"], r["changed fields"]) for r in rows] == [
        ("step 1: lower the TTL to 1s", "TTL 2s -> 1s"),
        ("step 1: lower the TTL to 1s", "TTL 2s -> 1s"),
        (f"step 2: point at {NEW}", f"A {OLD} -> {NEW}"),
        (f"step 2: point at {NEW}", f"A {OLD} -> {NEW}"),
    ]
    assert rows[2]["equivalent command"] == (
        f"gcloud dns record-sets update {unique}.mtlskit.test. --type=A --zone=mtlskit-test --ttl=1 "
        f"--rrdatas={NEW} --project={params.project}"
    )
    seen: list[str] = []
    applied = kit_dns.apply(clients, params, plan, on_progress=lambda what, _: seen.append(what))
    assert [a.step for a in applied] == list(plan.steps)
    assert any("done" in s for s in seen) and any("waiting 2s for cached answers" in s for s in seen)
    looks: list[kit_dns.Resolution] = []
    resolved = kit_dns.wait_resolves(
        params.frontend.domains, NEW, clients.nameserver, 10, looks.append, every=0.2
    )
    assert resolved.done and resolved.pending == [] and looks[-1].done
    assert set(resolved.answers.values()) == {(NEW,)}
    proof = kit_dns.resolution_check(resolved)
    assert proof.status == "pass" and f"{unique}.mtlskit.test: {NEW}" in proof.evidence
    changes = _changes(clients)
    assert kit_dns.plan_cutover(clients, params, NEW).changes_nothing  # a second apply sends nothing
    assert kit_dns.apply(clients, params, kit_dns.plan_cutover(clients, params, NEW)) == []
    assert _changes(clients) == changes
    back = kit_dns.plan_cutover(clients, params, OLD)  # the way back: the TTL is already short
    assert [s.purpose for s in back.steps] == [f"point at {OLD}"]
    kit_dns.apply(clients, params, back)
    assert kit_dns.wait_resolves(params.frontend.domains, OLD, clients.nameserver, 10, every=0.2).done
    kit_dns.apply(clients, params, kit_dns.plan_ttl(clients, params))
    assert {r.ttl for r in kit_dns.current_records(clients, params)} == {params.dns.ttl_seconds}
    # 70_drift's DNS check asks the same name server: what the cut-over wrote, or why nothing came back
    ask = driftcommon.resolver_for(clients.nameserver)
    assert ask(params.frontend.domains[0]).addresses == (OLD,)
    missing = ask(f"nothing-{unique}.mtlskit.test")
    assert missing.addresses == () and "NXDOMAIN" in missing.error and clients.nameserver in missing.error
    assert driftcommon.resolver_for(None) is driftcommon.system_resolver


def test_a_wait_that_runs_out_says_which_names_answered_what(
    clients: Clients, state_dir: Path, unique: str
) -> None:
    params = _params(state_dir, unique)
    kit_dns.apply(clients, params, kit_dns.plan_records(clients, params, OLD))
    names = [*params.frontend.domains, f"absent-{unique}.mtlskit.test"]
    late = kit_dns.wait_resolves(names, NEW, clients.nameserver, 0.3, every=0.1)
    assert not late.done and late.pending == names
    assert late.answers[names[0]] == (OLD,) and late.answers[names[2]].startswith("NXDOMAIN")
    proof = kit_dns.resolution_check(late)
    assert proof.status == "fail" and proof.fix.startswith(f"{', '.join(names)} not yet at {NEW}")


# ---- refusals: nothing changes --------------------------------------------------------------------------


def test_an_unknown_zone_a_domain_outside_it_and_a_bad_address_change_nothing(
    clients: Clients, state_dir: Path, unique: str
) -> None:
    changes = _changes(clients)
    with pytest.raises(
        DnsCutoverError,
        match=r"dns.managed_zone: no managed zone 'nope' .*mtlskit-test \(mtlskit.test.\).*fix",
    ):
        kit_dns.plan_cutover(clients, _params(state_dir, unique, managed_zone="nope"), NEW)
    outside = sandbox_params(
        state_dir, frontend={"domains": [f"{unique}.example.com"]}, dns={"managed_zone": rules.SANDBOX_ZONE}
    )
    with pytest.raises(
        DnsCutoverError, match=rf"frontend.domains: {unique}.example.com not in managed zone mtlskit-test"
    ):
        kit_dns.plan_records(clients, outside, NEW)
    with pytest.raises(DnsCutoverError, match="'not-an-ip' is not an IPv4 address"):
        kit_dns.plan_cutover(clients, _params(state_dir, unique), "not-an-ip")
    assert _changes(clients) == changes


def test_without_a_managed_zone_the_plan_is_read_from_dns_and_made_by_hand(
    clients: Clients, state_dir: Path, unique: str
) -> None:
    managed = _params(state_dir, unique)
    kit_dns.apply(clients, managed, kit_dns.plan_records(clients, managed, OLD))
    by_hand = _params(state_dir, unique, managed_zone=None)
    plan = kit_dns.plan_cutover(clients, by_hand, NEW)  # from the responder's answers
    assert not plan.managed and [s.purpose for s in plan.steps] == ["lower the TTL to 1s", f"point at {NEW}"]
    assert all("--zone=ZONE" in c and c.startswith("gcloud dns record-sets update") for c in plan.commands)
    changes = _changes(clients)
    with pytest.raises(errors.ApplyRefused, match="dns.managed_zone is not set"):
        kit_dns.apply(clients, by_hand, plan)
    elsewhere = dataclasses.replace(plan, zone="other-zone")
    with pytest.raises(errors.ApplyRefused, match="the plan was made for zone other-zone"):
        kit_dns.apply(clients, managed, elsewhere)
    assert _changes(clients) == changes


# ---- plans as data (no sandbox) -------------------------------------------------------------------------


def test_a_plan_without_steps_changes_nothing_and_names_a_missing_record_as_created() -> None:
    assert DnsPlan("p", "z", (), ()).changes_nothing
    new = Record("api.example.com.", 60, ("203.0.113.7",))
    plan = DnsPlan("proj-1", None, (), (Step("point at 203.0.113.7", (), (new,)),))
    [row] = [c.row() for c in plan.changes()]
    assert row["action"] == "create" and row["changed fields"] == "A 203.0.113.7, TTL 60s"
    assert row["equivalent command"].startswith(
        "gcloud dns record-sets create api.example.com. --type=A --zone=ZONE"
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("8.8.8.8", ("8.8.8.8", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("2001:db8::1", ("2001:db8::1", 53)),
    ],
)
def test_a_nameserver_is_an_address_and_an_optional_port(given: str, expected: tuple[str, int]) -> None:
    assert rules.nameserver_address(given) == expected


@pytest.mark.parametrize("bad", ["dns.google", "127.0.0.1:0", "127.0.0.1:x"])
def test_a_nameserver_that_is_not_an_address_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="must be an IP address|port must be"):
        rules.nameserver_address(bad)


def test_names_are_in_a_zone_label_by_label() -> None:
    assert rules.in_zone("api.mtlskit.test", "mtlskit.test.") and rules.in_zone(
        "mtlskit.test.", "mtlskit.test"
    )
    assert not rules.in_zone("xmtlskit.test.", "mtlskit.test.")


# ---- the responder in-process: Google's name servers take a change up once it is done ------------------


def test_a_pending_change_is_in_the_api_but_not_yet_answered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = Env.open(tmp_path, Settings(30.0, 1.0, 8443), ["mtlskit-sandbox"])
    zone_api = CloudDns(env)
    responder = DnsResponder(zone_api)
    name = "api.mtlskit.test."
    body = {"additions": [{"name": name, "type": "A", "ttl": 60, "rrdatas": [NEW]}]}
    change = zone_api._apply(
        "mtlskit-sandbox", zone_api._zone("mtlskit-sandbox", rules.SANDBOX_ZONE), body, "entity.change"
    )
    assert change["status"] == "pending"

    def ask() -> dns.message.Message:
        return dns.message.from_wire(responder.answer(dns.message.make_query(name, "A").to_wire()) or b"")

    assert ask().rcode() == dns.rcode.NXDOMAIN  # the API holds it; the name servers do not yet
    later = time.time() + 31
    monkeypatch.setattr(clouddns.time, "time", lambda: later)
    answer = ask()
    assert answer.rcode() == dns.rcode.NOERROR and [r.to_text() for r in answer.answer[0]] == [NEW]
    assert zone_api._change("mtlskit-sandbox", {"name": rules.SANDBOX_ZONE}, change["id"])["status"] == "done"
    assert responder.answer(b"\x12\x34 not a query") == b"\x12\x34\x80\x01" + bytes(8)  # FORMERR, same id
    assert responder.answer(b"\x00") is None
