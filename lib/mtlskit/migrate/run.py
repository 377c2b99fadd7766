"""The migration's phases: each one changes one thing, ends with a gate, and says its way back.

new_ip (Google's side-by-side path):
  build   the Gateway on a new IP, beside the split frontend          gate: programmed, answering
  verify  the same probes, connected to the new IP (`curl --resolve`)  gate: every probe as expected
  cutover lower the TTL, wait the old TTL, A records to the new IP     gate: the name resolves there,
                                                                             probes by name pass
  drain   watch both forwarding rules' request logs                    gate: the old one drained
  retire  the split frontend, then the anchor Ingress and BackendConfig  gate: gone; Gateway verified
named_address (keeps the IP, costs a window of downtime):
  switch  delete the kit's forwarding rule, then the Gateway takes the address; the downtime is measured
  verify, retire as above.

The way back is applicable until retirement starts: DNS back while the old frontend exists, the
Gateway deleted before retirement (`roll_back`). Functions return results; notebooks render them.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from mtlskit.build import backend, frontend, gateway_lb, k8s, lbnames, teardown
from mtlskit.build.plan import Change
from mtlskit.cloud import ownership
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core.checks import Check
from mtlskit.core.errors import KitError
from mtlskit.core.poll import Polled, poll
from mtlskit.migrate import drain
from mtlskit.migrate.gateway_side import GatewayView
from mtlskit.migrate.state import DONE, PHASES, MigrationState, Ops, next_phase, read_state
from mtlskit.verify import probe

T = TypeVar("T")

Progress = Callable[[str], None]


class MigrationRefused(KitError, RuntimeError):
    """A phase cannot start (its prerequisite is missing) or its way back no longer applies."""


# What each phase does, its gate and its way back, as the plan shows them.
PHASE_TEXT = {
    "build": (
        "apply the Gateway's objects beside the split frontend; the controller builds a load balancer on a new IP",
        "Gateway Programmed with an address; its load balancer carries the SSL policy, certificate, "
        "server TLS policy and a trust config equal to the CA ConfigMap; a valid client answered",
        "delete the Gateway (the split frontend never stopped serving)",
    ),
    "verify": (
        "send 50_verify's probes to the Gateway's IP, with the domain as SNI and Host (curl --resolve)",
        "every probe as expected (valid certificate forwarded, the others refused)",
        "delete the Gateway (nothing was changed)",
    ),
    "cutover": (
        "lower each A record's TTL, wait the old TTL, point the records at the Gateway's IP",
        "each name resolves to the Gateway; the probes pass by name",
        "point the records back at the split frontend's IP (while it exists)",
    ),
    "drain": (
        "watch both forwarding rules' request logs, requests per minute each",
        "the split frontend at or below migration.drained_requests_per_minute for the drain window",
        "point the records back at the split frontend's IP (while it exists)",
    ),
    "retire": (
        "delete the split frontend (forwarding rule, proxy, URL map, server TLS policy, trust config), "
        "then the anchor Ingress and BackendConfig; restore the records' usual TTL",
        "the split side is gone; the Gateway still passes the probes",
        "none once the forwarding rule is deleted: rebuild the split frontend with 10_ingress-40_frontend",
    ),
    "switch": (
        "delete the kit's forwarding rule (DOWNTIME STARTS), then apply the Gateway on the kit's address",
        "Gateway Programmed on the kit's address, and a valid request answered (downtime ends)",
        "delete the Gateway, then run 40_frontend with apply=True (the forwarding rule is re-created)",
    ),
}
# Google states 10-15 minutes for a Gateway's load balancer to be programmed; the sandbox programs
# one in about a second (bench/migration.py measures it).
NAMED_ADDRESS_DOWNTIME = {
    "gcp": "the forwarding rule's deletion plus the Gateway's programming: 10-15 minutes on Google Cloud",
    "sandbox": "the forwarding rule's deletion plus the Gateway's programming: about a second on the "
    "sandbox (bench/migration.py), 10-15 minutes on Google Cloud",
}


@dataclass
class PhaseResult:
    phase: str
    seconds: float
    checks: list[Check]
    changes: list[str] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)  # measured: downtime, rates

    @property
    def passed(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    @property
    def way_back(self) -> str:
        return PHASE_TEXT[self.phase][2]

    def row(self) -> dict[str, str]:
        return {
            "phase": self.phase,
            "gate": "passed" if self.passed else "REFUSED",
            "seconds": f"{self.seconds:.1f}",
            "changes": "; ".join(self.changes) or "none",
            "way back": self.way_back,
        }


@dataclass
class Context:
    clients: Clients
    params: Params
    ops: Ops
    progress: Progress = lambda _line: None
    sleep: Callable[[float], None] = time.sleep


# ---- the plan -------------------------------------------------------------------------------------------


def plan(clients: Clients, params: Params, ops: Ops) -> list[dict[str, str]]:
    """Every phase of the params' strategy with its status (done, next, to do), what it does, its gate
    and its way back; named_address adds the downtime it costs."""
    state = read_state(clients, params, ops)
    phases = PHASES[params.gateway.address]
    current = next_phase(params, state)
    at = len(phases) if current == DONE else phases.index(current)
    rows = []
    for i, name in enumerate(phases):
        does, gate, back = PHASE_TEXT[name]
        if name == "switch":
            does += f"; expected downtime: {NAMED_ADDRESS_DOWNTIME[params.target]}"
        status = "done" if i < at else ("next" if i == at else "to do")
        rows.append({"phase": name, "status": status, "does": does, "gate": gate, "way back": back})
    return rows


# ---- helpers --------------------------------------------------------------------------------------------


def gateway_frontend(clients: Clients, params: Params, ip: str | None = None) -> probe.Frontend:
    """The probe's view of the Gateway's load balancer (resolved as 50_verify resolves it), reached at
    `ip` when given (the address a name resolved to), each domain as SNI: `curl --resolve`."""
    names = lbnames.load_balancer_names(clients, params, topology="gateway")
    target = probe.locate_frontend(clients, params, names)
    if ip and ip != target.ip:
        target.ip = ip
        target.handshakes = [probe.server_handshake(target, d) for d in target.domains]
    return target


def verify_at(clients: Clients, params: Params, where: str, ip: str | None = None) -> list[Check]:
    """50_verify's server checks and probes against the Gateway (at `ip` when given), each check
    named after `where`."""
    target = gateway_frontend(clients, params, ip)
    checks = probe.server_checks(clients, params, target)
    results = probe.send_probes(clients, params, target)
    checks += probe.probe_checks(results)
    if target.answering and not results:
        checks.append(
            Check(
                "probes sent", "fail", "no probe case to send", "set probe.client_cert and probe.client_key"
            )
        )
    return [replace(c, name=f"{c.name} ({where})") for c in checks]


def _poll_built(
    ctx: Context, read: Callable[[], T], done: Callable[[T], bool], on_read: Callable[[T, float], None]
) -> Polled[T]:
    """Read until `done` something a controller or load balancer is building, up to
    migration.gateway_timeout_seconds: the sandbox answers in fractions of a second, Google in minutes,
    so the first pause depends on the target and the pauses grow from there."""
    return poll(
        read,
        done,
        ctx.params.migration.gateway_timeout_seconds,
        every=0.2 if ctx.clients.target == "sandbox" else 10.0,
        growth=1.5,
        longest=30.0,
        on_read=on_read,
        sleep=ctx.sleep,
    )


def _wait_gateway(ctx: Context) -> Polled[GatewayView]:
    def show(v: GatewayView, elapsed: float) -> None:
        ctx.progress(
            f"Gateway {ctx.params.gateway.name}: {'programmed on ' + str(v.ip) if v.ready else v.reason or 'not there yet'} ({elapsed:.0f}s)"
        )

    return _poll_built(
        ctx,
        lambda: ctx.ops.gateway.read(ctx.clients, ctx.params),
        lambda v: v.ready,
        show,
    )


def _gateway_check(polled: Polled[GatewayView], params: Params) -> Check:
    v = polled.value
    if polled.done:
        return Check(
            "Gateway programmed",
            "pass",
            f"{params.gateway.name} programmed on {v.ip} (rule {v.forwarding_rule})",
        )
    return Check(
        "Gateway programmed",
        "fail",
        f"{params.gateway.name} not programmed after {polled.elapsed:.0f}s: {v.reason or 'no Gateway'}",
        f"kubectl describe gateway {params.gateway.name} -n {params.gateway_namespace} (its conditions and events say "
        "why); fix it and run the migration again: it continues here",
    )


def _answers(clients: Clients, params: Params) -> bool:
    """A request with the probe's valid certificate gets the expected answer from the Gateway."""
    target = gateway_frontend(clients, params)
    if not target.answering:
        return False
    valid = [c for c in probe.probe_cases(params) if c.expected == "ok" and c.cert]
    if not valid:
        return True
    with tempfile.TemporaryDirectory(prefix="mtlskit-migrate-") as work:
        result = probe.probe(target, valid[0], probe.mtls_header_names(params), Path(work))
    return result.verdict == "pass"


