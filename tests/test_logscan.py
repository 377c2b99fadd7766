"""Exported request logs through DuckDB: the same table and summaries as the pandas path on the same
entries, both export formats, globs, clear errors, the Log Analytics SQL run over an `_AllLogs`-shaped
table, the CLI, and `gs://` against the sandbox's Cloud Storage."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from click.testing import CliRunner
from matplotlib.figure import Figure

from mtlskit import cli
from mtlskit.config.params import Params
from mtlskit.verify import logs, logscan, synthetic
from mtlskit.verify.probe import PROBE_PATH

T0 = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)


def edge_entries() -> list[dict[str, Any]]:
    """Entries that take the less travelled paths of the flattening: the documented format without
    `mtls`, booleans as strings, a status as a string, nanosecond times, a probe URL, no statusDetails,
    an empty `mtls`, and times out of order."""
    base = synthetic.entries(4, seed=11)
    no_mtls, strings, probe, empty = (json.loads(json.dumps(e)) for e in base)
    del no_mtls["jsonPayload"]["mtls"]
    no_mtls["timestamp"] = "2026-05-01T23:59:59.123456789Z"
    strings["jsonPayload"]["mtls"]["clientCertPresent"] = "True"
    strings["jsonPayload"]["mtls"]["clientCertChainVerified"] = "false"
    strings["httpRequest"]["status"] = "200"
    probe["httpRequest"] = {"status": 200, "requestUrl": f"https://h{PROBE_PATH}abc123?x=1", "remoteIp": ""}
    probe["timestamp"] = "2026-04-30T23:00:00Z"
    del empty["jsonPayload"]["statusDetails"]
    empty["jsonPayload"]["mtls"] = {}
    return [no_mtls, strings, probe, empty]


@pytest.fixture(scope="module")
def entries() -> list[dict[str, Any]]:
    return synthetic.entries(1500, seed=10) + edge_entries()


def write_lines(path: Path, entries: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return path


def scan(sources: Any, **kw: Any) -> logscan.LogScan:
    return logs.scan_exported(sources, **kw)


def assert_same_summaries(a: logscan.Summaries, b: logscan.Summaries) -> None:
    assert (a.entries, a.bucket, a.sample_rate, a.note()) == (b.entries, b.bucket, b.sample_rate, b.note())
    for table in ("by_status_details", "by_cert_error", "over_time", "top_refused"):
        pd.testing.assert_frame_equal(getattr(a, table), getattr(b, table), obj=table)


def test_pulled_entries_and_exported_files_give_the_same_table_and_summaries(
    tmp_path: Path, entries: list[dict[str, Any]]
) -> None:
    """60_logs (a DataFrame of pulled entries) and `mtlskit logs FILE` (files) run the same SQL; the
    flattening differs (Python for API dicts, SQL for files) and must give the same rows."""
    expected = logs.entries_frame(entries)
    with scan(write_lines(tmp_path / "requests.json", entries)) as s:
        pd.testing.assert_frame_equal(s.frame(), expected)
        assert s.count() == len(entries)
        for bucket, n, rate in ((None, 10, 1.0), ("1h", 5, 1.0), ("30min", 3, 0.25)):
            from_files = s.summaries(bucket, n, rate)
            from_frame = logs.summaries(expected, rate, bucket, n)
            assert_same_summaries(from_files, dataclasses.replace(from_frame, files=from_files.files))
    top = from_frame.top_refused
    assert len(from_frame.by_cert_error) > 1 and len(top) == 3, "the tables compared are not empty"
    assert list(top.columns) == [*logscan.CERT_KEYS, "entries", "estimated", "first_seen", "last_seen"]
    assert expected["probe_id"].notna().sum() == 1 and "" in set(expected["status_details"])


def test_a_sampled_log_shows_estimates_beside_its_counts(entries: list[dict[str, Any]]) -> None:
    frame = logs.entries_frame(entries)
    full, half = logs.summaries(frame), logs.summaries(frame, 0.5, "1h")
    assert full.note() == "" and "estimated" not in full.by_status_details.columns
    assert half.note().startswith("sampled at 0.5: counts ×2")
    for table in (half.by_status_details, half.by_cert_error, half.top_refused):
        assert (table["estimated"] == table["entries"] * 2).all()
    over = half.over_time
    assert (over["refused_estimated"] == over["refused"] * 2).all() and over["refused"].sum() > 0
    third = logs.summaries(frame, 1 / 3).by_status_details
    assert (third["estimated"] == (third["entries"] * 3)).all()
    assert isinstance(logs.plot_outcomes(half), Figure)
    assert "estimated" in logs.plot_outcomes(half).axes[0].get_ylabel()


def test_log_scan_error_is_a_kit_error_and_a_value_error() -> None:
    from mtlskit.core.errors import KitError

    assert issubclass(logscan.LogScanError, KitError) and issubclass(logscan.LogScanError, ValueError)


def test_json_array_glob_and_directory_read_like_json_lines(
    tmp_path: Path, entries: list[dict[str, Any]]
) -> None:
    expected = logs.entries_frame(entries)
    day = tmp_path / "requests" / "2026" / "05" / "01"
    day.mkdir(parents=True)
    write_lines(day / "00:00:00_00:59:59_S0.json", entries[:700])
    write_lines(day / "01:00:00_01:59:59_S0.json", entries[700:])
    (tmp_path / "gcloud.json").write_text(json.dumps(entries, indent=1))
    for source in (str(tmp_path / "requests/2026/*/*/*.json"), day, tmp_path / "gcloud.json"):
        with scan(source) as s:
            pd.testing.assert_frame_equal(s.frame(), expected)
    with scan(
        [day / "00:00:00_00:59:59_S0.json", day / "01:00:00_01:59:59_S0.json"], fmt="newline_delimited"
    ) as s:
        assert len(s.files) == 2 and s.count() == len(entries)


def test_forwarding_rule_since_and_resource_type_select_entries(tmp_path: Path) -> None:
    ours = synthetic.entries(300, seed=12)
    theirs = synthetic.entries(50, seed=13, shape=synthetic.Shape(forwarding_rule="other-fr"))
    other_resource = json.loads(json.dumps(ours[0])) | {"resource": {"type": "gce_instance", "labels": {}}}
    path = write_lines(tmp_path / "mixed.json", ours + theirs + [other_resource])
    with scan(path) as s:
        assert s.count() == 350  # every load balancer entry, no VM log
    with scan(path, forwarding_rule="mtls-fr") as s:
        assert s.count() == 300
    since = T0 + dt.timedelta(hours=12)
    later = [e for e in ours if logs.parse_time(e["timestamp"]) >= since]
    with scan(path, forwarding_rule="mtls-fr", since=since) as s:
        assert 100 < s.count() == len(later) < 200
        pd.testing.assert_frame_equal(s.frame(), logs.entries_frame(later))


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    good = [json.dumps(e) for e in synthetic.entries(3, seed=14)]
    path = tmp_path / "broken.json"
    path.write_text(
        good[0] + "\n" + good[1] + "\n" + '{"timestamp": "2026-05-01T00:00:00Z", oops\n' + good[2] + "\n"
    )
    with pytest.raises(logscan.LogScanError, match=r"broken\.json, line 3: not a JSON log entry"):
        scan(path).close()


def test_nothing_matching_is_an_error_naming_the_pattern(tmp_path: Path) -> None:
    pattern = str(tmp_path / "requests" / "*" / "*.json")
    with pytest.raises(logscan.LogScanError, match=r"requests/\*/\*\.json: no file matches it.*S0\.json"):
        scan(pattern)
    with pytest.raises(logscan.LogScanError, match="no log files given"):
        scan([])


def bigquery_dialect(con: duckdb.DuckDBPyConnection) -> None:
    """The GoogleSQL functions the generated SQL uses, defined in DuckDB with BigQuery's meaning."""
    con.execute("CREATE MACRO JSON_VALUE(x) AS CAST(x AS VARCHAR)")
    con.execute("CREATE MACRO UNIX_SECONDS(t) AS CAST(floor(epoch(t)) AS BIGINT)")
    con.execute("CREATE MACRO TIMESTAMP_SECONDS(s) AS to_timestamp(s)")
    con.execute("CREATE MACRO DIV(a, b) AS a // b")


