"""Lab 07: rotating the client CA in two phases, as `c10_trust_change` does.

The trainee predicts, then watches: whom the impact report says each phase refuses (phase 1 adds the
new CA beside the old one and refuses nobody; phase 2 removes the old CA and refuses its clients,
which the gate stops until they are named as intended), what a new connection gets right after
phase 1's PATCH (the old verdict: the load balancer applies a change later than its API answers),
what old-CA, new-CA, foreign and missing certificates get after each phase, and what the rollback of
the last phase restores (the state its record saved before it: both CAs).

The rotation's target is the lab's params with the demo PKI's next CA in place of its first one
(`next-root` and `next-intermediate`, the allowlist kept), as a team would edit its params before
running c10; the change itself is the kit's (`mtlskit.change.run`, `mtlskit.change.rollback`), never
a copy. So that the wait can be seen, the lab lengthens the sandbox's propagation delay to at least
`PROPAGATION_SECONDS`; `put_back` sets the params' value again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from mtlskit.change import proof as proofs
from mtlskit.change.apply import diff_rows, plan_state
from mtlskit.change.impact import ClientImpact, report_for_change
from mtlskit.change.phases import trust_phases
from mtlskit.change.rollback import rollback
from mtlskit.change.run import PhaseRun, trust_change
from mtlskit.change.state import TrustedCert, live_state, target_state
from mtlskit.config.params import Params, ProofClient
from mtlskit.pki import certs
from mtlskit.teach.labs import sending
from mtlskit.teach.labs.lab import Lab, set_propagation_delay, start_lab

NAME = "07_rotate_the_client_ca"
PROPAGATION_SECONDS = 1.0  # long enough to see on the sandbox, short enough to wait for
# How often the lab's wait opens a new connection: several looks within the propagation delay.
POLL_SECONDS = 0.2
CATEGORIES = proofs.CATEGORIES  # old CA, new CA, foreign, missing
RIGHT_AFTER = "right after the PATCH"
GATE = "gate"
PASSED, REFUSED_GATE = "passed", "refused"
NEW_CA_CLIENT = "next-ca-client"
NOT_SEEN = "not seen"  # a known client the window's logs do not hold: the report counts it for nobody


def start(params_file: str | None = None) -> Lab:
    """Start the lab (the stack as the params describe it: the old CA only) and lengthen the
    sandbox's propagation delay so the wait after each PATCH shows."""
    lab = start_lab(NAME, params_file)
    set_propagation_delay(lab, max(PROPAGATION_SECONDS, lab.params.sandbox.propagation_delay_seconds))
    lab.since_start()  # the reports' window starts here
    return lab


def rotation_params(lab: Lab) -> Params:
    """The lab's params as a team edits them for the rotation: the next CA instead of the first (the
    allowlist kept), a proof client with a new-CA certificate, the clients named as intended so far,
    the reports' window since the lab started, and the lab's short poll."""
    p = lab.params
    pki = certs.DemoPki.in_state_dir(p.state_dir)
    mtls = p.mtls.model_copy(
        update={
            "trust_anchors": [str(pki.cert(certs.NEXT_ANCHOR))],
            "intermediates": [str(pki.cert(certs.NEXT_INTERMEDIATE))],
        }
    )
    proof_clients = list(p.changes.proof_clients)
    new_ca = pki.cert(certs.NEXT_CLIENT).resolve()
    if not any(Path(c.cert).resolve() == new_ca for c in proof_clients):
        proof_clients.append(
            ProofClient(
                name=NEW_CA_CLIENT,
                cert=str(new_ca),
                key=str(pki.key(certs.NEXT_CLIENT)),
                chain=[str(pki.cert(certs.NEXT_INTERMEDIATE))],
            )
        )
    changes = p.changes.model_copy(
        update={
            "proof_clients": proof_clients,
            "intended_refusals": list(lab.seen.get("intended", [])),
            "report_window_seconds": lab.since_start(),
            "poll_seconds": min(p.changes.poll_seconds, POLL_SECONDS),
        }
    )
    return p.model_copy(update={"mtls": mtls, "changes": changes})


