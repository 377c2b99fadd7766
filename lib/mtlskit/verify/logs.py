"""The load balancer's request logs: pulled, flattened into one table, summarised, and matched with the
probes 50_verify sent.

Everything after the pull works on plain API-shaped dicts (what `entry.to_api_repr()` returns, what
`gcloud logging read --format=json` prints and what a Cloud Storage log sink writes as JSON lines), so a
log exported last week is analysed by the same code as entries pulled a second ago.

On Google, an entry becomes readable tens of seconds (sometimes minutes) after the request: the probe
cross-check therefore polls for a bounded time instead of reading once.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from google.cloud import logging as cloud_logging

from mtlskit.build import backend
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core.checks import Check
from mtlskit.core.errors import ApiError, PrerequisiteMissing
from mtlskit.rules.logentry import FORWARDED, NOT_PROVIDED, PAYLOAD_TYPE, REFUSED_PREFIX, RESOURCE_TYPE
from mtlskit.verify import logscan
from mtlskit.verify.logscan import BUCKETS, COLUMNS
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


def filter_clauses(params: Params, since: dt.datetime | None = None) -> list[str]:
    """The comparisons that select this stack's request logs, in Logging query language.

    Only comparisons joined by AND: the real API takes them on separate lines or with AND, and the
    sandbox refuses OR/NOT instead of guessing. `timestamp>=` is always set when `since` is given, so
    the client library does not append its own 24 h clause.
    """
    clauses = [
        f'resource.type="{RESOURCE_TYPE}"',
        f'resource.labels.forwarding_rule_name="{params.frontend.forwarding_rule}"',
        f'jsonPayload.@type="{PAYLOAD_TYPE}"',
    ]
    if since is not None:
        clauses.append(f'timestamp>="{rfc3339(since)}"')
    return clauses


def api_filter(params: Params, since: dt.datetime) -> str:
    return " AND ".join(filter_clauses(params, since))


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


def explorer_filter(params: Params) -> str:
    """The query to paste into the Logs Explorer: one comparison per line (lines are ANDed), no time
    clause (the Explorer's time range picker sets it)."""
    return "\n".join(filter_clauses(params))


def by_hand(params: Params) -> str:
    """The Logs Explorer query and the equivalent gcloud command, for looking without the kit
    (gcloud's --freshness works only on filters without a timestamp clause)."""
    clauses = filter_clauses(params)
    minutes = params.logging.lookback_minutes
    freshness = f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"
    one_line = " AND ".join(clauses)
    return (
        "Logs Explorer query (set the time range to the last "
        f"{minutes} minutes):\n\n" + explorer_filter(params) + "\n\nOnly refused connections: add the line\n"
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
) -> list[dict[str, Any]]:
    """This stack's request log entries since `since` (default: the lookback), oldest first.

    Read newest first and capped at `max_entries`, so a busy load balancer cannot make the pull
    unbounded while the most recent requests (the probes) are always included. The HTTP logging
    client takes no retry argument, so the whole pull is retried on transient errors: a read is
    safe to repeat.
    """
    flt = api_filter(params, since or default_since(params))

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
    **options: Any,
) -> logscan.LogScan:
    """Exported request logs (local paths, globs, `gs://` globs) loaded for analysis; use it as a
    context manager. Selected by forwarding rule (default: the params' one, when params are given)
    and start time, like the Logging filter; `.summaries()` are the tables this notebook draws,
    `.frame()` the same table as `entries_frame`. `gs://` objects are fetched through the params'
    Cloud Storage client when params are given."""
    rule = forwarding_rule or (params.frontend.forwarding_rule if params is not None else None)
    derivation = logscan.Derivation(forwarded=FORWARDED, probe_path=PROBE_PATH)
    return logscan.LogScan(sources, derivation, forwarding_rule=rule, since=since, params=params, **options)


def bigquery_sql(params: Params, since: dt.datetime | None = None, bucket: str = "1min") -> dict[str, str]:
    """Each summary of this notebook as Log Analytics SQL over the project's `_AllLogs` view, for
    teams whose request logs are in a Log Analytics bucket (or its linked BigQuery dataset)."""
    table = f"`{params.project}.global._Default._AllLogs`"
    return logscan.bigquery_sql(params.frontend.forwarding_rule, table, since, bucket, forwarded=FORWARDED)