def test_log_analytics_sql_gives_the_same_summaries(tmp_path: Path, entries: list[dict[str, Any]]) -> None:
    """The SQL runs unchanged (but for the table name) over a DuckDB table shaped like `_AllLogs`:
    LogEntry fields in snake_case, `http_request` a record, the JSON columns as structs."""
    path = write_lines(tmp_path / "requests.json", entries)
    since = T0 + dt.timedelta(hours=2)
    sql = logscan.bigquery_sql("mtls-fr", table="all_logs", since=since, bucket="1h", n=5)
    assert set(sql) == {"by_status_details", "by_cert_error", "over_time", "top_refused"}
    for text in sql.values():
        assert "JSON_VALUE(resource.labels.forwarding_rule_name) = 'mtls-fr'" in text
        assert (
            "resource.type = 'http_load_balancer'" in text
            and "timestamp >= TIMESTAMP '2026-05-01 02:00:00" in text
        )
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    bigquery_dialect(con)
    con.execute(
        """CREATE TABLE all_logs AS SELECT
             TRY_CAST(timestamp AS TIMESTAMPTZ) AS timestamp, resource,
             {'status': TRY_CAST(httpRequest.status AS BIGINT), 'request_url': httpRequest.requestUrl} AS http_request,
             jsonPayload AS json_payload
           FROM read_json(?, format = 'newline_delimited')""",
        [str(path)],
    )
    with scan(path, forwarding_rule="mtls-fr", since=since) as s:
        ours = s.summaries(bucket="1h", n=5)
    got = {name: con.execute(text).df() for name, text in sql.items()}
    for name, table in (("by_status_details", ours.by_status_details), ("by_cert_error", ours.by_cert_error)):
        assert got[name].astype({table.columns[0]: "str"}).equals(table), name
    top = got["top_refused"].astype({c: "str" for c in logscan.CERT_KEYS})
    pd.testing.assert_frame_equal(top, ours.top_refused, check_dtype=False)
    over = got["over_time"].pivot_table(index="time", columns="outcome", values="entries", fill_value=0)
    assert over.reindex(columns=logscan.OUTCOMES, fill_value=0).to_numpy().tolist() == (
        ours.over_time.loc[over.index.min() :].to_numpy().tolist()
    )