def _clients_frame(proven: list[proofs.Proven]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "client": p.category,
                "case": p.result.case,
                "sent from": p.result.source,
                "gets now": sending.got(p.result.http_status),
                "outcome": p.result.outcome,
            }
            for p in proven
        ]
    )


def the_clients(lab: Lab) -> pd.DataFrame:
    """The proof's cases (old CA, new CA, foreign, missing), each sent once on a new connection, so
    the request logs the impact report reads hold them."""
    clients, params = lab.step.clients, rotation_params(lab)
    live = live_state(clients, params)
    return _clients_frame(proofs.proof_results(clients, params, live, live))


def plan(lab: Lab) -> pd.DataFrame:
    """The phases left between the live trust config and the rotation's target, as c10 lists them."""
    clients, params = lab.step.clients, rotation_params(lab)
    phases = trust_phases(live_state(clients, params), target_state(params))
    if not phases:
        return pd.DataFrame([{"phase": "none left: the trust config already is the rotation's target"}])
    return pd.DataFrame([p.row() for p in phases])


def changes(lab: Lab) -> pd.DataFrame:
    """The certificates the whole rotation adds and removes, by subject and SHA-256."""
    clients, params = lab.step.clients, rotation_params(lab)
    return pd.DataFrame(diff_rows(live_state(clients, params), target_state(params)))


def by_hand(lab: Lab) -> str:
    """The next phase's change by hand: the gcloud command the kit's plan gives for it (an import of
    the trust config file the kit writes, with both CAs in phase 1)."""
    clients, params = lab.step.clients, rotation_params(lab)
    phases = trust_phases(live_state(clients, params), target_state(params))
    if not phases:
        return "nothing left: the trust config already is the rotation's target"
    changes = plan_state(clients, params, phases[0].after)
    return "\n".join(c.gcloud for c in changes if c.gcloud) or "nothing to change by hand"


# ---- the impact report --------------------------------------------------------------------------------


def _category_by_fingerprint(lab: Lab, params: Params) -> dict[str, str]:
    """Each proof case's category by its leaf's SHA-256, to name the report's clients as the lab does."""
    clients = lab.step.clients
    live = live_state(clients, params)
    out = {}
    for case in proofs.proof_cases(params, live, live):
        leaf, _ = case.presented()
        if leaf is not None:
            out[TrustedCert.from_x509("allowlisted", leaf).sha256] = case.category
    return out


def impact(lab: Lab) -> pd.DataFrame:
    """The impact report of each phase left (the kit's `change.impact`): every client known or seen,
    its verdict now and after the phase, on what basis, and whether the phase's gate lets it be refused."""
    clients, params = lab.step.clients, rotation_params(lab)
    categories = _category_by_fingerprint(lab, params)
    rows, refused = [], {}
    for phase in trust_phases(live_state(clients, params), target_state(params)):
        label = f"phase {phase.number}" if phase.of == 2 else "phase 2"  # after phase 1: the removal
        report = report_for_change(clients, params, phase.before, phase.after)
        newly = {_category_of(c, categories) for c in report.newly_refused()}
        refused[label] = sorted(newly)
        gate = report.gate()
        for c in (c for c in report.clients if c.outcome_now != NOT_SEEN):
            rows.append({"phase": label, **_client_row(c, categories)})
        rows.append(
            {
                "phase": label,
                "client": "gate",
                "requests": "",
                "after": PASSED if gate.passed else REFUSED_GATE,
                "basis": gate.reason,
            }
        )
    lab.seen["impact"] = refused
    return pd.DataFrame(rows).fillna("")


def _category_of(client: ClientImpact, categories: dict[str, str]) -> str:
    """The lab's name of a report's client: its kind when its certificate is one the lab sends."""
    if client.certificate == "none":
        return proofs.MISSING
    return categories.get(client.fingerprint.lower(), client.client)


def _client_row(client: ClientImpact, categories: dict[str, str]) -> dict[str, Any]:
    return {
        "client": _category_of(client, categories),
        "requests": client.requests,
        "now": client.outcome_now,
        "after": client.expected_after,
        "basis": client.basis,
        "intended": client.intended,
        "known as": client.known_as,
    }


