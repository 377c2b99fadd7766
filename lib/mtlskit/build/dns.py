"""A migration's DNS cut-over: the domains' A records moved from the live frontend's IP to the new one.

Clients reach a frontend by name, so a migration is finished only when the names resolve to the new
address. Done safely it is three moves, each planned as data first: lower the records' TTL to
`dns.cutover_ttl_seconds` (then wait the old TTL, so no resolver holds an answer longer than the
short one), point the A records at the new IP, and once the new frontend holds, raise the TTL back
to `dns.ttl_seconds`. The way back is the same cut-over with the old IP (`plan_cutover(..., old_ip)`),
while the old frontend still exists. `wait_resolves` asks a name server until every domain answers
the new IP: the proof by name that no request is still sent to the old one by a fresh resolver
(`resolution_check` makes it the check a runbook's gate reads).

Cloud DNS is reached through `google-cloud-dns`, Google's official client of its JSON API (v1), the
one Google documents for Python; it honours `client_options.api_endpoint`, so on the sandbox it
talks to the sandbox's stand-in over HTTP. Its calls take no retry argument; `Clients.call` wraps
them in the kit's retry policy. Each step is one `changes.create` holding the deletions and the
additions together (Cloud DNS applies a change atomically and refuses it whole when a deletion no
longer matches, so a record edited since the plan was read is never overwritten), and the wait for
its `done` status is the one poll loop (`core.poll`). Names are queried with dnspython's resolver:
`dns.nameserver` (ip[:port]), on the sandbox its DNS responder, else the system's resolver.

Without `dns.managed_zone` the kit changes nothing: the plan is read from DNS answers and its
`gcloud dns record-sets update` commands (or the same change at another DNS provider) are made by
hand; `wait_resolves` then shows when the world has taken it up.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.resolver
from google.cloud.dns.changes import Changes

from mtlskit.build.plan import Change
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core import errors, poll
from mtlskit.core.checks import Check
from mtlskit.core.errors import KitError
from mtlskit.rules import dns as rules

RECORD_TYPE = "A"
QUERY_SECONDS = 2.0  # one DNS query's bound; a wait asks again until its own time is up
CHANGE_POLL_SECONDS = 0.25


class DnsCutoverError(KitError, ValueError):
    """The params or arguments cannot give a safe record change (an unknown managed zone, a domain
    outside it, an address that is not IPv4, a name held by a CNAME); nothing was changed."""


@dataclass(frozen=True)
class Record:
    """One A record set as Cloud DNS holds it (`name` fully qualified)."""

    name: str
    ttl: int
    rrdatas: tuple[str, ...]
    type: str = RECORD_TYPE

    @property
    def domain(self) -> str:
        return self.name.rstrip(".")

    def body(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "ttl": self.ttl, "rrdatas": list(self.rrdatas)}


@dataclass(frozen=True)
class Step:
    """One Cloud DNS change: what it is for, the record sets it replaces, and how long to wait after
    it before the next step (the TTL the replaced answers may still be cached for)."""

    purpose: str
    deletions: tuple[Record, ...]
    additions: tuple[Record, ...]
    wait_after_seconds: int = 0


@dataclass(frozen=True)
class DnsPlan:
    """The steps of a record change, in order, for the params' domains; `managed` False: no
    `dns.managed_zone`, so the steps are made by hand with `commands`."""

    project: str
    zone: str | None
    before: tuple[Record, ...]
    steps: tuple[Step, ...]
    commands: tuple[str, ...] = field(default=())

    @property
    def managed(self) -> bool:
        return self.zone is not None

    @property
    def changes_nothing(self) -> bool:
        return not self.steps

    def changes(self) -> list[Change]:
        """The readable diff, one row per record set and step (see `plan.Change.row`)."""
        rows = []
        for number, step in enumerate(self.steps, 1):
            old = {r.name: r for r in step.deletions}
            for new in step.additions:
                was = old.get(new.name)
                fields = _differences(was, new)
                rows.append(
                    Change(
                        f"step {number}: {step.purpose}",
                        new.domain,
                        "update" if was else "create",
                        fields,
                        _command(self.project, self.zone, was, new),
                        new,
                        was,
                    )
                )
        return rows


@dataclass(frozen=True)
class Applied:
    """A step Cloud DNS has taken: its change id and how long it was `pending`."""

    step: Step
    change_id: str
    seconds: float


@dataclass(frozen=True)
class Resolution:
    """What a name server answered for each domain at the wait's last look, and whether all gave
    the address waited for."""

    address: str
    nameserver: str
    answers: dict[str, tuple[str, ...] | str]  # the A records, or why there were none
    elapsed: float
    done: bool

    @property
    def pending(self) -> list[str]:
        return [d for d, a in self.answers.items() if a != (self.address,)]


# ---- reading ------------------------------------------------------------------------------------------


def current_records(clients: Clients, params: Params) -> list[Record]:
    """The params' domains' A record sets as Cloud DNS holds them in `dns.managed_zone` (a domain
    with none is left out). Refuses, naming the field, a zone that does not exist and a domain that
    is not in it."""
    zone = _zone(clients, params)
    domains = {rules.fqdn(d) for d in params.frontend.domains}
    found = [r for r in _all(clients, zone.list_resource_record_sets) if rules.fqdn(r.name) in domains]
    held = [r for r in found if r.record_type == "CNAME"]
    if held:
        raise DnsCutoverError(
            f"frontend.domains: {held[0].name} is a CNAME in managed zone {zone.name}, so it cannot "
            "carry the A record a cut-over changes; fix: point the CNAME's target instead, or replace "
            "the CNAME with an A record first"
        )
    return sorted(
        (
            Record(rules.fqdn(r.name), int(r.ttl), tuple(r.rrdatas))
            for r in found
            if r.record_type == RECORD_TYPE
        ),
        key=lambda r: r.name,
    )


def resolve(domains: Sequence[str], nameserver: str | None) -> dict[str, tuple[str, ...] | str]:
    """Each domain's A records as `nameserver` answers now (ip[:port]; None: the system's
    resolver), or the reason it gave none (NXDOMAIN, no answer, time-out)."""
    resolver = resolver_for(nameserver)
    out: dict[str, tuple[str, ...] | str] = {}
    for domain in domains:
        try:
            answer = resolver.resolve(domain, RECORD_TYPE, lifetime=QUERY_SECONDS, search=False)
            out[domain] = tuple(sorted(r.to_text() for r in answer))
        except dns.resolver.NXDOMAIN:
            out[domain] = "NXDOMAIN (no such name)"
        except dns.resolver.NoAnswer:
            out[domain] = "no A record"
        except dns.resolver.NoNameservers as exc:
            out[domain] = f"refused or failed: {exc}"
        except dns.exception.Timeout:
            out[domain] = f"no answer within {QUERY_SECONDS:.0f}s"
    return out


# ---- planning -----------------------------------------------------------------------------------------


def plan_records(clients: Clients, params: Params, address: str, ttl: int | None = None) -> DnsPlan:
    """One step: every domain's A record set to `address` with `ttl` (default `dns.ttl_seconds`),
    created where missing. How a live frontend's domains are published in the first place."""
    _address(address)
    before = _before(clients, params)
    wanted = ttl if ttl is not None else params.dns.ttl_seconds
    step = _step(f"point at {address}", params, before, lambda _: (address,), wanted, 0)
    return _plan(params, before, [step])


