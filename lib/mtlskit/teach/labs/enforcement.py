"""Lab 08: enforcing mTLS from the logs, as `c20_enforce_mtls` does, then break-glass and its way back
(`c30_break_glass`).

The lab starts the stack in ALLOW_INVALID_OR_MISSING_CLIENT_CERT with five clients, each from its own
loopback address (`change.traffic`), two of which send no certificate. The trainee predicts whom the
readiness gate names, watches it refuse the flip, fixes the two clients, flips (the gate passes, a
client with no certificate is refused from then on), breaks the glass (back to ALLOW: that client
gets through again) and takes the way back (REJECT_INVALID again, from the break-glass record).

The reports read the request logs since the lab started, or since the clients were fixed: a real
window is a day or a week (`changes.report_window_seconds`), and an earlier lab's requests must not be
taken for this lab's clients. The watch after the flip is shortened to `WATCH_SECONDS`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

import pandas as pd

from mtlskit.change import breakglass, enforce, traffic
from mtlskit.change.apply import apply_state
from mtlskit.change.state import ALLOW, REJECT, TrustState, live_state
from mtlskit.config.params import Params
from mtlskit.teach.labs import sending
from mtlskit.teach.labs.lab import Lab, start_lab, wait_for_data_plane
from mtlskit.verify import probe

NAME = "08_enforce_mtls"
# The lab's clients: name, and whether it sends the probe's valid certificate. Addresses from
# FIRST_SOURCE on, one each, none a prefix of another.
CLIENTS = (
    ("mobile-app", True),
    ("partner-gateway", True),
    ("billing-batch", False),
    ("web-frontend", True),
    ("status-monitor", False),
)
FIRST_SOURCE = "127.0.0.21"
ANONYMOUS = ("anonymous", "127.0.0.29")  # a client that never sends a certificate, for the verdicts
REQUESTS_EACH = 3
WATCH_SECONDS = 1.0
POLL_SECONDS = 0.25
WITH, WITHOUT = "with a certificate", "no certificate"
GATE = "gate"
PASSED, REFUSED_GATE = "passed", "refused"
DURING, AFTER_WAY_BACK, MODE_AFTER = (
    "no certificate during break-glass",
    "no certificate after the way back",
    "mode after the way back",
)


def start(params_file: str | None = None) -> Lab:
    """Start the lab (the stack as the params describe it), then set the policy to ALLOW mode in place:
    where an enforcement starts. Its clients get their certificates as listed in `CLIENTS`."""
    lab = start_lab(NAME, params_file)
    clients, params = lab.step.clients, lab.params
    live = live_state(clients, params)
    apply_state(clients, params, TrustState(live.certs, ALLOW, attached=True))
    wait_for_data_plane(lab, lab.params.sandbox.propagation_delay_seconds + 30.0)
    lab.seen["population"] = population(params, fixed=False)
    lab.since_start()  # the reports' window starts here
    return lab


def population(params: Params, fixed: bool) -> list[traffic.Client]:
    """The lab's clients from their own addresses; `fixed`: every one sends the valid certificate."""
    cert, key = params.probe.client_cert, params.probe.client_key
    every = traffic.population(params, len(CLIENTS), len(CLIENTS), FIRST_SOURCE)  # addresses only
    return [
        dataclasses.replace(
            c, name=name, cert=cert if has or fixed else None, key=key if has or fixed else None
        )
        for c, (name, has) in zip(every, CLIENTS, strict=True)
    ]


def lab_params(lab: Lab) -> Params:
    """The lab's params with the reports' window since the lab started (or the clients were fixed)
    and a short watch after the flip."""
    p = lab.params
    fixed_at: dt.datetime | None = lab.seen.get("fixed at")
    window = lab.since_start()
    if fixed_at is not None:
        window = (dt.datetime.now(dt.UTC) - fixed_at).total_seconds()
    changes = p.changes.model_copy(
        update={
            "report_window_seconds": max(window, 0.1),
            "watch_seconds": min(p.changes.watch_seconds, WATCH_SECONDS),
            "poll_seconds": min(p.changes.poll_seconds, POLL_SECONDS),
        }
    )
    return p.model_copy(update={"changes": changes})


def _send(lab: Lab, clients: list[traffic.Client], each: int) -> list[traffic.Sent]:
    target = probe.locate_frontend(lab.step.clients, lab.params)
    return traffic.send(target, clients, each)


