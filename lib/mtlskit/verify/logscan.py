"""Exported request logs at volume: DuckDB reads the files, projects the handful of fields the
runbook's analysis uses, and computes the summaries in SQL, so a day of a busy load balancer never
becomes millions of Python dicts (or, unless asked for, millions of pandas rows).

Why not the Logging API: `entries:list` returns at most 1000 entries a page under a per-minute read
quota, which cannot page through a busy day. A log sink to Cloud Storage writes the same LogEntry
JSON (one entry per line, files under `LOG_ID/YYYY/MM/DD/HH:MM:SS_HH:MM:SS_S0.json`, hourly), and
`gcloud logging read --format=json` prints one JSON array; both read here, from local paths, local
globs or `gs://` globs.

`gs://` objects are listed and fetched with the official `google-cloud-storage` client into a
temporary directory, and DuckDB reads the local copies. DuckDB's own `httpfs` extension is not
used: it is downloaded at run time, which a machine without internet access (or an air-gapped
runner) cannot do.

The flat table is the one `mtlskit.verify.logs.entries_frame` builds from API-shaped dicts: same columns,
same values, and the same final typing (`tidy`), so both paths feed the same notebook cells.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fnmatch
import glob
import json
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import duckdb
import pandas as pd

from mtlskit.core.errors import KitError
from mtlskit.rules.logentry import FORWARDED, NOT_PROVIDED, PAYLOAD_TYPE, REFUSED_PREFIX, RESOURCE_TYPE

if TYPE_CHECKING:
    from google.cloud import storage

# Round bucket sizes for plots over time, smallest first.
BUCKETS = ["1s", "5s", "10s", "30s", "1min", "5min", "10min", "30min", "1h", "3h", "6h", "1D"]
OUTCOMES = ["accepted", "refused", "other"]

# What the load balancer logged of the client's certificate (jsonPayload.mtls), as flat columns.
CLIENT_CERT_COLUMNS = [
    "client_cert_present",
    "client_cert_chain_verified",
    "client_cert_error",
    "client_cert_sha256_fingerprint",
    "client_cert_serial_number",
    "client_cert_issuer_dn",
    "client_cert_subject_dn",
]
COLUMNS = [
    "time",
    "status",
    "status_details",
    "outcome",
    *CLIENT_CERT_COLUMNS,
    "remote_ip",
    "method",
    "url",
    "user_agent",
    "tls_protocol",
    "tls_cipher",
    "backend_service",
    "forwarding_rule",
    "probe_id",
    "insert_id",
]
TEXT_COLUMNS = [
    c for c in COLUMNS if c not in ("time", "status", "client_cert_present", "client_cert_chain_verified")
]
CERT_KEYS = ["client_cert_sha256_fingerprint", "client_cert_serial_number", "client_cert_error"]

# Only these fields are parsed; everything else in an entry is skipped by the JSON reader. Booleans and
# the status are read as text, because exporters write them as JSON booleans/numbers or as strings.
PROJECTION = {
    "timestamp": "VARCHAR",
    "insertId": "VARCHAR",
    "resource": "STRUCT(type VARCHAR, labels STRUCT(forwarding_rule_name VARCHAR, backend_service_name VARCHAR))",
    "httpRequest": (
        "STRUCT(status VARCHAR, requestUrl VARCHAR, requestMethod VARCHAR, userAgent VARCHAR, remoteIp VARCHAR)"
    ),
    "jsonPayload": (
        'STRUCT("@type" VARCHAR, statusDetails VARCHAR, remoteIp VARCHAR, '
        "tls STRUCT(protocol VARCHAR, cipher VARCHAR), "
        "mtls STRUCT(clientCertPresent VARCHAR, clientCertChainVerified VARCHAR, clientCertError VARCHAR, "
        "clientCertSha256Fingerprint VARCHAR, clientCertSerialNumber VARCHAR, "
        "clientCertIssuerDn VARCHAR, clientCertSubjectDn VARCHAR))"
    ),
}

Format = Literal["auto", "newline_delimited", "array"]
# DuckDB's own memory before it spills to the scan's temporary directory. With the Python process
# around it, a scan of 10 M entries (13.7 GB of JSON) peaks at about 0.85 GB at 512 MB, 0.94 GB at
# 600 MB and 2.3 GB at 2 GB (bench/logs.py --big), while 1 M entries take the same time at each.
MEMORY_LIMIT = "512MB"


class LogScanError(KitError, ValueError):
    """Exported logs that cannot be read: which file (and line), why, and what to do."""


@dataclass(frozen=True)
class Derivation:
    """What the flat table derives from an entry beyond copying fields: the statusDetails of a request
    the backend answered, and the URL path that carries a probe id."""

    forwarded: str
    probe_path: str


# ---- the final typing, shared with logs.entries_frame --------------------------------------------------


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Fixed dtypes and time order for the flat table, whichever reader built it: times as UTC
    timestamps, status as nullable integer, the two certificate flags as nullable booleans, every
    other column as text with missing values."""
    frame = frame.reindex(columns=COLUMNS)
    # One resolution whatever the input's precision (Logging writes nanoseconds, the sandbox
    # microseconds), so frames and summaries from different readers compare and concatenate.
    frame["time"] = pd.to_datetime(frame["time"], utc=True, format="ISO8601").dt.as_unit("ns")
    frame["status"] = frame["status"].astype("Int64")
    for col in ("client_cert_present", "client_cert_chain_verified"):
        frame[col] = frame[col].astype("boolean")
    for col in TEXT_COLUMNS:
        frame[col] = frame[col].astype("str")
    return frame.sort_values("time", kind="stable").reset_index(drop=True)


