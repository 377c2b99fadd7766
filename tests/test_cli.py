"""The command line: what an SRE types, checked through its exit code, output and files."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509

from mtlskit.cli import main
from mtlskit.pki import certs
from mtlskit.runner.results import EXIT_BAD_PARAMS


def test_demo_pki_writes_every_case_with_private_keys_owner_only(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    result = CliRunner().invoke(main, ["certs", "demo-pki", "--out", str(out)])
    assert result.exit_code == 0, result.output
    for spec in certs.demo_pki_specs():
        assert spec.name in result.output and spec.expected in result.output
        x509.load_pem_x509_certificate((out / f"{spec.name}.pem").read_bytes())
        key = out / f"{spec.name}.key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "PRIVATE KEY" not in result.output
    # a second call keeps the PKI (fingerprints stay stable); --force issues new certificates
    before = (out / "client.pem").read_bytes()
    assert CliRunner().invoke(main, ["certs", "demo-pki", "--out", str(out)]).exit_code == 0
    assert (out / "client.pem").read_bytes() == before
    assert CliRunner().invoke(main, ["certs", "demo-pki", "--out", str(out), "--force"]).exit_code == 0
    assert (out / "client.pem").read_bytes() != before


def test_run_refuses_bad_params_and_unknown_notebooks_before_running_anything(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("target: sandbox\nproject: Not_A_Project\n")
    result = CliRunner().invoke(main, ["run", "--params", str(bad), "--out", str(tmp_path / "out")])
    assert result.exit_code != 0
    assert "project" in result.output and "mtls: required key is missing" in result.output
    assert not (tmp_path / "out").exists()

    result = CliRunner().invoke(main, ["run", "--out", str(tmp_path / "out2"), "99_nonsense"])
    assert result.exit_code != 0 and "no such notebook: 99_nonsense" in result.output
    assert not (tmp_path / "out2").exists()


def test_check_params_prints_the_resolved_paths_and_writes_nothing(tmp_path: Path) -> None:
    pki = tmp_path / "certs"
    root = certs.issue("cli root", ca=True, eku=certs.CLIENT_AUTH)
    certs.write_issued(pki, "root", root)
    env = tmp_path / "envs"
    env.mkdir()
    file = env / "team.yaml"
    file.write_text(
        "target: sandbox\nproject: mtlskit-sandbox\nsandbox: {state_dir: st, demo_pki: false}\n"
        "mtls: {trust_anchors: [../certs/root.pem]}\n"
    )
    before = sorted(tmp_path.rglob("*"))
    result = CliRunner().invoke(main, ["check-params", str(file)])
    assert result.exit_code == 0, result.output
    assert f"relative ones are taken from {env}" in result.output
    assert f"sandbox.state_dir      {env / 'st'}  [created when the sandbox starts]" in result.output
    assert f"mtls.trust_anchors[0]  {pki / 'root.pem'}  [found]" in result.output
    assert "kubernetes.kubeconfig  -  [not set: the sandbox writes its own]" in result.output
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize(
    "args",
    [
        ["verify", "--jobs", "0", "params/sandbox.yaml"],
        ["verify", "--no-such-option"],
        ["run", "--no-such-option"],
        ["run", "--timeout", "soon"],
    ],
)
def test_a_usage_error_exits_3_like_invalid_params_not_2_like_a_crash(args: list[str]) -> None:
    """A scheduler retries exit code 2 (a crash); a wrong command line would fail again every time."""
    result = CliRunner().invoke(main, args)
    assert result.exit_code == EXIT_BAD_PARAMS, result.output
    assert "Usage:" in result.output or "Error:" in result.output


def test_ctrl_c_and_sigterm_raise_once_wait_inside_held_code_and_a_third_forces() -> None:
    """The handler `run` and `verify` install (sent to this process, handled in this thread)."""
    import os
    import signal

    from mtlskit.runner.results import Interrupted, StopSignals, interrupts_held

    before = signal.getsignal(signal.SIGTERM)
    with StopSignals.installed():
        reached = False
        with pytest.raises(Interrupted) as held, interrupts_held():
            os.kill(os.getpid(), signal.SIGTERM)
            reached = True  # the held block runs to its end before the interrupt is raised
        assert reached and held.value.exit_code == 143
        os.kill(os.getpid(), signal.SIGINT)  # the second: ignored while the first one's cleanup runs
        with pytest.raises(Interrupted) as forced:
            os.kill(os.getpid(), signal.SIGINT)  # the third stops a stop that hangs
        assert forced.value.exit_code == 130
    assert signal.getsignal(signal.SIGTERM) is before  # the previous handlers are back
    with interrupts_held():  # no handler of the kit's installed: nothing is held
        pass
