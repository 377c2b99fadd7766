"""Is the frontend ready to enforce mTLS? In `ALLOW_INVALID_OR_MISSING_CLIENT_CERT` mode the load
balancer forwards every request and logs its verdict; this report reads the request logs over
`changes.report_window_seconds` and counts the requests `REJECT_INVALID` would refuse (no
certificate, or a chain that does not verify), by error, by client and by hour, so the flip passes
its gate only when that share is at most `changes.max_refused_share` (default 0: nobody).

The counts are SQL over the same relation the impact report reads (`change.seen`): pulled entries
or exported files, one implementation. A log whose entries carry no chain verdict (the documented
global load balancer format has no `jsonPayload.mtls`) cannot say who would be refused: the gate
refuses then, and says so, instead of counting those requests as verified.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mtlskit.change import state
from mtlskit.change.impact import (
    LIMIT,
    READINESS_GATE,
    Gate,
    KnownClient,
    known_clients,
    log_window,
    window_entries,
)
from mtlskit.change.seen import KEYED, client_label, fingerprint_hex, listed, relation, window_args
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.rules.logentry import NOT_PROVIDED, VALIDATION_FAILED
from mtlskit.verify.probe import PROBE_PATH

# Each request with whether REJECT_INVALID would refuse it and why (the first error the log gives; a
# missing certificate, or an unverified chain without an error, named as the load balancer would).
# The kit's own probes are left out (50_verify and every proof send a request without a certificate
# and others that must not verify): their requests carry the probe id in the URL, and the connections
# refused from the addresses they came from carry no URL at all.
JUDGED = f"""
WITH keyed AS ({KEYED}),
probes AS (SELECT *, COALESCE(url, '') LIKE '%{PROBE_PATH}%' AS is_probe FROM keyed),
probe_sources AS (SELECT DISTINCT remote_ip FROM probes WHERE is_probe AND remote_ip IS NOT NULL),
clients AS (
    SELECT * EXCLUDE (is_probe) FROM probes
    WHERE NOT is_probe
      AND NOT (outcome = 'refused' AND COALESCE(remote_ip IN (SELECT remote_ip FROM probe_sources), false))
)
SELECT *,
    COALESCE(client_cert_present = false OR client_cert_chain_verified = false, false) AS refuse,
    client_cert_chain_verified IS NULL AND client_cert_present IS DISTINCT FROM false
        AND outcome <> 'refused' AND NOT $enforcing AS no_verdict,
    COALESCE(NULLIF(split_part(client_cert_error, ',', 1), ''),
             CASE WHEN client_cert_present = false THEN '{NOT_PROVIDED}' ELSE '{VALIDATION_FAILED}' END) AS reason
FROM clients
"""

TOTALS_SQL = f"""
WITH judged AS ({JUDGED})
SELECT count(*) AS requests, count_if(refuse) AS refused, count_if(no_verdict) AS no_verdict,
       count(DISTINCT client_key) AS clients, count(DISTINCT client_key) FILTER (WHERE refuse) AS refused_clients
FROM judged
"""

BY_ERROR_SQL = f"""
WITH judged AS ({JUDGED})
SELECT reason AS error, count(*) AS requests, count(DISTINCT client_key) AS clients
FROM judged WHERE refuse
GROUP BY reason ORDER BY requests DESC, error
"""

BY_CLIENT_SQL = f"""
WITH judged AS ({JUDGED})
SELECT client_key, any_value(key_kind) AS key_kind, any_value(certificate) AS certificate,
       any_value(client_cert_sha256_fingerprint) AS fingerprint, any_value(client_cert_serial_number) AS serial,
       mode(remote_ip) AS remote_ip, count(DISTINCT remote_ip) AS source_ips,
       count(*) AS requests, mode(reason) AS error, min(ts) AS first_seen, max(ts) AS last_seen
