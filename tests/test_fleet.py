"""`mtlskit verify`: the environment list, the Indexed Job's choice, the worst exit code and the bounded
pool with stand-in children (fast); then four environments built on one sandbox and verified in
parallel by the real command, a hanging notebook, and a gs:// output (e2e)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import psutil
import pytest
import yaml
from click.testing import CliRunner

from mtlskit.cli import main
from mtlskit.config import params as params_mod
from mtlskit.config import paths
from mtlskit.runner import fleet
from mtlskit.runner.fleet import Environment, FleetError
from mtlskit.runner.results import EXIT_INTERRUPTED
from tests.conftest import free_port, stand_in_notebook

# ---------------------------------------------------------------- the list of environments


SANDBOX_PARAMS = (paths.repo_root() / "params" / "sandbox.yaml").read_text()


def _touch(path: Path, text: str = SANDBOX_PARAMS) -> Path:
    """A params file that loads (the default sandbox's, whose demo PKI is generated on first use)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_directory_stands_for_its_yaml_files_by_name_and_files_keep_their_order(tmp_path: Path) -> None:
    d = tmp_path / "envs"
    for name in ("b.yml", "a.yaml", "c.yaml", "notes.txt"):
        _touch(d / name)
    (d / "sub.yaml").mkdir()  # a directory that looks like a params file is not one
    z = _touch(tmp_path / "z.yaml")
    found = fleet.params_files([str(z), str(d)])
    assert [f.name for f in found] == ["z.yaml", "a.yaml", "b.yml", "c.yaml"]


def test_unusable_lists_are_refused_naming_what_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FleetError, match="empty: the directory holds no"):
        fleet.params_files([str(tmp_path / "empty")])
    with pytest.raises(FleetError, match="missing.yaml: no such params file"):
        fleet.params_files([str(tmp_path / "missing.yaml")])
    one, two = _touch(tmp_path / "x" / "prod.yaml"), _touch(tmp_path / "y" / "prod.yaml")
    with pytest.raises(FleetError, match="would both write the folder 'prod'"):
        fleet.environments([one, two])


@pytest.mark.parametrize(
    ("index", "message"),
    [
        (None, "JOB_COMPLETION_INDEX is not set"),
        ("  ", "JOB_COMPLETION_INDEX is not set"),
        ("one", "JOB_COMPLETION_INDEX='one' is not a whole number"),
        ("3", r"JOB_COMPLETION_INDEX=3 is outside the 3 params file\(s\) given \(0-2\)"),
        ("-1", "JOB_COMPLETION_INDEX=-1 is outside"),
    ],
)
def test_a_bad_completion_index_names_the_index_and_the_list(
    tmp_path: Path, index: str | None, message: str
) -> None:
    files = [_touch(tmp_path / f"{n}.yaml") for n in ("a", "b", "c")]
    with pytest.raises(FleetError, match=message) as err:
        fleet.indexed_environment(files, index)
    assert "0: a.yaml, 1: b.yaml, 2: c.yaml" in str(err.value)


def test_the_completion_index_picks_that_params_file(tmp_path: Path) -> None:
    files = [_touch(tmp_path / f"{n}.yaml") for n in ("a", "b", "c")]
    assert fleet.indexed_environment(files, "1") == Environment("b", files[1])


def test_verify_indexed_exits_3_on_a_bad_index_before_running_anything(tmp_path: Path) -> None:
    d = tmp_path / "envs"
    _touch(d / "a.yaml")
    _touch(d / "b.yaml")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["verify", "--indexed", str(d), "--out", str(out)], env={"JOB_COMPLETION_INDEX": "2"}
    )
    assert result.exit_code == 3, result.output
    assert "JOB_COMPLETION_INDEX=2 is outside the 2 params file(s) given" in result.stderr
    assert "0: a.yaml, 1: b.yaml" in result.stderr
    assert not out.exists()


def test_verify_refuses_a_gs_output_without_a_bucket(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["verify", str(_touch(tmp_path / "a.yaml")), "--out", "gs:///runs"])
    assert result.exit_code == 3, result.output
    assert "--out gs:///runs: name a bucket, as in gs://BUCKET/PREFIX" in result.stderr