def check_impact(lab: Lab, refused: Any) -> Any:
    """The kinds of client the impact report lists as newly refused, phase by phase."""
    seen: dict[str, list[str]] = lab.seen.get("impact", {})
    observed = {
        phase: ", ".join(sorted(kinds, key=sending.normalised)) or "nobody" for phase, kinds in seen.items()
    }
    given = refused if isinstance(refused, dict) else None
    answer = (
        None
        if given is None
        else {
            k: ", ".join(sorted(map(str, v), key=sending.normalised)) or "nobody"
            for k, v in given.items()
            if isinstance(v, list | tuple)
        }
    )
    return sending.judge_prediction(
        lab,
        answer,
        observed,
        ("phase 1", "phase 2"),
        seen=bool(seen),
        good="phase 1 refuses nobody, phase 2 the old CA's clients",
        run="run the cell that reads the impact report first",
        shape='set `refused` to a dict: {"phase 1": [...], "phase 2": [...]}, kinds from old CA, new CA, foreign, missing',
        why=(
            "a client counts only if it is accepted now and refused after the phase; who is accepted now, and "
            "which CA does each phase leave trusted?"
        ),
        unseen="(report not read yet)",
    )


# ---- the phases -------------------------------------------------------------------------------------------


def _verdicts(run: PhaseRun) -> dict[str, str]:
    """What each kind of client got in the phase's proof (several cases of one kind: all must agree)."""
    by_kind: dict[str, set[str]] = {}
    for p in run.proven:
        by_kind.setdefault(p.category, set()).add(sending.got(p.result.http_status))
    return {kind: got.pop() if len(got) == 1 else "mixed" for kind, got in by_kind.items()}


def _remember(lab: Lab, run: PhaseRun, timeline: list[tuple[float, str]]) -> dict[str, Any]:
    seen = {
        "label": run.label,
        "gate": PASSED if run.gate is None or run.gate.status != "fail" else REFUSED_GATE,
        "reason": run.gate.evidence if run.gate else "",
        "timeline": timeline,
        "verdicts": _verdicts(run),
        "applied": run.applied.check().evidence if run.applied else "",
        "proof": proofs.proof_frame(run.proven),
        "record": ", ".join(run.written),
    }
    lab.seen.setdefault("runs", []).append(seen)
    return seen


def _progress(timeline: list[tuple[float, str]]) -> Any:
    def seen(line: str, elapsed: float) -> None:
        timeline.append((elapsed, line))

    return seen


def run_phase(lab: Lab) -> pd.DataFrame:
    """The next phase of the rotation, as c10 runs it with apply=True: impact report and gate, the
    PATCH in place, new connections until one shows the new verdict, the proof, the record."""
    timeline: list[tuple[float, str]] = []
    run = trust_change(lab.step.clients, rotation_params(lab), on_progress=_progress(timeline))
    if run is None:
        return pd.DataFrame([{"phase": "none left: the trust config already is the rotation's target"}])
    seen = _remember(lab, run, timeline)
    if seen["gate"] == REFUSED_GATE:
        return pd.DataFrame(
            [{"phase": run.label, "gate": "refused: nothing was changed", "why": seen["reason"]}]
        )
    return pd.DataFrame([run.row()])


def intend_old_ca_refused(lab: Lab) -> pd.DataFrame:
    """Name the old CA's known clients as intended refusals (`changes.intended_refusals`: their files),
    as a team does once it knows they moved to the new CA."""
    clients, params = lab.step.clients, rotation_params(lab)
    live = live_state(clients, params)
    old = [
        c.case.cert
        for c in proofs.proof_cases(params, live, target_state(params))
        if c.category == proofs.OLD
    ]
    lab.seen["intended"] = sorted({str(f) for f in old if f})
    return pd.DataFrame([{"changes.intended_refusals": f} for f in lab.seen["intended"]])


def roll_back(lab: Lab) -> pd.DataFrame:
    """The way back from the last recorded phase (c40_rollback with apply=True): the state its record
    saved before it, applied, waited for and proven."""
    timeline: list[tuple[float, str]] = []
    run = rollback(lab.step.clients, rotation_params(lab), on_progress=_progress(timeline))
    seen = _remember(lab, run, timeline)
    seen["label"] = "rollback"
    return pd.DataFrame([run.row()])