def plan_cutover(clients: Clients, params: Params, new_address: str) -> DnsPlan:
    """The cut-over to `new_address`: lower the TTL of records above `dns.cutover_ttl_seconds`
    (then wait their old TTL), then point every domain at `new_address` with the short TTL. The way
    back is this with the old address. Records already there plan no step."""
    _address(new_address)
    before = _before(clients, params)
    short = params.dns.cutover_ttl_seconds
    longest = max((r.ttl for r in before if r.ttl > short), default=0)
    lower = _step(
        f"lower the TTL to {short}s",
        params,
        [r for r in before if r.ttl > short],
        lambda r: r.rrdatas if r else (),
        short,
        longest,
    )
    lowered = _after(before, lower)  # the second step replaces what the first one leaves
    point = _step(f"point at {new_address}", params, lowered, lambda _: (new_address,), short, short)
    return _plan(params, before, [lower, point])


def plan_ttl(clients: Clients, params: Params, ttl: int | None = None) -> DnsPlan:
    """The records' TTL back to `ttl` (default `dns.ttl_seconds`), their addresses unchanged: the
    last step of a cut-over, once the new frontend holds."""
    before = _before(clients, params)
    wanted = ttl if ttl is not None else params.dns.ttl_seconds
    step = _step(f"raise the TTL to {wanted}s", params, before, lambda r: r.rrdatas if r else (), wanted, 0)
    return _plan(params, before, [step])


