"""The hands-on labs: each runs under nbval with the reference answers filled in and every check cell
must say right; run blank, each runs clean and every check says not yet. Plus the refusals and the
answer checks that need no sandbox, and the change notebooks lab 08 teaches run headless (their
refused gate is exit code 1 with its reason on stderr)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
import yaml
from click.testing import CliRunner
from papermill.parameterize import parameterize_notebook

from mtlskit.build import stack
from mtlskit.change import traffic
from mtlskit.change.apply import apply_state
from mtlskit.change.proof import wait_applied
from mtlskit.change.state import ALLOW, TrustState, live_state
from mtlskit.cli import _notebook_names, main
from mtlskit.cloud.clients import build_clients
from mtlskit.config import params as params_mod
from mtlskit.config import paths
from mtlskit.migrate import rehearsal
from mtlskit.pki import certs
from mtlskit.runner import execute
from mtlskit.runner.step import Step
from mtlskit.sandbox import process
from mtlskit.teach import labs
from mtlskit.teach.labs import (
    anchor,
    certificates,
    chain,
    enforcement,
    gateway,
    modes,
    outage,
    rotation,
    sending,
)
from mtlskit.teach.labs.lab import Lab
from mtlskit.verify import changerecords, probe
from tests.conftest import free_port, run_nbval

LAB_DIR = paths.repo_root() / "notebooks" / "labs"
CHANGE_NOTEBOOKS = ("c10_trust_change", "c20_enforce_mtls", "c30_break_glass", "c40_rollback")
NO_CERTIFICATE_FROM = "127.0.0.41"
BUSIEST = 40
# How many check cells each lab has: every one must leave a verdict.
CHECKS = {
    certificates.NAME: 1,
    anchor.NAME: 2,
    modes.NAME: 1,
    chain.NAME: 2,
    outage.NAME: 2,
    gateway.NAME: 3,
    rotation.NAME: 4,
    enforcement.NAME: 3,
}
# The labs whose params file names both the split frontend and the Gateway (params/sandbox-gateway.yaml).
GATEWAY_LABS = {gateway.NAME}
# Shorter still than the migration rehearsal's: records already at the cut-over TTL (no lowering
# step to wait out) and a one-second drain window; the lab's predictions hold for any values.
SHORTER = {
    "dns": {"ttl_seconds": 1, "cutover_ttl_seconds": 1},
    "migration": {"drain_window_seconds": 1, "poll_seconds": 0.25},
}


def lab_params_file(state_dir: Path, out: Path) -> Path:
    """params/sandbox.yaml as a trainee has it, pointed at a test state directory and data-plane port;
    beside it params/sandbox-gateway.yaml moved the same way (same sandbox), with the migration
    rehearsal's TTLs and drain window in seconds (`gateway_params_file`)."""
    data = params_mod.sandbox_default(state_dir)
    data["sandbox"].update({"data_plane_port": free_port(), "operation_delay_seconds": 0.1})
    data["changes"]["records"] = str(state_dir.parent / "change-records")  # labs 07 and 08 record changes
    out.write_text(yaml.safe_dump(data))
    source = paths.repo_root() / "params" / "sandbox-gateway.yaml"
    both = params_mod.sandbox_default(state_dir, source)
    both["sandbox"] = data["sandbox"]
    for fast in (rehearsal.FAST, SHORTER):
        for key, value in fast.items():
            both[key] = {**both.get(key, {}), **value}
    gateway_params_file(out).write_text(yaml.safe_dump(both))
    return out


def gateway_params_file(params_file: Path) -> Path:
    return params_file.with_name(f"{params_file.stem}-gateway.yaml")