def test_verify_indexed_runs_the_file_at_the_index_and_exits_with_its_code(tmp_path: Path) -> None:
    """Index 1 is an invalid params file: refused with 3 before any kernel starts, and only it ran."""
    d = tmp_path / "envs"
    _touch(d / "a.yaml")
    _touch(d / "b.yaml", SANDBOX_PARAMS.replace("ssl_profile: MODERN", "ssl_profile: NOPE"))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["verify", "--indexed", str(d), "--out", str(out), "--stamp", "job-1"],
        env={"JOB_COMPLETION_INDEX": "1"},
    )
    assert result.exit_code == 3, result.output
    assert "JOB_COMPLETION_INDEX=1: verifying b" in result.stdout
    assert "invalid params (1 problem): frontend.ssl_profile" in result.stdout
    assert [p.name for p in (out / "job-1").iterdir()] == ["b"]
    assert "ssl_profile" in (out / "job-1" / "b" / fleet.LOG_NAME).read_text()


@pytest.mark.parametrize(
    ("codes", "worst"),
    [([], 0), ([0, 0], 0), ([0, 1, 0], 1), ([1, 2, 1], 2), ([2, 3, 1], 3), ([0, -9], 2), ([0, 137], 2)],
)
def test_worst_exit_code_orders_bad_params_over_crash_over_failed_check(codes: list[int], worst: int) -> None:
    assert fleet.worst_exit_code(codes) == worst


# ---------------------------------------------------------------- a row from a run folder


def _summary(folder: Path, exit_code: int, checks: list[tuple[str, str, str]], crashed: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    notebooks = sorted({nb for nb, _, _ in checks} | ({crashed} if crashed else set()))
    body = {
        "exit_code": exit_code,
        "notebooks": [
            {"notebook": nb, "status": "crashed" if nb == crashed else "ok", "error": "timed out after 5 s"}
            for nb in notebooks
        ],
        "checks": [{"notebook": nb, "check": c, "status": s} for nb, c, s in checks],
    }
    (folder / "summary.json").write_text(json.dumps(body))
    (folder / "report.html").write_text("<html></html>")


def test_a_row_counts_the_checks_and_names_the_first_failure_in_run_order(tmp_path: Path) -> None:
    env = Environment("e", tmp_path / "e.yaml")
    checks = [("50_verify", "a", "pass"), ("60_logs", "b", "warn"), ("70_drift", "c", "fail")]
    _summary(tmp_path / "e", 1, [*checks, ("70_drift", "d", "fail")])
    row = fleet.row_from_folder(env, tmp_path / "e", 1, "", 3.21)
    assert (row.exit_code, row.passed, row.warned, row.failed) == (1, 1, 1, 2)
    assert row.first_failure == "70_drift: c"
    assert row.report == str(tmp_path / "e" / "report.html")
    assert row.seconds == 3.2

    _summary(tmp_path / "c", 2, [("60_logs", "b", "fail")], crashed="50_verify")
    assert fleet.row_from_folder(env, tmp_path / "c", 2, "", 1).first_failure == (
        "50_verify crashed: timed out after 5 s"
    )


def test_an_exit_code_the_summary_does_not_back_is_a_crash(tmp_path: Path) -> None:
    """Python exits 1 on an unhandled error: without a summary saying so, that is no failed check."""
    env = Environment("e", tmp_path / "e.yaml")
    (tmp_path / "e").mkdir()
    row = fleet.row_from_folder(env, tmp_path / "e", 1, "", 0)
    assert row.exit_code == 2
    assert "exit code 1 and no summary.json" in row.first_failure
    _summary(tmp_path / "f", 0, [("50_verify", "a", "pass")])
    assert fleet.row_from_folder(env, tmp_path / "f", 1, "", 0).exit_code == 2


def test_bad_params_keep_exit_code_3_with_the_child_s_error(tmp_path: Path) -> None:
    env = Environment("e", tmp_path / "e.yaml")
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / fleet.LOG_NAME).write_text("starting\nError: e.yaml: project: field required\n")
    row = fleet.row_from_folder(env, tmp_path / "e", 3, "", 0)
    assert (row.exit_code, row.first_failure) == (3, "Error: e.yaml: project: field required")