def _last(lab: Lab, label: str | None = None, applied: bool = True) -> dict[str, Any] | None:
    runs = [r for r in lab.seen.get("runs", []) if label is None or label in r["label"]]
    runs = [r for r in runs if r["gate"] == PASSED] if applied else runs
    return runs[-1] if runs else None


def propagation(lab: Lab) -> pd.DataFrame:
    """Each new connection the last applied phase opened after its PATCH: seconds since, and what it got."""
    run = _last(lab)
    if run is None or not run["timeline"]:
        return pd.DataFrame([{"after the PATCH": "no phase applied yet"}])
    return pd.DataFrame(
        [
            {"seconds after the PATCH": round(elapsed, 2), "new connection": line, "got": _got(line)}
            for elapsed, line in run["timeline"]
        ]
    )


def _got(line: str) -> str:
    """A progress line ("case: outcome") as accepted or refused: an HTTP status is an answer."""
    return sending.ACCEPTED if ": HTTP " in line else sending.REFUSED


def proof(lab: Lab) -> pd.DataFrame:
    """The last phase's (or rollback's) proof: every case against the state it applied."""
    run = _last(lab)
    if run is None:
        return pd.DataFrame([{"proof": "no phase applied yet"}])
    frame: pd.DataFrame = run["proof"]
    return frame.assign(phase=run["label"], applied=run["applied"])


def _phase_seen(lab: Lab, label: str) -> dict[str, str]:
    run = _last(lab, label)
    if run is None:
        return {}
    observed = dict(run["verdicts"])
    if run["timeline"]:
        observed[RIGHT_AFTER] = _got(run["timeline"][0][1])
    return observed


def check_phase_1(lab: Lab, phase_1: Any) -> Any:
    """Right after phase 1's PATCH, and once applied, each kind of client."""
    observed = _phase_seen(lab, "phase 1")
    return sending.judge_prediction(
        lab,
        phase_1,
        observed,
        (RIGHT_AFTER, *CATEGORIES),
        seen=bool(observed),
        good="both CAs trusted, and the change shows only once applied",
        run="run phase 1 (labs.rotation.run_phase(lab)), then check",
        shape=f"set `phase_1` to a dict: {RIGHT_AFTER!r} and each of {', '.join(CATEGORIES)}: accepted or refused",
        why=(
            "the control plane answered the PATCH at once; when does the data plane apply it? And what does "
            "a trust config holding both CAs make of each certificate?"
        ),
    )


def check_phase_2(lab: Lab, phase_2: Any) -> Any:
    """The gate's first word on phase 2, and each kind of client once phase 2 is applied."""
    tried = [r for r in lab.seen.get("runs", []) if "phase 2" in r["label"]]
    observed = {**_phase_seen(lab, "phase 2")}
    if tried:
        observed[GATE] = tried[0]["gate"]
    applied = _last(lab, "phase 2") is not None
    return sending.judge_prediction(
        lab,
        phase_2,
        observed,
        (GATE, *CATEGORIES),
        seen=applied,
        good="the gate held phase 2 until the refusal was meant",
        run=(
            "run phase 2; when its gate refuses, name the old CA's clients as intended "
            "(labs.rotation.intend_old_ca_refused(lab)) and run it again"
        ),
        shape=f"set `phase_2` to a dict: 'gate' (passed or refused) and each of {', '.join(CATEGORIES)}",
        why=(
            "the old CA's client was accepted until phase 2, and nobody had said its refusal was meant; what "
            "is left in the trust config after phase 2?"
        ),
    )


def check_rollback(lab: Lab, after_rollback: Any) -> Any:
    """Each kind of client after the rollback of the last phase."""
    observed = _phase_seen(lab, "rollback")
    observed.pop(RIGHT_AFTER, None)
    return sending.judge_prediction(
        lab,
        after_rollback,
        observed,
        CATEGORIES,
        seen=bool(observed),
        good="the way back restored the state before phase 2: both CAs",
        run="roll back (labs.rotation.roll_back(lab)), then check",
        shape=f"set `after_rollback` to a dict: each of {', '.join(CATEGORIES)}: accepted or refused",
        why=(
            "a rollback restores the state saved before the last phase, not the params: what did the trust "
            "config hold before phase 2?"
        ),
    )
