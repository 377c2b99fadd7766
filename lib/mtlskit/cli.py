"""`mtlskit`: parses arguments, calls the library, renders results. Nothing else lives here."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mtlskit.config import params as params_mod
from mtlskit.config.params import ParamsError

if TYPE_CHECKING:
    from mtlskit.runner.execute import SharedKernel
    from mtlskit.runner.fleet import Environment, EnvironmentResult, VerificationInterrupted
    from mtlskit.runner.results import Interrupted, NotebookResult


def _load(params_file: str | None) -> params_mod.Params:
    try:
        return params_mod.load(params_file)
    except ParamsError as err:
        raise click.ClickException(str(err)) from None


class NothingRan(click.Command):
    """A command whose exit codes a scheduler acts on: a usage error (an unknown option, `--jobs 0`)
    exits 3 like invalid params (nothing ran, a person must fix the command line), not click's 2,
    which the kit keeps for a crashed notebook (a retry's reason). Ctrl-C and SIGTERM exit 130 and
    143, as shells report them, not click's 1, which reads as a failed check."""

    def make_context(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        from mtlskit.runner.results import EXIT_BAD_PARAMS

        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as err:
            err.exit_code = EXIT_BAD_PARAMS
            raise

    def invoke(self, ctx: click.Context) -> object:
        from mtlskit.runner.results import Interrupted, StopSignals

        try:
            with StopSignals.installed():
                return super().invoke(ctx)
        except KeyboardInterrupt as err:  # one the command did not explain itself (a quick command)
            _exit_interrupted(Interrupted.of(err), "")


def _exit_interrupted(stopped: Interrupted, what: str) -> None:
    from mtlskit.runner.results import EXIT_MEANING

    click.echo(f"interrupted by {stopped.signal_name}{what}", err=True)
    click.echo(f"exit code {stopped.exit_code}: {EXIT_MEANING[stopped.exit_code]}", err=True)
    sys.exit(stopped.exit_code)


@click.group()
def main() -> None:
    """Runbook kit: global external Application Load Balancer with mTLS in front of a GKE Ingress backend."""


@main.group()
def sandbox() -> None:
    """The local stand-in for Google Cloud and Kubernetes."""


def _state_dir(params_file: str | None, state_dir: str | None) -> Path:
    if state_dir:
        return Path(state_dir).resolve()
    return _load(params_file).state_dir


STATE_OPTS = [
    click.option("--params", "params_file", default=None, help="params file (default params/sandbox.yaml)"),
    click.option("--state-dir", default=None, help="sandbox state directory (overrides the params)"),
]


def _with_state(f):  # type: ignore[no-untyped-def]
    for opt in reversed(STATE_OPTS):
        f = opt(f)
    return f


@sandbox.command("up")
@_with_state
@click.option("--foreground", is_flag=True, help="run in this terminal until Ctrl-C")
@click.option("--port", type=int, default=None)
def sandbox_up(params_file: str | None, state_dir: str | None, foreground: bool, port: int | None) -> None:
    """Start the sandbox (or report the one already running)."""
    from mtlskit.cloud.clients import sandbox_settings
    from mtlskit.sandbox import process

    p = _load(params_file)
    directory = Path(state_dir).resolve() if state_dir else p.state_dir
    chosen_port = p.sandbox.port if port is None else port
    if foreground:
        from mtlskit.sandbox.__main__ import main as serve

        sys.exit(serve(process.server_args(directory, chosen_port, **sandbox_settings(p))))
    info = process.start(directory, port=chosen_port, **sandbox_settings(p))
    click.echo(f"sandbox running: {info.endpoint} (pid {info.pid})")
    click.echo(f"kubeconfig: {info.kubeconfig}  (export KUBECONFIG={info.kubeconfig})")
    click.echo(f'gcloud and kubectl in your shell: eval "$({_this_command()} sandbox env)"')


def _this_command() -> str:
    """`mtlskit` when that is what the shell finds, else the path this one was started by (a venv's
    bin/ that is not on PATH), so a printed command runs as pasted."""
    import shutil

    started = Path(sys.argv[0]).resolve()
    found = shutil.which("mtlskit")
    if started.name == "mtlskit" and not (found and Path(found).resolve() == started):
        return str(Path(sys.argv[0]))
    return "mtlskit"


@sandbox.command("env")
@_with_state
def sandbox_env(params_file: str | None, state_dir: str | None) -> None:
    """Print the shell exports that point gcloud and kubectl at the sandbox (starting it if needed).

    \b
    Use:   eval "$(mtlskit sandbox env)"
    Run it again after the sandbox restarts: it may listen on another port.
    """
    from mtlskit.cloud.clients import sandbox_settings
    from mtlskit.sandbox import process

    p = _load(params_file)
    directory = Path(state_dir).resolve() if state_dir else p.state_dir
    info = process.status(directory)
    if info is None:
        info = process.start(directory, port=p.sandbox.port, **sandbox_settings(p))
        click.echo(f"started the sandbox at {info.endpoint} (pid {info.pid})", err=True)
    click.echo(process.shell_exports(info, p.project))


@sandbox.command("down")
@_with_state
def sandbox_down(params_file: str | None, state_dir: str | None) -> None:
    """Stop the sandbox; its state stays on disk."""
    from mtlskit.sandbox import process

    stopped = process.stop(_state_dir(params_file, state_dir))
    click.echo("sandbox stopped" if stopped else "no sandbox was running")


@sandbox.command("status")
@_with_state
def sandbox_status(params_file: str | None, state_dir: str | None) -> None:
    """Say whether the sandbox runs, where, and what it has counted."""
    from mtlskit.runner.results import EXIT_NOT_RUNNING
    from mtlskit.sandbox import process

    info = process.status(_state_dir(params_file, state_dir))
    if info is None:
        click.echo("sandbox: not running")
        sys.exit(EXIT_NOT_RUNNING)
    with urllib.request.urlopen(f"{info.endpoint}/_sandbox/healthz", timeout=5) as r:
        health = json.load(r)
    click.echo(f"sandbox: running at {info.endpoint} (pid {info.pid})")
    click.echo(f"projects: {', '.join(health['projects'])}; cluster uid: {health['cluster_uid']}")
    click.echo(f"kubeconfig: {info.kubeconfig}")
    _echo_dataplane(info.endpoint)
    _echo_dns(info.endpoint)


def _echo_dataplane(endpoint: str) -> None:
    with urllib.request.urlopen(f"{endpoint}/_sandbox/dataplane", timeout=5) as r:
        plane = json.load(r)
    click.echo(f"data plane CA (for --cacert): {plane['ca_file']}")
    delay = plane.get("propagation_delay_seconds") or 0  # absent from an older kit's sandbox
    if delay:
        click.echo(f"trust and mTLS policy changes reach new connections {delay:g} s after the API call")
    for li in plane["listeners"]:
        state = "listening" if li["listening"] else f"NOT listening: {li['error']}"
        pending = len(li.get("pending") or [])
        propagating = f" ({pending} change(s) propagating)" if pending else ""
        click.echo(
            f"  https://{li['ip']}:{li['port']}  forwarding rule {li['forwarding_rule']}, "
            f"mTLS {li['mtls']}{propagating}, {li['certificates_served']} certificate(s) served, {state}"
        )
    if not plane["listeners"]:
        click.echo(
            "  no HTTPS forwarding rule yet (run 40_frontend, or gw20_gateway for topology gateway, with apply=True)"
        )


def _echo_dns(endpoint: str) -> None:
    try:
        with urllib.request.urlopen(f"{endpoint}/_sandbox/dns", timeout=5) as r:
            responder = json.load(r)
    except urllib.error.HTTPError:
        click.echo("DNS responder: none (this sandbox was started by an older kit: restart it)")
        return
    if not responder["listening"]:
        click.echo(f"DNS responder: NOT listening: {responder['error']}")
        return
    zones = ", ".join(responder["zones"])
    click.echo(f"DNS responder: 127.0.0.1:{responder['port']} (UDP and TCP), authoritative for {zones}")
    click.echo(f"  dig @127.0.0.1 -p {responder['port']} NAME")


@sandbox.command("reset")
@_with_state
@click.confirmation_option(prompt="Forget every sandbox resource?")
def sandbox_reset(params_file: str | None, state_dir: str | None) -> None:
    """Stop the sandbox and forget all its resources (the demo PKI is kept)."""
    from mtlskit.sandbox import process

    process.reset(_state_dir(params_file, state_dir))
    click.echo("sandbox state cleared")


@main.command("check-params", cls=NothingRan)
@click.argument("params_file", required=False)
def check_params(params_file: str | None) -> None:
    """Validate a params file and say what it targets and which files it names. Calls nothing and
    writes nothing. Exits 3 on invalid params, as `run` and `verify` do."""
    from mtlskit.runner.results import EXIT_BAD_PARAMS

    try:
        p = params_mod.load(params_file)
    except ParamsError as err:
        click.echo(f"Error: {err}", err=True)
        sys.exit(EXIT_BAD_PARAMS)
    click.echo(
        f"ok: target={p.target} project={p.project} namespace={p.kubernetes.namespace} "
        f"ingress={p.kubernetes.ingress}"
    )
    differences = params_mod.gateway_differences(p)
    if differences:
        click.echo(f"topology gateway (class {p.gateway.class_name}), expressed differently from split:")
        for line in differences:
            click.echo(f"  - {line}")
    click.echo(f"paths (relative ones are taken from {params_mod.params_file(params_file).parent}):")
    rows = params_mod.resolved_paths(p)
    width = max((len(r.field) for r in rows), default=0)
    for r in rows:
        click.echo(f"  {r.field:<{width}}  {r.path or '-'}  [{r.state}]")


@main.group()
def certs() -> None:
    """Certificates for the sandbox and for training."""


@certs.command("demo-pki")
@click.option("--out", "out_dir", default=None, help="directory (default: <sandbox state dir>/pki)")
@click.option("--params", "params_file", default=None)
@click.option("--force", is_flag=True, help="issue new certificates even if a demo PKI is already there")
def certs_demo_pki(out_dir: str | None, params_file: str | None, force: bool) -> None:
    """Issue the demo root, intermediates and client certificates, valid and deliberately broken."""
    from mtlskit.pki import certs as certs_mod

    pki = (
        certs_mod.DemoPki(Path(out_dir).resolve())
        if out_dir
        else certs_mod.DemoPki.in_state_dir(_load(params_file).state_dir)
    )
    make = certs_mod.generate_demo_pki if force else certs_mod.ensure_demo_pki
    make(pki.directory)
    click.echo(f"demo PKI in {pki.directory} (private keys are mode 0600; never commit them)")
    for spec in pki.cases():
        click.echo(f"  {pki.cert(spec.name).name:<32} expect {spec.expected:<46} {spec.purpose}")


@main.command("logs")
@click.argument("sources", nargs=-1)
@click.option(
    "--params", "params_file", default=None, help="params file: its forwarding rule and storage client"
)
@click.option(
    "--forwarding-rule", default=None, help="only this forwarding rule's entries (default: the params')"
)
@click.option("--since", default=None, help="only entries at or after this ISO 8601 time (UTC if no offset)")
@click.option(
    "--bucket", default=None, help="time bucket of the outcomes table, e.g. 1min, 1h (default: auto)"
)
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="rows of the most refused certificates",
)
@click.option(
    "--sql", "show_sql", is_flag=True, help="also print each summary as Log Analytics (BigQuery) SQL"
)
@click.option("--synthetic", type=int, default=None, help="write N synthetic entries to --out instead")
@click.option("--out", "out_file", default=None, help="file for --synthetic")
@click.option(
    "--array", is_flag=True, help="with --synthetic: one JSON array (gcloud's format), not JSON lines"
)
@click.option("--seed", default=0, show_default=True, help="with --synthetic: the random seed")
def logs_command(
    sources: tuple[str, ...],
    params_file: str | None,
    forwarding_rule: str | None,
    since: str | None,
    bucket: str | None,
    top: int,
    show_sql: bool,
    synthetic: int | None,
    out_file: str | None,
    array: bool,
    seed: int,
) -> None:
    """Summarise exported request logs: FILE_OR_GLOB... (local, or gs://BUCKET/GLOB; quote globs).

    Reads what a Cloud Storage log sink writes (JSON lines) and `gcloud logging read --format=json`
    prints (a JSON array), with DuckDB, at millions of entries."""
    from mtlskit.verify import logs, logscan

    if synthetic is not None:
        if not out_file:
            raise click.UsageError("--synthetic N needs --out FILE")
        from mtlskit.verify import synthetic as synthetic_logs

        path = synthetic_logs.write(out_file, synthetic, seed=seed, array=array)
        click.echo(f"wrote {synthetic:,} synthetic request log entries to {path}")
        return
    if not sources:
        raise click.UsageError(
            "name exported log files, globs or gs://BUCKET/GLOB (or --synthetic N --out FILE)"
        )
    params = _load(params_file) if params_file else None
    try:
        start = logs.parse_time(since) if since else None
    except ValueError:
        raise click.BadParameter(f"{since!r} is not an ISO 8601 time", param_hint="--since") from None
    from google.auth.exceptions import DefaultCredentialsError

    try:
        with logs.scan_exported(list(sources), params, forwarding_rule, start) as scan:
            summary = scan.summaries(bucket, top)
    except logscan.LogScanError as err:
        raise click.ClickException(str(err)) from None
    except DefaultCredentialsError:
        raise click.ClickException(
            "reading gs:// needs Google credentials and none were found: run `gcloud auth "
            "application-default login`, or pass --params (the params' target decides: "
            "--params params/sandbox.yaml reads the sandbox's Cloud Storage)"
        ) from None
    rule = forwarding_rule or (params.frontend.forwarding_rule if params else None)
    scope = f"forwarding rule {rule}" if rule else "every forwarding rule"
    click.echo(f"{summary.entries:,} request log entries in {_count(summary.files, 'file')} ({scope})")
    if not summary.entries:
        click.echo(
            "no load balancer request log entry (resource type http_load_balancer"
            f"{', ' + scope if rule else ''}{', since ' + since if since else ''}) in these files: "
            "are they the request logs a sink exported, and is the forwarding rule right?",
            err=True,
        )
    sql = logscan.bigquery_sql(rule, since=start, bucket=summary.bucket, n=top)
    tables = [
        ("by statusDetails", summary.by_status_details, False, "by_status_details"),
        ("by client-certificate error", summary.by_cert_error, False, "by_cert_error"),
        ("accepted / refused / other over time", summary.over_time, True, "over_time"),
        ("most refused certificates", summary.top_refused, False, "top_refused"),
    ]
    for title, table, index, key in tables:
        click.echo(f"\n{title}")
        click.echo(table.to_string(index=index) if not table.empty else "  (none)")
        if show_sql:
            click.echo(f"\n-- Log Analytics:\n{sql[key]};")


@main.command("run", cls=NothingRan)
@click.option("--params", "params_file", default=None, help="params file (default params/sandbox.yaml)")
@click.option("--apply", is_flag=True, help="apply the planned changes (default: plan only)")
@click.option("--verify", "verify_only", is_flag=True, help="run only the verification steps (50 -> 70)")
@click.option("--teardown", is_flag=True, help="run 90_teardown after the other steps")
@click.option("--out", "out_dir", default=None, help="directory for the executed notebooks and the report")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="seconds one notebook may run once its kernel answers; a longer one is stopped and counts as "
    "crashed (the next verification step still runs)",
)
@click.argument("notebooks", nargs=-1)
def run(
    params_file: str | None,
    apply: bool,
    verify_only: bool,
    teardown: bool,
    out_dir: str | None,
    timeout: float | None,
    notebooks: tuple[str, ...],
) -> None:
    """Run the runbook headless (00 -> 70 unless named) and exit with the checks' verdict.

    Day-2 changes run by name, one at a time: c10_trust_change (a rotation's next phase, a partner
    CA or certificate), c20_enforce_mtls, c30_break_glass, c40_rollback (the last recorded phase).
    A refused gate is a failed check: exit 1, its reason on stderr, nothing changed.

    \b
    Exit codes: 0 every check passed (warnings allowed), 1 a check failed,
    2 a notebook crashed or an API kept failing, 3 the params or the command line are invalid,
    130 interrupted (Ctrl-C), 143 stopped by SIGTERM: the kernel and what it started are stopped.
    """
    from mtlskit.runner.results import EXIT_BAD_PARAMS, EXIT_MEANING, Interrupted, interrupts_held

    kernel: SharedKernel | None = None
    try:
        from mtlskit.runner import execute  # seconds of imports: an interrupt may land here too

        kernel = execute.SharedKernel()
        kernel.start()  # boots and imports the kit while the params are checked
        try:
            with interrupts_held():
                p = params_mod.load(params_file)  # a bad params file stops here, before any notebook runs
        except ParamsError as err:
            click.echo(f"Error: {err}", err=True)
            sys.exit(EXIT_BAD_PARAMS)
        names = _notebook_names(verify_only, teardown, notebooks, p.topology)
        click.echo(f"running {', '.join(names)} with apply={apply}")
        out = Path(out_dir).resolve() if out_dir else None
        result = execute.run_notebooks(
            params_file, names, apply=apply, out_dir=out, progress=_progress, kernel=kernel, timeout=timeout
        )
    except KeyboardInterrupt as err:
        if kernel is not None:
            kernel.stop_now()
            kernel.close()
        stopped = Interrupted.of(err)
        _exit_interrupted(stopped, _where_run_stopped(stopped, params_mod.params_file(params_file)))
    finally:
        if kernel is not None:
            kernel.close()
    for nb in result.notebooks:
        _explain_failure(nb)
    click.echo(f"executed notebooks and summary.json: {result.out_dir}")
    click.echo(f"report: {result.report}")
    if p.target == "sandbox" and any(n.status != "skipped" for n in result.notebooks):
        from mtlskit.sandbox import process

        info = process.status(p.state_dir)
        if info is not None:
            click.echo("sandbox data plane (see README, 'The sandbox data plane', to send mTLS requests):")
            _echo_dataplane(info.endpoint)
    code = result.exit_code
    click.echo(f"exit code {code}: {EXIT_MEANING[code]}", err=code != 0)
    sys.exit(code)


