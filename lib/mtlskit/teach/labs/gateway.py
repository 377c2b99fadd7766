"""Lab 06: moving a running split stack to the GKE Gateway.

The migration runbook (`mtlskit.migrate`, notebook mg10) does the work; this lab makes the trainee
predict what each phase means for clients before running it. Built side by side, the Gateway gets a
new IP and the domain still resolves to the split frontend; the cut-over moves clients by DNS, and a
client with a valid certificate is never refused, because both frontends trust the same CA; at
retirement the split frontend's forwarding rule goes first (nothing may be deleted while something
still uses it, and it is what clients reach), the anchor Ingress only after the frontend that uses its
backend service (lab 02), and the Service stays: the Gateway routes to it.

The lab's params file names both sides (params/sandbox-gateway.yaml). Its setup and `put_back` return
the sandbox to the split state the other labs expect: the split frontend rebuilt if it was retired,
then the migration's own way back (records back at the split frontend, the Gateway deleted).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mtlskit.build import k8s
from mtlskit.build.frontend import KINDS
from mtlskit.config import params as params_mod
from mtlskit.migrate import page, run, state
from mtlskit.migrate.dns_side import dns_ops
from mtlskit.migrate.gateway_side import GatewayView
from mtlskit.migrate.traffic import SteadyClient, Tally
from mtlskit.teach.labs import sending
from mtlskit.teach.labs.lab import Lab, LabRefused, start_lab

NAME = "06_move_to_the_gateway"
SPLIT, GATEWAY = "split frontend", "Gateway"
SIDES = (SPLIT, GATEWAY)
# What the retirement prediction names: the kind deleted first, where the anchor Ingress goes, and
# what becomes of the Service.
AFTER, BEFORE = "after the split frontend", "before the split frontend"
KEPT, DELETED = "kept", "deleted"


def start(params_file: str | None = None) -> Lab:
    """Start the lab on a params file naming both sides (topology: gateway), refused before any
    client is built otherwise; the split stack is built and anything a half-done migration left is
    put back."""
    source = params_mod.params_file(params_file)
    params = params_mod.load(params_file)
    if params.topology != "gateway" or params.dns.managed_zone is None:
        raise LabRefused(
            f"lab {NAME} moves the split frontend to a Gateway and needs a params file that names both and "
            f"the DNS zone to cut over in, but {source} has topology: {params.topology} and "
            f"dns.managed_zone: {params.dns.managed_zone}. Use params/sandbox-gateway.yaml."
        )
    return start_lab(NAME, params_file, undo=back_to_split)


def _context(lab: Lab) -> run.Context:
    return page.migration(lab.step).context()


def back_to_split(lab: Lab) -> list[str]:
    """The sandbox as the other labs expect it (the split stack is already built again): the
    migration's way back when a Gateway or moved records are left (records back at the split
    frontend, the Gateway deleted), then every record at the split frontend with its usual TTL."""
    ctx = _context(lab)
    now = state.read_state(ctx.clients, ctx.params, ctx.ops)
    done = []
    if now.gateway.exists or not now.records_at(now.split_ip):
        done += run.roll_back(ctx)
    if now.split_ip:
        done += dns_ops().publish(ctx.clients, ctx.params, now.split_ip)
    lab.seen["put back"] = done
    return done


def plan(lab: Lab) -> pd.DataFrame:
    """The migration's phases as mg10 shows them: done, next or to do, each with its gate and way back."""
    return page.migration(lab.step).plan()


def run_phases(lab: Lab, until: str | None = None) -> pd.DataFrame:
    """Run the migration's phases from where the world is, until phase `until` passed (all: None),
    with a steady client sending requests with the valid demo certificate the whole time; the
    phases' rows, and the client's counts in `lab.seen`."""
    migration = page.migration(lab.step)
    client = SteadyClient.for_params(lab.step.clients, lab.params).start()
    try:
        rows = migration.run(until)
    finally:
        tally = client.stop()
    for r in migration.results:
        lab.seen.setdefault("phases", {})[r.phase] = {
            "passed": r.passed,
            "changes": r.changes,
            "tally": tally,
        }
        if r.phase == "retire":
            lab.seen["retired"] = {
                "order": [line.split()[1] for line in r.changes if line.startswith("deleted ")],
                "service": k8s.read(lab.step.clients, "Service", lab.params) is not None,
            }
    lab.seen.setdefault("tallies", []).append(tally)
    if migration.refused:
        rows = pd.concat([rows, pd.DataFrame([{"phase": "refused", "gate": migration.refused}])])
    return rows


def way_back(lab: Lab) -> pd.DataFrame:
    """The migration's way back from where the world is (mg10 with `way_back = True`): records back at
    the split frontend while it exists, then the Gateway deleted; refused once retirement began."""
    migration = page.migration(lab.step)
    rows = migration.run(way_back=True)
    if migration.refused:
        return pd.DataFrame([{"way back": f"refused: {migration.refused}"}])
    return rows


def counts(lab: Lab) -> pd.DataFrame:
    """What the steady client saw during the last run of phases: requests by outcome and by IP."""
    tallies: list[Tally] = lab.seen.get("tallies", [])
    if not tallies:
        return pd.DataFrame([{"steady client": "no phase run yet"}])
    t = tallies[-1]
    by_ip = ", ".join(f"{ip}: {n}" for ip, n in sorted(t.by_ip.items())) or "-"
    return pd.DataFrame([{**t.row(), "requests by IP": by_ip, "first problems": "; ".join(t.problems[:3])}])