def _wait_seconds(ctx: Context, seconds: float, what: str) -> None:
    """Let `seconds` pass (resolver caches expiring), showing progress."""
    started = time.monotonic()
    poll(
        lambda: time.monotonic() - started,
        lambda elapsed: elapsed >= seconds,
        seconds,
        every=min(1.0, max(seconds, 0.05)),
        on_read=lambda elapsed, _e: ctx.progress(f"{what}: {elapsed:.0f}/{seconds:.0f}s"),
        sleep=ctx.sleep,
    )


def _delete(ctx: Context, changes: list[Change]) -> list[str]:
    """Delete planned rows in order (teardown's own deleter; BackendConfig through Kubernetes)."""
    done = []
    for c in changes:
        if c.kind == "BackendConfig":
            k8s.kube_call(ctx.clients, "delete", "BackendConfig", ctx.params)
        else:
            teardown.apply_teardown(ctx.clients, ctx.params, [c], delete_anchor=c.kind == "Ingress")
        ctx.progress(f"deleted {c.kind} {c.name}")
        done.append(f"deleted {c.kind} {c.name}")
    return done


# ---- the phases -----------------------------------------------------------------------------------------


def phase_build(ctx: Context, state: MigrationState) -> PhaseResult:
    ctx.progress(f"applying the Gateway {ctx.params.gateway.name} beside the split frontend")
    ctx.ops.gateway.build(ctx.clients, ctx.params)
    polled = _wait_gateway(ctx)
    checks = [_gateway_check(polled, ctx.params)]
    if polled.done:
        checks += _load_balancer_checks(ctx)
        checks.append(_answering_check(ctx, str(polled.value.ip)))
    return PhaseResult("build", 0.0, checks, [f"applied Gateway {ctx.params.gateway.name}"])