@main.command("verify", cls=NothingRan)
@click.argument("params_files", nargs=-1, required=True)
@click.option("--jobs", type=click.IntRange(min=1), default=2, show_default=True, help="environments at once")
@click.option(
    "--out",
    default=None,
    help="local folder or gs://BUCKET/PREFIX; runs land in OUT/<UTC stamp>/<environment>/ "
    "(default: runs/verify)",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=600.0,
    show_default=True,
    help="seconds one notebook may run before it is stopped and counts as crashed",
)
@click.option("--indexed", is_flag=True, help="run only the params file at ${JOB_COMPLETION_INDEX}, here")
@click.option("--stamp", default=None, help="the OUT/<stamp> folder name (default: now, UTC)")
def verify(
    params_files: tuple[str, ...],
    jobs: int,
    out: str | None,
    timeout: float,
    indexed: bool,
    stamp: str | None,
) -> None:
    """Run the verification notebooks (50 -> 70) for many environments in parallel, one child process
    and kernel each, and exit with the worst verdict.

    PARAMS_FILES are params files, in the order given, or directories, which stand for their *.yaml and
    *.yml files sorted by name. Each environment is named after its file and gets
    OUT/<stamp>/<environment>/ (executed notebooks, summary.json, report.html, run.log);
    OUT/<stamp>/fleet.json holds the table below as data.

    \b
    Exit codes, the worst over all environments (3 > 2 > 1 > 0):
      3 a params file is invalid (or the list of them is unusable),
      2 a notebook crashed or timed out, or an environment's run was killed,
      1 a check failed, 0 every check passed;
    and 130 (Ctrl-C) or 143 (SIGTERM) when the verification itself was stopped: every child and
    kernel is stopped, and fleet.json marks the environments stopped or never started.

    \b
    Kubernetes Indexed Job: `mtlskit verify --indexed PARAMS_DIR_OR_FILES... --out OUT`
    reads JOB_COMPLETION_INDEX (which Kubernetes sets in each pod), takes the params files as above,
    runs only the one at that index, in this process, and exits with its run's exit code. A missing
    or invalid index, or one beyond the list, exits 3 naming the index and the list; so does a file the
    run needs (the params file, a notebook, the kernel) that is missing or unreadable, or a folder it
    writes (temporary files, the Jupyter runtime folder, runs/, OUT) on a read-only filesystem: each is
    named before anything runs. Pass the same
    --stamp to every pod (for example the Job's name) to keep the pods' folders side by side.
    """
    import os

    from mtlskit.config import paths
    from mtlskit.runner import execute, fleet, inputs
    from mtlskit.runner.results import EXIT_BAD_PARAMS, EXIT_MEANING

    where = out or str(paths.repo_root() / "runs" / "verify")
    try:
        files = fleet.params_files(params_files)
        if indexed:
            env = fleet.indexed_environment(files, os.environ.get(fleet.INDEX_VARIABLE))
        else:
            envs = fleet.environments(files)
        fleet.check_out(where)
    except fleet.FleetError as err:
        click.echo(f"Error: {err}", err=True)
        sys.exit(EXIT_BAD_PARAMS)
    if indexed:
        missing = inputs.run_inputs(env.params_file, execute.VERIFY, where)
        for problem in missing:
            click.echo(f"Error: cannot verify {env.name}: {problem}", err=True)
        if missing:
            sys.exit(EXIT_BAD_PARAMS)
    try:
        if indexed:
            click.echo(f"{fleet.INDEX_VARIABLE}={os.environ[fleet.INDEX_VARIABLE]}: verifying {env.name}")
            row = fleet.run_here(env, where, timeout=timeout, stamp=stamp)
            _echo_fleet_table([row])
            sys.exit(row.exit_code)
        click.echo(f"verifying {_count(len(envs), 'environment')}, {jobs} at a time, into {where}")
        result = fleet.run_fleet(envs, where, jobs, timeout=timeout, progress=_fleet_progress, stamp=stamp)
    except fleet.VerificationInterrupted as stopped:
        _echo_fleet_table(stopped.result.rows)
        if stopped.result.fleet_json:
            click.echo(f"fleet.json: {stopped.result.fleet_json}")
        _exit_interrupted(stopped, _where_fleet_stopped(stopped))
    _echo_fleet_table(result.rows)
    click.echo(f"fleet.json: {result.fleet_json}")
    click.echo(f"exit code {result.exit_code}: {EXIT_MEANING[result.exit_code]}", err=result.exit_code != 0)
    sys.exit(result.exit_code)


