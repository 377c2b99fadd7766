"""The real Google Cloud CLI against the sandbox, configured by `mtlskit sandbox env`.

On a fresh sandbox whose Kubernetes side the kit builds, the equivalent commands that 30_trust and
40_frontend print are run as printed, in order, by a gcloud configured only through the exports of
`eval "$(mtlskit sandbox env)"`. The kit then judges the result with its own functions: the frontend
exists, both plans say "no change" (40's check passes), and the data plane answers the demo probe
certificate with 200. Every gcloud and kubectl read the runbook pages print (rendered from the params,
whose names all differ from the sandbox's) must then succeed without a warning.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from mtlskit.build import backend, dns, frontend, k8s, teardown, trust
from mtlskit.build.plan import Change
from mtlskit.cloud.clients import Clients, build_clients
from mtlskit.config.params import Params, another_stack, load
from mtlskit.rules.dns import SANDBOX_ZONE
from mtlskit.runner.step import Step, outcome_checks
from mtlskit.sandbox import process, shell
from mtlskit.teach import byhand
from mtlskit.verify import drift, logs, probe
from tests.conftest import PROJECT

GCLOUD = shutil.which("gcloud")
needs_gcloud = pytest.mark.skipif(
    GCLOUD is None,
    reason="needs the Google Cloud CLI on PATH: install google-cloud-cli (https://cloud.google.com/sdk/docs/install)",
)
needs_kubectl = pytest.mark.skipif(
    shutil.which("kubectl") is None,
    reason="needs the kubectl binary on PATH (Debian: apt-get install kubernetes-client)",
)
pytestmark = pytest.mark.e2e  # starts a sandbox of its own
COMMAND_TIMEOUT = 120.0
STACK = "gcloud"


@dataclass
class Ran:
    """One gcloud command as run, and what it said."""

    command: str
    returncode: int
    stdout: str
    stderr: str

    @property
    def clean(self) -> bool:
        """Succeeded, and said nothing a reader would have to worry about."""
        return self.returncode == 0 and "WARNING" not in self.stderr and "ERROR" not in self.stderr

    def __str__(self) -> str:
        return f"{self.command}\n  -> exit {self.returncode}: {self.stderr.strip()[-600:]}"


@dataclass
class Shell:
    """A person's shell after `eval "$(mtlskit sandbox env)"`."""

    params: Params
    clients: Clients
    env: dict[str, str]
    exports: str

    def gcloud(self, command: str) -> Ran:
        argv = shlex.split(command)
        assert argv[0] == "gcloud", command
        result = subprocess.run(
            [*argv, "--quiet"], env=self.env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
        )
        return Ran(command, result.returncode, result.stdout, result.stderr)

    def gcloud_all(self, commands: list[str]) -> list[Ran]:
        """Reads do not depend on each other: run them side by side (each gcloud start costs ~1 s)."""
        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(self.gcloud, commands))


def _write_params(directory: Path, state: Path) -> Path:
    pki = state / "pki"
    data = {
        "target": "sandbox",
        "project": PROJECT,
        "stack": STACK,
        "sandbox": {
            "state_dir": str(state),
            "operation_delay_seconds": 0.1,
            "managed_cert_delay_seconds": 0.5,
        },
        "mtls": {"trust_anchors": [str(pki / "root.pem")], "intermediates": [str(pki / "intermediate.pem")]},
        "probe": {"client_cert": str(pki / "client.pem"), "client_key": str(pki / "client.key")},
    }
    # every name differs from the sandbox's, so a page that printed a default would read nothing
    data = another_stack(data, "g", stack=STACK)
    data["kubernetes"]["namespace"] = "gcloud-pages"
    path = directory / "gcloud.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def shell_after_eval(exports: str, home: Path) -> dict[str, str]:
    """The environment a POSIX shell has after evaluating `exports`, starting from a clean one that
    carries a stale override (which the exports must remove)."""
    start = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "CLOUDSDK_CORE_PROJECT": "someone-elses-project",
    }
    script = 'eval "$1" && env -0'
    out = subprocess.run(
        ["bash", "-c", script, "bash", exports], env=start, capture_output=True, text=True, check=True
    ).stdout
    return dict(line.split("=", 1) for line in out.split("\0") if "=" in line)