# ---- where the files are ------------------------------------------------------------------------------


def _has_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def local_files(pattern: str | Path) -> list[Path]:
    """The files a local path or glob names, sorted; a directory means every file under it."""
    text = str(Path(pattern).expanduser())
    if _has_glob(text):
        found = [Path(p) for p in sorted(glob.glob(text, recursive=True)) if Path(p).is_file()]
    elif Path(text).is_dir():
        found = sorted(p for p in Path(text).rglob("*") if p.is_file())
    else:
        found = [Path(text)] if Path(text).is_file() else []
    return found


def gcs_files(url: str, client: storage.Client, into: Path) -> list[Path]:
    """Download the objects a `gs://BUCKET/GLOB` names into `into`, keeping their names; sorted.

    The listing uses the glob's fixed prefix, so a sink bucket's other days are not listed. `*`
    matches across `/` (fnmatch), so `gs://b/requests/2026/05/*` takes every day of May.
    """
    bucket_name, _, pattern = url.removeprefix("gs://").partition("/")
    if not bucket_name:
        raise LogScanError(f"{url}: no bucket name; write gs://BUCKET/PATH_OR_GLOB")
    if _has_glob(pattern):
        prefix = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
        wanted = lambda name: fnmatch.fnmatchcase(name, pattern)  # noqa: E731
    else:
        prefix = pattern
        wanted = lambda name: name == pattern or pattern == "" or pattern.endswith("/")  # noqa: E731
    blobs = [
        b
        for b in client.list_blobs(bucket_name, prefix=prefix)
        if wanted(b.name) and not b.name.endswith("/")
    ]
    files = []
    home = (into / bucket_name).resolve()
    for blob in sorted(blobs, key=lambda b: b.name):
        target = (home / blob.name).resolve()
        if not target.is_relative_to(home):  # an object named ../x would be written outside the download
            raise LogScanError(f"gs://{bucket_name}/{blob.name}: an object name that leaves its folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        blob.download_to_filename(str(target))
        files.append(target)
    return files


def default_storage_client(params: Any = None) -> storage.Client:
    """The params' Cloud Storage client when params are given (the kit's client switch), else one from
    the environment: `STORAGE_EMULATOR_HOST` (anonymous) or Application Default Credentials."""
    if params is not None:
        from mtlskit.cloud import clients

        return clients.storage_client(params)  # type: ignore[attr-defined,no-any-return]
    from google.cloud import storage

    return storage.Client()


# ---- the scan -----------------------------------------------------------------------------------------


class LogScan:
    """Exported request logs of one load balancer, loaded once into a DuckDB table of flat columns.

    Use as a context manager (it owns a temporary directory for downloads and DuckDB's spill files).
    `forwarding_rule` and `since` select the entries as the Logging filter would; only entries of
    resource type `http_load_balancer` are read, since a sink bucket may hold other logs too.
    `columns` keeps only those flat columns (and `ts`), for a report that reads a few of them;
    `frame()` and `summaries()` need the whole table.
    """

    def __init__(
        self,
        sources: Sequence[str | Path] | str | Path,
        derivation: Derivation,
        *,
        forwarding_rule: str | None = None,
        since: dt.datetime | None = None,
        storage_client: storage.Client | None = None,
        params: Any = None,
        fmt: Format = "auto",
        memory_limit: str = MEMORY_LIMIT,
        columns: Sequence[str] | None = None,
    ) -> None:
        if isinstance(sources, str | Path):
            sources = [sources]
        if not sources:
            raise LogScanError("no log files given: name files, globs or gs://BUCKET/GLOB")
        unknown = sorted(set(columns or ()) - set(COLUMNS) - {"time"})
        if unknown:
            raise LogScanError(f"columns {unknown} are not columns of the flat table ({', '.join(COLUMNS)})")
        self.derivation = derivation
        self.columns = None if columns is None else [c for c in COLUMNS if c in columns and c != "probe_id"]
        self.forwarding_rule = forwarding_rule
        self.since = since
        self._tmp = Path(tempfile.mkdtemp(prefix="mtlskit-logscan-"))
        try:
            self.files = self._resolve(list(sources), storage_client, params)
            # In memory, spilling to the temporary directory past `memory_limit`: a database file
            # would write every row to disk once more (measured here: 2.4-3.9 s against 1.8-2.0 s for
            # 1 M entries).
            self.con = duckdb.connect()
            self.con.execute("SET TimeZone = 'UTC'")
            self.con.execute(f"SET memory_limit = '{memory_limit}'")
            self.con.execute(f"SET temp_directory = '{self._tmp / 'spill'}'")
            self._load(fmt)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> LogScan:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        con = getattr(self, "con", None)
        if con is not None:
            con.close()
            self.con = None  # type: ignore[assignment]
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _resolve(self, sources: list[str | Path], client: storage.Client | None, params: Any) -> list[Path]:
        files: list[Path] = []
        for source in sources:
            text = str(source)
            if text.startswith("gs://"):
                client = client or default_storage_client(params)
                found = gcs_files(text, client, self._tmp / "gcs")
                where = "no object in Cloud Storage matches it"
            else:
                found = local_files(text)
                where = "no file matches it"
            if not found:
                raise LogScanError(
                    f"{text}: {where}. Check the path (a Cloud Storage sink writes "
                    "LOG_ID/YYYY/MM/DD/HH:MM:SS_HH:MM:SS_S0.json, hourly, 2-3 hours after the requests) "
                    "or quote the glob so the shell does not expand it"
                )
            files.extend(found)
        return files

    def _load(self, fmt: Format) -> None:
        d = self.derivation
        where = [f"resource.type = '{RESOURCE_TYPE}'"]
        args: list[Any] = [[str(f) for f in self.files], PROJECTION]
        if self.forwarding_rule:
            where.append("resource.labels.forwarding_rule_name = ?")
            args.append(self.forwarding_rule)
        if self.since is not None:
            where.append("TRY_CAST(timestamp AS TIMESTAMPTZ) >= ?")
            since = self.since if self.since.tzinfo else self.since.replace(tzinfo=dt.UTC)
            args.append(since)
        # A scan for one report keeps only the columns it reads: the rest are never built (measured at
        # 1 M entries: the full table takes most of the load time and memory).
        kept = "*" if self.columns is None else ", ".join(["ts", *self.columns])
        sql = f"""
        CREATE TABLE flat AS
        SELECT {kept} FROM (
        WITH raw AS (
            SELECT
                timestamp AS time_text,
                TRY_CAST(httpRequest.status AS BIGINT) AS status,
                COALESCE(jsonPayload.statusDetails, '') AS status_details,
                jsonPayload.mtls AS mtls,
                NULLIF(httpRequest.requestUrl, '') AS url,
                httpRequest, jsonPayload, resource, insertId
            FROM read_json(?, columns = ?, format = '{fmt}', filename = false)
            WHERE {" AND ".join(where)}
        )
        SELECT
            time_text AS time,
            TRY_CAST(time_text AS TIMESTAMPTZ) AS ts,
            status,
            status_details,
            CASE WHEN status = 0 OR starts_with(status_details, '{REFUSED_PREFIX}') THEN 'refused'
                 WHEN status_details = '{d.forwarded}' THEN 'accepted'
                 ELSE 'other' END AS outcome,
            CASE WHEN mtls IS NOT NULL
                     THEN COALESCE(lower(trim(mtls.clientCertPresent)) = 'true', false)
                 WHEN status_details = '{NOT_PROVIDED}' THEN false END AS client_cert_present,
            CASE WHEN mtls IS NOT NULL
                     THEN COALESCE(lower(trim(mtls.clientCertChainVerified)) = 'true', false)
                 WHEN starts_with(status_details, '{REFUSED_PREFIX}') THEN false END
                AS client_cert_chain_verified,
            CASE WHEN mtls IS NOT NULL THEN NULLIF(mtls.clientCertError, '')
                 WHEN starts_with(status_details, '{REFUSED_PREFIX}') THEN status_details END
                AS client_cert_error,
            NULLIF(mtls.clientCertSha256Fingerprint, '') AS client_cert_sha256_fingerprint,
            NULLIF(mtls.clientCertSerialNumber, '') AS client_cert_serial_number,
            NULLIF(mtls.clientCertIssuerDn, '') AS client_cert_issuer_dn,
            NULLIF(mtls.clientCertSubjectDn, '') AS client_cert_subject_dn,
            COALESCE(NULLIF(httpRequest.remoteIp, ''), NULLIF(jsonPayload.remoteIp, '')) AS remote_ip,
            NULLIF(httpRequest.requestMethod, '') AS method,
            url,
            NULLIF(httpRequest.userAgent, '') AS user_agent,
            NULLIF(jsonPayload.tls.protocol, '') AS tls_protocol,
            NULLIF(jsonPayload.tls.cipher, '') AS tls_cipher,
            NULLIF(resource.labels.backend_service_name, '') AS backend_service,
            NULLIF(resource.labels.forwarding_rule_name, '') AS forwarding_rule,
            insertId AS insert_id
        FROM raw
        )
        """
        try:
            self.con.execute(sql, args)
        except duckdb.InvalidInputException as err:
            raise _explain(err, self.files, fmt) from err
        except duckdb.ConversionException as err:
            raise LogScanError(
                f"{', '.join(map(str, self.files[:3]))}: a field has an unexpected type ({err}); "
                "the files must hold Cloud Logging LogEntry JSON"
            ) from err

    # ---- results ------------------------------------------------------------------------------------

    def count(self) -> int:
        return count(self.con)

    def frame(self) -> pd.DataFrame:
        """Every entry as a row: the table `logs.entries_frame` builds (for the sizes a notebook shows).
        The probe id is extracted here, not at load: only the cross-check needs it."""
        probe = re.escape(self.derivation.probe_path) + r"([^/?#]+)"
        probe_id = "NULLIF(regexp_extract(COALESCE(url, ''), ?, 1), '') AS probe_id"
        cols = ", ".join(probe_id if c == "probe_id" else c for c in COLUMNS)
        return tidy(self.con.execute(f"SELECT {cols} FROM flat", [probe]).df())

    def summaries(self, bucket: str | None = None, n: int = 10, sample_rate: float = 1.0) -> Summaries:
        return summarise(self.con, len(self.files), bucket, n, sample_rate)


# ---- the summaries: one SQL implementation for files and for pulled entries ------------------------------
#
# Each reads a relation named `flat` with the columns of `COLUMNS` that a summary needs and `ts`, the
# entry's time as a TIMESTAMPTZ: the table `LogScan` loads from files, or a view over the DataFrame of
# pulled entries (`frame_summaries`). So 60_logs and `mtlskit logs FILE` draw the same tables.

SUMMARY_COLUMNS = ["status_details", "outcome", *CERT_KEYS]


def count(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT count(*) FROM flat").fetchone()[0])  # type: ignore[index]


def count_by_status_details(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return _counts(con, "status_details", "TRUE")


def count_by_cert_error(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Client-certificate errors (entries with no error are left out)."""
    return _counts(con, "client_cert_error", "client_cert_error IS NOT NULL")


def _counts(con: duckdb.DuckDBPyConnection, column: str, where: str) -> pd.DataFrame:
    out = con.execute(
        f"SELECT {column}, count(*) AS entries FROM flat WHERE {where} "
        f"GROUP BY {column} ORDER BY entries DESC, {column} ASC"
    ).df()
    out[column] = out[column].astype("str")
    out["entries"] = out["entries"].astype("int64")
    return out


def top_refused_certificates(con: duckdb.DuckDBPyConnection, n: int = 10) -> pd.DataFrame:
    """The client certificates refused most often, by fingerprint and serial (empty when the log
    carries no certificate identity, as the documented global load balancer format does not)."""
    keys = ", ".join(f"COALESCE({c}, '') AS {c}" for c in CERT_KEYS)
    out = con.execute(
        f"""
        SELECT {keys}, count(*) AS entries, min(ts) AS first_seen, max(ts) AS last_seen
        FROM flat
        WHERE outcome = 'refused'
          AND (client_cert_sha256_fingerprint IS NOT NULL OR client_cert_serial_number IS NOT NULL)
        GROUP BY ALL
        ORDER BY entries DESC, {", ".join(CERT_KEYS)}
        LIMIT {int(n)}
        """
    ).df()
    for c in CERT_KEYS:
        out[c] = out[c].astype("str")
    out["entries"] = out["entries"].astype("int64")
    for c in ("first_seen", "last_seen"):
        out[c] = pd.to_datetime(out[c], utc=True).dt.as_unit("ns")
    return out


def span(con: duckdb.DuckDBPyConnection) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    first, last = con.execute("SELECT min(ts), max(ts) FROM flat").fetchone()  # type: ignore[misc]
    return None if first is None else (pd.Timestamp(first), pd.Timestamp(last))


def outcomes_over_time(con: duckdb.DuckDBPyConnection, bucket: str | None = None) -> pd.DataFrame:
    """Entries per time bucket and outcome, quiet buckets as zeros (the plot's data); the bucket
    defaults to the smallest round size giving at most 60 buckets over the window."""
    if bucket is not None:
        bucket_size(bucket)  # refused even when no entry is there to bucket
    window = span(con)
    if window is None:
        return pd.DataFrame(columns=OUTCOMES, index=pd.DatetimeIndex([], tz="UTC", name="time"), dtype=int)
    bucket = bucket or choose_bucket(window[1] - window[0])
    micros = int(bucket_size(bucket) / pd.Timedelta("1us"))
    counts = con.execute(
        """
        SELECT time_bucket(to_microseconds(?), ts, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS bucket,
               outcome, count(*) AS entries
        FROM flat WHERE ts IS NOT NULL GROUP BY ALL
        """,
        [micros],
    ).df()
    table = counts.pivot_table(
        index="bucket", columns="outcome", values="entries", aggfunc="sum", fill_value=0
    )
    table = table.reindex(columns=OUTCOMES, fill_value=0)
    table.index = pd.DatetimeIndex(table.index).tz_convert("UTC").as_unit("ns")
    full = pd.date_range(table.index.min(), table.index.max(), freq=bucket, name="time")
    return table.reindex(full, fill_value=0).rename_axis(columns=None).astype(int)


def summarise(
    con: duckdb.DuckDBPyConnection,
    files: int = 0,
    bucket: str | None = None,
    n: int = 10,
    sample_rate: float = 1.0,
) -> Summaries:
    """Every summary of the `flat` relation on `con`; counts of a sampled log carry their estimate."""
    window = span(con)
    chosen = bucket or (choose_bucket(window[1] - window[0]) if window else BUCKETS[4])
    return Summaries(
        entries=count(con),
        files=files,
        by_status_details=estimated(count_by_status_details(con), sample_rate),
        by_cert_error=estimated(count_by_cert_error(con), sample_rate),
        over_time=estimated(outcomes_over_time(con, chosen), sample_rate),
        top_refused=estimated(top_refused_certificates(con, n), sample_rate),
        bucket=chosen,
        sample_rate=sample_rate,
    )


def frame_summaries(
    frame: pd.DataFrame, bucket: str | None = None, n: int = 10, sample_rate: float = 1.0
) -> Summaries:
    """The summaries of a DataFrame of entries (what `logs.entries_frame` builds), by the SQL above:
    DuckDB reads the frame in place, as a view named `flat`."""
    if bucket is not None:
        bucket_size(bucket)
    with frame_relation(frame, SUMMARY_COLUMNS) as con:
        return summarise(con, 0, bucket, n, sample_rate)


@contextlib.contextmanager
def frame_relation(frame: pd.DataFrame, columns: Sequence[str]) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection on which `flat` is a view over a frame of entries (what
    `logs.entries_frame` builds): its `time` as `ts` and the named columns, read in place. So a
    query written for `LogScan`'s table runs unchanged over pulled entries."""
    view = pd.DataFrame({"ts": frame["time"], **{c: frame[c] for c in columns}})
    for c in columns:
        if c in TEXT_COLUMNS:  # missing text as NULL, whatever the frame's string dtype holds
            view[c] = view[c].astype(object).where(view[c].notna(), None)
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.register("flat", view)
        yield con


def estimated(table: pd.DataFrame, sample_rate: float) -> pd.DataFrame:
    """A count table of a sampled log with the counts scaled by 1/rate beside them: an `estimated`
    column, or for the outcomes over time `<outcome>_estimated` columns. Unchanged at rate 1.0 (and
    at 0, which estimates nothing)."""
    if not 0.0 < sample_rate < 1.0:
        return table
    out = table.copy()
    if "entries" in out.columns:
        out.insert(out.columns.get_loc("entries") + 1, "estimated", _scale(out["entries"], sample_rate))
    else:
        for c in OUTCOMES:
            out[f"{c}_estimated"] = _scale(out[c], sample_rate)
    return out


def _scale(counts: pd.Series, sample_rate: float) -> pd.Series:
    return (counts / sample_rate).round().astype("int64")


@dataclass
class Summaries:
    """What 60_logs draws from a log, computed without a row per entry."""

    entries: int
    files: int
    by_status_details: pd.DataFrame
    by_cert_error: pd.DataFrame
    over_time: pd.DataFrame
    top_refused: pd.DataFrame
    bucket: str  # the time bucket of over_time, so its SQL groups the same way
    sample_rate: float = 1.0  # the share of requests the log holds

    @property
    def sampled(self) -> bool:
        return 0.0 < self.sample_rate < 1.0

    @property
    def scale(self) -> str:
        """The sampling in a few words, for a plot's title; empty for a complete log."""
        return f"sampled at {self.sample_rate:g}: counts ×{1 / self.sample_rate:g}" if self.sampled else ""

    def note(self) -> str:
        """What a reader of the tables must know about their counts; empty for a complete log."""
        if not self.sampled:
            return ""
        return (
            f"{self.scale} in the estimated columns (an estimate of all requests; the entries "
            "columns count what was logged)"
        )


def bucket_size(bucket: str) -> pd.Timedelta:
    """A time bucket a person typed, refused in words: Log Analytics buckets by whole seconds, so less
    than a second (or nothing) cannot be summarised the same way in both places."""
    try:
        size = pd.Timedelta(bucket)
    except ValueError:
        size = None
    if size is None or pd.isna(size) or size < pd.Timedelta("1s"):
        raise LogScanError(
            f"time bucket {bucket!r} is not a duration of at least one second; write one like 30s, 1min, 1h"
        )
    return size


def choose_bucket(span: pd.Timedelta) -> str:
    return next((b for b in BUCKETS if span / pd.Timedelta(b) < 60), BUCKETS[-1])


def _explain(err: duckdb.Error, files: Iterable[Path], fmt: Format) -> LogScanError:
    """DuckDB's parse error as a sentence naming the file and line, found again by Python (only on
    this error path) because DuckDB's line count is approximate."""
    text = str(err)
    named = re.search(r'file "([^"]+)"', text)
    path = Path(named.group(1)) if named else None
    if path is not None and fmt != "array" and not _is_array(path):
        hint = re.search(r"line (\d+)", text)
        line_no, line = _first_bad_line(path, int(hint.group(1)) if hint else None)
        if line_no:
            return LogScanError(
                f"{path}, line {line_no}: not a JSON log entry ({line[:80]!r}). Each line of a sink "
                "export is one LogEntry; remove or repair that line (a truncated download ends "
                "this way: fetch the file again)"
            )
    where = str(path) if path else ", ".join(str(f) for f in files)
    return LogScanError(
        f"{where}: cannot read as Cloud Logging JSON ({text.splitlines()[0]}). Expected JSON lines (a "
        "Cloud Storage sink) or one JSON array (gcloud logging read --format=json)"
    )


def _is_array(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(64).lstrip().startswith(b"[")


def _first_bad_line(path: Path, hint: int | None) -> tuple[int, str]:
    with path.open(encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if hint is not None and number < hint - 1:
                continue
            if not line.strip():
                continue
            try:
                json.loads(line)
            except ValueError:
                return number, line.rstrip("\n")
    return 0, ""


# ---- the same summaries in Log Analytics (BigQuery) ----------------------------------------------------

DEFAULT_TABLE = "`PROJECT_ID.global._Default._AllLogs`"


def bigquery_sql(
    forwarding_rule: str | None,
    table: str = DEFAULT_TABLE,
    since: dt.datetime | None = None,
    bucket: str = "1min",
    n: int = 10,
    forwarded: str = FORWARDED,
) -> dict[str, str]:
    """For each summary, the GoogleSQL to run in Log Analytics (or BigQuery on the linked dataset)
    over the `_AllLogs` view: `json_payload` and `resource.labels` are JSON (read with JSON_VALUE),
    `http_request` a record with snake_case fields. Without `since` there is no time clause, so the
    Log Analytics time-range picker sets the window; with it, the WHERE clause does."""
    where = [f"resource.type = '{RESOURCE_TYPE}'"]
    if forwarding_rule:  # without one, every load balancer's entries, as the summaries above
        where.append(f"JSON_VALUE(resource.labels.forwarding_rule_name) = '{forwarding_rule}'")
    where.append(f"JSON_VALUE(json_payload['@type']) = '{PAYLOAD_TYPE}'")
    if since is not None:
        stamp = (since if since.tzinfo else since.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
        where.append(f"timestamp >= TIMESTAMP '{stamp.strftime('%Y-%m-%d %H:%M:%S.%f')}+00'")
    details = "COALESCE(JSON_VALUE(json_payload.statusDetails), '')"
    refused = f"(http_request.status = 0 OR STARTS_WITH({details}, '{REFUSED_PREFIX}'))"
    error = (
        "CASE WHEN json_payload.mtls IS NOT NULL "
        "THEN NULLIF(JSON_VALUE(json_payload.mtls.clientCertError), '') "
        f"WHEN STARTS_WITH({details}, '{REFUSED_PREFIX}') THEN {details} END"
    )
    outcome = (
        f"CASE WHEN {refused} THEN 'refused' WHEN {details} = '{forwarded}' THEN 'accepted' ELSE 'other' END"
    )
    fingerprint = "NULLIF(JSON_VALUE(json_payload.mtls.clientCertSha256Fingerprint), '')"
    serial = "NULLIF(JSON_VALUE(json_payload.mtls.clientCertSerialNumber), '')"
    seconds = int(bucket_size(bucket).total_seconds())
    base = f"FROM {table}\nWHERE " + "\n  AND ".join(where)
    return {
        "by_status_details": (
            f"SELECT {details} AS status_details, COUNT(*) AS entries\n{base}\n"
            "GROUP BY status_details\nORDER BY entries DESC, status_details"
        ),
        "by_cert_error": (
            f"SELECT client_cert_error, COUNT(*) AS entries\nFROM (\n  SELECT {error} AS client_cert_error\n"
            f"  {base.replace(chr(10), chr(10) + '  ')}\n)\nWHERE client_cert_error IS NOT NULL\n"
            "GROUP BY client_cert_error\nORDER BY entries DESC, client_cert_error"
        ),
        "over_time": (
            f"SELECT TIMESTAMP_SECONDS(DIV(UNIX_SECONDS(timestamp), {seconds}) * {seconds}) AS time,\n"
            f"  {outcome} AS outcome,\n  COUNT(*) AS entries\n{base}\nGROUP BY time, outcome\nORDER BY time, outcome"
        ),
        "top_refused": (
            "SELECT COALESCE(fingerprint, '') AS client_cert_sha256_fingerprint,\n"
            "  COALESCE(serial, '') AS client_cert_serial_number,\n"
            "  COALESCE(error, '') AS client_cert_error,\n"
            "  COUNT(*) AS entries, MIN(timestamp) AS first_seen, MAX(timestamp) AS last_seen\n"
            f"FROM (\n  SELECT timestamp, {fingerprint} AS fingerprint, {serial} AS serial,\n"
            f"    {error} AS error, {refused} AS refused\n"
            f"  {base.replace(chr(10), chr(10) + '  ')}\n)\n"
            "WHERE refused AND (fingerprint IS NOT NULL OR serial IS NOT NULL)\n"
            "GROUP BY 1, 2, 3\nORDER BY entries DESC, 1, 2, 3\n"
            f"LIMIT {int(n)}"
        ),
    }