def _sent_frame(sent: list[traffic.Sent]) -> pd.DataFrame:
    rows: dict[str, dict[str, Any]] = {}
    for s in sent:
        row = rows.setdefault(
            s.client.name,
            {
                "client": s.client.name,
                "from": s.client.source_ip,
                "certificate": "valid (probe.client_cert)" if s.client.cert else "none",
                "requests": 0,
                "accepted": 0,
            },
        )
        row["requests"] += 1
        row["accepted"] += sending.got(s.status) == sending.ACCEPTED
    return pd.DataFrame(list(rows.values()))


def the_clients(lab: Lab) -> pd.DataFrame:
    """Every client sends `REQUESTS_EACH` requests, each on a new connection from its own address."""
    return _sent_frame(_send(lab, lab.seen["population"], REQUESTS_EACH))


def _names(lab: Lab, texts: list[str]) -> list[str]:
    """The lab's clients whose address appears in any of `texts` (a gate's names or reason)."""
    found = []
    for c in lab.seen["population"]:
        pattern = re.compile(rf"(?<![\d.]){re.escape(c.source_ip)}(?!\d)")
        if any(pattern.search(t) for t in texts):
            found.append(c.name)
    return found


def _named_frame(lab: Lab, frame: pd.DataFrame) -> pd.DataFrame:
    """A report table with the lab's name of each client beside its address."""
    if frame.empty:
        return frame
    names = [", ".join(_names(lab, [" ".join(map(str, row))])) for row in frame.itertuples(index=False)]
    return frame.assign(**{"lab client": names})


def readiness(lab: Lab) -> pd.DataFrame:
    """The readiness report (`change.readiness`) over the lab's window, by client, with the gate."""
    prepared = enforce.prepare(lab.step.clients, lab_params(lab))
    gate = prepared.gate_check()
    lab.seen["readiness"] = prepared
    if prepared.readiness is None:
        return pd.DataFrame([{"gate": f"{gate.status}: {gate.evidence}"}])
    r = prepared.readiness
    summary = pd.DataFrame(
        [
            {
                "client": "(all)",
                "requests": r.requests,
                "would be refused": f"{r.refused_share:.1%}",
                "gate": f"{gate.status}: {gate.evidence}",
            }
        ]
    )
    return pd.concat([_named_frame(lab, r.by_client), summary], ignore_index=True).fillna("")


def _after(lab: Lab) -> dict[str, str]:
    """One new request with a valid certificate and one with none: what each gets now."""
    valid = dataclasses.replace(lab.seen["population"][0], name="with a certificate")
    valid = dataclasses.replace(valid, cert=lab.params.probe.client_cert, key=lab.params.probe.client_key)
    bare = traffic.Client(*ANONYMOUS)
    sent = _send(lab, [valid, bare], 1)
    return {WITH: sending.got(sent[0].status), WITHOUT: sending.got(sent[1].status)}


def _remember(lab: Lab, step: str, **seen: Any) -> dict[str, Any]:
    observed = {"step": step, "mode": live_state(lab.step.clients, lab.params).mode, **seen, **_after(lab)}
    lab.seen.setdefault("steps", []).append(observed)
    return observed


def flip(lab: Lab) -> pd.DataFrame:
    """The flip to REJECT_INVALID as c20 takes it with apply=True: readiness, gate, flip in place,
    proof, watch, record. A refused gate changes nothing and names the clients."""
    result = enforce.enforce(lab.step.clients, lab_params(lab))
    gate = result.prepared.gate_check()  # its evidence names the clients a refused flip would cut off
    _remember(
        lab,
        "flip",
        gate=PASSED if gate.status != "fail" else REFUSED_GATE,
        named=_names(lab, [gate.evidence]) if gate.status == "fail" else [],
    )
    return pd.DataFrame([c.row() for c in result.checks()])


def fix_clients(lab: Lab) -> pd.DataFrame:
    """The clients without a certificate get one; the window starts now, and every client sends again."""
    lab.seen["population"] = population(lab.params, fixed=True)
    lab.seen["fixed at"] = dt.datetime.now(dt.UTC)
    return the_clients(lab)