FROM judged WHERE refuse
GROUP BY client_key ORDER BY requests DESC, client_key
"""

BY_HOUR_SQL = f"""
WITH judged AS ({JUDGED})
SELECT time_bucket(INTERVAL 1 hour, ts, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS hour,
       count(*) AS requests, count_if(refuse) AS refused,
       count(DISTINCT client_key) FILTER (WHERE refuse) AS refused_clients
FROM judged WHERE ts IS NOT NULL
GROUP BY hour ORDER BY hour
"""


@dataclass
class Readiness:
    """What `REJECT_INVALID` would refuse of the traffic in the window."""

    requests: int
    refused: int  # requests REJECT_INVALID would refuse
    clients: int
    refused_clients: int
    no_verdict: int  # requests whose entry carries no chain verdict
    by_error: pd.DataFrame  # error, requests, clients, share
    by_client: (
        pd.DataFrame
    )  # client, key_kind, certificate, remote_ip, requests, share, error, first/last seen
    by_hour: pd.DataFrame  # hour, requests, refused, refused_clients, refused_share
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    mode: str | None = None  # the live mode, when read
    notes: list[str] = field(default_factory=list)

    @property
    def refused_share(self) -> float:
        return self.refused / self.requests if self.requests else 0.0

    def gate(self, max_share: float) -> Gate:
        """Passes when at most `max_share` of the window's requests would be refused and every entry
        carries a verdict; names the clients that would be refused, busiest first."""
        names = tuple(str(n) for n in self.by_client["client"]) if len(self.by_client) else ()
        shown = listed(names)
        if self.no_verdict:
            return Gate(
                False,
                f"{self.no_verdict:,} of {self.requests:,} requests carry no chain verdict (their log entries "
                "have no jsonPayload.mtls): the logs cannot say who REJECT_INVALID would refuse",
                names,
                title=READINESS_GATE,
                fix="read the verdict the backend receives in the mTLS custom headers (X-Client-Cert-Chain-"
                "Verified) or an export that carries jsonPayload.mtls, and run the readiness report on it",
            )
        measured = (
            f"{self.refused_share:.2%} of requests ({self.refused:,} of {self.requests:,}, "
            f"{self.refused_clients:,} client(s)) would be refused under REJECT_INVALID"
        )
        if self.refused_share > max_share:
            return Gate(
                False,
                f"{measured}, above changes.max_refused_share {max_share:.2%}: {shown}",
                names,
                title=READINESS_GATE,
                fix="give those clients valid certificates (the by-client table names them with their source "
                "IP and error), or raise changes.max_refused_share if refusing them is accepted; then run "
                "the readiness report again",
            )
        warning = "" if self.requests else "no requests in the window: nothing says who the flip would refuse"
        if names:
            measured += f": {shown}"
        return Gate(
            True,
            f"{measured}, within changes.max_refused_share {max_share:.2%}",
            names,
            warning,
            READINESS_GATE,
        )

    def to_dict(self, limit: int = LIMIT) -> dict[str, Any]:
        """JSON-safe and bounded: totals, every error, the `limit` busiest refused clients, every hour."""
        return {
            "window": {"since": _iso(self.since), "until": _iso(self.until)},
            "mode": self.mode,
            "requests": self.requests,
            "refused": self.refused,
            "refused_share": round(self.refused_share, 6),
            "clients": self.clients,
            "refused_clients": self.refused_clients,
            "no_verdict": self.no_verdict,
            "by_error": _records(self.by_error),
            "by_client": _records(self.by_client.head(limit)),
            "by_client_not_listed": max(0, len(self.by_client) - limit),
            "by_hour": _records(self.by_hour),
            "notes": list(self.notes),
        }


def _iso(when: Any) -> str | None:
    return None if when is None else pd.Timestamp(when).isoformat()


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in frame.to_dict("records"):
        out.append({k: _json(v) for k, v in row.items()})
    return out


def _json(value: Any) -> Any:
    if isinstance(value, pd.Timestamp | dt.datetime):
        return _iso(value)
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def readiness(
    source: Any,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    known: list[KnownClient] | None = None,
    enforcing: bool = False,
) -> Readiness:
    """The readiness report of the entries in `source` (a DataFrame of pulled entries, a `LogScan`,
    or a DuckDB connection with `flat`) over [since, until). `known` certificates lend their names
    to the clients they match. `enforcing`: the load balancer already refuses unverified clients,
    so an entry it let through without a logged verdict is counted as verified."""
    names = {c.sha256: c.name for c in known or []}
    args = window_args(since, until) | {"enforcing": enforcing}
    with relation(source) as con:
        totals = con.execute(TOTALS_SQL, args).fetchone()
        by_error = con.execute(BY_ERROR_SQL, args).df()
        by_client = con.execute(BY_CLIENT_SQL, args).df()
        by_hour = con.execute(BY_HOUR_SQL, args).df()
    requests, refused, no_verdict, clients, refused_clients = (int(v or 0) for v in totals or (0,) * 5)
    by_error["share"] = by_error["requests"] / requests if requests else 0.0
    labels = [names.get(fingerprint_hex(r.fingerprint)) or client_label(r) for r in by_client.itertuples()]
    by_client.insert(0, "client", labels)
    by_client["share"] = by_client["requests"] / requests if requests else 0.0
    by_client = by_client[
        ["client", "key_kind", "certificate", "remote_ip", "source_ips", "requests", "share", "error"]
        + ["first_seen", "last_seen"]
    ]
    by_hour["refused_share"] = (by_hour["refused"] / by_hour["requests"]).fillna(0.0)
    for frame, cols in ((by_error, ["requests", "clients"]), (by_client, ["requests", "source_ips"])):
        for c in cols:
            frame[c] = frame[c].astype("int64")
    for c in ("requests", "refused", "refused_clients"):
        by_hour[c] = by_hour[c].astype("int64")
    return Readiness(
        requests, refused, clients, refused_clients, no_verdict, by_error, by_client, by_hour, since, until
    )


def readiness_for(
    clients: Clients, params: Params, sources: Any = None, now: dt.datetime | None = None
) -> Readiness:
    """The readiness report of the live stack over the last `changes.report_window_seconds`: entries
    pulled through the Logging API, or exported files when `sources` are given."""
    state.require_split(params)
    live = state.live_state(clients, params)
    since, until = log_window(params, now)
    known = known_clients(params)
    notes: list[str] = []
    if live.enforcing:
        notes.append(
            f"the load balancer already enforces ({live.mode}): refused requests are counted as logged"
        )
    with window_entries(clients, params, since, sources) as (entries, pulled):
        report = readiness(entries, since, until, known, live.enforcing)
    report.notes += notes + pulled
    report.mode = live.mode if live.attached else None
    return report