def _load_balancer_checks(ctx: Context) -> list[Check]:
    """gw20's load-balancer checks through Compute (the proxy's SSL policy, certificate, server TLS
    policy and a trust config holding exactly the ConfigMap's certificates), read until they pass:
    the controller may still be reconciling what it just built."""
    polled = _poll_built(
        ctx,
        lambda: gateway_lb.check_load_balancer(ctx.clients, ctx.params).checks,
        lambda checks: bool(checks) and all(c.status != "fail" for c in checks),
        lambda checks, elapsed: ctx.progress(
            f"load balancer checks: {sum(c.status == 'fail' for c in checks)} failing ({elapsed:.0f}s)"
        ),
    )
    return list(polled.value)


def _answering_check(ctx: Context, ip: str) -> Check:
    """Poll until a valid request is answered on `ip` (a new load balancer takes a while to serve)."""
    polled = _poll_built(
        ctx,
        lambda: _answers(ctx.clients, ctx.params),
        bool,
        lambda ok, elapsed: ctx.progress(
            f"valid request to {ip}: {'answered' if ok else 'not yet'} ({elapsed:.0f}s)"
        ),
    )
    if polled.done:
        return Check(
            "Gateway answers a valid client",
            "pass",
            f"{ip} answered a request with the probe's valid certificate",
        )
    return Check(
        "Gateway answers a valid client",
        "fail",
        f"no expected answer from {ip} after {polled.elapsed:.0f}s",
        "a new load balancer takes minutes to serve; run the migration again to keep waiting, or see the Gateway's events",
    )