def _where_run_stopped(stopped: Interrupted, params_path: Path) -> str:
    """Which notebook of which environment the interrupt stopped, and where the partial run is."""
    env = f"environment {params_path.stem} ({params_path})"
    run = stopped.run
    if run is None:
        return f" before any notebook of {env} ran (its kernel was starting); nothing was written"
    if run.interrupted_notebook:
        where = f" in {run.interrupted_notebook} of {env}"
    elif run.notebooks:
        where = f" after {run.notebooks[-1].notebook} of {env}"
    else:
        where = f" before the first notebook of {env}"
    return (
        f"{where}; the kernel and what it started are stopped\n"
        f"  the partial run (summary.json says what ran): {run.out_dir}"
    )


def _where_fleet_stopped(stopped: VerificationInterrupted) -> str:
    """Each environment the interrupt stopped or kept from starting, and where its partial run is."""
    lines = [
        f"{r.environment}: {r.first_failure}; partial run: {r.folder}"
        for r in stopped.result.interrupted_rows
    ]
    return ": every child and kernel is stopped" + "".join(f"\n  {line}" for line in lines)


def _fleet_progress(event: str, env: Environment, row: EnvironmentResult | None) -> None:
    if row is not None:
        click.echo(f"  done     {env.name}: exit code {row.exit_code} ({row.seconds:.1f} s)")
    else:
        click.echo(f"  started  {env.name} ({env.params_file})")


