"""Every equivalent command the runbook prints parses with the real Google Cloud CLI and kubectl.

Commands are collected from real plans (create, update, teardown) against a sandbox and run through
the real tools in a way that can reach nothing:

- gcloud runs with an empty `CLOUDSDK_CONFIG` (no account, no project) and `--quiet`. A command whose
  group, command, flags and `--source` file parse gets as far as asking for credentials and stops
  there with exit code 1 and "You do not currently have an active account selected"; a misspelt
  group, an unknown flag or a bad flag value stops at parsing (exit code 2), and an import file that
  breaks gcloud's schema stops before credentials with the schema error. Every proxy setting points
  at a local tripwire listener, so any request that did leave would be counted.
- kubectl runs with `--dry-run=client` and a kubeconfig whose server is a local port that refuses
  connections: flags, the `-f` file's existence and YAML, apiVersion and kind are checked first, and
  a command that passes them stops at the API discovery call with "connection refused".
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.cloud import certificate_manager_v1 as cm
from google.cloud import network_security_v1 as ns
from google.protobuf import json_format

from mtlskit.build import frontend, k8s, stack, teardown, trust
from mtlskit.build.backend import BackendService
from mtlskit.build.plan import Change
from mtlskit.cloud.clients import Clients, build_clients
from mtlskit.cloud.ownership import compute_description as owner_description
from mtlskit.config import paths
from mtlskit.config.params import Params
from mtlskit.sandbox import process
from tests.conftest import PROJECT, sandbox_params

GCLOUD = shutil.which("gcloud")
KUBECTL = shutil.which("kubectl")
needs_gcloud = pytest.mark.skipif(
    GCLOUD is None, reason="needs the Google Cloud CLI on PATH: install google-cloud-cli (gcloud)"
)
needs_kubectl = pytest.mark.skipif(
    KUBECTL is None, reason="needs kubectl on PATH: install kubectl (or `gcloud components install kubectl`)"
)

NO_ACCOUNT = "You do not currently have an active account selected"
COMMAND_TIMEOUT = 60.0


@dataclass
class Outcome:
    """What a tool said about one command: whether it parsed, and the evidence."""

    command: str
    parsed: bool
    returncode: int
    output: str

    def __str__(self) -> str:
        return f"{self.command}\n  -> exit {self.returncode}: {self.output.strip()[:400]}"


class Tripwire:
    """A local listener that counts every connection: the proxy every gcloud request would go through."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.requests: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.requests.append(conn.recv(200))
                except OSError:
                    self.requests.append(b"")

    def close(self) -> None:
        self._sock.close()


def gcloud_parses(command: str, tripwire: Tripwire, extra: tuple[str, ...] = ()) -> Outcome:
    """Run one printed gcloud command offline; it parsed when it stopped for lack of credentials."""
    with tempfile.TemporaryDirectory(prefix="gcloud-config-") as config:
        proxy = f"http://127.0.0.1:{tripwire.port}"
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": config,
            "CLOUDSDK_CONFIG": config,  # empty: no account, no project, no cached credentials
            "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
            "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "1",
            "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "1",
            "CLOUDSDK_PROXY_TYPE": "http",
            "CLOUDSDK_PROXY_ADDRESS": "127.0.0.1",
            "CLOUDSDK_PROXY_PORT": str(tripwire.port),
            "HTTPS_PROXY": proxy,
            "HTTP_PROXY": proxy,
            "https_proxy": proxy,
            "http_proxy": proxy,
        }
        argv = [*shlex.split(command), *extra, "--quiet"]
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    output = result.stdout + result.stderr
    return Outcome(command, result.returncode == 1 and NO_ACCOUNT in output, result.returncode, output)