def phase_verify(ctx: Context, state: MigrationState) -> PhaseResult:
    v = state.gateway
    checks = verify_at(ctx.clients, ctx.params, f"Gateway at {v.ip}")
    return PhaseResult("verify", 0.0, checks)


def phase_cutover(ctx: Context, state: MigrationState) -> PhaseResult:
    p, new_ip = ctx.params, str(state.gateway.ip)
    if p.dns.managed_zone is None:
        commands = ctx.ops.dns.by_hand(ctx.clients, p, new_ip)
        check = Check(
            "records point at the Gateway",
            "fail",
            "dns.managed_zone is not set: the kit cannot change the records",
            "make the change by hand (lower the TTL first and wait the old TTL): "
            + "; ".join(commands)
            + "; or set dns.managed_zone, then run the migration again",
        )
        return PhaseResult("cutover", 0.0, [check])
    missing = [d for d, r in state.records.items() if r is None]
    if missing and p.migration.publish_missing_records and state.split_ip:
        ctx.ops.dns.publish(ctx.clients, p, state.split_ip)
        ctx.progress(f"published {', '.join(missing)} at the split frontend's {state.split_ip}")
        state = read_state(ctx.clients, p, ctx.ops)
        missing = [d for d, r in state.records.items() if r is None]
    if missing:
        check = Check(
            f"A record {', '.join(missing)}",
            "fail",
            f"no A record in zone {p.dns.managed_zone}",
            f"publish the record at the split frontend's IP ({state.split_ip}) first "
            f"({'; '.join(ctx.ops.dns.by_hand(ctx.clients, p, str(state.split_ip)))}), or set "
            "migration.publish_missing_records; or fix frontend.domains / dns.managed_zone",
        )
        return PhaseResult("cutover", 0.0, [check])
    changes = ctx.ops.dns.cutover(ctx.clients, p, new_ip, ctx.progress)
    checks = [_resolves_check(ctx, d, new_ip) for d in p.frontend.domains]
    if all(c.status == "pass" for c in checks):
        checks += verify_at(
            ctx.clients, p, "by name", ctx.ops.dns.resolve(ctx.clients, p.frontend.domains[0])[0]
        )
    return PhaseResult("cutover", 0.0, checks, changes)


def _resolves_check(ctx: Context, domain: str, ip: str) -> Check:
    p = ctx.params
    polled = poll(
        lambda: ctx.ops.dns.resolve(ctx.clients, domain),
        lambda ips: ips == (ip,),
        max(2.0 * p.dns.cutover_ttl_seconds, 5.0) + (0 if ctx.clients.target == "sandbox" else 600),
        every=0.1 if ctx.clients.target == "sandbox" else 5.0,
        on_read=lambda ips, elapsed: ctx.progress(
            f"{domain} resolves to {', '.join(ips) or 'nothing'} ({elapsed:.0f}s)"
        ),
        sleep=ctx.sleep,
    )
    where = ctx.clients.nameserver or "the system resolver"
    if polled.done:
        return Check(f"resolves to the Gateway: {domain}", "pass", f"{where} answers {ip}")
    return Check(
        f"resolves to the Gateway: {domain}",
        "fail",
        f"{where} answers {', '.join(polled.value) or 'nothing'} after {polled.elapsed:.0f}s, not {ip}",
        "check the record in the zone (gcloud dns record-sets list) and which server dns.nameserver names; "
        "run the migration again to keep waiting, or point the records back (roll_back)",
    )