def _echo_fleet_table(rows: list[EnvironmentResult]) -> None:
    """One line per environment, widths fitted to the content (a terminal and a CI log read it alike)."""
    head = ["environment", "exit", "passed", "warned", "failed", "first failure", "report"]
    body = [
        [r.environment, str(r.exit_code), str(r.passed), str(r.warned), str(r.failed)]
        + [r.first_failure or "-", r.report or "-"]
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    for line in [head, *body]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


def _notebook_names(
    verify_only: bool, teardown: bool, notebooks: tuple[str, ...], topology: str = "split"
) -> list[str]:
    """The steps to run (the build and teardown steps of the params' topology), checked to exist
    before anything runs."""
    from mtlskit.runner import execute

    if notebooks:
        names = list(notebooks)
    else:
        build = execute.build_notebooks(topology)
        names = list(execute.VERIFY) if verify_only else [*build, *execute.VERIFY]
    if teardown:
        names.append(execute.teardown_notebook(topology))
    unknown = [n for n in names if not execute.notebook_path(n).is_file()]
    if unknown:
        raise click.ClickException(f"no such notebook: {', '.join(unknown)} (see notebooks/)")
    return names


def _progress(name: str, result: NotebookResult | None) -> None:
    """One line per notebook: its name when it starts, then its status, checks and time."""
    if result is None:
        click.echo(f"  {name:<20} ", nl=False)
        return
    if result.status == "skipped":
        click.echo(f"  {name:<20} skipped ({result.error})")
        return
    if result.status == "interrupted":
        click.echo(f"{result.error} ({result.seconds:.1f} s)")
        return
    failed = sum(1 for c in result.checks if c.status == "fail")
    warned = sum(1 for c in result.checks if c.status == "warn")
    click.echo(
        f"{result.status:<8} {_count(len(result.checks), 'check')}, {failed} failed, "
        f"{_count(warned, 'warning')} ({result.seconds:.1f} s)"
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _explain_failure(result: NotebookResult) -> None:
    """Name the failing notebook and cell on stderr, where a scheduler's alert will quote it."""
    if result.status == "failed":
        for c in (c for c in result.checks if c.status == "fail"):
            click.echo(f"{result.notebook}: check failed: {c.name}: {c.evidence} (fix: {c.fix})", err=True)
        click.echo(f"  the checks table is in {result.path} (cell In [{result.cell}])", err=True)
    elif result.status == "crashed":
        click.echo(
            f"{result.notebook} crashed at cell In [{result.cell}]: {result.error}\n"
            f"  open the executed notebook at that cell: {result.path}",
            err=True,
        )


if __name__ == "__main__":
    main()
