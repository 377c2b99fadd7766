"""`python -m mtlskit.sandbox`: run the sandbox server in the foreground."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from mtlskit.sandbox.env import Settings
from mtlskit.sandbox.kube_crds import BUNDLES
from mtlskit.sandbox.process import INFO, SandboxInfo, write_kubeconfig
from mtlskit.sandbox.server import Sandbox, serve


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mtlskit.sandbox")
    ap.add_argument("--state-dir", required=True)
    # No defaults here: whoever starts the sandbox passes the params' values (`process.server_args`).
    ap.add_argument("--port", type=int, required=True, help="0 picks a free port")
    ap.add_argument("--project", action="append", default=[])
    ap.add_argument("--operation-delay", type=float, required=True)
    ap.add_argument("--managed-cert-delay", type=float, required=True)
    ap.add_argument("--data-plane-port", type=int, required=True)
    ap.add_argument("--dns-port", type=int, required=True, help="UDP and TCP; 0 picks a free port")
    ap.add_argument("--withhold-permission", action="append", default=[], help="answer 403 for it")
    ap.add_argument("--exhaust-quota", action="append", default=[], help="a Compute quota metric used up")
    ap.add_argument(
        "--propagation-delay",
        type=float,
        required=True,
        help="seconds before a trust config, server TLS policy or proxy mTLS change reaches the data plane",
    )
    ap.add_argument(
        "--gateway-api", required=True, choices=BUNDLES, help="the cluster's Gateway API CRD bundle"
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    state_dir = Path(args.state_dir).resolve()
    settings = Settings(
        args.operation_delay,
        args.managed_cert_delay,
        args.data_plane_port,
        withhold_permissions=tuple(args.withhold_permission),
        exhaust_quota=tuple(args.exhaust_quota),
        gateway_api=args.gateway_api,
        propagation_delay_seconds=args.propagation_delay,
    )
    sandbox = Sandbox(state_dir, settings, args.project)
    server = serve(sandbox, args.port)
    sandbox.dns_responder.start(args.dns_port)
    port = server.server_address[1]
    endpoint = f"http://127.0.0.1:{port}"
    kubeconfig = write_kubeconfig(state_dir, endpoint)
    info = SandboxInfo(
        os.getpid(), port, endpoint, str(kubeconfig), str(state_dir), sandbox.dns_responder.port
    )

    def shutdown(*_: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    (state_dir / INFO).write_text(json.dumps(info.__dict__))
    print(
        f"mtlskit sandbox listening on {endpoint} (state: {state_dir}, projects: {', '.join(sandbox.projects)})",
        flush=True,
    )
    sandbox.dataplane.start()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        sandbox.dataplane.stop()
        sandbox.dns_responder.stop()
        server.server_close()
        sandbox.store.close()
        if SandboxInfo.read(state_dir) == info:
            (state_dir / INFO).unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