def _before(clients: Clients, params: Params) -> list[Record]:
    """The records a plan starts from: Cloud DNS's, or (no managed zone) what DNS answers, with the
    usual TTL assumed (a resolver shows only what is left of a cached answer's)."""
    if params.dns.managed_zone:
        return current_records(clients, params)
    answers = resolve(params.frontend.domains, clients.nameserver)
    return [
        Record(rules.fqdn(d), params.dns.ttl_seconds, a) for d, a in answers.items() if isinstance(a, tuple)
    ]


def _step(
    purpose: str,
    params: Params,
    before: Sequence[Record],
    rrdatas: Callable[[Record | None], tuple[str, ...]],
    ttl: int,
    wait_after: int,
) -> Step:
    """The step that gives each domain `rrdatas(current)` at `ttl`; `before` names the record sets it
    may replace (a domain not there and given no data is left alone)."""
    current = {r.name: r for r in before}
    deletions, additions = [], []
    for name in sorted(rules.fqdn(d) for d in params.frontend.domains):
        was = current.get(name)
        data = rrdatas(was)
        if not data:
            continue
        new = Record(name, ttl, tuple(sorted(data)))
        if was is not None and was.ttl == new.ttl and sorted(was.rrdatas) == list(new.rrdatas):
            continue
        deletions += [was] if was else []
        additions.append(new)
    return Step(purpose, tuple(deletions), tuple(additions), wait_after if additions else 0)


def _after(records: Sequence[Record], step: Step) -> list[Record]:
    """The record sets once `step` is made."""
    replaced = {r.name for r in step.additions}
    return sorted([r for r in records if r.name not in replaced] + list(step.additions), key=lambda r: r.name)


def _plan(params: Params, before: list[Record], steps: list[Step]) -> DnsPlan:
    kept = [s for s in steps if s.additions]
    if kept:  # no wait after the last step: what follows it is the caller's
        kept[-1] = Step(kept[-1].purpose, kept[-1].deletions, kept[-1].additions, 0)
    plan = DnsPlan(params.project, params.dns.managed_zone, tuple(before), tuple(kept))
    commands = tuple(c.gcloud for c in plan.changes())
    return DnsPlan(plan.project, plan.zone, plan.before, plan.steps, commands)


def _differences(was: Record | None, new: Record) -> list[str]:
    if was is None:
        return [f"A {', '.join(new.rrdatas)}, TTL {new.ttl}s"]
    out = []
    if sorted(was.rrdatas) != sorted(new.rrdatas):
        out.append(f"A {', '.join(was.rrdatas)} -> {', '.join(new.rrdatas)}")
    if was.ttl != new.ttl:
        out.append(f"TTL {was.ttl}s -> {new.ttl}s")
    return out


def _command(project: str, zone: str | None, was: Record | None, new: Record) -> str:
    verb = "update" if was else "create"
    return shlex.join(
        [
            "gcloud",
            "dns",
            "record-sets",
            verb,
            new.name,
            f"--type={new.type}",
            f"--zone={zone or 'ZONE'}",
            f"--ttl={new.ttl}",
            f"--rrdatas={','.join(new.rrdatas)}",
            f"--project={project}",
        ]
    )