# ---------------------------------------------------------------- the pool, with stand-in children

# A stand-in for `mtlskit run`: notes when it ran, starts a process in a session of its own (as a
# kernel is started), sleeps, then writes the summary its exit code stands for.
CHILD = textwrap.dedent(
    """
    import json, subprocess, sys, time
    from pathlib import Path
    folder, code, sleep = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    (folder / "pids").write_text(json.dumps([__import__("os").getpid(), grandchild.pid]))
    started = time.time()
    time.sleep(sleep)
    grandchild.kill()
    checks = [{"notebook": "70_drift", "check": "x", "status": "fail" if code == 1 else "pass"}]
    (folder / "summary.json").write_text(json.dumps({"exit_code": code, "notebooks": [], "checks": checks}))
    (folder / "report.html").write_text("")
    (folder / "times").write_text(json.dumps([started, time.time()]))
    sys.exit(code)
    """
)


def _stand_in(plan: dict[str, tuple[int, float]]) -> fleet.Command:
    def command(env: Environment, folder: Path) -> list[str]:
        code, sleep = plan[env.name]
        return [sys.executable, "-c", CHILD, str(folder), str(code), str(sleep)]

    return command


def _gone(pids: list[int], within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]:
            return True
        time.sleep(0.1)
    return False


def test_the_pool_runs_at_most_jobs_children_at_once_and_keeps_the_given_order(tmp_path: Path) -> None:
    plan = {"e1": (0, 0.8), "e2": (1, 0.8), "e3": (0, 0.8), "e4": (0, 0.8), "e5": (0, 0.1)}
    envs = [Environment(n, _touch(tmp_path / f"{n}.yaml")) for n in plan]
    events: list[tuple[str, str]] = []
    result = fleet.run_fleet(
        envs,
        tmp_path / "out",
        jobs=2,
        command=_stand_in(plan),
        stamp="S",
        progress=lambda event, env, row: events.append((event, env.name)),
    )
    assert [r.environment for r in result.rows] == list(plan)
    assert [r.exit_code for r in result.rows] == [0, 1, 0, 0, 0]
    assert result.exit_code == 1
    spans = [json.loads((tmp_path / "out" / "S" / n / "times").read_text()) for n in plan]
    overlapping = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert overlapping == 2, spans
    assert sorted(events) == sorted([("start", n) for n in plan] + [("end", n) for n in plan])
    saved = json.loads((tmp_path / "out" / "S" / fleet.FLEET_JSON).read_text())
    assert [(r["environment"], r["exit_code"]) for r in saved["environments"]] == [
        (r.environment, r.exit_code) for r in result.rows
    ]
    assert saved["exit_code"] == 1 and result.fleet_json == str(tmp_path / "out" / "S" / fleet.FLEET_JSON)


def test_a_child_over_its_time_is_killed_with_its_tree_and_the_others_finish(tmp_path: Path) -> None:
    plan = {"slow": (0, 60.0), "quick": (0, 0.2), "later": (1, 0.2)}
    envs = [Environment(n, _touch(tmp_path / f"{n}.yaml")) for n in plan]
    started = time.monotonic()
    result = fleet.run_fleet(
        envs, tmp_path / "out", jobs=2, command=_stand_in(plan), time_limit=2.0, stamp="S"
    )
    assert time.monotonic() - started < 20
    rows = {r.environment: r for r in result.rows}
    assert rows["slow"].exit_code == 2
    assert rows["slow"].first_failure == "killed after 2 s (the run's time limit)"
    assert (rows["quick"].exit_code, rows["later"].exit_code) == (0, 1)
    assert result.exit_code == 2
    pids = json.loads((tmp_path / "out" / "S" / "slow" / "pids").read_text())
    assert _gone(pids), f"left running: {pids}"


