"""The checks that end the Ingress and backend-service notebooks (10 and 20), and the Gateway
topology's (gw10, gw20).

Each function turns what its step found into `Check`s (name, status, evidence, fix). The plan-based
steps (30, 40, 90) end with `mtlskit.runner.step.outcome_checks`; the verification steps' checks live with what
they verify (`probe`, `logs`, `drift`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mtlskit.build import gateway_kube, gateway_lb, gateway_status, k8s, lbnames
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


def conflict_checks(step: Step) -> list[Check]:
    """gw10/gw20: changes the kit did not make because another field manager owns the field
    (server-side apply without force); read from the step's own final plan."""
    rows = [c for c in step.outcome or [] if gateway_kube.conflicted(c)]
    if not rows:
        return []
    shown = "; ".join(f"{c.kind} {c.name}: {', '.join(gateway_kube.conflicted(c))}" for c in rows)
    return [
        Check(
            "server-side apply conflicts",
            "fail",
            shown,
            "the kit does not overwrite another manager's field: change it back, or take it over on purpose "
            "with kubectl apply --server-side --force-conflicts --field-manager=mtlskit -f FILE (the plan "
            "row's file)",
        )
    ]


def load_balancer_check(
    step: Step, state: gateway_status.GatewayState
) -> gateway_lb.LoadBalancerCheck | None:
    """gw20: the controller's load balancer checked through the APIs, once the Gateway exists."""
    if step.blocked or not state.exists:
        return None
    result: gateway_lb.LoadBalancerCheck = step.call(gateway_lb.check_load_balancer)
    return result


def gateway_checks(
    step: Step, state: gateway_status.GatewayState, lb: gateway_lb.LoadBalancerCheck | None
) -> list[Check]:
    """gw20: the Gateway's conditions, read-back and policies, then the load balancer's checks. A plan
    only run before the Gateway exists says so as a warning (nothing was built yet)."""
    if step.blocked:
        return []
    if not state.exists and not step.apply:
        return [
            Check(
                "Gateway exists",
                "warn",
                f"Gateway {lbnames.gateway_where(step.params)} is not applied yet (plan only)",
                "run gw20_gateway with apply=True",
            )
        ]
    checks: list[Check] = step.call(gateway_status.gateway_checks, state)
    return checks + (lb.checks if lb is not None else [])
