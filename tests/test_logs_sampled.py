"""Sampled request logs end to end: `mtlskit run --apply` on a sandbox stack whose backend service logs
half of its requests (`logging.sample_rate`) with a client sending requests all along as production
traffic does, and one that logs a hundredth of them with no other traffic at all (the sandbox's bounded
ingestion then says the missing entries are not late). The run must pass, 60_logs must say how many
entries sampling let it expect and find, and its wait must end because ingestion caught up, not at its
time limit."""

from __future__ import annotations

import json
import re
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from click.testing import CliRunner

from mtlskit.cli import main
from mtlskit.cloud.clients import Clients, build_clients
from mtlskit.config import params as params_mod
from mtlskit.config.params import Params
from mtlskit.pki import certs
from mtlskit.sandbox import process
from tests.conftest import ResolveAdapter, sandbox_call

pytestmark = pytest.mark.e2e


class Traffic(threading.Thread):
    """Requests with a valid client certificate to the frontend, one after another, from the moment
    its listener serves a certificate until `stop`: the requests after the probes that tell the
    cross-check ingestion has caught up."""

    def __init__(self, params: Params, clients: Clients, pause: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.params, self.clients, self.pause = params, clients, pause
        self.answered = 0
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(30)

    def _listener(self) -> dict[str, Any] | None:
        for li in sandbox_call(self.clients, "dataplane")["listeners"]:
            fr = li["forwarding_rule"]
            if fr == self.params.frontend.forwarding_rule and li["listening"] and li["certificates_served"]:
                return dict(li)
        return None

    def _session(self) -> requests.Session:
        pki = certs.DemoPki.in_state_dir(self.params.state_dir)
        spec = {s.name: s for s in certs.demo_pki_specs()}["client"]
        bundle = self.params.state_dir / "traffic-bundle.pem"
        bundle.write_text("".join(pki.cert(n).read_text() for n in ["client", *spec.chain]))
        ctx = ssl.create_default_context(cafile=str(self.params.state_dir / "dataplane" / "ca.pem"))
        ctx.load_cert_chain(str(bundle), str(pki.key("client")))
        domain = self.params.frontend.domains[0]
        session = requests.Session()
        session.mount("https://", ResolveAdapter(ctx, domain))
        session.headers["Host"] = domain
        return session

    def run(self) -> None:
        session: requests.Session | None = None
        while not self._halt.wait(self.pause):
            try:
                listener = self._listener()
                if listener is None:
                    continue
                session = session or self._session()
                r = session.get(f"https://{listener['ip']}:{listener['port']}/traffic", timeout=5)
                self.answered += r.status_code == 200
            except (OSError, requests.RequestException):
                session = None  # the frontend is still being built: try again


def _outputs(notebook: Path) -> str:
    cells = json.loads(notebook.read_text())["cells"]
    return json.dumps([o for c in cells for o in c.get("outputs", [])])


@pytest.mark.parametrize(("rate", "with_traffic"), [(0.5, True), (0.01, False)])
def test_a_sampled_log_passes_and_the_wait_ends_when_ingestion_caught_up(
    tmp_path: Path, rate: float, with_traffic: bool
) -> None:
    data = params_mod.sandbox_default(tmp_path / "state")
    data["logging"]["sample_rate"] = rate
    params_file = tmp_path / "env.yaml"
    params_file.write_text(yaml.safe_dump(data))
    params = params_mod.load(str(params_file))
    traffic = Traffic(params, build_clients(params))  # starts the sandbox the run then uses
    if with_traffic:
        traffic.start()
    try:
        out = tmp_path / "run"
        result = CliRunner().invoke(main, ["run", "--params", str(params_file), "--apply", "--out", str(out)])
    finally:
        if with_traffic:
            traffic.stop()
        process.stop(params.state_dir)
    assert result.exit_code == 0, result.output
    assert (traffic.answered > 0) == with_traffic
    summary = json.loads((out / "summary.json").read_text())
    checks = {c["check"]: c for c in summary["checks"] if c["notebook"] == "60_logs"}
    found = checks["probes found in request logs"]
    assert found["status"] == "pass", found
    counted = re.search(
        r"(\d+)/(\d+) probes have their log entry at sampleRate ([\d.]+): ([\d.]+) expected",
        found["evidence"],
    )
    assert counted, found["evidence"]
    n = int(counted.group(2))
    assert n >= 10 and float(counted.group(3)) == rate
    assert counted.group(4) == f"{n * rate:.2g}"
    if n * rate < 1:
        assert f"can expect {n * rate:.2g} entries" in found["evidence"]
    assert "time limit" not in found["evidence"]
    assert checks["logged statusDetails as expected"]["status"] == "pass"
    logs_notebook = _outputs(out / "60_logs.ipynb")
    assert "(the wait ended: caught up)" in logs_notebook
    assert f"sampled at {rate:g}: counts \\u00d7{1 / rate:g}" in logs_notebook or (
        f"sampled at {rate:g}: counts ×{1 / rate:g}" in logs_notebook
    )
    assert "PASS (2 checks)" in logs_notebook  # the notebook's verdict line
    line = next(li for li in result.output.splitlines() if "60_logs" in li)  # the run's line for it
    assert "fail" not in line.lower() and "crash" not in line.lower(), line