def observe(lab: Lab) -> pd.DataFrame:
    """Both frontends' IPs, what the domain resolves to now, and which one answers a request by name
    (one request, fresh connection, the valid demo certificate, as a client would send it)."""
    clients, params = lab.step.clients, lab.params
    now = state.read_state(clients, params, state.kit_ops())
    domain = params.frontend.domains[0]
    resolved = dns_ops().resolve(clients, domain)
    client = SteadyClient.for_params(clients, params)
    outcome = client.send_one()
    reached = next(iter(client.tally.by_ip), None)
    sides = {ip: side for ip, side in ((now.split_ip, SPLIT), (now.gateway.ip, GATEWAY)) if ip}
    if not now.split_rule:
        sides.pop(now.split_ip or "", None)
    seen = {
        "gateway ready": now.gateway.ready,
        "records moved": now.records_at(now.gateway.ip),
        "resolves to": sides.get(resolved[0] if resolved else None, "nothing"),
        "answered by": sides.get(reached, "nothing") if outcome == "answered" else f"nobody ({outcome})",
    }
    lab.seen.setdefault("observed", []).append(seen)
    return pd.DataFrame(
        [
            {"what": "split frontend IP", "now": now.split_ip if now.split_rule else "(retired)"},
            {"what": "Gateway IP", "now": now.gateway.ip or _not_ready(now.gateway)},
            {"what": f"{domain} resolves to", "now": ", ".join(resolved) or "nothing"},
            {"what": "a valid client by name", "now": f"{outcome} at {reached or '-'}"},
            {"what": "so it reaches the", "now": seen["answered by"]},
        ]
    )


def _not_ready(view: GatewayView) -> str:
    return f"(not ready: {view.reason})" if view.exists else "(no Gateway)"


def check_side_by_side(lab: Lab, after_build: Any) -> Any:
    """Once the Gateway is built beside the split frontend (records not moved): did the trainee say
    where the domain resolves and which frontend answers?"""
    seen = [o for o in lab.seen.get("observed", []) if o["gateway ready"] and not o["records moved"]]
    got = seen[-1] if seen else {}
    return sending.judge_prediction(
        lab,
        after_build,
        got,
        ("resolves to", "answered by"),
        seen=bool(seen),
        good="side by side: the Gateway waits on its own IP, clients stay",
        run="run the build and verify phases (labs.gateway.run_phases(lab, until='verify')), then observe",
        shape=f"set `after_build` to a dict: 'resolves to' and 'answered by', each one of {', '.join(SIDES)}",
        why="the Gateway was built on a new IP, and nothing moved the records; who do clients reach?",
    )


def check_cutover(lab: Lab, refused: Any) -> Any:
    """The cut-over ran with the steady client: did the trainee predict whether a valid client is
    refused (it is not: both frontends trust the same CA)?"""
    phase = lab.seen.get("phases", {}).get("cutover")
    tally: Tally | None = phase["tally"] if phase else None
    refused_seen = None if tally is None else tally.refused + tally.failed > 0
    rows = [
        {"item": "cut-over gate", "value": "passed" if phase and phase["passed"] else "(not run)"},
        {"item": "steady client", "value": str(tally.row()) if tally else "(not run)"},
        {"item": "both frontends answered it", "value": bool(tally and len(tally.by_ip) == 2)},
        {"item": "your prediction: refused", "value": refused if refused is not None else "(none)"},
    ]
    ok = bool(phase and phase["passed"]) and refused_seen is not None and refused is refused_seen
    if not phase:
        hint = "run the cut-over (labs.gateway.run_phases(lab, until='cutover')), then check"
    elif not isinstance(refused, bool):
        hint = "set `refused` to True or False"
    else:
        hint = (
            "look at the counts: which CA does each frontend trust, and does the client's certificate change "
            "when its name moves?"
        )
    return lab.judged(rows, ok, "0 refused: both frontends trust the same CA, so only the IP changed", hint)


def check_retired(lab: Lab, retirement: Any) -> Any:
    """After retirement: what went first, where the anchor Ingress went, and whether the Service stayed."""
    seen = lab.seen.get("retired")
    observed = {}
    if seen:
        order = seen["order"]
        compute = [i for i, kind in enumerate(order) if kind in KINDS]
        at = order.index("Ingress") if "Ingress" in order else -1
        observed = {
            "deleted first": order[0] if order else "(nothing)",
            "anchor Ingress": AFTER if compute and at > max(compute) else BEFORE,
            "Service": KEPT if seen["service"] else DELETED,
        }
    return sending.judge_prediction(
        lab,
        retirement,
        observed,
        ("deleted first", "anchor Ingress", "Service"),
        seen=bool(seen),
        good="the forwarding rule first, the anchor after the frontend that used it, the Service stays",
        run="drain and retire (labs.gateway.run_phases(lab)), then check",
        shape="set `retirement` to a dict: 'deleted first' (a kind), 'anchor Ingress' and 'Service'",
        why=(
            "a resource cannot be deleted while another still uses it; the split URL map uses the anchor's "
            "backend service; what does the HTTPRoute send requests to?"
        ),
        unseen="(not run)",
    )
