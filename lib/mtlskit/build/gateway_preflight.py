"""Preflight for the Gateway topology: can this cluster carry frontend client-certificate validation?

Four questions before anything is written, each a check with its fix: is the Gateway API served;
does the served Gateway schema carry `spec.tls.frontend` (an older one prunes it silently); does the
params' GatewayClass exist and is it Accepted by its controller; and, where the controller publishes
`status.supportedFeatures` (GEP-2162), does the class claim the GEP-91 feature (and the insecure
fallback when the params ask for ALLOW mode). The Network Security and Certificate Manager APIs the
controller builds the trust with are asked by `preflight.target_checks`, as for the split topology.
"""

from __future__ import annotations

from mtlskit.build import gateway_api
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core.checks import Check
from mtlskit.rules import gateway as gw


def schema_checks(params: Params, schema: gateway_api.GatewaySchema) -> list[Check]:
    fix = gateway_api.upgrade_fix(params)
    if not schema.served:
        return [Check("Gateway API served", "fail", schema.describe(), fix)]
    checks = [Check("Gateway API served", "pass", f"{gw.GROUP}/{gw.VERSION} gateways")]
    if not schema.crd_found:
        read = f"kubectl get crd {gateway_api.GATEWAY_CRD} -o yaml"
        return [
            *checks,
            Check("Gateway schema has spec.tls.frontend", "fail", schema.describe(), f"{read}; {fix}"),
        ]
    status = "pass" if schema.frontend and schema.has_mode else "fail"
    return [
        *checks,
        Check(
            "Gateway schema has spec.tls.frontend", status, schema.describe(), "" if status == "pass" else fix
        ),
    ]


def class_checks(params: Params, state: gateway_api.ClassState) -> list[Check]:
    name = state.name
    if not state.found:
        return [
            Check(
                "GatewayClass accepted",
                "fail",
                f"GatewayClass {name} does not exist",
                f"GKE installs it with the Gateway API: {gateway_api.upgrade_fix(params)}; or set gateway.class_name "
                "to a class `kubectl get gatewayclass` lists",
            )
        ]
    accepted = state.accepted == "True"
    checks = [
        Check(
            "GatewayClass accepted",
            "pass" if accepted else "fail",
            f"{name} ({state.controller}): Accepted={state.accepted or 'not reported'} {state.reason} {state.message}".strip(),
            "" if accepted else f"kubectl describe gatewayclass {name}; {gateway_api.upgrade_fix(params)}",
        )
    ]
    wanted = [gw.FEATURE_VALIDATION]
    if gw.MODE_FOR_VALIDATION[params.mtls.validation_mode] == gw.ALLOW_INSECURE_FALLBACK:
        wanted.append(gw.FEATURE_FALLBACK)
    if state.features is None:
        checks.append(
            Check(
                "GatewayClass supported features",
                "warn",
                f"{name} publishes no status.supportedFeatures: whether it honours {', '.join(wanted)} is not "
                "stated; gw20's load-balancer check proves the result",
                "read gw20_gateway's load-balancer checks after building",
            )
        )
        return checks
    missing = [f for f in wanted if f not in state.features]
    checks.append(
        Check(
            "GatewayClass supported features",
            "fail" if missing else "pass",
            f"{name} does not claim {', '.join(missing)}"
            if missing
            else f"{name} claims {', '.join(wanted)}",
            (
                f"use mtls.validation_mode: REJECT_INVALID ({gw.ALLOW_VALID_ONLY})"
                if missing == [gw.FEATURE_FALLBACK]
                else gateway_api.upgrade_fix(params)
            )
            if missing
            else "",
        )
    )
    return checks


def gateway_checks(clients: Clients, params: Params) -> list[Check]:
    """The Gateway API questions as checks (reads only)."""
    schema = gateway_api.read_schema(clients)
    checks = schema_checks(params, schema)
    if not schema.served:
        return checks
    return checks + class_checks(params, gateway_api.read_class(clients, params.gateway.class_name))