def test_invalid_params_are_refused_without_a_child_and_rank_worst(tmp_path: Path) -> None:
    plan = {"good": (1, 0.1), "bad": (0, 0.1)}
    envs = [
        Environment("good", _touch(tmp_path / "good.yaml")),
        Environment("bad", _touch(tmp_path / "bad.yaml", "target: sandbox\nproject: my-project\n")),
    ]
    result = fleet.run_fleet(envs, tmp_path / "out", jobs=2, command=_stand_in(plan), stamp="S")
    rows = {r.environment: r for r in result.rows}
    assert rows["bad"].exit_code == 3
    assert rows["bad"].first_failure.startswith("invalid params (1 problem): mtls: required key is missing")
    assert not (tmp_path / "out" / "S" / "bad" / "pids").exists()  # no child ran
    assert rows["good"].exit_code == 1 and result.exit_code == 3


def test_a_failed_upload_makes_that_row_a_crash_and_keeps_its_local_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(params: params_mod.Params, files: object, bucket: str, prefix: str) -> None:
        raise PermissionError(f"403 no write access to {bucket}")

    monkeypatch.setattr(fleet, "upload_files", refuse)
    monkeypatch.setattr(fleet, "upload_folder", refuse)
    plan = {"ok": (0, 0.1)}
    envs = [Environment("ok", _touch(tmp_path / "ok.yaml"))]
    result = fleet.run_fleet(envs, "gs://team-bucket/runs", jobs=1, command=_stand_in(plan), stamp="S")
    (row,) = result.rows
    assert row.exit_code == 2 and result.exit_code == 2
    assert row.first_failure.startswith("not uploaded to gs://team-bucket/runs/S/ok (PermissionError: 403")
    assert (Path(row.folder) / "summary.json").is_file()  # kept, and named in the row
    assert "not uploaded to gs://team-bucket/runs/S" in result.fleet_json
    shutil.rmtree(Path(row.folder).parents[1])  # the staging folder the run kept on purpose


def test_invalid_params_go_up_to_cloud_storage_too_through_a_params_file_that_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bad environment's run.log is its only explanation; fleet.json must not depend on the first
    params file being valid. Both go up with the storage client of a params file that loads."""
    uploaded: dict[str, list[str]] = {}

    def record_folder(params: params_mod.Params, folder: Path, bucket: str, prefix: str) -> None:
        assert isinstance(params, params_mod.Params)  # the real upload builds its client from these
        uploaded[prefix] = sorted(f.name for f in folder.iterdir())

    def record_files(params: params_mod.Params, files: list[Path], bucket: str, prefix: str) -> None:
        assert isinstance(params, params_mod.Params)
        uploaded[prefix] = [f.name for f in files]

    monkeypatch.setattr(fleet, "upload_folder", record_folder)
    monkeypatch.setattr(fleet, "upload_files", record_files)
    envs = [
        Environment("bad", _touch(tmp_path / "bad.yaml", "target: sandbox\nproject: my-project\n")),
        Environment("good", _touch(tmp_path / "good.yaml")),
    ]
    result = fleet.run_fleet(
        envs, "gs://team-bucket/runs", jobs=1, command=_stand_in({"good": (0, 0.1)}), stamp="S"
    )
    rows = {r.environment: r for r in result.rows}
    assert rows["bad"].exit_code == 3 and rows["bad"].folder == "gs://team-bucket/runs/S/bad"
    assert rows["bad"].first_failure.startswith("invalid params (1 problem): mtls: required key is missing")
    assert uploaded["runs/S/bad"] == [fleet.LOG_NAME]
    assert uploaded["runs/S"] == [fleet.FLEET_JSON]
    assert result.fleet_json == "gs://team-bucket/runs/S/fleet.json"


def test_each_environment_s_params_are_loaded_once_by_the_fleet(
    state_dir: Path, clients: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check before a child starts, the upload of its folder and of fleet.json all use the one
    load; an invalid file is still refused with 3 and its run.log uploaded. Real uploads, to the
    sandbox's Cloud Storage."""
    from mtlskit.cloud.clients import storage_client

    text = yaml.safe_dump(params_mod.sandbox_default(state_dir))
    a, b = _touch(tmp_path / "a.yaml", text), _touch(tmp_path / "b.yaml", text)
    bad = _touch(tmp_path / "bad.yaml", "target: sandbox\nproject: my-project\n")
    loaded = params_mod.load(a)
    bucket = f"{loaded.project}-mtlskit"
    loads: dict[str, int] = {}
    real_load = params_mod.load

    def counting(path: str | Path | None = None) -> params_mod.Params:
        loads[Path(str(path)).name] = loads.get(Path(str(path)).name, 0) + 1
        return real_load(path)

    monkeypatch.setattr(params_mod, "load", counting)
    envs = fleet.environments([a, bad, b])
    command = _stand_in({"a": (0, 0.1), "b": (1, 0.1)})
    result = fleet.run_fleet(envs, f"gs://{bucket}/once", jobs=2, command=command, stamp="S")

    assert loads == {"a.yaml": 1, "bad.yaml": 1, "b.yaml": 1}
    assert [(r.environment, r.exit_code) for r in result.rows] == [("a", 0), ("bad", 3), ("b", 1)]
    assert result.rows[1].first_failure.startswith("invalid params (1 problem): mtls: required key")
    assert result.fleet_json == f"gs://{bucket}/once/S/fleet.json"
    names = {blob.name for blob in storage_client(loaded).bucket(bucket).list_blobs(prefix="once/S/")}
    expected = {"a/summary.json", "bad/run.log", "b/summary.json", "fleet.json"}
    assert {f"once/S/{n}" for n in expected} <= names, names