def answer_cells(nb: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    return {
        tag: cell for cell in nb.cells for tag in cell.metadata.get("tags", []) if tag.startswith("answer-")
    }


def lab_cells(name: str, params_file: Path, reference: bool) -> list[nbformat.NotebookNode]:
    """The lab's cells with the params injected (as papermill does), the reference answers in its
    answer cells when asked, and a last cell that fails unless every check said right (or, blank,
    not yet)."""
    nb = nbformat.read(LAB_DIR / f"{name}.ipynb", as_version=4)
    for cell in nb.cells:
        cell.metadata.setdefault("tags", [])  # papermill reads every cell's tags
    nb.metadata.setdefault("papermill", {})  # ... and records the parameters here
    if name in GATEWAY_LABS:
        params_file = gateway_params_file(params_file)
    nb = parameterize_notebook(nb, {"params_file": str(params_file)})
    if reference:
        for tag, source in labs.REFERENCE[name].items():
            answer_cells(nb)[tag].source = source
    expect = "all(v.right for v in lab.verdicts)" if reference else "not any(v.right for v in lab.verdicts)"
    verdicts = "[v.line for v in lab.verdicts]"
    assertion = (
        f"assert len(lab.verdicts) == {CHECKS[name]}, ({name!r}, {verdicts})\n"
        f"assert {expect}, ({name!r}, {verdicts})"
    )
    return [*nb.cells, nbformat.v4.new_code_cell(assertion)]


def labs_in_one_notebook(params_file: Path, out: Path, reference: bool) -> Path:
    """Every lab, one after the other, in one notebook: one kernel start (and one import of the client
    libraries) instead of five, which is most of what a lab costs. Each lab starts its own `lab`, so
    running them in one namespace changes nothing a lab sees."""
    first = nbformat.read(LAB_DIR / f"{labs.LABS[0]}.ipynb", as_version=4)
    cells = [c for name in labs.LABS for c in lab_cells(name, params_file, reference)]
    for i, cell in enumerate(cells):
        cell["id"] = f"cell-{i}"
    nb = nbformat.v4.new_notebook(cells=cells, metadata=first.metadata)
    path = out / f"labs-{'reference' if reference else 'blank'}.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def lab_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One sandbox, built once, that every lab copy runs against (each lab's setup then only plans)."""
    work = tmp_path_factory.mktemp("labs")
    state = work / "state"
    params_file = lab_params_file(state, work / "params.yaml")
    params = params_mod.load(params_file)
    try:  # a build that fails must not leave the sandbox it started running
        stack.build(build_clients(params), params, 60.0)
        yield params_file
    finally:
        process.stop(state)


def run_labs(params_file: Path, reference: bool) -> None:
    out = params_file.parent / ("reference" if reference else "blank")
    out.mkdir(exist_ok=True)
    result = run_nbval([labs_in_one_notebook(params_file, out, reference)], out)
    assert result.returncode == 0, result.stdout[-4000:]
    assert " passed" in result.stdout


def assert_put_back(params_file: Path) -> None:
    """Each lab ends by undoing what it changed: the next one (or the trainee) finds the stack intact."""
    params = params_mod.load(params_file)
    clients = build_clients(params)
    lab = Lab("check", Step(params, clients, apply=False))
    state = dict(zip(*labs.state_frame(lab).to_dict("list").values(), strict=True))
    assert state == {
        "anchor Ingress": "present",
        "validation mode": "REJECT_INVALID",
        "API fault switch": "error_rate=0.0",
    }


@pytest.mark.e2e
def test_labs_with_the_reference_answers_say_right(lab_sandbox: Path) -> None:
    run_labs(lab_sandbox, reference=True)
    assert_put_back(lab_sandbox)


@pytest.mark.e2e
def test_blank_labs_run_clean_and_say_not_yet(lab_sandbox: Path) -> None:
    run_labs(lab_sandbox, reference=False)
    assert_put_back(lab_sandbox)


@pytest.mark.e2e
def test_the_gateway_labs_way_back_after_the_cut_over_leaves_the_split_stack(lab_sandbox: Path) -> None:
    lab = labs.gateway.start(str(gateway_params_file(lab_sandbox)))
    labs.gateway.run_phases(lab, until="cutover")
    moved = labs.gateway.observe(lab)
    back = labs.gateway.way_back(lab)
    after = labs.gateway.observe(lab)
    assert lab.seen["observed"][0]["answered by"] == gateway.GATEWAY, moved
    assert list(back["way back"])[-1] == "deleted Gateway web-gateway", back
    assert lab.seen["observed"][1] == {
        "gateway ready": False,
        "records moved": False,
        "resolves to": gateway.SPLIT,
        "answered by": gateway.SPLIT,
    }, after
    assert labs.gateway.check_cutover(lab, False).right  # the cut-over refused no one
    labs.put_back(lab)
    assert_put_back(lab_sandbox)


@pytest.mark.e2e
def test_a_refused_enforcement_gate_exits_1_headless_with_its_reason_on_stderr(
    lab_sandbox: Path, tmp_path: Path
) -> None:
    """What lab 08 shows in a notebook, as a scheduler sees it: `mtlskit run --apply c20_enforce_mtls`
    on a stack in ALLOW mode with a client sending no certificate exits 1, names the failing gate and
    the client on stderr, and changes nothing. (On the labs' sandbox, which is built already.)"""
    params = params_mod.load(lab_sandbox)
    clients = build_clients(params)
    live = live_state(clients, params)
    allow = TrustState(live.certs, ALLOW, attached=True)
    apply_state(clients, params, allow)
    try:
        assert wait_applied(clients, params, live, allow).done
        bare = traffic.Client("batch-job", NO_CERTIFICATE_FROM)
        # The busiest client is named first (the reason lists five): the labs' own are in the window too.
        sent = traffic.send(probe.locate_frontend(clients, params), [bare], BUSIEST)
        assert {s.status for s in sent} == {200}  # forwarded, and logged without a certificate
        run = [
            "run",
            "--params",
            str(lab_sandbox),
            "--apply",
            "--out",
            str(tmp_path / "run"),
            "c20_enforce_mtls",
        ]
        result = CliRunner().invoke(main, run)
        assert result.exit_code == 1, result.output
        failed = re.search(r"c20_enforce_mtls: check failed: [^:]*gate[^:]*: (.*)", result.stderr)
        assert failed and "would be refused" in failed[1], result.stderr
        assert NO_CERTIFICATE_FROM in failed[1]  # the client the flip would cut off, named
        assert "exit code 1: a check failed" in result.stderr
        assert live_state(clients, params) == allow  # nothing was changed
        record = changerecords.last_record(params, kind="enforcement")
        assert record is not None and (record.outcome, record.exit_code) == ("refused", 1)
    finally:
        labs.put_back(Lab("check", Step(params, clients, apply=True)))
    assert_put_back(lab_sandbox)


def test_the_change_notebooks_are_found_by_name() -> None:
    assert all(execute.notebook_path(n).is_file() for n in CHANGE_NOTEBOOKS)
    assert _notebook_names(False, False, CHANGE_NOTEBOOKS) == list(CHANGE_NOTEBOOKS)


# ---- no sandbox -------------------------------------------------------------------------------------------


def test_every_lab_has_its_reference_answers_and_one_parameters_cell() -> None:
    assert set(labs.LABS) == {p.stem for p in LAB_DIR.glob("*.ipynb")}
    for name in labs.LABS:
        nb = nbformat.read(LAB_DIR / f"{name}.ipynb", as_version=4)
        assert set(answer_cells(nb)) == set(labs.REFERENCE[name]), name
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1 and "params_file" in tagged[0].source, name
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{name} has outputs"
        checks = [c for c in nb.cells if c.cell_type == "code" and ".check" in c.source]
        assert len(checks) == CHECKS[name], name


def a_root(directory: Path) -> str:
    return str(certs.write_issued(directory, "root", certs.issue("lab test root", ca=True))[0])


def test_a_lab_refuses_a_real_project_before_building_any_client(tmp_path: Path) -> None:
    gcp = {"target": "gcp", "project": "some-project", "mtls": {"trust_anchors": [a_root(tmp_path)]}}
    (tmp_path / "gcp.yaml").write_text(yaml.safe_dump(gcp))
    with pytest.raises(labs.LabRefused, match="only on the local sandbox") as refused:
        labs.start_lab(certificates.NAME, str(tmp_path / "gcp.yaml"))
    assert "target: gcp (project some-project)" in str(refused.value)


def test_the_gateway_lab_refuses_params_without_a_gateway_before_building_any_client(tmp_path: Path) -> None:
    split = {"target": "sandbox", "project": "mtlskit-sandbox", "mtls": {"trust_anchors": [a_root(tmp_path)]}}
    (tmp_path / "split.yaml").write_text(yaml.safe_dump(split))
    with pytest.raises(labs.LabRefused, match="names both") as refused:
        labs.gateway.start(str(tmp_path / "split.yaml"))
    assert "topology: split" in str(refused.value) and "params/sandbox-gateway.yaml" in str(refused.value)


def test_the_gateway_lab_judges_what_it_saw_not_what_it_was_told(offline_lab: Lab) -> None:
    offline_lab.seen["observed"] = [
        {
            "gateway ready": True,
            "records moved": False,
            "resolves to": "split frontend",
            "answered by": "split frontend",
        }
    ]
    wrong = gateway.check_side_by_side(
        offline_lab, {"resolves to": "Gateway", "answered by": "split frontend"}
    )
    assert not wrong.right and "resolves to differ" in wrong.line
    right = gateway.check_side_by_side(
        offline_lab, {"resolves to": "Split Frontend", "answered by": "split frontend"}
    )
    assert right.right
    offline_lab.seen["retired"] = {
        "order": ["ForwardingRule", "TargetHttpsProxy", "Ingress"],
        "service": False,
    }
    said = {"deleted first": "forwarding rule", "anchor Ingress": gateway.AFTER, "Service": gateway.KEPT}
    retired = gateway.check_retired(offline_lab, said)
    assert not retired.right and "Service differ" in retired.line  # the Service was seen deleted here


@pytest.fixture
def offline_lab(tmp_path: Path) -> Lab:
    """A lab with nothing observed yet, for the answer checks (they read only what the lab saw)."""
    params = params_mod.parse(
        {"target": "sandbox", "project": "mtlskit-sandbox", "mtls": {"trust_anchors": [a_root(tmp_path)]}},
        "offline",
    )
    return Lab("offline", Step(params, None, apply=False))  # type: ignore[arg-type]


@pytest.mark.parametrize("answer", [None, "HTTP 200", {"no": "dict"}, 42])
def test_missing_or_malformed_answers_say_not_yet_and_never_raise(offline_lab: Lab, answer: object) -> None:
    verdicts = [
        certificates.check(offline_lab, answer),  # type: ignore[arg-type]
        modes.check(offline_lab, answer),  # type: ignore[arg-type]
        chain.check_found(offline_lab, answer),  # type: ignore[arg-type]
        anchor.check_deleted(offline_lab, answer),
        outage.check_stopped(offline_lab, answer),
        gateway.check_side_by_side(offline_lab, answer),
        gateway.check_cutover(offline_lab, answer),
        gateway.check_retired(offline_lab, answer),
        rotation.check_impact(offline_lab, answer),
        rotation.check_phase_1(offline_lab, answer),
        rotation.check_phase_2(offline_lab, answer),
        rotation.check_rollback(offline_lab, answer),
        enforcement.check_gate(offline_lab, answer),
        enforcement.check_flip(offline_lab, answer),
        enforcement.check_break_glass(offline_lab, answer),
    ]
    assert [v.right for v in verdicts] == [False] * 15
    assert all(v.line.startswith("not yet: ") for v in verdicts)
    assert offline_lab.verdicts == verdicts


def test_the_rotation_lab_judges_the_phases_it_saw(offline_lab: Lab) -> None:
    offline_lab.seen["impact"] = {"phase 1": [], "phase 2": ["old CA"]}
    assert rotation.check_impact(offline_lab, {"phase 1": [], "phase 2": ["Old CA"]}).right
    wrong = rotation.check_impact(offline_lab, {"phase 1": ["old CA"], "phase 2": ["old CA"]})
    assert not wrong.right and wrong.line.startswith("not yet: phase 1 differ")
    both = {"old CA": "accepted", "new CA": "accepted", "foreign": "refused", "missing": "refused"}
    refused_first = {"label": "rotation phase 2 of 2", "gate": "refused", "timeline": [], "verdicts": {}}
    applied = {
        "label": "rotation phase 1 of 2",
        "gate": "passed",
        "timeline": [
            (0.05, "next-ca-client: closed after the TLS handshake"),
            (1.1, "next-ca-client: HTTP 200"),
        ],
        "verdicts": both,
    }
    offline_lab.seen["runs"] = [applied, refused_first]
    seen_then = {"right after the PATCH": "refused", **both}
    assert rotation.check_phase_1(offline_lab, seen_then).right
    assert not rotation.check_phase_1(offline_lab, {**seen_then, "right after the PATCH": "accepted"}).right
    assert not rotation.check_phase_2(offline_lab, {"gate": "refused"}).right  # phase 2 never applied
    phase_2 = {**both, "old CA": "refused"}
    offline_lab.seen["runs"].append({**refused_first, "gate": "passed", "verdicts": phase_2})
    assert rotation.check_phase_2(offline_lab, {"gate": "refused", **phase_2}).right
    assert not rotation.check_phase_2(
        offline_lab, {"gate": "passed", **phase_2}
    ).right  # the first try counts


def test_the_rotation_lab_moves_the_params_to_the_next_ca_and_keeps_the_rest(offline_lab: Lab) -> None:
    offline_lab.seen["intended"] = ["/somewhere/old-client.pem"]
    moved = rotation.rotation_params(offline_lab)
    pki = certs.DemoPki.in_state_dir(offline_lab.params.state_dir)
    assert moved.mtls.trust_anchors == [str(pki.cert(certs.NEXT_ANCHOR))]
    assert moved.mtls.intermediates == [str(pki.cert(certs.NEXT_INTERMEDIATE))]
    assert moved.mtls.allowlisted == offline_lab.params.mtls.allowlisted
    assert [c.name for c in moved.changes.proof_clients] == [rotation.NEW_CA_CLIENT]  # added: none had one
    assert moved.changes.intended_refusals == ["/somewhere/old-client.pem"]
    assert 0 < moved.changes.report_window_seconds < 60  # since the lab started, not the params' hour
    assert offline_lab.params.mtls.trust_anchors != moved.mtls.trust_anchors  # the lab's own are kept


def test_the_enforcement_lab_compares_the_named_clients_whatever_their_order(offline_lab: Lab) -> None:
    offline_lab.seen["steps"] = [
        {"step": "flip", "gate": "refused", "named": ["billing-batch", "status-monitor"]}
    ]
    assert enforcement.check_gate(offline_lab, ["status-monitor", "Billing-Batch"]).right
    assert not enforcement.check_gate(offline_lab, ["status-monitor"]).right
    offline_lab.seen["population"] = enforcement.population(offline_lab.params, fixed=False)
    named = enforcement._names(offline_lab, ["40% would be refused: 127.0.0.23, no certificate; 127.0.0.250"])
    assert named == ["billing-batch"]  # 127.0.0.25 is not read inside 127.0.0.250


def test_wrong_predictions_are_named_against_what_was_logged(offline_lab: Lab) -> None:
    offline_lab.seen["logged"] = {case: "client_cert_validation_failed" for case in certificates.CASES}
    wrong = {case: "client_cert_validation_failed" for case in certificates.CASES} | {
        "client": "response_sent_by_backend"
    }
    verdict = certificates.check(offline_lab, wrong)
    assert not verdict.right
    assert "1 of 7 differ (client)" in verdict.line
    right = certificates.check(
        offline_lab, dict.fromkeys(certificates.CASES, "client_cert_validation_failed")
    )
    assert right.right and right.line.startswith("right: ")
    assert json.loads(right.rows.to_json(orient="records"))[0]["right"] is True


def test_a_typed_answer_matches_whatever_its_case_spacing_or_quotes_but_not_a_different_rule() -> None:
    assert sending.same(" Issuer  EKU ", "issuer EKU")
    assert sending.same("'intermediate'", "intermediate")
    assert sending.same("forwarding rule", "ForwardingRule")
    assert not sending.same("EKU", "issuer EKU")
    assert not sending.same("0.5", "5")
    assert not sending.same(None, "issuer EKU")