# ---- applying -----------------------------------------------------------------------------------------


def apply(
    clients: Clients,
    params: Params,
    plan: DnsPlan,
    on_progress: Callable[[str, float], None] | None = None,
) -> list[Applied]:
    """Make the plan's steps in order: each one Cloud DNS change, waited for until `done`, then the
    step's TTL wait before the next one. Refuses a plan without a managed zone (its commands are
    made by hand) and a plan made for other params."""
    if not plan.managed:
        raise errors.ApplyRefused(
            "dns.managed_zone is not set, so the kit changes no record: make the plan's commands by "
            "hand (or the same change at your DNS provider), then wait for the names with "
            "wait_resolves; or set dns.managed_zone to the Cloud DNS zone of frontend.domains"
        )
    if plan.zone != params.dns.managed_zone or plan.project != params.project:
        raise errors.ApplyRefused(
            f"the plan was made for zone {plan.zone} in {plan.project}, the params name "
            f"{params.dns.managed_zone} in {params.project}: plan again with these params"
        )
    zone = _zone(clients, params)
    done = []
    for number, step in enumerate(plan.steps, 1):
        change = zone.changes()
        for record in step.deletions:
            change.delete_record_set(
                zone.resource_record_set(record.name, record.type, record.ttl, list(record.rrdatas))
            )
        for record in step.additions:
            change.add_record_set(
                zone.resource_record_set(record.name, record.type, record.ttl, list(record.rrdatas))
            )
        clients.call(change.create)
        waited = _wait_done(clients, change, f"step {number}: {step.purpose}", on_progress)
        done.append(Applied(step, str(change.name), waited))
        if step.wait_after_seconds and number < len(plan.steps):
            _wait_ttl(step, number, on_progress)
    return done


def _wait_done(
    clients: Clients, change: Changes, what: str, on_progress: Callable[[str, float], None] | None
) -> float:
    def read() -> str:
        clients.call(change.reload)
        return str(change.status)

    def report(status: str, elapsed: float) -> None:
        if on_progress:
            on_progress(f"{what}: change {change.name} {status}", elapsed)

    polled = poll.poll(
        read,
        lambda status: status == "done",
        clients.operation_timeout,
        every=CHANGE_POLL_SECONDS,
        growth=1.5,
        longest=5.0,
        on_read=report,
    )
    if not polled.done:
        raise errors.OperationFailed(
            what,
            f"{change.path}",
            None,
            f"still {polled.value} after {polled.elapsed:.0f}s (Cloud DNS normally takes seconds); "
            "check it with gcloud dns record-sets changes describe, then plan again",
            None,
        )
    return polled.elapsed


def _wait_ttl(step: Step, number: int, on_progress: Callable[[str, float], None] | None) -> None:
    """Cached answers of the replaced records may live `wait_after_seconds` more: nothing to read,
    only time to let pass (the poll loop gives the progress and the one place that sleeps)."""
    what = f"after step {number}, waiting {step.wait_after_seconds}s for cached answers to expire"
    poll.poll(
        lambda: None,
        lambda _: False,
        step.wait_after_seconds,
        every=min(5.0, float(step.wait_after_seconds)),
        on_read=(lambda _, elapsed: on_progress(what, elapsed)) if on_progress else None,
    )


# ---- proving by name ----------------------------------------------------------------------------------


def wait_resolves(
    domains: Sequence[str],
    address: str,
    nameserver: str | None,
    timeout: float,
    on_progress: Callable[[Resolution], None] | None = None,
    every: float = 1.0,
) -> Resolution:
    """Ask `nameserver` (ip[:port]; None: the system's resolver) until every domain answers exactly
    `address`, or until `timeout` seconds; the last answers either way (`done` says which)."""
    _address(address)
    asked = nameserver or "the system's resolver"

    def report(answers: dict[str, tuple[str, ...] | str], elapsed: float) -> None:
        if on_progress:
            on_progress(Resolution(address, asked, answers, elapsed, _all_at(answers, address)))

    polled = poll.poll(
        lambda: resolve(domains, nameserver),
        lambda answers: _all_at(answers, address),
        timeout,
        every=every,
        on_read=report,
    )
    return Resolution(address, asked, polled.value, polled.elapsed, polled.done)