def test_ctrl_c_stops_every_child_and_what_it_started(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from mtlskit.runner import fleet
        child, out = sys.argv[1], sys.argv[2]
        envs = [fleet.Environment(n, Path(sys.argv[3])) for n in "abc"]
        command = lambda env, folder: [sys.executable, "-c", child, str(folder), "0", "120"]
        try:
            fleet.run_fleet(envs, out, jobs=2, command=command, stamp="S")
        except fleet.VerificationInterrupted as stopped:
            rows = [[r.environment, r.exit_code, r.first_failure] for r in stopped.result.rows]
            print(json.dumps({"rows": rows, "fleet_json": stopped.result.fleet_json}))
            sys.exit(stopped.exit_code)
        """
    )
    params = _touch(tmp_path / "env.yaml")
    proc = subprocess.Popen(
        [sys.executable, "-c", "import json\n" + script, CHILD, str(tmp_path / "out"), str(params)],
        stdout=subprocess.PIPE,
        text=True,
    )
    pid_files = [tmp_path / "out" / "S" / n / "pids" for n in ("a", "b")]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(f.is_file() for f in pid_files):
        time.sleep(0.1)
    try:
        assert all(f.is_file() for f in pid_files), "the children never started"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == EXIT_INTERRUPTED
        pids = [p for f in pid_files for p in json.loads(f.read_text())]
        assert _gone(pids), f"left running: {pids}"
        assert not (tmp_path / "out" / "S" / "c" / "pids").exists(), (
            "a queued environment started after Ctrl-C"
        )
        # the rows so far, each marked, are in fleet.json as well as in the interrupt
        stopped = json.loads(out)
        why = fleet.INTERRUPTED_REASON
        assert stopped["rows"] == [
            ["a", EXIT_INTERRUPTED, f"stopped before its first notebook: {why}"],
            ["b", EXIT_INTERRUPTED, f"stopped before its first notebook: {why}"],
            ["c", EXIT_INTERRUPTED, f"not started: {why}"],
        ]
        saved = json.loads((tmp_path / "out" / "S" / fleet.FLEET_JSON).read_text())
        assert stopped["fleet_json"] == str(tmp_path / "out" / "S" / fleet.FLEET_JSON)
        assert saved["exit_code"] == EXIT_INTERRUPTED
        assert [[r["environment"], r["exit_code"], r["first_failure"]] for r in saved["environments"]] == (
            stopped["rows"]
        )
    finally:
        if proc.poll() is None:
            proc.kill()


# ---------------------------------------------------------------- e2e: four environments, one sandbox

ENVIRONMENTS = ["alpha", "bravo-allow", "charlie-drift", "delta"]


def _env_file(directory: Path, state: Path, port: int, name: str) -> Path:
    """The default sandbox params with its own stack and resource names, on a shared sandbox."""
    key = name.split("-")[0]
    data = params_mod.another_stack(params_mod.sandbox_default(state), key, stack=f"fleet-{key}")
    data["sandbox"]["data_plane_port"] = port
    if name.endswith("-allow"):
        data["mtls"]["validation_mode"] = "ALLOW_INVALID_OR_MISSING_CLIENT_CERT"
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _point_url_map_elsewhere(drifted: Path, other: Path) -> None:
    """Someone repoints the URL map at another environment's backend service, behind the kit's back."""
    from google.cloud import compute_v1

    from mtlskit.build import backend
    from mtlskit.cloud.clients import build_clients
    from mtlskit.config.params import load

    p, q = load(drifted), load(other)
    clients = build_clients(p)
    elsewhere = backend.locate_backend_service(clients, q)
    um = clients.compute.url_maps.get(project=p.project, url_map=p.frontend.url_map)
    body = compute_v1.UrlMap(default_service=elsewhere.self_link, fingerprint=um.fingerprint)
    clients.compute.url_maps.patch(
        project=p.project, url_map=p.frontend.url_map, url_map_resource=body
    ).result()


@contextlib.contextmanager
def built_environments(root: Path, names: list[str]) -> Iterator[tuple[Path, list[Path]]]:
    """Environments on one sandbox, built with the library's own apply (no kernel), in parallel: the
    sandbox's state folder and their params files. The sandbox stops on the way out."""
    from mtlskit.build import stack
    from mtlskit.cloud.clients import build_clients
    from mtlskit.sandbox import process

    state, port = root / "state", free_port()
    envs = root / "envs"
    envs.mkdir()
    files = [_env_file(envs, state, port, name) for name in names]
    try:
        loaded = [params_mod.load(f) for f in files]
        build_clients(loaded[0])  # starts the sandbox once, before the builds share it
        with ThreadPoolExecutor(len(files)) as pool:  # each build mostly waits on operations
            list(pool.map(lambda p: stack.build(build_clients(p), p, timeout=60), loaded))
        yield state, files
    finally:
        process.stop(state)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Four environments on one sandbox, one of them drifted: a directory of their params files."""
    with built_environments(tmp_path_factory.mktemp("fleet"), ENVIRONMENTS) as (_, files):
        envs = files[0].parent
        _point_url_map_elsewhere(envs / "charlie-drift.yaml", envs / "alpha.yaml")
        yield envs


@pytest.mark.e2e
def test_verify_runs_four_environments_in_parallel_and_exits_with_the_worst(
    built: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    files = [str(built / f"{n}.yaml") for n in ENVIRONMENTS]
    proc = subprocess.run(
        [sys.executable, "-m", "mtlskit.cli", "verify", *files, "--jobs", "2", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=paths.repo_root(),
    )
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    (stamp,) = [d for d in out.iterdir() if d.is_dir()]
    saved = json.loads((stamp / fleet.FLEET_JSON).read_text())
    rows = {r["environment"]: r for r in saved["environments"]}
    assert list(rows) == ENVIRONMENTS
    codes = {name: r["exit_code"] for name, r in rows.items()}
    assert codes == {"alpha": 0, "bravo-allow": 0, "charlie-drift": 1, "delta": 0}, saved
    assert rows["charlie-drift"]["first_failure"] == "70_drift: URL map points at today's backend service"
    for name, row in rows.items():
        folder = stamp / name
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["exit_code"] == row["exit_code"]
        assert [n["notebook"] for n in summary["notebooks"]] == ["50_verify", "60_logs", "70_drift"]
        assert row["passed"] > 0 and row["report"] == str(folder / "report.html")
        assert (folder / "report.html").is_file() and (folder / "70_drift.ipynb").is_file()
    # ALLOW mode really forwarded the refused cases: its own probes say so
    allow = json.loads((stamp / "bravo-allow" / "summary.json").read_text())
    assert any("forwarded" in c["evidence"] or "200" in c["evidence"] for c in allow["checks"]), allow
    # progress: a start and an end line per environment, then the table
    for name in ENVIRONMENTS:
        assert f"started  {name} " in proc.stdout
        assert f"done     {name}: exit code {codes[name]}" in proc.stdout
    lines = proc.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.split()[:2] == ["environment", "exit"])
    table = {line.split()[0]: line for line in lines[head + 1 : head + 5]}
    assert list(table) == ENVIRONMENTS
    assert "70_drift: URL map points at today's backend service" in table["charlie-drift"]
    assert table["alpha"].split()[1:5] == [
        "0",
        str(rows["alpha"]["passed"]),
        str(rows["alpha"]["warned"]),
        "0",
    ]


@pytest.mark.e2e
def test_a_hanging_notebook_crashes_its_environment_and_the_others_finish_into_cloud_storage(
    built: Path, tmp_path: Path
) -> None:
    """Stand-ins for the verification steps: 50 hangs for the environment with a `.hang` file beside its
    params; 60 publishes a passing check, and must still run after 50 was stopped. The output goes to
    the sandbox's Cloud Storage bucket."""
    from mtlskit.cloud.clients import storage_client
    from mtlskit.config.params import load

    books = tmp_path / "nb"
    books.mkdir()
    notebooks = [
        stand_in_notebook(
            books,
            "50_verify",
            "import time\nfrom pathlib import Path\n"
            "if Path(params_file).with_suffix('.hang').exists():\n    time.sleep(600)",
        ),
        stand_in_notebook(
            books,
            "60_logs",
            "from mtlskit.core.checks import Check\nfrom mtlskit import runbook\n"
            "runbook.Step(None, None, False).finish([Check('reached', 'pass', 'ran after 50', '')])",
        ),
    ]
    envs = tmp_path / "envs"
    envs.mkdir()
    for name in ("alpha", "delta"):
        (envs / f"{name}.yaml").write_text((built / f"{name}.yaml").read_text())
    (envs / "alpha.hang").touch()
    bucket = f"{load(envs / 'alpha.yaml').project}-mtlskit"  # the sandbox's bucket
    result = fleet.run_fleet(
        fleet.environments(fleet.params_files([envs])),
        f"gs://{bucket}/fleet",
        jobs=2,
        timeout=4,
        notebooks=notebooks,
        stamp="S",
    )
    rows = {r.environment: r for r in result.rows}
    assert rows["alpha"].exit_code == 2
    assert rows["alpha"].first_failure == "50_verify crashed: timed out after 4 s"
    assert rows["delta"].exit_code == 0
    assert result.exit_code == 2
    assert rows["alpha"].passed == 1  # 60's check: the run went on after the timeout

    # everything landed in Cloud Storage (the sandbox's), and nothing stayed behind locally
    assert rows["alpha"].report == f"gs://{bucket}/fleet/S/alpha/report.html"
    assert result.fleet_json == f"gs://{bucket}/fleet/S/fleet.json"
    store = storage_client(load(envs / "alpha.yaml")).bucket(bucket)
    names = {b.name for b in store.list_blobs(prefix="fleet/S/")}
    for env in ("alpha", "delta"):
        expected = {"60_logs.ipynb", "summary.json", "report.html", fleet.LOG_NAME}
        assert {f"fleet/S/{env}/{n}" for n in expected} <= names, names
    summary = json.loads(store.blob("fleet/S/alpha/summary.json").download_as_bytes())
    assert [(n["notebook"], n["status"]) for n in summary["notebooks"]] == [
        ("50_verify", "crashed"),
        ("60_logs", "ok"),
    ]
    executed = nbformat.reads(store.blob("fleet/S/delta/60_logs.ipynb").download_as_text(), as_version=4)
    assert "ran after 50" in json.dumps(executed.cells[-1].outputs)
    saved = json.loads(store.blob("fleet/S/fleet.json").download_as_bytes())
    assert [(r["environment"], r["exit_code"]) for r in saved["environments"]] == [("alpha", 2), ("delta", 0)]


def test_the_child_command_is_mtlskit_run_with_the_timeout() -> None:
    env = Environment("e", Path("/p/e.yaml"))
    assert fleet.child_command(env, Path("/o/e"), ["50_verify"], 30.0)[1:] == [
        "-m", "mtlskit.cli", "run", "--params", "/p/e.yaml", "--out", "/o/e", "--timeout", "30", "50_verify",
    ]  # fmt: skip
    assert fleet.child_time_limit(30.0, 3) == 90 + fleet.CHILD_GRACE_SECONDS
    assert fleet.child_time_limit(None, 3) is None


@pytest.mark.e2e
def test_an_indexed_job_pod_verifies_the_environment_at_its_index_in_process(
    built: Path, tmp_path: Path
) -> None:
    """As a pod of the Indexed Job runs it: the directory's files sorted by name, index 2 = charlie-drift."""
    proc = subprocess.run(
        [sys.executable, "-m", "mtlskit.cli", "verify", "--indexed", str(built), "--out", str(tmp_path)]
        + ["--stamp", "job"],
        env={**os.environ, "JOB_COMPLETION_INDEX": "2"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert [p.name for p in (tmp_path / "job").iterdir()] == ["charlie-drift"]
    summary = json.loads((tmp_path / "job" / "charlie-drift" / "summary.json").read_text())
    failed = [c["check"] for c in summary["checks"] if c["status"] == "fail"]
    assert failed == ["URL map points at today's backend service"], failed
    assert "70_drift: URL map points at today's backend service" in proc.stdout
    # in this process: no child `mtlskit run` (whose log would be run.log)
    assert not (tmp_path / "job" / "charlie-drift" / fleet.LOG_NAME).exists()


def test_the_environment_s_change_records_go_up_with_its_results(
    state_dir: Path, clients: object, tmp_path: Path
) -> None:
    """`mtlskit verify --out gs://...`: the stack's change records land in <env>/changes/ beside the
    verification's results, in the sandbox's Cloud Storage (real uploads)."""
    from mtlskit.cloud.clients import storage_client
    from mtlskit.verify import changerecords
    from tests.recordstates import ca, record, state

    data = params_mod.sandbox_default(state_dir)
    data["changes"] = {"records": str(tmp_path / "records")}
    path = _touch(tmp_path / "a.yaml", yaml.safe_dump(data))
    loaded = params_mod.load(path)
    root = ca("recorded root")
    change = record("trust", 1, state(), state(("anchor", root)), stack=changerecords.stack_of(loaded))
    changerecords.write_record(loaded, change)
    bucket = f"{loaded.project}-mtlskit"
    command = _stand_in({"a": (0, 0.1)})
    result = fleet.run_fleet(fleet.environments([path]), f"gs://{bucket}/rec", 1, command=command, stamp="S")

    assert [r.exit_code for r in result.rows] == [0]
    blob = storage_client(loaded).bucket(bucket).blob(f"rec/S/a/changes/{change.file_name()}")
    assert json.loads(blob.download_as_text())["change_id"] == change.change_id
    assert storage_client(loaded).bucket(bucket).blob("rec/S/a/summary.json").exists()


def test_verify_indexed_names_a_missing_notebook_and_an_unwritable_folder_and_changes_nothing(
    tmp_path: Path,
) -> None:
    """The entry command checks its inputs before anything runs: a notebook missing from the kit's
    root and a Jupyter runtime folder it cannot write are each named, with exit code 3."""
    root = tmp_path / "kit"
    shutil.copytree(
        paths.repo_root() / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns("60_*")
    )
    d = tmp_path / "envs"
    _touch(d / "a.yaml")
    blocked = _touch(tmp_path / "home-is-a-file", "") / "runtime"
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["verify", "--indexed", str(d), "--out", str(out)],
        env={"JOB_COMPLETION_INDEX": "0", "MTLSKIT_ROOT": str(root), "JUPYTER_RUNTIME_DIR": str(blocked)},
    )
    assert result.exit_code == 3, result.output
    missing = root / "notebooks" / "60_logs.ipynb"
    assert f"cannot verify a: notebook 60_logs {missing}: missing; rebuild the image" in result.stderr
    assert f"Jupyter runtime folder {blocked}: not writable by uid {os.getuid()} (Not a directory)" in (
        result.stderr
    )
    assert "verifying" not in result.stdout and "50_verify" not in result.stderr
    assert not out.exists() and not (root / "runs").exists()