@pytest.fixture(scope="module")
def sandbox_shell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shell]:
    """A fresh sandbox, a shell pointed at it, and the Kubernetes side built by 10_ingress's printed
    kubectl commands run in that shell."""
    root = tmp_path_factory.mktemp("gcloud-kit-root")
    state = tmp_path_factory.mktemp("gcloud-sandbox") / "state"
    params_file = _write_params(root, state)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MTLSKIT_ROOT", str(root))  # the printed commands' files are written here
        try:
            params = load(params_file)
            clients = build_clients(params)
            exports = subprocess.run(
                [sys.executable, "-m", "mtlskit.cli", "sandbox", "env", "--params", str(params_file)],
                capture_output=True,
                text=True,
                check=True,
                timeout=COMMAND_TIMEOUT,
            ).stdout
            env = shell_after_eval(exports, root)
            # 10_ingress's printed kubectl commands, as printed, in the shell the exports set up
            for command in _commands(k8s.plan_ingress(clients, params)):
                assert command.startswith("kubectl "), command
                ran = subprocess.run(
                    shlex.split(command), env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
                )
                assert ran.returncode == 0, f"{command}: {ran.stderr}"
            k8s.wait_for_backends(clients, params, 60)  # the controller's answer, as 10_ingress waits
            assert k8s.plan_ingress(clients, params) and all(
                c.action == "no change" for c in k8s.plan_ingress(clients, params)
            )
            yield Shell(params, clients, env, exports)
        finally:
            process.stop(state)


def _commands(rows: list[Change]) -> list[str]:
    return [r.gcloud for r in rows if r.gcloud]


@pytest.fixture(scope="module")
def built_by_gcloud(sandbox_shell: Shell) -> list[Ran]:
    """30_trust's printed commands, then 40_frontend's (planned once the trust exists, as the
    runbook does), each run once, in order."""
    s = sandbox_shell
    ran = [s.gcloud(c) for c in _commands(trust.plan_trust(s.clients, s.params))]
    bs = backend.locate_backend_service(s.clients, s.params)
    ran += [s.gcloud(c) for c in _commands(frontend.plan_frontend(s.clients, s.params, bs))]
    return ran


def test_sandbox_env_exports_a_gcloud_configuration_and_the_kubeconfig(sandbox_shell: Shell) -> None:
    env, state = sandbox_shell.env, sandbox_shell.params.state_dir
    info = process.status(state)
    assert info is not None
    assert env["CLOUDSDK_CONFIG"] == str(state / shell.GCLOUD_DIR)
    assert env["KUBECONFIG"] == info.kubeconfig
    assert "CLOUDSDK_CORE_PROJECT" not in env  # a stale override would outrank the configuration
    assert env["NO_PROXY"].startswith("127.0.0.1,")
    config = (Path(env["CLOUDSDK_CONFIG"]) / "configurations" / f"config_{shell.CONFIGURATION}").read_text()
    assert f"compute = {info.endpoint}/compute/v1/" in config and "disable_credentials = true" in config


def test_gcloud_configuration_is_rewritten_only_when_it_changes(tmp_path: Path) -> None:
    directory = shell.write_gcloud_config(tmp_path, "http://127.0.0.1:1111", PROJECT)
    config = directory / "configurations" / f"config_{shell.CONFIGURATION}"
    first = config.stat().st_mtime_ns
    assert shell.write_gcloud_config(tmp_path, "http://127.0.0.1:1111", PROJECT) == directory
    assert config.stat().st_mtime_ns == first
    shell.write_gcloud_config(tmp_path, "http://127.0.0.1:2222/", PROJECT)  # restarted on another port
    assert "logging = http://127.0.0.1:2222/\n" in config.read_text()
    assert (directory / "active_config").read_text() == shell.CONFIGURATION


@needs_gcloud
def test_printed_trust_and_frontend_commands_build_the_frontend(
    sandbox_shell: Shell, built_by_gcloud: list[Ran]
) -> None:
    s = sandbox_shell
    assert len(built_by_gcloud) == 2 + len(frontend.KINDS), "\n".join(map(str, built_by_gcloud))
    failed = [str(r) for r in built_by_gcloud if not r.clean]
    assert not failed, "printed commands that failed or warned:\n" + "\n".join(failed)

    status = frontend.frontend_status(s.clients, s.params)
    assert status.ip.startswith("127.") and status.domains == s.params.frontend.domains
    assert [c.action for c in trust.plan_trust(s.clients, s.params)] == ["no change"] * 2
    bs = backend.locate_backend_service(s.clients, s.params)
    step = Step(s.params, s.clients, apply=False)
    step.run(frontend.plan_frontend, frontend.apply_frontend, bs)
    assert step.outcome is not None and {c.action for c in step.outcome} == {"no change"}
    assert [c.status for c in outcome_checks(step, "frontend matches params")] == ["pass"]


