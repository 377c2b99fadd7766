"""The load balancer's request logs: pulled, flattened into one table, summarised, and matched with the
probes 50_verify sent.

Everything after the pull works on plain API-shaped dicts (what `entry.to_api_repr()` returns, what
`gcloud logging read --format=json` prints and what a Cloud Storage log sink writes as JSON lines), so a
log exported last week is analysed by the same code as entries pulled a second ago.

On Google, an entry becomes readable tens of seconds (sometimes minutes) after the request: the probe
cross-check therefore polls for a bounded time instead of reading once.

Teams often log only a share of requests (the backend service's `logConfig.sampleRate`, set from
`logging.sample_rate`). The cross-check then reads the rate actually on the backend service, judges
every probe entry it finds, counts the missing ones against what the binomial distribution allows at
that rate, stops waiting once ingestion has caught up, and shows the summaries' counts with their
estimate (count / rate) beside them. The summaries themselves are `logscan`'s SQL, run by DuckDB over
the pulled entries as over exported files.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
from google.cloud import logging as cloud_logging

from mtlskit.build import lbnames
from mtlskit.build.lbnames import LoadBalancerNames
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core.checks import Check
from mtlskit.core.errors import ApiError, PrerequisiteMissing
from mtlskit.core.poll import poll
from mtlskit.rules import gateway as gw
from mtlskit.rules.logentry import (
    BACKEND_OUTCOMES,
    FORWARDED,
    NOT_PROVIDED,
    PAYLOAD_TYPE,
    REFUSED_PREFIX,
    RESOURCE_TYPE,
)
from mtlskit.verify import logscan
from mtlskit.verify.logscan import COLUMNS
from mtlskit.verify.probe import PROBE_PATH, ProbeResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure


# How far a refused connection's log time may lie outside [sent_at, finished_at] of its probe: the
# entry carries the proxy's clock, the probe the client's, and the two differ a little.
MATCH_SKEW_SECONDS = 2.0
PROBE_ID = re.compile(re.escape(PROBE_PATH) + r"([^/?#]+)")

MATCH_COLUMNS = [
    "probe_id",
    "case",
    "expected_status_details",
    "logged_status_details",
    "log_time",
    "found",
    "match",
    "matched_by",
    "insert_id",
]


# ---- the query ----------------------------------------------------------------------------------------


# Stands for the Gateway's forwarding rule in printed queries when it could not be resolved.
GATEWAY_FORWARDING_RULE = "GATEWAY_FORWARDING_RULE"


def forwarding_rule(params: Params, names: LoadBalancerNames | None = None) -> str:
    """The forwarding rule whose logs this step reads: the resolved one, the split frontend's from the
    params, or (a Gateway not resolved) a placeholder for printed text."""
    known = lbnames.known_names(params, names)
    return known.forwarding_rule if known else GATEWAY_FORWARDING_RULE


def filter_clauses(
    params: Params, since: dt.datetime | None = None, names: LoadBalancerNames | None = None
) -> list[str]:
    """The comparisons that select this stack's request logs, in Logging query language.

    Only comparisons joined by AND: the real API takes them on separate lines or with AND, and the
    sandbox refuses OR/NOT instead of guessing. `timestamp>=` is always set when `since` is given, so
    the client library does not append its own 24 h clause. `names`: the load balancer resolved for
    the step (`lbnames.load_balancer_names`); the split frontend's are the params'.
    """
    clauses = [
        f'resource.type="{RESOURCE_TYPE}"',
        f'resource.labels.forwarding_rule_name="{forwarding_rule(params, names)}"',
        f'jsonPayload.@type="{PAYLOAD_TYPE}"',
    ]
    if since is not None:
        clauses.append(f'timestamp>="{rfc3339(since)}"')
    return clauses


def api_filter(params: Params, since: dt.datetime, names: LoadBalancerNames | None = None) -> str:
    return " AND ".join(filter_clauses(params, since, names))


def default_since(
    params: Params, probes: Iterable[ProbeResult] = (), now: dt.datetime | None = None
) -> dt.datetime:
    """Start of the window to read: the params' lookback, widened to reach the oldest saved probe, so a
    cross-check run an hour after 50_verify still finds its entries."""
    start = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(minutes=params.logging.lookback_minutes)
    sent = [parse_time(p.sent_at) for p in probes if p.sent_at]
    if sent:
        start = min(start, min(sent) - dt.timedelta(seconds=MATCH_SKEW_SECONDS))
    return start


def explorer_filter(params: Params, names: LoadBalancerNames | None = None) -> str:
    """The query to paste into the Logs Explorer: one comparison per line (lines are ANDed), no time
    clause (the Explorer's time range picker sets it)."""
    return "\n".join(filter_clauses(params, None, names))


def by_hand(params: Params, names: LoadBalancerNames | None = None) -> str:
    """The Logs Explorer query and the equivalent gcloud command, for looking without the kit
    (gcloud's --freshness works only on filters without a timestamp clause). A Gateway's forwarding
    rule not resolved is written as a placeholder, with the command that reads it."""
    clauses = filter_clauses(params, None, names)
    minutes = params.logging.lookback_minutes
    freshness = f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"
    one_line = " AND ".join(clauses)
    where = ""
    if forwarding_rule(params, names) == GATEWAY_FORWARDING_RULE:
        where = (
            f"# {GATEWAY_FORWARDING_RULE}: the forwarding rule the Gateway's controller built, in the "
            f"Gateway's {gw.ANNOTATIONS['forwarding_rules']} annotation: "
            f"kubectl get gateway {params.gateway.name} -n {params.gateway_namespace} -o yaml\n\n"
        )
    return (
        where + "Logs Explorer query (set the time range to the last "
        f"{minutes} minutes):\n\n"
        + explorer_filter(params, names)
        + "\n\nOnly refused connections: add the line\n"
        'jsonPayload.statusDetails=~"client_cert"\n\n'
        f"gcloud:\n\ngcloud logging read '{one_line}' --project={params.project} "
        f"--freshness={freshness} --format=json"
    )


# ---- reading entries ----------------------------------------------------------------------------------


def entry_to_dict(entry: Any) -> dict[str, Any]:
    """A google-cloud-logging entry object as the API-shaped dict the rest of this module reads."""
    return dict(entry.to_api_repr())


def fetch_entries(
    clients: Clients,
    params: Params,
    since: dt.datetime | None = None,
    page_size: int = 1000,
    max_entries: int = 50_000,
    names: LoadBalancerNames | None = None,
) -> list[dict[str, Any]]:
    """This stack's request log entries since `since` (default: the lookback), oldest first.

    Read newest first and capped at `max_entries`, so a busy load balancer cannot make the pull
    unbounded while the most recent requests (the probes) are always included. The HTTP logging
    client takes no retry argument, so the whole pull is retried on transient errors: a read is
    safe to repeat.
    """
    names = names or lbnames.load_balancer_names(clients, params)
    flt = api_filter(params, since or default_since(params), names)

    def pull() -> list[dict[str, Any]]:
        entries = clients.logging.list_entries(
            resource_names=[f"projects/{clients.project}"],
            filter_=flt,
            order_by=cloud_logging.DESCENDING,
            page_size=page_size,
            max_results=max_entries,
        )
        return [entry_to_dict(e) for e in entries]

    return list(reversed(clients.retry(pull)()))


def read_exported(path: str | Path) -> list[dict[str, Any]]:
    """Entries from one small exported file, as dicts: a JSON array (`gcloud logging read
    --format=json`, a Logs Explorer download) or JSON lines (a Cloud Storage log sink). For globs,
    `gs://` and files of any size, `scan_exported` reads them with DuckDB instead."""
    text = Path(path).read_text()
    if text.lstrip().startswith("["):
        return list(json.loads(text))
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def scan_exported(
    sources: str | Path | list[str | Path],
    params: Params | None = None,
    forwarding_rule: str | None = None,
    since: dt.datetime | None = None,
    names: LoadBalancerNames | None = None,
    **options: Any,
) -> logscan.LogScan:
    """Exported request logs (local paths, globs, `gs://` globs) loaded for analysis; use it as a
    context manager. Selected by forwarding rule (default: the params' one, when params are given)
    and start time, like the Logging filter; `.summaries()` are the tables this notebook draws,
    `.frame()` the same table as `entries_frame`. `gs://` objects are fetched through the params'
    Cloud Storage client when params are given. A Gateway's forwarding rule comes from `names`;
    without them (and without `forwarding_rule`) every forwarding rule's entries are read."""
    known = lbnames.known_names(params, names) if params is not None else names
    rule = forwarding_rule or (known.forwarding_rule if known else None)
    derivation = logscan.Derivation(forwarded=FORWARDED, probe_path=PROBE_PATH)
    return logscan.LogScan(sources, derivation, forwarding_rule=rule, since=since, params=params, **options)


def bigquery_sql(
    params: Params,
    since: dt.datetime | None = None,
    bucket: str = "1min",
    names: LoadBalancerNames | None = None,
) -> dict[str, str]:
    """Each summary of this notebook as Log Analytics SQL over the project's `_AllLogs` view, for
    teams whose request logs are in a Log Analytics bucket (or its linked BigQuery dataset)."""
    table = f"`{params.project}.global._Default._AllLogs`"
    rule = forwarding_rule(params, names)
    return logscan.bigquery_sql(rule, table, since, bucket, forwarded=FORWARDED)


def export_report(
    sources: str | Path | list[str | Path], params: Params, names: LoadBalancerNames | None = None
) -> str:
    """This stack's entries in an export (files, globs, `gs://` globs), summarised as text for a
    notebook cell; without sources, how to name one."""
    if not sources:
        return (
            "No export named. Set export_glob in the parameters cell, for example "
            "'gs://BUCKET/requests/2026/05/*/*.json' (a Cloud Storage sink) or a local "
            "'gcloud logging read --format=json' file."
        )
    # An export holds what the backend service logged, at the rate the params' BackendConfig sets.
    with scan_exported(sources if isinstance(sources, list) else [sources], params, names=names) as scan:
        s = scan.summaries(sample_rate=params.logging.sample_rate)
    parts = [
        f"{s.entries:,} entries of forwarding rule {forwarding_rule(params, names)} in {s.files} file(s)",
        "by statusDetails:\n" + s.by_status_details.to_string(index=False),
        "by client-certificate error:\n"
        + (s.by_cert_error.to_string(index=False) if len(s.by_cert_error) else "(none)"),
    ]
    return "\n\n".join(parts)


# ---- one table ----------------------------------------------------------------------------------------


def entries_frame(entries: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per request log entry, one column per fact the runbook asks about.

    The global load balancer documents only `statusDetails` for mTLS; `jsonPayload.mtls` (the
    Envoy-style verdict) is read when present. Without it, a `client_cert_*` statusDetails is itself
    the certificate error, and `client_cert_not_provided` says no certificate was presented.
    """
    return logscan.tidy(pd.DataFrame([_row(e) for e in entries], columns=COLUMNS))


def _row(entry: Mapping[str, Any]) -> dict[str, Any]:
    http = entry.get("httpRequest") or {}
    payload = entry.get("jsonPayload") or {}
    labels = (entry.get("resource") or {}).get("labels") or {}
    mtls = payload.get("mtls")
    tls = payload.get("tls") or {}
    details = str(payload.get("statusDetails") or "")
    status = _int(http.get("status"))
    url = http.get("requestUrl") or None
    refused = status == 0 or details.startswith(REFUSED_PREFIX)
    if refused:
        outcome = "refused"
    elif details == FORWARDED:
        outcome = "accepted"
    else:
        outcome = "other"  # answered by the load balancer itself (no backend, bad request, ...)
    if isinstance(mtls, Mapping):
        present = _bool(mtls.get("clientCertPresent"))
        verified = _bool(mtls.get("clientCertChainVerified"))
        error = mtls.get("clientCertError") or None
        fingerprint = mtls.get("clientCertSha256Fingerprint") or None
        serial = mtls.get("clientCertSerialNumber") or None
        issuer_dn = mtls.get("clientCertIssuerDn") or None
        subject_dn = mtls.get("clientCertSubjectDn") or None
    else:
        present = False if details == NOT_PROVIDED else None
        verified = False if details.startswith(REFUSED_PREFIX) else None
        error = details if details.startswith(REFUSED_PREFIX) else None
        fingerprint = serial = issuer_dn = subject_dn = None
    probe = PROBE_ID.search(url or "")
    return {
        "time": entry.get("timestamp"),
        "status": status,
        "status_details": details,
        "outcome": outcome,
        "client_cert_present": present,
        "client_cert_chain_verified": verified,
        "client_cert_error": error,
        "client_cert_sha256_fingerprint": fingerprint,
        "client_cert_serial_number": serial,
        "client_cert_issuer_dn": issuer_dn,
        "client_cert_subject_dn": subject_dn,
        "remote_ip": http.get("remoteIp") or payload.get("remoteIp") or None,
        "method": http.get("requestMethod") or None,
        "url": url,
        "user_agent": http.get("userAgent") or None,
        "tls_protocol": tls.get("protocol") or None,
        "tls_cipher": tls.get("cipher") or None,
        "backend_service": labels.get("backend_service_name") or None,
        "forwarding_rule": labels.get("forwarding_rule_name") or None,
        "probe_id": probe.group(1) if probe else None,
        "insert_id": entry.get("insertId"),
    }


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _bool(value: Any) -> bool | None:
    """Booleans as logged: real ones, or "true"/"false" strings (seen in Google proxy logs). An
    absent field means false: Logging drops boolean fields whose value is false."""
    if value is None:
        return False
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


# ---- summaries ----------------------------------------------------------------------------------------


def summaries(
    frame: pd.DataFrame, sample_rate: float = 1.0, bucket: str | None = None, n: int = 10
) -> logscan.Summaries:
    """Counts by statusDetails and by client-certificate error, outcomes over time and the most refused
    certificates of the pulled entries: the SQL `mtlskit logs` runs over exported files, run by DuckDB
    over this DataFrame. Below a sample rate of 1.0 each count carries its estimate (count / rate) in an
    `estimated` column, and `.note()` says so."""
    return logscan.frame_summaries(frame, bucket, n, sample_rate)


def plot_outcomes(summary: logscan.Summaries) -> Figure:
    """Accepted and refused requests over time (stacked bars per bucket), as a Figure to show.

    Accepted = answered by the backend; refused = closed by the mTLS check (status 0, client_cert_*);
    other = answered by the load balancer itself. A sampled log is drawn as its estimate (counts / rate),
    and the axis says so. The figure is detached from pyplot, so an inline backend shows it once (as the
    cell's value) and nothing accumulates across calls.
    """
    import matplotlib.pyplot as plt
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.ticker import MaxNLocator

    bucket = summary.bucket
    data = summary.over_time
    if summary.sampled:
        data = data[[f"{o}_estimated" for o in logscan.OUTCOMES]].set_axis(logscan.OUTCOMES, axis=1)
    fig, ax = plt.subplots(figsize=(9, 3.2), layout="constrained")
    plt.close(fig)
    if data.empty:
        ax.text(0.5, 0.5, "no request log entries in the window", ha="center", va="center")
        ax.set_axis_off()
        return fig
    step = pd.Timedelta(bucket)
    width = step / pd.Timedelta(days=1) * 0.9  # matplotlib dates are in days
    when = data.index.tz_convert(None).to_pydatetime()
    bottom = None
    colors = {"accepted": "tab:green", "refused": "tab:red", "other": "tab:gray"}
    for outcome, color in colors.items():
        if data[outcome].any():
            ax.bar(when, data[outcome], width=width, bottom=bottom, align="edge", color=color, label=outcome)
            bottom = data[outcome] if bottom is None else bottom + data[outcome]
    pad = step * max(1, (12 - len(data)) // 2)  # a few buckets either side, so one bar is readable
    ax.set_xlim(when[0] - pad, when[-1] + step + pad)
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"entries per {_human(step)}")
    if summary.sampled:
        ax.set_ylabel(f"estimated requests per {_human(step)}")
        ax.set_title(f"Request log entries: accepted vs refused ({summary.scale})")
    else:
        ax.set_title("Request log entries: accepted vs refused")
    ax.set_xlabel("time (UTC)")
    # Beside the axes, never on them: inside, it hid the first buckets' bars (the probes' own).
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return fig


def _human(step: pd.Timedelta) -> str:
    seconds = int(step.total_seconds())
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


# ---- probes cross-check -------------------------------------------------------------------------------


def match_probes(
    probes: list[ProbeResult], frame: pd.DataFrame, skew_seconds: float = MATCH_SKEW_SECONDS
) -> pd.DataFrame:
    """Each probe's log entry, and whether its statusDetails is the one the probe expected.

    A forwarded request carries its probe id in the URL (`PROBE_PATH + id`), which identifies its
    entry exactly; a probe answered over HTTP is matched this way only. A connection
    refused during the handshake in REJECT_INVALID never sent an HTTP request, so its entry has no
    URL; such probes are matched by time: the entry's timestamp must lie within [sent_at - skew,
    finished_at + skew], and each entry serves one probe. Entries with a probe's expected
    statusDetails are given out first, then a probe still without one takes an entry that lies nearer
    to it than to any other probe (`_match_by_time`): other clients refused at the same moment
    (scanners without a certificate are common) do not turn a good probe into a mismatch, a probe
    refused for the wrong reason still shows the reason it got, and when sampling left a probe's
    entry out, a neighbouring probe's entry is not reported as its mismatch.

    A probe whose expected statusDetails is empty expects no entry at all (a connection closed
    before the load balancer logs anything).
    """
    by_id: dict[str, pd.Series] = {}
    for _, row in frame[frame["probe_id"].notna()].iterrows():
        by_id.setdefault(row["probe_id"], row)  # a retried request logs twice; the first one counts
    timed = [p for p in probes if p.probe_id not in by_id and _matched_by_time(p)]
    by_time = _match_by_time(timed, frame[frame["url"].isna()], skew_seconds)
    rows = []
    for p in probes:
        entry, how = by_id.get(p.probe_id), "probe id in URL"
        if entry is None:
            entry, how = by_time.get(p.probe_id), "time window"
        found = entry is not None
        logged = str(entry["status_details"]) if found else None
        expected = p.expected_status_details
        rows.append(
            {
                "probe_id": p.probe_id,
                "case": p.case,
                "expected_status_details": expected,
                "logged_status_details": logged,
                "log_time": entry["time"] if found else pd.NaT,
                "found": found,
                "match": (logged == expected) if expected else not found,
                "matched_by": how if found else "",
                "insert_id": entry["insert_id"] if found else None,
            }
        )
    out = pd.DataFrame(rows, columns=MATCH_COLUMNS)
    out["log_time"] = pd.to_datetime(out["log_time"], utc=True)
    return out


def _matched_by_time(probe: ProbeResult) -> bool:
    """Only a probe that got no HTTP answer can have an entry without a URL: one refused as expected,
    or one that expected to be forwarded and was refused instead (its entry then says why). A probe
    answered over HTTP is found by its id or not at all."""
    expected = probe.expected_status_details
    refused = expected != FORWARDED or probe.http_status is None
    return bool(expected) and refused and bool(probe.sent_at)


def _interval(probe: ProbeResult) -> tuple[pd.Timestamp, pd.Timestamp]:
    return pd.Timestamp(parse_time(probe.sent_at)), pd.Timestamp(
        parse_time(probe.finished_at or probe.sent_at)
    )


def _distance(when: pd.Timestamp, interval: tuple[pd.Timestamp, pd.Timestamp]) -> float:
    start, end = interval
    return max(0.0, (start - when).total_seconds(), (when - end).total_seconds())


def _match_by_time(
    timed: list[ProbeResult], unaddressed: pd.DataFrame, skew_seconds: float
) -> dict[str, pd.Series]:
    """Entries without URL for the probes matched by time, in two passes over the probes in send order:
    first each takes an unused entry with its expected statusDetails (the nearest to its own
    send-to-finish interval, then the earliest), then each probe still without one takes the earliest
    unused entry that lies nearer to it than to any other such probe. So an entry is reported against
    a probe as a mismatch only when no probe expecting what it says could have had it."""
    skew = pd.Timedelta(seconds=skew_seconds)
    intervals = {p.probe_id: _interval(p) for p in timed}
    used: set[Any] = set()
    out: dict[str, pd.Series] = {}

    def window(p: ProbeResult) -> list[tuple[Any, pd.Series]]:
        start, end = intervals[p.probe_id]
        rows = unaddressed[(unaddressed["time"] >= start - skew) & (unaddressed["time"] <= end + skew)]
        return [(i, r) for i, r in rows.iterrows() if i not in used]

    for p in timed:
        same = [(i, r) for i, r in window(p) if r["status_details"] == p.expected_status_details]
        if same:
            index, row = min(
                same, key=lambda c: (_distance(c[1]["time"], intervals[p.probe_id]), c[1]["time"])
            )
            used.add(index)
            out[p.probe_id] = row
    for p in timed:
        if p.probe_id in out:
            continue
        mine = [
            (i, r)
            for i, r in window(p)
            if all(
                _distance(r["time"], intervals[p.probe_id]) <= _distance(r["time"], other)
                for pid, other in intervals.items()
                if pid != p.probe_id
            )
        ]
        if mine:
            index, row = min(mine, key=lambda c: c[1]["time"])
            used.add(index)
            out[p.probe_id] = row
    return out


# Fail the sampled cross-check when finding this few probe entries has a smaller probability than this
# at the backend service's sample rate. Why 0.001: the verification runs every night, so a load balancer
# that logs exactly as configured fails by bad luck about once in three years, while a log that is off,
# lost or far sparser than its sampleRate says (the cases worth a page) is still caught: at 0.5 with 18
# probes it takes 2 or fewer found.
IMPLAUSIBLE_BELOW = 0.001


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed exactly (n is a handful of probes)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return min(1.0, sum(math.comb(n, i) * p**i * (1.0 - p) ** (n - i) for i in range(k + 1)))


@dataclass(frozen=True)
class SampleVerdict:
    """Whether the probe entries found are what a log sampled at `sample_rate` predicts."""

    found: int
    probes: int  # probes that expect an entry
    sample_rate: float
    probability: float  # P(X <= found) for X ~ Binomial(probes, sample_rate)
    passed: bool

    @property
    def expected(self) -> float:
        return self.probes * self.sample_rate

    def message(self) -> str:
        head = (
            f"{self.found}/{self.probes} probes have their log entry at sampleRate {self.sample_rate:g}: "
            f"{self.expected:.2g} expected ({self.probes} x {self.sample_rate:g})"
        )
        if not self.passed:
            return (
                f"{head}, and finding {self.found} or fewer has probability {self.probability:.2g} "
                f"(below {IMPLAUSIBLE_BELOW:g}): sampling does not explain so few"
            )
        line = f"{head}; the {self.probes - self.found} missing are what sampling predicts"
        if self.expected < 1:
            line += (
                f". At this rate the probes can expect {self.expected:.2g} entries, so the cross-check "
                "proves little: raise logging.sample_rate to check every probe"
            )
        return line


def judge_sample(found: int, probes: int, sample_rate: float) -> SampleVerdict:
    """The sampled cross-check's decision on its count: pass unless finding `found` or fewer of
    `probes` entries is implausible (P < IMPLAUSIBLE_BELOW) at `sample_rate`. What a found entry
    says is judged apart: a contradiction fails whatever the count."""
    probability = binomial_cdf(found, probes, sample_rate)
    return SampleVerdict(found, probes, sample_rate, probability, probability >= IMPLAUSIBLE_BELOW)


Ended = Literal["all found", "caught up", "time limit", "logging off"]


@dataclass
class Pull:
    """What one read (or the last read of a wait) returned, how long the wait took and why it ended:
    "all found" (every probe has its entry), "caught up" (sampled logging, and ingestion has passed
    the probes: no later probe entry will come), "time limit", or "logging off" (one read, nothing
    more will be logged)."""

    entries: list[dict[str, Any]]
    since: dt.datetime
    waited_seconds: float = 0.0
    probes_found: int = 0
    probes_expected: int = 0
    ended: Ended = "all found"
    backend_logging: BackendLogging | None = None
    names: LoadBalancerNames | None = None  # the load balancer read

    @property
    def sample_rate(self) -> float:
        """The backend service's sample rate; 1.0 when it is not known."""
        bl = self.backend_logging
        return 1.0 if bl is None or bl.problem else (bl.sample_rate if bl.enable else 0.0)

    def summary(self) -> str:
        line = f"{len(self.entries)} request log entries since {rfc3339(self.since)}"
        if self.probes_expected:
            line += (
                f"; {self.probes_found}/{self.probes_expected} probes found after {self.waited_seconds:.0f}s"
                f" (the wait ended: {self.ended})"
            )
            if 0.0 < self.sample_rate < 1.0:
                expected = self.probes_expected * self.sample_rate
                line += f"; sampled at {self.sample_rate:g}: {expected:.2g} entries expected"
        return line


@dataclass(frozen=True)
class _Read:
    entries: list[dict[str, Any]]
    found: frozenset[str]  # ids of the probes that have their entry
    past_probes: bool  # an entry at or after the last probe is readable


# The sandbox's data plane writes a request's entry as it finishes the request, so it is readable at
# once; the allowance covers the writer and a slow machine. Cloud Logging documents no upper bound.
SANDBOX_INGESTION_SECONDS = 2.0


def ingestion_bound(params: Params) -> float | None:
    """Seconds after a request by which the target has made its log entry readable, where it bounds
    that at all (the sandbox); None for Google Cloud."""
    return SANDBOX_INGESTION_SECONDS if params.target == "sandbox" else None


def wait_for_probe_entries(
    clients: Clients,
    params: Params,
    probes: list[ProbeResult],
    timeout: float = 120.0,
    since: dt.datetime | None = None,
    on_progress: Callable[[int, int, float], None] | None = None,
    poll_seconds: float = 3.0,
    backend_logging: BackendLogging | None = None,
    names: LoadBalancerNames | None = None,
) -> Pull:
    """Entries since `since`, re-read until the probes' entries are in or `timeout` passes.

    Google ingests request logs with a lag of tens of seconds, so a single read right after
    50_verify would report probes as missing that are merely late. Every poll re-reads the whole
    window: late entries arrive with their original (older) timestamps. `on_progress(found, total,
    elapsed)` is called after each read. Without probes this is one read.

    When does the wait end? The backend service's logConfig is read first (`backend_logging`, else
    `read_backend_logging`):
    - logging on at sampleRate 1.0 (or not readable): every probe must have its entry, so the wait
      ends when all are found, else at the time limit (a missing entry is then a finding);
    - logging off (or sampleRate 0): nothing will be logged; one read;
    - a sampleRate below 1.0: some probe entries are never written, so waiting for all of them would
      always run out the clock. The wait ends once ingestion has caught up with the probes. The
      signal: an entry stamped at or after the last probe was sent is readable (a request after the
      probes, or the last probe's own entry), in two reads in a row that found the same probes.
      Cloud Logging and the sandbox return entries in time order and an entry's timestamp is the
      proxy's time of the request, so once an entry later than every probe is readable, the logged
      probe entries (all older) are readable too; the second, unchanged read guards against entries
      that arrive a little out of order. Entries stamped within the probes' clock skew do not count.
      Without such an entry (the last probe's entry sampled out and no traffic since), only a target
      that bounds its ingestion delay can show that the missing entries are not merely late: once
      that bound has passed since the last probe (`ingestion_bound`: the sandbox's, as Cloud Logging
      documents none), two unchanged reads are caught up too. Elsewhere the wait runs to its time
      limit, and the count is then judged the same way.

    `names` is the load balancer resolved for the step (default: resolved here, once).
    """
    since = since or default_since(params, probes)
    names = names or lbnames.load_balancer_names(clients, params)
    expecting = [p for p in probes if p.expected_status_details]
    config = backend_logging
    if config is None and expecting:
        config = read_backend_logging(clients, params, names)
    pull = Pull([], since, backend_logging=config, probes_expected=len(expecting), names=names)
    rate = pull.sample_rate
    last = max((p for p in expecting if p.sent_at), key=lambda p: parse_time(p.sent_at), default=None)
    horizon = parse_time(last.finished_at or last.sent_at) if last else None
    if horizon is not None:
        horizon += dt.timedelta(seconds=MATCH_SKEW_SECONDS)
    bound = ingestion_bound(params)
    quiet_after = horizon + dt.timedelta(seconds=bound) if horizon is not None and bound is not None else None
    previous: list[_Read] = []

    def read() -> _Read:
        entries = fetch_entries(clients, params, since, names=names)
        matched = match_probes(probes, entries_frame(entries))
        found = frozenset(
            matched.loc[matched["found"] & matched["expected_status_details"].astype(bool), "probe_id"]
        )
        newest = max((parse_time(e["timestamp"]) for e in entries if e.get("timestamp")), default=None)
        past = (
            (last is not None and last.probe_id in found)
            or (horizon is not None and newest is not None and newest > horizon)
            or (quiet_after is not None and dt.datetime.now(dt.UTC) > quiet_after)
        )
        return _Read(entries, found, past)

    def ended(r: _Read) -> Ended | None:
        if len(r.found) == len(expecting):
            return "all found"
        if rate <= 0.0:
            return "logging off"
        if (
            rate < 1.0
            and r.past_probes
            and previous
            and previous[-1].past_probes
            and previous[-1].found == r.found
        ):
            return "caught up"
        return None

    reasons: list[Ended] = []

    def done(r: _Read) -> bool:
        reason = ended(r)
        previous[:] = [r]  # only the read before the next one is compared
        if reason is not None:
            reasons.append(reason)
        return reason is not None

    def report(r: _Read, elapsed: float) -> None:
        if on_progress:
            on_progress(len(r.found), len(expecting), elapsed)

    polled = poll(read, done, timeout, every=poll_seconds, on_read=report)
    last_read = polled.value
    pull.entries = last_read.entries
    pull.waited_seconds = polled.elapsed
    pull.probes_found = len(last_read.found)
    pull.ended = reasons[-1] if polled.done else "time limit"
    return pull


@dataclass(frozen=True)
class BackendLogging:
    """The backend service's logConfig, read when probes are missing, because logging off or a
    sample rate below 1.0 explains missing entries better than ingestion delay does."""

    backend_service: str
    enable: bool
    sample_rate: float
    problem: str = ""  # why it could not be read

    @property
    def sampled(self) -> bool:
        """Logging on at a sample rate below 1.0: missing entries are expected."""
        return not self.problem and self.enable and 0.0 < self.sample_rate < 1.0

    def explain(self) -> str:
        if self.problem:
            return f"the backend service's logConfig could not be read ({self.problem})"
        if not self.enable:
            return f"request logging is disabled on backend service {self.backend_service}"
        if self.sample_rate < 1.0:
            return (
                f"backend service {self.backend_service} logs only a share of requests "
                f"(sampleRate {self.sample_rate:g})"
            )
        return (
            f"logging is on at sampleRate {self.sample_rate:g} on backend service {self.backend_service}, "
            "so ingestion delay is the likely cause"
        )


def read_backend_logging(
    clients: Clients, params: Params, names: LoadBalancerNames | None = None
) -> BackendLogging:
    """The logConfig of the backend service the frontend routes to (the one the Ingress made, or the
    one the Gateway's controller made for the Service)."""
    try:
        names = names or lbnames.load_balancer_names(clients, params)
        bs = lbnames.backend_service(clients, params, names)
    except (PrerequisiteMissing, ApiError) as err:
        return BackendLogging("", False, 0.0, problem=str(err).split("\n", 1)[0])
    return BackendLogging(bs.name, bs.log_enable, bs.log_sample_rate)


def probe_checks(
    matched: pd.DataFrame,
    waited_seconds: float,
    backend_logging: BackendLogging | None = None,
    ended: Ended = "time limit",
    topology: str = "split",
) -> list[Check]:
    """Checks from `match_probes`: the probes' entries found (all of them, or with a sample rate below
    1.0 as many as sampling makes plausible), and every found entry with the expected statusDetails.
    The fixes name what sets request logging and routes to the backend in the `topology` verified."""
    if matched.empty:
        return [
            Check(
                "probes found in request logs",
                "warn",
                "no probe results saved for this environment",
                "run 50_verify first",
            )
        ]
    expecting = matched[matched["expected_status_details"].astype(bool)]
    missing = expecting[~expecting["found"]]
    wrong = matched[matched["found"] & ~matched["match"]]
    checks = []
    if missing.empty:
        checks.append(
            Check(
                "probes found in request logs",
                "pass",
                f"{len(expecting)}/{len(expecting)} probes have their log entry",
            )
        )
    elif backend_logging is not None and backend_logging.sampled:
        checks.append(
            _sampled_check(
                len(expecting) - len(missing),
                len(expecting),
                waited_seconds,
                backend_logging,
                ended,
                topology,
            )
        )
    else:
        names = ", ".join(f"{r.probe_id} ({r.case})" for r in missing.itertuples())
        why = backend_logging.explain() if backend_logging else "the backend service was not read"
        checks.append(
            Check(
                "probes found in request logs",
                "fail",
                f"{len(missing)}/{len(expecting)} probes have no log entry after waiting "
                f"{waited_seconds:.0f}s: {names}. Possible causes: request logging disabled or a sample "
                f"rate below 1.0 on the backend service, or ingestion delay; here {why}.",
                LOGGING_FIX[topology],
            )
        )
    if wrong.empty:
        checks.append(
            Check(
                "logged statusDetails as expected",
                "pass",
                f"{int(matched['found'].sum())} entries say what their probe expected",
            )
        )
    else:
        evidence = "; ".join(
            f"probe {r.probe_id} ({r.case}): expected "
            f"{r.expected_status_details or 'no entry'}, logged {r.logged_status_details}"
            for r in wrong.itertuples()
        )
        checks.append(
            Check(
                "logged statusDetails as expected",
                "fail",
                evidence,
                mismatch_fix(set(wrong["logged_status_details"].astype(str)), topology),
            )
        )
    return checks


SAMPLE_RATE_SETTER = {
    "split": "10_ingress's BackendConfig",
    "gateway": "the Gateway build's GCPBackendPolicy",
}


def _sampled_check(
    found: int,
    probes: int,
    waited_seconds: float,
    backend_logging: BackendLogging,
    ended: Ended,
    topology: str = "split",
) -> Check:
    verdict = judge_sample(found, probes, backend_logging.sample_rate)
    evidence = f"{verdict.message()} (backend service {backend_logging.backend_service})"
    if ended == "time limit":
        evidence += (
            f"; the wait ended at its time limit ({waited_seconds:.0f}s) before an entry newer than the "
            "probes was readable, so some missing entries may be late rather than sampled out"
        )
    if verdict.passed:
        return Check("probes found in request logs", "pass", evidence)
    return Check(
        "probes found in request logs",
        "fail",
        evidence,
        "check that the backend service still logs at the sampleRate its params set (logging.sample_rate, "
        f"applied by {SAMPLE_RATE_SETTER[topology]}) and that no exclusion filter or sink drops request "
        "logs; on Google Cloud, re-run this notebook in a few minutes in case ingestion is late",
    )


# What a logged statusDetails that nobody expected points at. A backend that cannot be picked is not a
# TLS problem: it is the backend service (no endpoints, often a deleted or changed anchor Ingress).
BACKEND_DETAILS = BACKEND_OUTCOMES


LOGGING_FIX = {
    "split": "set logging.enable: true and logging.sample_rate: 1.0 in the params and re-run "
    "10_ingress with apply=True (the BackendConfig sets the backend service's logConfig); "
    "if logging is on, re-run this notebook in a few minutes or with a longer wait",
    "gateway": "set logging.enable: true and logging.sample_rate: 1.0 in the params and apply the "
    "Gateway build again (its GCPBackendPolicy sets the backend service's logConfig; 70_drift's "
    "'policies Attached' check says whether the controller took it); if logging is on, re-run this "
    "notebook in a few minutes or with a longer wait",
}


def mismatch_fix(logged: set[str], topology: str = "split") -> str:
    if logged & set(BACKEND_DETAILS):
        if topology == "gateway":
            return (
                "the load balancer found no backend to send to: see 70_drift's Gateway checks (the "
                "HTTPRoute's backendRefs to the Service and port) and the health of the backend service "
                "the Gateway's controller built; then re-run 50_verify and this notebook"
            )
        return (
            "the load balancer found no backend to send to: see 70_drift's anchor and URL map checks "
            "(a deleted anchor Ingress or a changed Service port does this) and the backend service's "
            "health in 20_backend_service; then re-run 50_verify and this notebook"
        )
    if topology == "gateway":
        return (
            "compare the Gateway's frontend validation mode and its CA ConfigMap with the params "
            "(70_drift's Gateway checks), and the certificate with 00_preflight's lint; then re-run "
            "50_verify and this notebook"
        )
    return (
        "compare the server TLS policy's mode and the trust config with 30_trust, and the certificate "
        "with 00_preflight's lint; then re-run 50_verify and this notebook"
    )


def checks(clients: Clients, params: Params, matched: pd.DataFrame, pull: Pull) -> list[Check]:
    """The cross-check's verdict. The backend's logConfig read by the wait decides how missing probes
    are judged; when the wait did not read it, it is read now, only to explain missing probes."""
    expecting = matched[matched["expected_status_details"].astype(bool)]
    missing = not expecting["found"].all()
    names = pull.names or lbnames.known_names(params, None)
    logging_config = pull.backend_logging or (
        read_backend_logging(clients, params, names) if missing else None
    )
    topology = names.topology if names else params.topology
    return probe_checks(matched, pull.waited_seconds, logging_config, pull.ended, topology)


# ---- time ---------------------------------------------------------------------------------------------


def parse_time(text: str) -> dt.datetime:
    """An RFC 3339 time (Z or offset, up to nanoseconds) as an aware UTC datetime; a time without
    an offset is taken as UTC."""
    stamp = pd.Timestamp(text)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.floor("us").to_pydatetime()  # datetime holds microseconds; Logging sends nanoseconds


def rfc3339(when: dt.datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
