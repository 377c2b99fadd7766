"""Who the request logs saw: every distinct client over a window, by certificate when the entries
name one (SHA-256 fingerprint, else serial and issuer) and by source IP otherwise.

A change's impact report and the enforcement readiness report both ask it, so both read one
DuckDB query over the relation `flat`: the table `verify.logscan.LogScan` loads from exported
files, or a view over the DataFrame of entries pulled through the Logging API
(`verify.logscan.frame_relation`). Ten million entries become a few thousand rows in SQL; nothing
here makes a Python object per entry.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Any

import duckdb
import pandas as pd

from mtlskit.config.params import is_fingerprint
from mtlskit.rules import logentry
from mtlskit.verify import logscan

# The flat columns the queries read (beside `ts`).
READ_COLUMNS = [
    "outcome",
    *logscan.CLIENT_CERT_COLUMNS,
    "remote_ip",
    "url",  # the kit's own probes carry their id in it (`verify.probe.PROBE_PATH`)
]

# How a request is tied to a client: its certificate's fingerprint, else its serial and issuer,
# else where it came from (with whether it sent a certificate, so a scanner without one and a
# client with an unnamed certificate behind the same address stay apart).
KEYED = """
    SELECT *,
        CASE WHEN client_cert_sha256_fingerprint IS NOT NULL THEN 'fingerprint'
             WHEN client_cert_serial_number IS NOT NULL THEN 'serial'
             ELSE 'source' END AS key_kind,
        CASE WHEN client_cert_present IS NULL THEN 'unknown'
             WHEN client_cert_present THEN 'present' ELSE 'none' END AS certificate,
        CASE WHEN client_cert_sha256_fingerprint IS NOT NULL THEN client_cert_sha256_fingerprint
             WHEN client_cert_serial_number IS NOT NULL
                 THEN client_cert_serial_number || ' ' || COALESCE(client_cert_issuer_dn, '')
             ELSE COALESCE(remote_ip, '?') || ' ' || CASE WHEN client_cert_present IS NULL THEN 'unknown'
                 WHEN client_cert_present THEN 'present' ELSE 'none' END END AS client_key
    FROM flat
    WHERE (CAST($since AS TIMESTAMPTZ) IS NULL OR ts >= CAST($since AS TIMESTAMPTZ))
      AND (CAST($until AS TIMESTAMPTZ) IS NULL OR ts < CAST($until AS TIMESTAMPTZ))
"""

SEEN_COLUMNS = [
    "client_key",
    "key_kind",
    "certificate",
    "fingerprint",
    "serial",
    "issuer_dn",
    "subject_dn",
    "remote_ip",
    "source_ips",
    "requests",
    "share",
    "accepted",
    "refused",
    "other",
    "verified",
    "unverified",
    "error",
    "outcome_now",
    "verified_now",
    "first_seen",
    "last_seen",
]

SEEN_SQL = f"""
WITH keyed AS ({KEYED})
SELECT
    client_key,
    any_value(key_kind) AS key_kind,
    any_value(certificate) AS certificate,
    any_value(client_cert_sha256_fingerprint) AS fingerprint,
    any_value(client_cert_serial_number) AS serial,
    any_value(client_cert_issuer_dn) AS issuer_dn,
    any_value(client_cert_subject_dn) AS subject_dn,
    mode(remote_ip) AS remote_ip,
    count(DISTINCT remote_ip) AS source_ips,
    count(*) AS requests,
    count(*) / sum(count(*)) OVER () AS share,
    count_if(outcome = 'accepted') AS accepted,
    count_if(outcome = 'refused') AS refused,
    count_if(outcome = 'other') AS other,
    count_if(client_cert_chain_verified) AS verified,
    count_if(NOT client_cert_chain_verified) AS unverified,
    mode(client_cert_error) AS error,
    arg_max(outcome, ts) AS outcome_now,
    arg_max(client_cert_chain_verified, ts) AS verified_now,
    min(ts) AS first_seen,
    max(ts) AS last_seen
FROM keyed
GROUP BY client_key
ORDER BY requests DESC, client_key
"""


@contextlib.contextmanager
def relation(source: Any) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection on which `flat` holds the entries: a `LogScan`'s own, a view over a DataFrame
    of pulled entries, or a connection that already has it."""
    if isinstance(source, pd.DataFrame):
        with logscan.frame_relation(source, READ_COLUMNS) as con:
            yield con
    elif isinstance(source, logscan.LogScan):
        yield source.con
    elif isinstance(source, duckdb.DuckDBPyConnection):
        yield source
    else:
        raise TypeError(f"entries come as a DataFrame, a LogScan or a DuckDB connection, not {type(source)}")


def window_args(since: dt.datetime | None, until: dt.datetime | None) -> dict[str, Any]:
    return {"since": _utc(since), "until": _utc(until)}


def _utc(when: dt.datetime | None) -> dt.datetime | None:
    """A window bound as an aware time; a naive one is taken as UTC, as the logs' times are."""
    if when is None:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def clients_seen(
    source: Any, since: dt.datetime | None = None, until: dt.datetime | None = None
) -> pd.DataFrame:
    """One row per distinct client in [since, until): how it is known (`key_kind`: fingerprint,
    serial or source), what it presented, its requests and share of all requests, how many were
    accepted, refused or answered by the load balancer itself, its chain verdicts, its most
    frequent error, the outcome and verdict of its latest request (`outcome_now`, `verified_now`:
    what it gets today) and when it was first and last seen. Busiest first."""
    with relation(source) as con:
        out = con.execute(SEEN_SQL, window_args(since, until)).df()
    return out.reindex(columns=SEEN_COLUMNS)


# ---- log values in one form ----------------------------------------------------------------------------


def cell_text(value: Any) -> str:
    """A cell as text: empty for NULL / NaN / NA."""
    return "" if value is None or pd.isna(value) else str(value)


def fingerprint_hex(value: Any) -> str:
    """A logged SHA-256 fingerprint (unpadded Base64, as the load balancer writes it, or hex as people
    write it) as lowercase hex; empty when there is none or it is not a SHA-256."""
    text = cell_text(value).strip()
    if is_fingerprint(text):
        return text.replace(":", "").lower()
    return logentry.fingerprint_hex(text) if text else ""


def normal_serial(value: Any) -> str:
    """A serial as lowercase hex without separators or leading zeros, so `00:8f:..` and `8F..` match."""
    text = cell_text(value)
    return (text.replace(":", "").strip().lower().lstrip("0") or "0") if text else ""


def client_label(row: Any) -> str:
    """How a report names a client of `clients_seen`'s table: its fingerprint (hex), else its serial,
    else where it connects from and whether it sent a certificate."""
    fingerprint = fingerprint_hex(row.fingerprint)
    if fingerprint:
        return fingerprint
    if cell_text(row.serial):
        return f"serial {row.serial}"
    what = {"none": "no certificate", "present": "a certificate the log does not name"}.get(
        row.certificate, ""
    )
    ips = int(row.source_ips)
    where = cell_text(row.remote_ip) + (f" (+{ips - 1} more)" if ips > 1 else "")
    return f"{where}, {what}" if what else where


def listed(names: list[str] | tuple[str, ...], n: int = 5) -> str:
    """The first `n` client names for a sentence (fingerprints shortened), the rest counted."""
    shown = "; ".join(f"{x[:16]}…" if len(x) == 64 and fingerprint_hex(x) else x for x in names[:n])
    return shown + (f" and {len(names) - n} more" if len(names) > n else "")