def test_cli_prints_the_summaries_of_a_synthetic_export(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "requests.json"
    made = runner.invoke(cli.main, ["logs", "--synthetic", "800", "--out", str(out), "--seed", "3"])
    assert made.exit_code == 0 and "wrote 800 synthetic" in made.output
    frame = logs.entries_frame(synthetic.entries(800, seed=3))
    not_provided = int((frame["status_details"] == "client_cert_not_provided").sum())
    res = runner.invoke(cli.main, ["logs", str(tmp_path / "*.json"), "--forwarding-rule", "mtls-fr", "--sql"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("800 request log entries in 1 file (forwarding rule mtls-fr)")
    line = next(x for x in res.output.splitlines() if x.strip().startswith("client_cert_not_provided"))
    assert line.split() == ["client_cert_not_provided", str(not_provided)]
    for title in (
        "by statusDetails",
        "by client-certificate error",
        "over time",
        "most refused certificates",
    ):
        assert title in res.output
    assert res.output.count("-- Log Analytics:") == 4
    missing = runner.invoke(cli.main, ["logs", str(tmp_path / "nothing-*.json")])
    assert missing.exit_code == 1 and "no file matches it" in missing.output
    bad_since = runner.invoke(cli.main, ["logs", str(out), "--since", "yesterday"])
    assert bad_since.exit_code == 2 and "--since" in bad_since.output
    for bucket in ("abc", "0s", "500ms"):
        bad_bucket = runner.invoke(cli.main, ["logs", str(out), "--bucket", bucket])
        assert bad_bucket.exit_code == 1, bad_bucket.output
        assert f"time bucket {bucket!r} is not a duration of at least one second" in bad_bucket.output
    bad_top = runner.invoke(cli.main, ["logs", str(out), "--top", "0"])
    assert bad_top.exit_code == 2 and "--top" in bad_top.output


def test_cli_says_when_files_hold_no_request_log_and_its_sql_groups_like_its_table(tmp_path: Path) -> None:
    runner = CliRunner()
    other = tmp_path / "other.json"
    other.write_text('{"a": 1}\n')
    res = runner.invoke(cli.main, ["logs", str(other)])
    assert res.exit_code == 0 and res.output.startswith("0 request log entries")
    assert "no load balancer request log entry (resource type http_load_balancer)" in res.stderr

    out = tmp_path / "requests.json"
    runner.invoke(cli.main, ["logs", "--synthetic", "300", "--out", str(out)])
    for args, seconds in ((["--bucket", "1h"], 3600), ([], None)):
        res = runner.invoke(cli.main, ["logs", str(out), "--sql", *args])
        assert res.exit_code == 0, res.output
        with logs.scan_exported(out) as scan:
            chosen = scan.summaries(args[1] if args else None).bucket
        expected = seconds or int(pd.Timedelta(chosen).total_seconds())
        assert f"DIV(UNIX_SECONDS(timestamp), {expected})" in res.output
        # no forwarding rule asked for: the SQL covers every one, as the tables do
        assert "forwarding_rule_name" not in res.output


def test_a_gs_object_named_out_of_its_folder_is_refused_not_written(tmp_path: Path) -> None:
    class Blob:
        def __init__(self, name: str) -> None:
            self.name = name

        def download_to_filename(self, filename: str) -> None:
            Path(filename).write_text("{}\n")

    class Client:
        def list_blobs(self, bucket: str, prefix: str) -> list[Blob]:
            return [Blob("requests/../../../escaped.json")]

    into = tmp_path / "downloads"
    with pytest.raises(logscan.LogScanError, match="an object name that leaves its folder"):
        logscan.gcs_files("gs://sink/requests/*", Client(), into)  # type: ignore[arg-type]
    assert not (tmp_path / "escaped.json").exists()


@pytest.mark.e2e
def test_gs_glob_reads_a_sink_layout_from_sandbox_storage(params: Params, tmp_path: Path) -> None:
    from mtlskit.cloud import clients

    client = clients.storage_client(params)
    name = f"{params.project}-mtlskit"
    bucket = client.lookup_bucket(name) or client.create_bucket(name)
    entries = synthetic.entries(400, seed=15)
    for hour, part in (("00:00:00_00:59:59_S0", entries[:150]), ("01:00:00_01:59:59_S0", entries[150:])):
        blob = bucket.blob(f"logscan-test/requests/2026/05/01/{hour}.json")
        blob.upload_from_string("".join(json.dumps(e) + "\n" for e in part))
    bucket.blob("logscan-test/other/2026/05/01/00:00:00_00:59:59_S0.json").upload_from_string("not json\n")
    with scan(f"gs://{name}/logscan-test/requests/2026/05/*/*.json", params=params) as s:
        assert len(s.files) == 2
        pd.testing.assert_frame_equal(s.frame(), logs.entries_frame(entries))
    with pytest.raises(logscan.LogScanError, match="no object in Cloud Storage matches it"):
        scan(f"gs://{name}/logscan-test/requests/2027/*", params=params)
