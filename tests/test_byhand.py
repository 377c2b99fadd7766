"""teach.byhand: every page's "how to check by hand" commands carry the params' names, never the
sandbox's. The commands run through the real gcloud and kubectl in tests/test_gcloud.py."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from mtlskit import runbook
from mtlskit.build.backend import BackendService
from mtlskit.config import params as params_mod
from mtlskit.config import paths
from mtlskit.config.params import Params
from mtlskit.pki import certs
from mtlskit.teach import byhand
from mtlskit.verify import probe

NOTEBOOKS = paths.repo_root() / "notebooks"
# Every page with a by-hand table prints it (60_logs prints its own, from verify.logs).
PAGES = list(byhand.STEPS)
SEPARATORS = re.compile(r"""[\s'"/=:,(){}$~|<>\[\]]+""")


def other_params(tmp_path: Path, target: str = "sandbox") -> Params:
    """Every name the kit or Kubernetes uses changed from the sandbox's: stack, resources, domain,
    project, namespace, context and data-plane port, with the demo PKI generated in its own state."""
    state = tmp_path / "state"
    data: dict[str, Any] = params_mod.another_stack(params_mod.sandbox_default(state), "b")
    data["project"] = "team-b-project"
    data["kubernetes"].update(namespace="team-b", context="gke_team-b_cluster")
    data["sandbox"]["data_plane_port"] = 9443
    data["target"] = target
    if target == "gcp":
        data["frontend"]["domains"] = ["api.team-b.example.org"]
    certs.ensure_demo_pki(certs.DemoPki.in_state_dir(state).directory)
    return params_mod.parse(data, "team-b")


def sandbox_names() -> set[str]:
    """The names the committed sandbox params and the params' defaults use: none may reach a reader
    whose params say otherwise."""
    defaults = params_mod.load(paths.default_params_file())
    f, k, m = defaults.frontend, defaults.kubernetes, defaults.mtls
    names = {getattr(f, part) for part in params_mod.FRONTEND_NAMES} | set(f.domains)
    names |= {k.namespace, k.service, k.backend_config, k.ingress, m.trust_config, m.server_tls_policy}
    names |= {defaults.project, defaults.stack, *params_mod.FrontendSettings().domains}
    return names


def params_names(p: Params) -> set[str]:
    f, k, m = p.frontend, p.kubernetes, p.mtls
    names = {getattr(f, part) for part in params_mod.FRONTEND_NAMES} | set(f.domains)
    return names | {k.service, k.backend_config, k.ingress, m.trust_config, m.server_tls_policy}


def every_command(p: Params, located: byhand.Located = None) -> list[byhand.Command]:
    return [c for step in byhand.STEPS for c in byhand.by_hand(p, step, located).commands]


@pytest.mark.parametrize("target", ["sandbox", "gcp"])
def test_no_sandbox_name_reaches_another_environments_commands(tmp_path: Path, target: str) -> None:
    p = other_params(tmp_path, target)
    leaked = {
        f"{default!r} in: {c.line}"
        for c in every_command(p, "k8s1-team-b-backend")
        for default in sandbox_names()
        if default in SEPARATORS.split(c.line)
    }
    assert not leaked, sorted(leaked)


def test_every_name_a_command_reads_comes_from_the_params(tmp_path: Path) -> None:
    p = other_params(tmp_path)
    backend = "k8s1-team-b-backend"
    allowed = params_names(p) | {backend}
    commands = every_command(p, backend)
    for c in commands:
        words = shlex.split(c.line)
        if c.tool == "gcloud":
            assert f"--project={p.project}" in words, c.line
            verb = next((w for w in words if w in ("describe", "get-health")), None)
            named = verb and not words[words.index(verb) + 1].startswith("--")  # project-info: the project
            if named:
                assert words[words.index(verb) + 1] in allowed, c.line
        elif c.tool == "kubectl":
            assert words[words.index("-n") + 1] == "team-b", c.line
            assert "--context=gke_team-b_cluster" in words, c.line
            kinds = ("service", "backendconfig", "ingress")
            named = [w.split("/", 1)[1] for w in words if w.split("/", 1)[0] in kinds and "/" in w]
            named += [words[i + 1] for i, w in enumerate(words[:-1]) if w in kinds]
            assert named and set(named) <= allowed, c.line
    shown = {word for c in commands for word in SEPARATORS.split(c.line)}
    assert params_names(p) <= shown, params_names(p) - shown  # each name is checked somewhere
    assert {p.project, "team-b", p.kubernetes.ingress} <= shown


def test_the_backend_service_is_named_when_the_step_located_it_else_a_placeholder_says_where(
    tmp_path: Path,
) -> None:
    p = other_params(tmp_path)
    blank = byhand.by_hand(p, "20_backend_service")
    assert any(byhand.BACKEND_SERVICE in c.line for c in blank.commands)
    assert blank.placeholders == {byhand.BACKEND_SERVICE: byhand.PLACEHOLDERS[byhand.BACKEND_SERVICE]}
    assert str(blank).startswith(f"# {byhand.BACKEND_SERVICE}: the backend service's name")
    located = BackendService(
        "k8s1-abc-team-b", "", "EXTERNAL", "HTTP", "team-b/web-b", "80", "", True, 1.0, []
    )
    named = byhand.by_hand(p, "20_backend_service", located)
    assert not named.placeholders and byhand.BACKEND_SERVICE not in str(named)
    assert [c.line.split()[4] for c in named.commands if c.tool == "gcloud"] == ["k8s1-abc-team-b"] * 2
    assert str(named) == str(byhand.by_hand(p, "20_backend_service", "k8s1-abc-team-b"))


def test_requests_go_where_the_frontend_answers_with_the_params_files(tmp_path: Path) -> None:
    p = other_params(tmp_path)
    frontend = probe.Frontend(
        "b-forwarding-rule",
        "127.0.0.9",
        9443,
        ["b.mtlskit.test"],
        "/ca/stand-in.pem",
        "b-certificate",
        "ACTIVE",
        p.mtls.validation_mode,
        5.0,
    )
    text = str(byhand.by_hand(p, "50_verify", frontend))
    assert "IP=$(gcloud compute forwarding-rules describe b-forwarding-rule " in text
    assert "--resolve b.mtlskit.test:9443:$IP --cacert /ca/stand-in.pem https://b.mtlskit.test:9443/" in text
    assert f"--cert {p.probe.client_cert} --key {p.probe.client_key}" in text
    pki = certs.DemoPki.in_state_dir(p.state_dir)
    assert f"--cert {pki.cert('selfsigned-client')} --key {pki.key('selfsigned-client')}" in text
    assert "demo/selfsigned-client: refused: client_cert_validation_failed" in text
    assert "openssl s_client -connect $IP:9443 -servername b.mtlskit.test -tls1_1 </dev/null" in text
    assert "PRIVATE KEY" not in text  # keys are named by path, never read

    unlocated = str(byhand.by_hand(p, "50_verify"))
    assert f"--cacert {byhand.SANDBOX_CA}" in unlocated and f"# {byhand.SANDBOX_CA}: " in unlocated
    gcp = str(byhand.by_hand(other_params(tmp_path / "gcp", "gcp"), "50_verify"))
    assert "https://api.team-b.example.org/ " in gcp and "--cacert" not in gcp and ":443:$IP" in gcp


def test_teardown_lists_only_this_stacks_resources(tmp_path: Path) -> None:
    p = other_params(tmp_path)
    lists = byhand.by_hand(p, "90_teardown").reads("gcloud")
    assert all(f"stack={p.stack}" in line or f"mtlskit-stack={p.stack}" in line for line in lists), lists


def test_an_unknown_step_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="60_logs prints its own") as err:
        byhand.by_hand(other_params(tmp_path), "60_logs")
    assert all(step in str(err.value) for step in byhand.STEPS)


def test_the_runbook_exports_it_and_it_prints_as_lines_to_paste_or_a_table(tmp_path: Path) -> None:
    assert runbook.by_hand is byhand.by_hand
    page = byhand.by_hand(other_params(tmp_path), "30_trust")
    lines = str(page).splitlines()
    assert [line for line in lines if line and not line.startswith("#")] == [c.line for c in page.commands]
    assert list(page.frame().columns) == ["command", "shows"] and len(page.frame()) == len(page.commands)


def _cells(page: str, kind: str) -> list[str]:
    cells = json.loads((NOTEBOOKS / f"{page}.ipynb").read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == kind]


@pytest.mark.parametrize("page", PAGES)
def test_each_page_prints_its_commands_and_hard_codes_none(page: str) -> None:
    calls = [c for c in _cells(page, "code") if "by_hand(" in c]
    assert len(calls) == 1 and f'"{page}"' in calls[0] and calls[0].startswith("print(runbook.by_hand("), (
        calls
    )
    typed = [
        line
        for text in _cells(page, "markdown")
        for line in text.splitlines()
        if re.match(r"\s*(gcloud|kubectl) ", line)
    ]
    assert not typed, f"{page}: commands typed into the markdown instead of rendered from the params: {typed}"
