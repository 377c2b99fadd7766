"""The committed change notebooks as a scheduler runs them: `mtlskit run` on a sandbox of its own
whose load balancer applies changes after a propagation delay. Break-glass and its way back (c30,
then c40), a rotation's phase 1 (c10) planned without `--apply` and then taken, and its rollback
(c40): each exits 0, leaves the trust state it says and writes its record."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mtlskit.build import frontend, stack
from mtlskit.change.state import live_state, target_state
from mtlskit.cli import main
from mtlskit.cloud.clients import Clients, build_clients
from mtlskit.config import params as params_mod
from mtlskit.config import paths
from mtlskit.verify import changerecords, probe
from tests.conftest import wait_serving

pytestmark = pytest.mark.e2e

ALLOW = "ALLOW_INVALID_OR_MISSING_CLIENT_CERT"


@dataclass
class Headless:
    clients: Clients
    split: Path  # params/sandbox.yaml, moved to this test's sandbox
    rotation: Path  # params/sandbox-rotation.yaml, the same
    out: Path

    def run(self, params_file: Path, notebook: str, *apply: str) -> tuple[int, str]:
        out = self.out / f"{notebook}-{len(list(self.out.glob(f'{notebook}-*')))}"
        args = ["run", "--params", str(params_file), *apply, "--out", str(out), notebook]
        result = CliRunner().invoke(main, args)
        return result.exit_code, result.output + result.stderr


def _params_file(state: Path, name: str, records: Path) -> Path:
    data = params_mod.sandbox_default(state, paths.repo_root() / "params" / name)
    data["sandbox"].update(operation_delay_seconds=0.05, propagation_delay_seconds=1.0)
    data["changes"].update(poll_seconds=0.2, propagation_timeout_seconds=20, records=str(records))
    path = state.parent / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def headless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Headless]:
    from mtlskit.sandbox import process

    work = tmp_path_factory.mktemp("headless-changes")
    state = work / "state"
    try:
        split = _params_file(state, "sandbox.yaml", work / "records")
        rotation = _params_file(state, "sandbox-rotation.yaml", work / "records")
        params = params_mod.load(split)
        clients = build_clients(params)
        stack.build(clients, params)
        frontend.wait_for_certificate(clients, params, 30, poll_seconds=0.2)
        wait_serving(clients, probe.locate_frontend(clients, params).ip)
        yield Headless(clients, split, rotation, work / "runs")
    finally:
        process.stop(state)


def test_break_glass_then_its_way_back_headless(headless: Headless) -> None:
    h = headless
    params = params_mod.load(h.split)
    start = live_state(h.clients, params)
    assert start.mode == "REJECT_INVALID"

    code, said = h.run(h.split, "c30_break_glass", "--apply")
    assert code == 0, said
    assert live_state(h.clients, params).mode == ALLOW
    glass = changerecords.last_record(params, kind="break-glass")
    assert glass is not None and (glass.outcome, glass.mode_after) == ("applied", ALLOW)

    code, said = h.run(h.split, "c40_rollback", "--apply")
    assert code == 0, said
    assert live_state(h.clients, params) == start
    back = changerecords.last_record(params, kind="rollback")
    assert back is not None and back.change_id == glass.change_id and back.outcome == "applied"


def test_a_rotation_phase_planned_then_taken_then_rolled_back_headless(headless: Headless) -> None:
    h = headless
    params = params_mod.load(h.rotation)
    start = live_state(h.clients, params)

    code, said = h.run(h.rotation, "c10_trust_change")  # plan only
    assert live_state(h.clients, params) == start, said
    assert code == 0, said
    assert changerecords.last_record(params, kind="rotation") is None  # a plan is not a change
    code, said = h.run(h.rotation, "c10_trust_change", "--apply")
    assert code == 0, said
    phase_1 = live_state(h.clients, params)
    assert phase_1 != start and phase_1 != target_state(params)  # both CAs trusted, between the phases
    assert (
        start.cert_keys() <= phase_1.cert_keys() and target_state(params).cert_keys() <= phase_1.cert_keys()
    )
    rotation = changerecords.last_record(params, kind="rotation")
    assert rotation is not None and (rotation.phase, rotation.outcome) == (1, "applied")

    code, said = h.run(h.rotation, "c40_rollback", "--apply")
    assert code == 0, said
    assert live_state(h.clients, params) == start