def phase_drain(ctx: Context, state: MigrationState) -> PhaseResult:
    p = ctx.params
    old_rule, new_rule = p.frontend.forwarding_rule, state.gateway.forwarding_rule or ""
    started = dt.datetime.now(dt.UTC)
    read = drain.reader(ctx.clients, p, old_rule, new_rule, started)
    polled = poll(
        read,
        lambda r: drain.drained(r, p),
        max(p.migration.watch_timeout_seconds, p.migration.drain_window_seconds),
        every=p.migration.poll_seconds,
        on_read=lambda r, _e: ctx.progress(r.line()),
        sleep=ctx.sleep,
    )
    r = polled.value
    figures = {"old_per_minute": r.old_per_minute, "new_per_minute": r.new_per_minute}
    threshold = p.migration.drained_requests_per_minute
    if polled.done:
        check = Check(
            "old frontend drained",
            "pass",
            f"{r.line()}; at or below {threshold:g}/min for {r.watched_seconds:.0f}s",
        )
    else:
        check = Check(
            "old frontend drained",
            "fail",
            f"{r.line()}: still above {threshold:g}/min after watching {r.watched_seconds:.0f}s",
            "find the clients still on the old IP (60_logs on the split frontend: source IPs, user agents); "
            "they pin the IP or ignore TTLs. Run the migration again to keep watching, or raise "
            "migration.drained_requests_per_minute once they are known",
        )
    return PhaseResult("drain", 0.0, [check], figures=figures)


def phase_retire(ctx: Context, state: MigrationState) -> PhaseResult:
    p = ctx.params
    if not state.gateway.ready:
        raise MigrationRefused(
            f"retire refused: the Gateway {p.gateway.name} is not programmed, and the split frontend is all "
            "that serves; run the migration from its build phase"
        )
    changes = _delete(ctx, state.retire)
    if any(r is not None and r.ttl != p.dns.ttl_seconds for r in state.records.values()):
        changes += ctx.ops.dns.restore_ttl(ctx.clients, p)
    after = read_state(ctx.clients, p, ctx.ops)
    left = after.split_left
    checks = [
        Check(
            "split frontend and anchor gone",
            "fail" if left else "pass",
            f"still there: {', '.join(left)}"
            if left
            else "forwarding rule, proxy, URL map, server TLS policy, "
            "trust config, anchor Ingress and BackendConfig deleted",
            "see the teardown rows; a delete refused as resourceInUseByAnotherResource names what still uses it",
        ),
        *verify_at(ctx.clients, p, "Gateway after retirement"),
    ]
    return PhaseResult("retire", 0.0, checks, changes)


def phase_switch(ctx: Context, state: MigrationState) -> PhaseResult:
    """named_address: the address serves one load balancer at a time, so the kit's forwarding rule goes
    first; the downtime runs from its deletion to the first valid answer from the Gateway."""
    p = ctx.params
    ip = state.split_ip
    changes = []
    down_since = time.monotonic()
    rule = [c for c in state.retire if c.kind == "ForwardingRule"]
    if rule:
        ctx.progress(f"deleting forwarding rule {rule[0].name}: downtime starts")
        changes += _delete(ctx, rule)
        down_since = time.monotonic()
    ctx.ops.gateway.build(ctx.clients, p)
    changes.append(f"applied Gateway {p.gateway.name} on address {p.frontend.address}")
    polled = _wait_gateway(ctx)
    checks = [_gateway_check(polled, p)]
    figures = {}
    if polled.done:
        if ip and polled.value.ip != ip:
            checks.append(
                Check(
                    "Gateway on the kit's address",
                    "fail",
                    f"the Gateway got {polled.value.ip}, not {ip}",
                    f"gateway.address: named_address needs frontend.address ({p.frontend.address}) to exist",
                )
            )
        answering = _answering_check(ctx, str(polled.value.ip))
        checks.append(answering)
        if answering.status == "pass":
            figures["downtime_seconds"] = time.monotonic() - down_since
            checks += _load_balancer_checks(ctx)
            checks.append(
                Check(
                    "downtime",
                    "pass",
                    f"{figures['downtime_seconds']:.1f}s from the forwarding rule's deletion to the first valid answer",
                )
            )
    return PhaseResult("switch", 0.0, checks, changes, figures)


