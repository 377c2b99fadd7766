"""The checks that end the Ingress and backend-service notebooks (10 and 20).

Each function turns what its step found into `Check`s (name, status, evidence, fix). The plan-based
steps (30, 40, 90) end with `mtlskit.runner.step.outcome_checks`; the verification steps' checks live with what
they verify (`probe`, `logs`, `drift`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mtlskit.build import k8s
from mtlskit.core.checks import Check

if TYPE_CHECKING:
    from mtlskit.build.backend import BackendService
    from mtlskit.runner.step import Step

BACKENDCONFIG_FIX = "re-run 10_ingress with apply=True"


def ingress_checks(step: Step, backends: dict[str, str]) -> list[Check]:
    """10_ingress: the controller made the backend service, and the anchor serves nothing itself."""
    if step.blocked:
        return []
    checks = [
        Check(
            "backend service created",
            "pass" if backends else "fail",
            ", ".join(f"{k} ({v})" for k, v in backends.items()) or "no backends annotation",
            "see the Ingress events above",
        )
    ]
    rules, _ips = k8s.anchor_exposure(k8s.read_anchor(step.clients, step.params))
    checks.append(
        Check(
            "anchor exposes nothing",
            "fail" if rules else "pass",
            f"anchor has its own frontend: {', '.join(rules)}" if rules else "no forwarding rule of its own",
            k8s.ANCHOR_FIX if rules else "",
        )
    )
    return checks


def backend_checks(step: Step, bs: BackendService | None) -> list[Check]:
    """20_backend_service: the backend service can sit behind our frontend and carries what the
    BackendConfig asks for (request logs, mTLS headers)."""
    if bs is None:
        return []
    p = step.params
    return [
        Check(
            "scheme matches frontend",
            "pass" if bs.scheme == p.frontend.load_balancing_scheme else "fail",
            f"backend {bs.scheme}, params {p.frontend.load_balancing_scheme}",
            f"set frontend.load_balancing_scheme: {bs.scheme}",
        ),
        Check(
            "logging as BackendConfig asks",
            "pass" if (bs.log_enable == p.logging.enable) else "fail",
            f"enable={bs.log_enable} sampleRate={bs.log_sample_rate}",
            BACKENDCONFIG_FIX,
        ),
        Check(
            "mTLS headers as BackendConfig asks",
            "pass" if bs.custom_request_headers == list(p.mtls.custom_headers) else "fail",
            f"{len(bs.custom_request_headers)} custom request headers",
            BACKENDCONFIG_FIX,
        ),
    ]