RESOLVES_CHECK = "domains resolve to the new address"


def resolution_check(resolution: Resolution) -> Check:
    """The proof by name as a check (a runbook's gate between the cut-over and retiring the old
    frontend): pass when every domain answered only the address waited for."""
    answered = "; ".join(
        f"{domain}: {', '.join(a) if isinstance(a, tuple) else a}" for domain, a in resolution.answers.items()
    )
    evidence = f"{answered} (asked {resolution.nameserver}, after {resolution.elapsed:.0f}s)"
    if resolution.done:
        return Check(RESOLVES_CHECK, "pass", evidence)
    return Check(
        RESOLVES_CHECK,
        "fail",
        evidence,
        f"{', '.join(resolution.pending)} not yet at {resolution.address}: a resolver keeps an old answer "
        "for its TTL, so wait longer or ask the zone's own name server (dns.nameserver); check the record "
        "with gcloud dns record-sets list --zone=ZONE; the way back is the cut-over to the old address",
    )


def _all_at(answers: dict[str, tuple[str, ...] | str], address: str) -> bool:
    return all(a == (address,) for a in answers.values())


# ---- helpers ------------------------------------------------------------------------------------------


def _zone(clients: Clients, params: Params) -> Any:
    """The managed zone of `dns.managed_zone`, checked to hold every domain."""
    name = params.dns.managed_zone
    if not name:
        raise DnsCutoverError(
            "dns.managed_zone is not set: the kit cannot read or change records; fix: set it to the "
            "Cloud DNS zone of frontend.domains, or make the change by hand"
        )
    if clients.dns is None:
        raise DnsCutoverError(
            "these clients have no Cloud DNS client; build them with cloud.clients.build_clients"
        )
    zone = clients.dns.zone(name)
    try:
        clients.call(zone.reload)
    except errors.NotFound:
        zones = [f"{z.name} ({z.dns_name})" for z in _all(clients, clients.dns.list_zones)]
        raise DnsCutoverError(
            f"dns.managed_zone: no managed zone {name!r} in project {params.project} (zones there: "
            f"{', '.join(zones) or 'none'}); fix: set dns.managed_zone to the zone that holds "
            f"{', '.join(params.frontend.domains)}, or leave it out to make the change by hand"
        ) from None
    outside = [d for d in params.frontend.domains if not rules.in_zone(d, zone.dns_name)]
    if outside:
        raise DnsCutoverError(
            f"frontend.domains: {', '.join(outside)} not in managed zone {name} ({zone.dns_name}); "
            "fix: set dns.managed_zone to the zone that holds every domain (one zone per params file)"
        )
    return zone


def _all(clients: Clients, listing: Callable[[], Any]) -> list[Any]:
    """Every item of a google-cloud-dns listing: the pages are fetched while iterating, so the whole
    walk is the call that is retried and whose failure becomes the kit's error."""
    return clients.call(clients.retry(lambda: list(listing())))


def resolver_for(nameserver: str | None) -> dns.resolver.Resolver:
    """A dnspython resolver asking `nameserver` (ip[:port]) without a cache of its own, or the
    system's resolver for None: every lookup of the kit that must see the records as they are now."""
    if not nameserver:
        return dns.resolver.Resolver()
    host, port = rules.nameserver_address(nameserver)
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [host]
    resolver.port = port
    resolver.cache = None
    return resolver


def _address(value: str) -> str:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        address = None
    if address is None or address.version != 4:
        raise DnsCutoverError(f"{value!r} is not an IPv4 address: an A record holds one (e.g. 203.0.113.7)")
    return value