@needs_gcloud
def test_the_data_plane_serves_the_gcloud_built_frontend(
    sandbox_shell: Shell, built_by_gcloud: list[Ran], tmp_path: Path
) -> None:
    s = sandbox_shell
    target = probe.locate_frontend(s.clients, s.params)
    assert target.answering, target.rows()
    case = probe.probe_cases(s.params)[0]
    assert case.name == probe.PROBE_CERTIFICATE
    result = probe.probe(target, case, probe.mtls_header_names(s.params), tmp_path)
    assert result.http_status == 200, result


@needs_gcloud
def test_every_gcloud_read_the_runbook_mentions_succeeds_without_warnings(
    sandbox_shell: Shell, built_by_gcloud: list[Ran], tmp_path: Path
) -> None:
    s = sandbox_shell
    f, m = s.params.frontend, s.params.mtls
    bs = backend.locate_backend_service(s.clients, s.params).name
    target = probe.locate_frontend(s.clients, s.params)  # one request, so the log has an entry
    probe.probe(target, probe.probe_cases(s.params)[0], probe.mtls_header_names(s.params), tmp_path)
    log_read = next(line for line in logs.by_hand(s.params).splitlines() if line.startswith("gcloud "))
    proxy_read = (
        f"gcloud compute target-https-proxies describe {f.target_proxy} --global "
        "--format='yaml(urlMap,sslCertificates,sslPolicy,serverTlsPolicy)'"
    )
    reads = [
        f"gcloud compute addresses describe {f.address} --global --format='value(address)'",
        f"gcloud compute ssl-certificates describe {f.certificate} --global --format='yaml(managed)'",
        f"gcloud compute ssl-policies describe {f.ssl_policy} --global",
        f"gcloud compute url-maps describe {f.url_map} --global --format='value(defaultService)'",
        proxy_read,
        f"gcloud compute forwarding-rules describe {f.forwarding_rule} --global "
        "--format='value(IPAddress,portRange,target)'",
        f"gcloud compute backend-services describe {bs} --global "
        "--format='yaml(loadBalancingScheme,logConfig,customRequestHeaders,backends)'",
        f"gcloud compute backend-services get-health {bs} --global",
        f"gcloud network-security server-tls-policies describe {m.server_tls_policy} --location=global",
        f"gcloud certificate-manager trust-configs describe {m.trust_config} --location=global",
        "gcloud network-security server-tls-policies list --location=global",
        "gcloud certificate-manager trust-configs list --location=global",
        "gcloud compute forwarding-rules list --global --filter='description~managed-by=mtlskit'",
        "gcloud config get-value project",
        log_read,
    ]
    # Without a scope flag, each list is an aggregated list.
    expected = {
        "addresses": [f.address],
        "ssl-certificates": [f.certificate],
        "ssl-policies": [f.ssl_policy],
        "url-maps": [f.url_map],
        "target-https-proxies": [f.target_proxy],
        "forwarding-rules": [f.forwarding_rule],
        "backend-services": [bs],
    }
    lists = {
        f"gcloud compute {group} list --format='value(name)'": names for group, names in expected.items()
    }
    ran = {r.command: r for r in s.gcloud_all(reads + list(lists))}
    failed = [str(r) for r in ran.values() if not r.clean]
    assert not failed, "gcloud reads that failed or warned:\n" + "\n".join(failed)
    for command, names in lists.items():
        assert ran[command].stdout.split() == names, command
    assert f"serverTlsPolicies/{m.server_tls_policy}" in ran[proxy_read].stdout
    assert ran["gcloud config get-value project"].stdout.strip() == PROJECT
    entries = json.loads(ran[log_read].stdout)
    assert entries and entries[0]["resource"]["type"] == "http_load_balancer", entries


