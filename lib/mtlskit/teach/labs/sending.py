"""Sending the demo PKI's certificates to the frontend and reading what came of each: the probe's own
requests (real TLS, `mtlskit.verify.probe`) and the load balancer's log entry for each (`mtlskit.verify.logs`)."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import pandas as pd

from mtlskit.rules.logentry import NOT_PROVIDED
from mtlskit.teach.labs.lab import Lab, Verdict
from mtlskit.verify import logs, probe
from mtlskit.verify.probe import Case, ProbeResult

NO_CERTIFICATE = probe.NO_CERTIFICATE
DEMO = "demo/"
# How far before the first probe the log read starts: the sandbox's clock and ours are the same, the
# margin only covers rounding.
LOG_MARGIN = dt.timedelta(seconds=5)
# A refused connection's entry has no URL and is matched by time. The sandbox writes each entry as the
# connection closes, with this machine's clock, so the window can be much tighter than on Google Cloud
# (`logs.MATCH_SKEW_SECONDS`): other connections a moment earlier are not taken for the lab's.
SANDBOX_SKEW_SECONDS = 0.25


def cases(lab: Lab, names: list[str]) -> list[Case]:
    """The named cases: `no certificate`, or a demo PKI certificate by its short name (`client`,
    `expired-client`, ...), with the chain each sends."""
    demo = {c.name.removeprefix(DEMO): c for c in probe.demo_cases(lab.params)}
    out = []
    for name in names:
        if name == NO_CERTIFICATE:
            out.append(Case(NO_CERTIFICATE, NOT_PROVIDED, source="(none sent)"))
        elif name in demo:
            out.append(demo[name])
        else:
            raise KeyError(
                f"no case {name!r}: the labs send the demo PKI's certificates, and the params' trust config "
                "must hold the demo root (params/sandbox.yaml does)"
            )
    return out


def send(lab: Lab, chosen: list[Case]) -> list[ProbeResult]:
    """One real request per case, one after another (refused ones are matched to their log entry by time)."""
    target = lab.seen.get("frontend") or lab.step.call(probe.locate_frontend)
    names = probe.mtls_header_names(lab.params)
    with tempfile.TemporaryDirectory(prefix="mtlskit-lab-") as work:
        return [probe.probe(target, case, names, Path(work)) for case in chosen]


def logged(lab: Lab, sent: list[ProbeResult]) -> pd.DataFrame:
    """Each request's log entry: what the load balancer wrote in statusDetails."""
    if not sent:
        return logs.match_probes([], logs.entries_frame([]))
    since = logs.parse_time(sent[0].sent_at) - LOG_MARGIN
    entries = lab.step.call(logs.fetch_entries, since)
    return logs.match_probes(sent, logs.entries_frame(entries), SANDBOX_SKEW_SECONDS)


def short(case: str) -> str:
    return case.removeprefix(DEMO)


ACCEPTED, REFUSED = "accepted", "refused"


def got(http_status: int | None) -> str:
    """What a day-2 lab asks a trainee to predict of a request: accepted (an HTTP answer came, from the
    backend or the load balancer) or refused (the load balancer closed the connection)."""
    return ACCEPTED if http_status is not None else REFUSED


def normalised(answer: object) -> str:
    """A typed answer as compared: any case, spacing, quotes or punctuation ("Accepted " is accepted,
    "forwarding rule" is ForwardingRule); dots stay, so 0.5 is not 5."""
    return "".join(ch for ch in str(answer).lower() if ch.isalnum() or ch == ".").strip(".")


def same(answer: object, truth: object) -> bool:
    """A typed answer is right when it is the truth as `normalised` reads both; no answer never is."""
    return answer is not None and truth is not None and normalised(answer) == normalised(truth)


def compare(
    answer: object, observed: dict[str, str], keys: tuple[str, ...], unseen: str = "(not observed)"
) -> tuple[list[dict[str, object]], list[str]]:
    """A prediction (a dict) beside what the lab saw, key by key: the rows a check shows and the keys
    that differ. A missing or malformed answer differs everywhere and never raises."""
    given = answer if isinstance(answer, dict) else {}
    rows: list[dict[str, object]] = []
    wrong = []
    for key in keys:
        mine, want = given.get(key), observed.get(key)
        ok = same(mine, want)
        rows.append(
            {
                "item": key,
                "your prediction": "(none)" if mine is None else str(mine),
                "observed": want if want is not None else unseen,
                "right": ok,
            }
        )
        if not ok:
            wrong.append(key)
    return rows, wrong


def judge_prediction(
    lab: Lab,
    answer: object,
    observed: dict[str, str],
    keys: tuple[str, ...],
    *,
    seen: bool,
    good: str,
    run: str,
    shape: str,
    why: str,
    unseen: str = "(not observed)",
) -> Verdict:
    """Every prediction check says what to do next in the same order: run the step when the lab saw
    nothing yet (`run`), answer in the expected form when the prediction is not a dict (`shape`), else
    rethink the items that differ (`why`, which leads with their names)."""
    rows, wrong = compare(answer, observed, keys, unseen)
    if not seen:
        hint = run
    elif not isinstance(answer, dict):
        hint = shape
    else:
        hint = f"{', '.join(wrong)} differ: {why}"
    return lab.judged(rows, seen and not wrong, good, hint)