PHASE_FUNCTIONS: dict[str, Callable[[Context, MigrationState], PhaseResult]] = {
    "build": phase_build,
    "verify": phase_verify,
    "cutover": phase_cutover,
    "drain": phase_drain,
    "retire": phase_retire,
    "switch": phase_switch,
}


def run_phase(ctx: Context, passed: set[str]) -> PhaseResult | None:
    """Run the next phase the world calls for; None when the migration is done."""
    state = read_state(ctx.clients, ctx.params, ctx.ops)
    name = next_phase(ctx.params, state, passed)
    if name == DONE:
        return None
    ownership.may_apply(ctx.params, apply=name != "verify")
    ctx.progress(f"phase {name}: {PHASE_TEXT[name][0]}")
    started = time.monotonic()
    result = PHASE_FUNCTIONS[name](ctx, state)
    result.seconds = time.monotonic() - started
    if result.passed:
        passed.add(name)
    return result


def migrate(ctx: Context, until: str | None = None) -> list[PhaseResult]:
    """Run phases until done, until a gate refuses, or until phase `until` has passed."""
    results: list[PhaseResult] = []
    passed: set[str] = set()
    while True:
        result = run_phase(ctx, passed)
        if result is None:
            return results
        results.append(result)
        if not result.passed or result.phase == until:
            return results
        if len(results) > 2 * len(PHASES["new_ip"]):
            raise MigrationRefused("the migration made no progress: " + ", ".join(r.phase for r in results))


def roll_back(ctx: Context) -> list[str]:
    """The way back from where the world is now: records back to the split frontend while it exists,
    then the Gateway deleted (before retirement). named_address, after the switch: the Gateway
    deleted, then the kit's forwarding rule re-created (40_frontend's apply) while the rest of the
    split frontend is still there. Refused once retirement has begun."""
    p = ctx.params
    state = read_state(ctx.clients, p, ctx.ops)
    kinds = {c.kind for c in state.retire}
    if not state.split_rule and not (state.strategy == "named_address" and "TargetHttpsProxy" in kinds):
        raise MigrationRefused(
            f"no way back: the split frontend's forwarding rule {p.frontend.forwarding_rule} is gone and "
            "retirement began; rebuild it with 10_ingress-40_frontend, or finish the migration"
        )
    done = []
    if state.split_ip and any(r is not None and r.ips != (state.split_ip,) for r in state.records.values()):
        done += ctx.ops.dns.cutover(ctx.clients, p, state.split_ip, ctx.progress)
    if state.gateway.exists:
        if done:
            _wait_seconds(ctx, p.dns.cutover_ttl_seconds, "clients leaving the Gateway (cut-over TTL)")
        ctx.ops.gateway.delete(ctx.clients, p)
        done.append(f"deleted Gateway {p.gateway.name}")
    if not state.split_rule:
        bs = backend.locate_backend_service(ctx.clients, p)
        frontend.apply_frontend(ctx.clients, p, frontend.plan_frontend(ctx.clients, p, bs), bs)
        done.append(f"re-created forwarding rule {p.frontend.forwarding_rule}")
    return done