@needs_gcloud
def test_printed_updates_pass_the_fingerprint_check(sandbox_shell: Shell, built_by_gcloud: list[Ran]) -> None:
    """gcloud reads the fingerprint and sends it back in the URL-safe alphabet; each printed update
    (an SSL policy changed and changed back, the proxy's settings reapplied) must take."""
    s = sandbox_shell
    bs = backend.locate_backend_service(s.clients, s.params)
    restricted = s.params.model_copy(
        update={"frontend": s.params.frontend.model_copy(update={"ssl_profile": "RESTRICTED"})}
    )
    for params in (restricted, s.params):
        rows = [r for r in frontend.plan_frontend(s.clients, params, bs) if r.action == "update"]
        assert [r.kind for r in rows] == ["SslPolicy"], rows
        ran = s.gcloud(rows[0].gcloud)
        assert ran.clean, str(ran)
        assert {c.action for c in frontend.plan_frontend(s.clients, params, bs)} == {"no change"}
    f = s.params.frontend
    proxy = frontend.gcloud("TargetHttpsProxy", f.target_proxy, s.params, bs, exists=True)
    assert s.gcloud(proxy).clean
    assert {c.action for c in frontend.plan_frontend(s.clients, s.params, bs)} == {"no change"}


def test_printed_trust_updates_take(sandbox_shell: Shell, built_by_gcloud: list[Ran]) -> None:
    """The trust config's PATCH requires an update mask and the server TLS policy's does not: each
    printed update of an existing one (a certificate allowlisted and removed, the mode switched and
    back) must take as typed, and leave nothing to plan."""
    s = sandbox_shell
    leaf = str(Path(s.params.mtls.trust_anchors[0]).with_name("allowlisted-client.pem"))
    changed = s.params.model_copy(
        update={
            "mtls": s.params.mtls.model_copy(
                update={"allowlisted": [leaf], "validation_mode": "ALLOW_INVALID_OR_MISSING_CLIENT_CERT"}
            )
        }
    )
    for params in (changed, s.params):
        rows = [r for r in trust.plan_trust(s.clients, params) if r.action == "update"]
        assert [r.kind for r in rows] == ["TrustConfig", "ServerTlsPolicy"], rows
        assert "--update-mask=" in rows[0].gcloud and "--update-mask" not in rows[1].gcloud
        for row in rows:
            ran = s.gcloud(row.gcloud)
            assert ran.clean, str(ran)
        assert {c.action for c in trust.plan_trust(s.clients, params)} == {"no change"}


def pages(s: Shell) -> dict[str, byhand.ByHand]:
    """Every page's by-hand commands, rendered with what each step locates (the backend service, the
    frontend as a client finds it, the drift state), as the notebooks render them."""
    bs = backend.locate_backend_service(s.clients, s.params)
    located: dict[str, byhand.Located] = {
        "20_backend_service": bs,
        "50_verify": probe.locate_frontend(s.clients, s.params),
        "70_drift": drift.read_state(s.clients, s.params),
    }
    return {step: byhand.by_hand(s.params, step, located.get(step, bs.name)) for step in byhand.STEPS}


@needs_gcloud
def test_the_reads_the_notebook_pages_print_succeed_as_written(
    sandbox_shell: Shell, built_by_gcloud: list[Ran]
) -> None:
    """Every gcloud read of every page, as rendered from the params (non-default names), in the shell
    `mtlskit sandbox env` sets up; the lists and describes answer with this stack's resources."""
    s = sandbox_shell
    rendered = pages(s)
    assert {step: page.placeholders for step, page in rendered.items() if page.placeholders} == {}
    reads = list(dict.fromkeys(line for page in rendered.values() for line in page.reads("gcloud")))
    without = [step for step, page in rendered.items() if not page.reads("gcloud")]
    assert without == ["10_ingress"] and len(reads) >= 15, reads  # 10_ingress reads only Kubernetes
    ran = {r.command: r for r in s.gcloud_all(reads)}
    failed = [str(r) for r in ran.values() if not r.clean]
    assert not failed, "\n".join(failed)
    f, m = s.params.frontend, s.params.mtls
    bs = backend.locate_backend_service(s.clients, s.params)
    leftovers = {c.line: c for c in rendered["90_teardown"].commands if c.tool == "gcloud"}
    found = " ".join(ran[line].stdout for line in leftovers)
    assert f.forwarding_rule in found and m.server_tls_policy in found and m.trust_config in found, found
    url_map = next(line for line in reads if "url-maps describe" in line)
    assert ran[url_map].stdout.strip().endswith(f"/backendServices/{bs.name}")