def export_report(sources: str | Path | list[str | Path], params: Params) -> str:
    """This stack's entries in an export (files, globs, `gs://` globs), summarised as text for a
    notebook cell; without sources, how to name one."""
    if not sources:
        return (
            "No export named. Set export_glob in the parameters cell, for example "
            "'gs://BUCKET/requests/2026/05/*/*.json' (a Cloud Storage sink) or a local "
            "'gcloud logging read --format=json' file."
        )
    with scan_exported(sources if isinstance(sources, list) else [sources], params) as scan:
        s = scan.summaries()
    parts = [
        f"{s.entries:,} entries of forwarding rule {params.frontend.forwarding_rule} in {s.files} file(s)",
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
    else:
        present = False if details == NOT_PROVIDED else None
        verified = False if details.startswith(REFUSED_PREFIX) else None
        error = details if details.startswith(REFUSED_PREFIX) else None
        fingerprint = serial = None
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


def count_by_status_details(frame: pd.DataFrame) -> pd.DataFrame:
    return _counts(frame, "status_details")


def count_by_cert_error(frame: pd.DataFrame) -> pd.DataFrame:
    """Client-certificate errors (entries with no error are left out)."""
    return _counts(frame[frame["client_cert_error"].notna()], "client_cert_error")


def _counts(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    counts = frame[column].value_counts().rename_axis(column).reset_index(name="entries")
    return counts.sort_values(["entries", column], ascending=[False, True]).reset_index(drop=True)


def top_refused_certificates(frame: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The client certificates refused most often, by fingerprint and serial.

    Empty when the log carries no certificate identity (the global load balancer documents none);
    the backend's X-Client-Cert-* headers then are where a certificate is identified.
    """
    cols = ["client_cert_sha256_fingerprint", "client_cert_serial_number", "client_cert_error"]
    refused = frame[(frame["outcome"] == "refused") & frame[cols[:2]].notna().any(axis=1)]
    if refused.empty:
        return pd.DataFrame(columns=[*cols, "entries", "first_seen", "last_seen"])
    grouped = (
        refused.fillna({c: "" for c in cols})
        .groupby(cols)
        .agg(entries=("time", "size"), first_seen=("time", "min"), last_seen=("time", "max"))
        .reset_index()
    )
    return grouped.sort_values("entries", ascending=False, kind="stable").head(n).reset_index(drop=True)


def outcomes_over_time(frame: pd.DataFrame, bucket: str | None = None) -> pd.DataFrame:
    """Entries per time bucket and outcome (accepted / refused / other), the plot's data.

    The bucket defaults to the smallest round size that gives at most 60 buckets over the window.
    Quiet buckets are zeros, so the plot shows a gap in traffic as one.
    """
    outcomes = ["accepted", "refused", "other"]
    if frame.empty:
        return pd.DataFrame(columns=outcomes, index=pd.DatetimeIndex([], tz="UTC", name="time"))
    bucket = bucket or _bucket(frame)
    table = (
        frame.assign(bucket=frame["time"].dt.floor(bucket))
        .pivot_table(index="bucket", columns="outcome", values="status_details", aggfunc="size", fill_value=0)
        .reindex(columns=outcomes, fill_value=0)
    )
    full = pd.date_range(table.index.min(), table.index.max(), freq=bucket, name="time")
    return table.reindex(full, fill_value=0).rename_axis(columns=None).astype(int)


def _bucket(frame: pd.DataFrame) -> str:
    span = frame["time"].max() - frame["time"].min()
    return next((b for b in BUCKETS if span / pd.Timedelta(b) < 60), BUCKETS[-1])


def plot_outcomes(frame: pd.DataFrame, bucket: str | None = None) -> Figure:
    """Accepted and refused requests over time (stacked bars per bucket), as a Figure to show.

    Accepted = answered by the backend; refused = closed by the mTLS check (status 0, client_cert_*);
    other = answered by the load balancer itself. The figure is detached from pyplot, so an inline
    backend shows it once (as the cell's value) and nothing accumulates across calls.
    """
    import matplotlib.pyplot as plt
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.ticker import MaxNLocator

    bucket = bucket or (_bucket(frame) if not frame.empty else "1s")
    data = outcomes_over_time(frame, bucket)
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
    ax.set_xlabel("time (UTC)")
    ax.set_title("Request log entries: accepted vs refused")
    ax.legend(loc="upper left")
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
    entry exactly. A connection refused during the handshake in REJECT_INVALID never sent an HTTP
    request, so its entry has no URL; such probes are matched by time: the entry's timestamp must lie
    within [sent_at - skew, finished_at + skew]. Probes are matched in the order they were sent, and
    each entry is used at most once. Among the candidates in a probe's window, the earliest with the
    expected statusDetails is taken, else the earliest at all: other clients refused at the same
    moment (scanners without a certificate are common) do not turn a good probe into a mismatch,
    while a probe that was refused for the wrong reason still shows the reason it got.

    A probe whose expected statusDetails is empty expects no entry at all (a connection closed
    before the load balancer logs anything).
    """
    by_id: dict[str, pd.Series] = {}
    for _, row in frame[frame["probe_id"].notna()].iterrows():
        by_id.setdefault(row["probe_id"], row)  # a retried request logs twice; the first one counts
    unaddressed = frame[frame["url"].isna()]
    used: set[int] = set()
    rows = []
    for p in probes:
        entry, how = by_id.get(p.probe_id), "probe id in URL"
        if entry is None:
            entry, how = _by_time(p, unaddressed, used, skew_seconds), "time window"
        if entry is not None and how == "time window":
            used.add(int(entry.name))
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


def _by_time(
    probe: ProbeResult, unaddressed: pd.DataFrame, used: set[int], skew_seconds: float
) -> pd.Series | None:
    if not probe.expected_status_details or not probe.sent_at:
        return None
    skew = pd.Timedelta(seconds=skew_seconds)
    start = pd.Timestamp(parse_time(probe.sent_at)) - skew
    end = pd.Timestamp(parse_time(probe.finished_at or probe.sent_at)) + skew
    window = unaddressed[(unaddressed["time"] >= start) & (unaddressed["time"] <= end)]
    window = window[~window.index.isin(list(used))]
    if window.empty:
        return None
    same = window[window["status_details"] == probe.expected_status_details]
    return (same if not same.empty else window).iloc[0]


@dataclass
class Pull:
    """What one read (or the last read of a wait) returned, and how long the wait took."""

    entries: list[dict[str, Any]]
    since: dt.datetime
    waited_seconds: float = 0.0
    probes_found: int = 0
    probes_expected: int = 0

    def summary(self) -> str:
        line = f"{len(self.entries)} request log entries since {rfc3339(self.since)}"
        if self.probes_expected:
            line += (
                f"; {self.probes_found}/{self.probes_expected} probes found after {self.waited_seconds:.0f}s"
            )
        return line


def wait_for_probe_entries(
    clients: Clients,
    params: Params,
    probes: list[ProbeResult],
    timeout: float = 120.0,
    since: dt.datetime | None = None,
    on_progress: Callable[[int, int, float], None] | None = None,
    poll_seconds: float = 3.0,
) -> Pull:
    """Entries since `since`, re-read until every probe has its entry or `timeout` passes.

    Google ingests request logs with a lag of tens of seconds, so a single read right after
    50_verify would report probes as missing that are merely late. Every poll re-reads the whole
    window: late entries arrive with their original (older) timestamps. `on_progress(found, total,
    elapsed)` is called after each read. Without probes this is one read.
    """
    since = since or default_since(params, probes)
    started = time.monotonic()
    while True:
        entries = fetch_entries(clients, params, since)
        matched = match_probes(probes, entries_frame(entries))
        expecting = matched[matched["expected_status_details"].astype(bool)]
        found = int(expecting["found"].sum())
        elapsed = time.monotonic() - started
        if on_progress:
            on_progress(found, len(expecting), elapsed)
        if found == len(expecting) or elapsed >= timeout:
            return Pull(entries, since, elapsed, found, len(expecting))
        time.sleep(min(poll_seconds, max(0.0, timeout - elapsed)))


@dataclass(frozen=True)
class BackendLogging:
    """The backend service's logConfig, read when probes are missing, because logging off or a
    sample rate below 1.0 explains missing entries better than ingestion delay does."""

    backend_service: str
    enable: bool
    sample_rate: float
    problem: str = ""  # why it could not be read

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


def read_backend_logging(clients: Clients, params: Params) -> BackendLogging:
    """The logConfig of the backend service the frontend routes to (the one the Ingress made)."""
    try:
        bs = backend.locate_backend_service(clients, params)
    except (PrerequisiteMissing, ApiError) as err:
        return BackendLogging("", False, 0.0, problem=str(err).split("\n", 1)[0])
    return BackendLogging(bs.name, bs.log_enable, bs.log_sample_rate)


def probe_checks(
    matched: pd.DataFrame, waited_seconds: float, backend_logging: BackendLogging | None = None
) -> list[Check]:
    """Checks from `match_probes`: every probe found, and found with the expected statusDetails."""
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
                "set logging.enable: true and logging.sample_rate: 1.0 in the params and re-run "
                "10_ingress with apply=True (the BackendConfig sets the backend service's logConfig); "
                "if logging is on, re-run this notebook in a few minutes or with a longer wait",
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
                mismatch_fix(set(wrong["logged_status_details"].astype(str))),
            )
        )
    return checks


# What a logged statusDetails that nobody expected points at. A backend that cannot be picked is not a
# TLS problem: it is the backend service (no endpoints, often a deleted or changed anchor Ingress).
BACKEND_DETAILS = ("failed_to_pick_backend", "failed_to_connect_to_backend", "backend_timeout")


def mismatch_fix(logged: set[str]) -> str:
    if logged & set(BACKEND_DETAILS):
        return (
            "the load balancer found no backend to send to: see 70_drift's anchor and URL map checks "
            "(a deleted anchor Ingress or a changed Service port does this) and the backend service's "
            "health in 20_backend_service; then re-run 50_verify and this notebook"
        )
    return (
        "compare the server TLS policy's mode and the trust config with 30_trust, and the certificate "
        "with 00_preflight's lint; then re-run 50_verify and this notebook"
    )


def checks(clients: Clients, params: Params, matched: pd.DataFrame, pull: Pull) -> list[Check]:
    """The cross-check's verdict; the backend's logConfig is read only to explain missing probes."""
    expecting = matched[matched["expected_status_details"].astype(bool)]
    missing = not expecting["found"].all()
    logging_config = read_backend_logging(clients, params) if missing else None
    return probe_checks(matched, pull.waited_seconds, logging_config)


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