class NowhereCluster:
    """A kubeconfig whose API server is a local port that is bound but never listens: every
    connection is refused at once, so kubectl can reach nothing."""

    def __init__(self, directory: Path) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._sock.getsockname()[1]}"
        self.kubeconfig = directory / "nowhere.kubeconfig"
        self.kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "nowhere", "cluster": {"server": f"https://{self.address}"}}],
                    "users": [{"name": "nowhere", "user": {"token": "none"}}],
                    "contexts": [{"name": "nowhere", "context": {"cluster": "nowhere", "user": "nowhere"}}],
                    "current-context": "nowhere",
                }
            )
        )

    def close(self) -> None:
        self._sock.close()


def kubectl_parses(command: str, cluster: NowhereCluster) -> Outcome:
    """Run one printed kubectl command against nowhere; it parsed when it got as far as the server
    (or, for generators such as `create namespace`, finished the client-side dry run)."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(cluster.kubeconfig.parent)}
    env["KUBECONFIG"] = str(cluster.kubeconfig)
    argv = [*shlex.split(command), "--dry-run=client"]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    output = result.stdout + result.stderr
    reached_server = cluster.address in output and "connection refused" in output
    return Outcome(command, result.returncode == 0 or reached_server, result.returncode, output)


def run_all(check: Callable[[str], Outcome], commands: list[str]) -> list[Outcome]:
    """Each tool start costs up to a second of CPU: run the commands side by side."""
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        return list(pool.map(check, commands))


# --- a sandbox with one built stack, and plans against it --------------------------------------------


@dataclass
class Built:
    params: Params
    clients: Clients
    bs: BackendService
    root: Path  # MTLSKIT_ROOT: where the runbook files are written


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    root = tmp_path_factory.mktemp("kit-root")
    state = tmp_path_factory.mktemp("commands-sandbox")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MTLSKIT_ROOT", str(root))
        try:
            params = sandbox_params(state, stack="cmds")
            clients = build_clients(params)
            bs = stack.build(clients, params, timeout=60)
            yield Built(params, clients, bs, root)
        finally:
            process.stop(state)


def _variant(b: Built, **overrides: Any) -> Params:
    overrides.setdefault("stack", b.params.stack)
    return sandbox_params(b.params.state_dir, **overrides)


def _fresh(b: Built) -> Params:
    """Other names everywhere: every row of every plan is a create."""
    pki = b.params.state_dir / "pki"
    return _variant(
        b,
        stack="fresh",
        kubernetes={
            "namespace": "fresh-ns",
            "service": "fresh",
            "backend_config": "fresh-bc",
            "ingress": "fresh-a",
        },
        frontend={
            "address": "fresh-ip",
            "certificate": "fresh-cert",
            "ssl_policy": "fresh-ssl",
            "url_map": "fresh-um",
            "target_proxy": "fresh-proxy",
            "forwarding_rule": "fresh-fr",
            "domains": ["fresh.mtlskit.test", "www.fresh.mtlskit.test"],
        },
        mtls={
            "trust_config": "fresh-trust",
            "server_tls_policy": "fresh-policy",
            "allowlisted": [str(pki / "allowlisted-client.pem")],
        },
    )


def collect_plans(b: Built) -> list[Change]:
    """Rows from create, update and teardown plans: every row that prints a command."""
    fresh = _fresh(b)
    rows = k8s.plan_ingress(b.clients, fresh) + trust.plan_trust(b.clients, fresh)
    # The frontend plan needs an existing server TLS policy: the built one, under fresh names.
    rows += frontend.plan_frontend(b.clients, fresh.model_copy(update={"mtls": b.params.mtls}), b.bs)

    changed = _variant(
        b,
        kubernetes={"target_port": 9090},
        logging={"sample_rate": 0.5},
        mtls={
            "validation_mode": "ALLOW_INVALID_OR_MISSING_CLIENT_CERT",
            "allowlisted": [str(b.params.state_dir / "pki" / "allowlisted-client.pem")],
        },
        frontend={"ssl_profile": "RESTRICTED", "domains": ["changed.mtlskit.test"]},
    )
    rows += k8s.plan_ingress(b.clients, changed) + trust.plan_trust(b.clients, changed)
    rows += frontend.plan_frontend(b.clients, changed, dataclasses.replace(b.bs, name="k8s1-other-bs"))
    # A renamed SSL policy makes the proxy an update; a different scheme makes the forwarding rule one.
    renamed = _variant(b, frontend={"ssl_policy": "renamed-ssl"})
    # params refuse any scheme but EXTERNAL; the command builder still has to say something sensible
    renamed = renamed.model_copy(
        update={"frontend": renamed.frontend.model_copy(update={"load_balancing_scheme": "EXTERNAL_MANAGED"})}
    )
    rows += frontend.plan_frontend(b.clients, renamed, dataclasses.replace(b.bs, scheme="EXTERNAL_MANAGED"))

    rows += teardown.plan_teardown(b.clients, b.params, delete_anchor=True)
    return [r for r in rows if r.gcloud]


@pytest.fixture(scope="module")
def planned(built: Built) -> list[Change]:
    return collect_plans(built)


def _tool(command: str) -> str:
    return command.split(" ", 1)[0]


# --- the tests ---------------------------------------------------------------------------------------


def test_plans_cover_create_update_and_delete_of_every_kind(planned: list[Change]) -> None:
    seen = {(c.kind, c.action) for c in planned}
    for kind in [*frontend.KINDS, "TrustConfig", "ServerTlsPolicy", "Service", "BackendConfig", "Ingress"]:
        assert (kind, "create") in seen, kind
    for kind in ["Address", "SslCertificate", "SslPolicy", "UrlMap", "TargetHttpsProxy", "ForwardingRule"]:
        assert (kind, "delete") in seen, kind
    for kind in [
        "SslPolicy",
        "SslCertificate",
        "UrlMap",
        "TargetHttpsProxy",
        "ForwardingRule",
        "TrustConfig",
        "ServerTlsPolicy",
        "Service",
        "BackendConfig",
    ]:
        assert (kind, "update") in seen, kind
    assert ("Namespace", "create") in seen and ("Ingress", "delete") in seen
    assert {_tool(c.gcloud) for c in planned} == {"gcloud", "kubectl"}


def test_every_command_names_its_scope(planned: list[Change], built: Built) -> None:
    """Parsing cannot tell a missing --project (gcloud would use the shell's default project): check
    the scope flags by name."""
    for c in planned:
        words = shlex.split(c.gcloud)
        if words[0] == "gcloud":
            assert f"--project={built.params.project}" in words, c.gcloud
            assert "--global" in words or "--location=global" in words, c.gcloud
        elif words[1:3] != ["create", "namespace"]:
            assert "-n" in words, c.gcloud
        assert len(c.gcloud.splitlines()) == 1, c.gcloud


def test_files_named_by_commands_hold_what_the_kit_sends(planned: list[Change], built: Built) -> None:
    """`-f` / `--source` name an absolute path in the stack's manifest directory holding exactly the
    desired state of the row, and nothing secret."""
    newest: dict[Path, Change] = {}  # a later plan of the same stack rewrites the file
    for c in planned:
        match = re.search(r"(?:-f |--source=)(\S+)", c.gcloud)
        if match is not None:
            newest[Path(shlex.split(match.group(1))[0])] = c
    # Service, BackendConfig and both imports for two stacks, and the fresh stack's Ingress (the built
    # stack's Ingress is unchanged, so its row prints nothing).
    assert len(newest) == 9, sorted(newest)
    for path, c in newest.items():
        assert path.is_absolute() and path.is_file(), c.gcloud
        assert path.parent.parent == built.root / "runs" / "manifests", path
        assert path.parent.name in {f"{PROJECT}-cmds", f"{PROJECT}-fresh"}, path
        text = path.read_text()
        assert "PRIVATE KEY" not in text, path
        if c.kind == "TrustConfig":
            want = json_format.MessageToDict(cm.TrustConfig.pb(cm.TrustConfig(c.desired)))
            assert "-----BEGIN CERTIFICATE-----" in text
        elif c.kind == "ServerTlsPolicy":
            want = json_format.MessageToDict(ns.ServerTlsPolicy.pb(ns.ServerTlsPolicy(c.desired)))
        else:
            want = c.desired
        assert yaml.safe_load(text) == want, path


@needs_gcloud
def test_every_printed_gcloud_command_parses(planned: list[Change], built: Built) -> None:
    gcloud_commands = sorted({c.gcloud for c in planned if _tool(c.gcloud) == "gcloud"})
    # SSL policies the GA flags cannot express (FIPS_202205, TLS 1.3) print the alpha import instead.
    for profile, min_tls in [
        ("COMPATIBLE", "TLS_1_0"),
        ("RESTRICTED", "TLS_1_3"),
        ("FIPS_202205", "TLS_1_2"),
    ]:
        p = _variant(built, frontend={"ssl_profile": profile, "min_tls_version": min_tls})
        gcloud_commands.append(frontend.gcloud("SslPolicy", "p", p, built.bs, exists=profile != "COMPATIBLE"))

    bad_source = built.root / "bad-trustconfig.yaml"
    bad_source.write_text("trustStores:\n- trust_anchors: []\n")  # snake_case: not the API's field name
    wrong = [
        f"gcloud compute forwardingRules create fr --global --project={PROJECT}",
        f"gcloud compute addresses create ip --global --ip-version=IPV5 --project={PROJECT}",
        f"gcloud certificate-manager trust-configs import t --source={bad_source} --location=global "
        f"--project={PROJECT}",
        f"gcloud certificate-manager trust-configs import t --source={built.root}/missing.yaml "
        f"--location=global --project={PROJECT}",
    ]
    tripwire, control_wire = Tripwire(), Tripwire()
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            # The control: with a (fake) token gcloud does send a request, and the tripwire sees it.
            token = built.root / "fake-token"
            token.write_text("not-a-token")
            control = pool.submit(
                gcloud_parses,
                f"gcloud compute addresses list --project={PROJECT}",
                control_wire,
                (f"--access-token-file={token}",),
            )
            outcomes = list(pool.map(lambda cmd: gcloud_parses(cmd, tripwire), gcloud_commands + wrong))
            control.result()
    finally:
        tripwire.close()
        control_wire.close()

    printed, refused = outcomes[: len(gcloud_commands)], outcomes[len(gcloud_commands) :]
    failures = [str(o) for o in printed if not o.parsed]
    assert not failures, "printed gcloud commands that do not parse:\n" + "\n".join(failures)
    assert all(not o.parsed for o in refused), "\n".join(str(o) for o in refused)
    assert [o.returncode for o in refused[:2]] == [2, 2], "\n".join(str(o) for o in refused)
    assert "Invalid choice: 'forwardingRules'" in refused[0].output
    assert "trust_anchors" in refused[2].output and "Unable to read file" in refused[3].output
    assert tripwire.requests == [], tripwire.requests  # no credentials, so not one request left
    assert control_wire.requests and b"googleapis.com" in control_wire.requests[0], control_wire.requests


@needs_kubectl
def test_every_printed_kubectl_command_parses(planned: list[Change], built: Built, tmp_path: Path) -> None:
    kubectl_commands = sorted({c.gcloud for c in planned if _tool(c.gcloud) == "kubectl"})
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: v1\nkind: [Service\n")
    anyfile = next(c.gcloud for c in planned if " apply -f " in c.gcloud)
    wrong = [
        f"kubectl apply -f {tmp_path}/missing.yaml -n default",
        f"kubectl apply -f {broken} -n default",
        anyfile + " --prune-all-the-things",
        "kubectl delete ingresss web-anchor -n default --wait=maybe",
    ]
    cluster = NowhereCluster(tmp_path)
    try:
        outcomes = run_all(lambda cmd: kubectl_parses(cmd, cluster), kubectl_commands + wrong)
    finally:
        cluster.close()
    printed, refused = outcomes[: len(kubectl_commands)], outcomes[len(kubectl_commands) :]
    failures = [str(o) for o in printed if not o.parsed]
    assert not failures, "printed kubectl commands that do not parse:\n" + "\n".join(failures)
    assert all(not o.parsed for o in refused), "\n".join(str(o) for o in refused)
    assert "does not exist" in refused[0].output and "error parsing" in refused[1].output
    assert "unknown flag" in refused[2].output


def test_kubectl_commands_carry_the_params_cluster(tmp_path: Path) -> None:
    """A named context or kubeconfig in the params goes into the printed command, so a paste at 3 a.m.
    reaches the cluster the kit used, not the shell's current context."""
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text("")
    p = sandbox_params(
        tmp_path / "state",
        kubernetes={"namespace": "team-a", "context": "prod-eu", "kubeconfig": str(kubeconfig)},
    )
    assert k8s.kubectl_target(p) == f"-n team-a --context=prod-eu --kubeconfig={kubeconfig}"
    assert k8s.kubectl_target(p, namespaced=False) == f"--context=prod-eu --kubeconfig={kubeconfig}"


def test_frontend_rows_print_their_gcloud_compute_group(tmp_path: Path) -> None:
    p = sandbox_params(tmp_path / "state", stack="unit")
    bs = BackendService("k8s1-x", "", "EXTERNAL", "HTTP", "default/web", "80", "HEALTHY", True, 1.0, [])
    names = frontend.resource_names(p)
    for kind, spec in frontend.KINDS.items():
        create = frontend.gcloud(kind, names[kind], p, bs)
        assert create.startswith(f"gcloud compute {spec.gcloud_group} create {names[kind]} "), create
        assert f"--description={shlex.quote(owner_description('unit'))}" in create
        existing = frontend.gcloud(kind, names[kind], p, bs, exists=True)
        assert existing.startswith(f"gcloud compute {spec.gcloud_group} "), existing
        verb = shlex.split(existing)[3]
        assert verb in ({"update", "set-default-service"} if spec.patchable else {"describe"}), existing


def test_ssl_policy_beyond_the_ga_flags_prints_the_import_of_a_written_file(tmp_path: Path) -> None:
    """`ssl-policies create` takes neither FIPS_202205 nor TLS 1.3 (the parse check caught both), so
    such a policy is shown as the file the kit sends and the import that applies it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MTLSKIT_ROOT", str(tmp_path))
        p = sandbox_params(
            tmp_path / "state", frontend={"ssl_profile": "FIPS_202205", "min_tls_version": "TLS_1_2"}
        )
        bs = BackendService("k8s1-x", "", "EXTERNAL", "HTTP", "default/web", "80", "HEALTHY", True, 1.0, [])
        command = frontend.gcloud("SslPolicy", "pol", p, bs)
    assert command.startswith("gcloud alpha compute ssl-policies import pol --source=/"), command
    source = Path(shlex.split(command)[6].removeprefix("--source="))
    assert yaml.safe_load(source.read_text()) == {
        "description": owner_description(p.stack),
        "profile": "FIPS_202205",
        "minTlsVersion": "TLS_1_2",
    }


def test_manifest_files_refuse_private_keys(tmp_path: Path) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MTLSKIT_ROOT", str(tmp_path))
        body = {"pemCertificate": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}
        with pytest.raises(ValueError, match="private key"):
            paths.write_manifest(PROJECT, "s", "trustconfig-t.yaml", body)
    assert not (tmp_path / "runs" / "manifests" / f"{PROJECT}-s" / "trustconfig-t.yaml").exists()