@needs_kubectl
def test_the_kubectl_reads_the_notebook_pages_print_succeed_as_written(
    sandbox_shell: Shell, built_by_gcloud: list[Ran]
) -> None:
    """Every kubectl read of every page, as rendered (the params' namespace), in the same shell."""
    s = sandbox_shell
    reads = list(dict.fromkeys(line for page in pages(s).values() for line in page.reads("kubectl")))
    assert len(reads) >= 4, reads
    k = s.params.kubernetes
    outputs = {}
    for line in reads:
        ran = subprocess.run(
            shlex.split(line), env=s.env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
        )
        assert ran.returncode == 0 and not ran.stderr.strip(), f"{line}\n  -> {ran.returncode}: {ran.stderr}"
        outputs[line] = ran.stdout
    bs = backend.locate_backend_service(s.clients, s.params)
    annotation = next(out for line, out in outputs.items() if "jsonpath=" in line)
    assert bs.name in json.loads(annotation)
    listed = next(out for line, out in outputs.items() if line.startswith("kubectl get service/"))
    assert all(name in listed for name in (k.service, k.backend_config, k.ingress)), listed


@needs_gcloud
@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl on PATH")
def test_the_requests_50_verify_prints_get_the_outcomes_it_says(
    sandbox_shell: Shell, built_by_gcloud: list[Ran]
) -> None:
    """50_verify's curl lines, run as printed after the line that sets $IP: the probe certificate gets
    the backend's answer; no certificate, and a demo certificate the trust config does not trust, are
    closed in the handshake (REJECT_INVALID), with the curl exit codes the page names."""
    s = sandbox_shell
    page = byhand.by_hand(s.params, "50_verify", probe.locate_frontend(s.clients, s.params))
    setter = next(c for c in page.commands if c.sets)
    curls = [c for c in page.commands if c.tool == "curl"]
    assert [c.why.split(":")[0] for c in curls] == [
        "the probe certificate",
        "no certificate",
        "demo/selfsigned-client",
    ]
    for c in curls:
        script = f"{setter.sets}=$({setter.line}) && {c.line}"
        ran = subprocess.run(
            ["bash", "-c", script], env=s.env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
        )
        if "accepted" in c.why:
            assert ran.returncode == 0 and json.loads(ran.stdout)["path"] == "/", ran.stderr[-800:]
        else:
            assert ran.returncode in (35, 52, 56) and "(curl exit 35, 52 or 56)" in c.why, (
                c.line,
                ran.stderr[-800:],
            )


@needs_gcloud
def test_printed_teardown_commands_remove_what_gcloud_built(
    sandbox_shell: Shell, built_by_gcloud: list[Ran]
) -> None:
    """Last: 90_teardown's printed deletions, in its order, leave nothing for teardown to plan (the
    resources gcloud made carry the ownership marker the printed creates gave them)."""
    s = sandbox_shell
    rows = teardown.plan_teardown(s.clients, s.params)
    assert {r.action for r in rows} == {"delete"} and len(rows) == len(frontend.KINDS) + 2, rows
    ran = [s.gcloud(r.gcloud) for r in rows]
    failed = [str(r) for r in ran if not r.clean]
    assert not failed, "printed deletions that failed or warned:\n" + "\n".join(failed)
    assert teardown.plan_teardown(s.clients, s.params) == []
    assert backend.locate_backend_service(s.clients, s.params)  # the Ingress's own is never touched


@needs_gcloud
def test_printed_dns_cutover_commands_move_the_names(sandbox_shell: Shell) -> None:
    """A cut-over made by hand: the publish and cut-over plans' printed `gcloud dns record-sets`
    commands, run as printed, leave nothing for the kit's plan to do, and the names answer the new
    address from the sandbox's DNS responder."""
    s = sandbox_shell
    short = {"managed_zone": SANDBOX_ZONE, "ttl_seconds": 2, "cutover_ttl_seconds": 1}
    params = s.params.model_copy(update={"dns": s.params.dns.model_copy(update=short)})
    old, new = "192.0.2.10", "198.51.100.20"
    ran = [s.gcloud(c) for c in dns.plan_records(s.clients, params, old).commands]
    cutover = dns.plan_cutover(s.clients, params, new)
    assert len(cutover.steps) == 2
    ran += [s.gcloud(c) for c in cutover.commands]
    assert ran and all(r.clean for r in ran), "\n".join(map(str, ran))
    assert dns.plan_cutover(s.clients, params, new).changes_nothing
    resolved = dns.wait_resolves(params.frontend.domains, new, s.clients.nameserver, 10, every=0.2)
    assert resolved.done, resolved.answers