def break_glass(lab: Lab) -> pd.DataFrame:
    """c30_break_glass with apply=True: one step to ALLOW (or detached), proven and recorded."""
    done = breakglass.break_glass(lab.step.clients, lab_params(lab))
    _remember(lab, "break-glass")
    return pd.DataFrame([c.row() for c in done.checks()])


def way_back(lab: Lab) -> pd.DataFrame:
    """c30_break_glass with way_back=True: the state recorded before break-glass, proven."""
    back = breakglass.way_back(lab.step.clients, lab_params(lab))
    _remember(lab, "way back")
    return pd.DataFrame([c.row() for c in back.checks()])


def verdicts(lab: Lab) -> pd.DataFrame:
    """What the last step left: the mode, and what a client with and without a certificate got."""
    steps = lab.seen.get("steps", [])
    if not steps:
        return pd.DataFrame([{"step": "nothing done yet"}])
    last = steps[-1]
    return pd.DataFrame([{k: last.get(k, "") for k in ("step", "mode", GATE, WITH, WITHOUT)}]).fillna("")


def _steps(lab: Lab, name: str) -> list[dict[str, Any]]:
    return [s for s in lab.seen.get("steps", []) if s["step"] == name]


def check_gate(lab: Lab, would_be_refused: Any) -> Any:
    """The first flip: refused by the gate, naming the clients that send no certificate."""
    tried = _steps(lab, "flip")
    first = tried[0] if tried else None
    predicted = (
        sorted(map(str, would_be_refused), key=sending.normalised)
        if isinstance(would_be_refused, list)
        else None
    )
    named = sorted(first["named"], key=sending.normalised) if first else []
    rows = [
        {
            "item": "gate",
            "your prediction": "(not asked)",
            "observed": first[GATE] if first else "(not tried)",
        },
        {
            "item": "named",
            "your prediction": ", ".join(predicted) if predicted is not None else "(none)",
            "observed": ", ".join(named) if first else "(not tried)",
        },
    ]
    ok = (
        bool(first)
        and first[GATE] == REFUSED_GATE
        and predicted is not None
        and list(map(sending.normalised, predicted)) == list(map(sending.normalised, named))
    )
    if not first:
        hint = "try the flip (labs.enforcement.flip(lab)), then check"
    elif predicted is None:
        hint = "set `would_be_refused` to a list of client names, from the table of clients"
    else:
        hint = "compare with the readiness report's clients: which ones sent requests without a certificate?"
    return lab.judged(rows, ok, "the gate refused the flip and named every client it would cut off", hint)


def check_flip(lab: Lab, after_flip: Any) -> Any:
    """The flip once the clients were fixed: the gate passed, and what each kind of client gets now."""
    passed = [s for s in _steps(lab, "flip") if s[GATE] == PASSED]
    observed = {k: passed[-1][k] for k in (GATE, WITH, WITHOUT)} if passed else {}
    return sending.judge_prediction(
        lab,
        after_flip,
        observed,
        (GATE, WITH, WITHOUT),
        seen=bool(passed),
        good=f"the flip passed its gate; {REJECT} refuses the rest",
        run="fix the clients (labs.enforcement.fix_clients(lab)) and flip again",
        shape=f"set `after_flip` to a dict: {GATE!r} (passed or refused), {WITH!r} and {WITHOUT!r}",
        why=f"what does {REJECT} do with a connection that sends no certificate?",
    )


def check_break_glass(lab: Lab, predictions: Any) -> Any:
    """Break-glass lets a client without a certificate through; the way back refuses it again."""
    broke, back = _steps(lab, "break-glass"), _steps(lab, "way back")
    observed = {}
    if broke:
        observed[DURING] = broke[-1][WITHOUT]
    if back:
        observed[AFTER_WAY_BACK] = back[-1][WITHOUT]
        observed[MODE_AFTER] = str(back[-1]["mode"])
    return sending.judge_prediction(
        lab,
        predictions,
        observed,
        (DURING, AFTER_WAY_BACK, MODE_AFTER),
        seen=bool(broke and back),
        good="break-glass let everyone in; the way back restored the state before it",
        run=(
            "break the glass (labs.enforcement.break_glass(lab)), then take the way back "
            "(labs.enforcement.way_back(lab))"
        ),
        shape=f"set `break_glass` to a dict: {DURING!r}, {AFTER_WAY_BACK!r} and {MODE_AFTER!r}",
        why="what does break-glass set, and what did its record save before it?",
    )
