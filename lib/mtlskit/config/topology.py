"""What the Gateway topology cannot express, found when params load, and what it expresses
differently, said in check-params' output.

A GKE Gateway carries client-certificate validation as GEP-91 CA bundles (a ConfigMap `ca.crt`): it
has no allowlisted certificates, no separate intermediate store, and its insecure fallback (the
load balancer's ALLOW mode) exists only where the class claims the feature. A params file asking
for those must fail at load, naming the field, rather than after a Gateway was half built.
"""

from __future__ import annotations

from dataclasses import dataclass

from mtlskit.rules import gateway as gw


@dataclass(frozen=True)
class TopologyProblem:
    field: str
    message: str


def gateway_problems(validation_mode: str, allowlisted: list[str], class_name: str) -> list[TopologyProblem]:
    """The params a Gateway cannot carry, each with the field and what to do instead."""
    facts = gw.CLASSES[class_name]
    problems = []
    if allowlisted:
        problems.append(
            TopologyProblem(
                "mtls.allowlisted",
                "a Gateway cannot carry allowlisted certificates (Gateway API frontend validation takes CA "
                "bundles only); remove them, issue those clients certificates from a trust anchor, or keep "
                "topology: split",
            )
        )
    mode = gw.MODE_FOR_VALIDATION[validation_mode]
    if mode == gw.ALLOW_INSECURE_FALLBACK and not facts.claims_fallback():
        problems.append(
            TopologyProblem(
                "mtls.validation_mode",
                f"{validation_mode} needs the Gateway mode {gw.ALLOW_INSECURE_FALLBACK}, and class "
                f"{class_name} does not claim {gw.FEATURE_FALLBACK}; use REJECT_INVALID "
                f"({gw.ALLOW_VALID_ONLY}) or keep topology: split",
            )
        )
    return problems


def gateway_differences(intermediates: int, custom_headers: int) -> list[str]:
    """How the Gateway expresses the params differently from the split frontend (for check-params)."""
    notes = [
        f"the trust anchors go into ConfigMap key {gw.CA_KEY} (one CA bundle); the load balancer's "
        "trust config is built by the Gateway controller from it"
    ]
    if intermediates:
        notes.append(
            f"the {intermediates} intermediate(s) are folded into the same {gw.CA_KEY} bundle: the "
            "Gateway API has no separate intermediate store"
        )
    if custom_headers:
        notes.append(
            f"the {custom_headers} mTLS custom header(s) are rebuilt as a RequestHeaderModifier filter "
            "on every HTTPRoute rule: backend services built by the controller carry no custom headers"
        )
    notes.append(
        "request logging (enable, sample rate) goes into a GCPBackendPolicy; the SSL policy into "
        "a GCPGatewayPolicy; the BackendConfig's health check into a HealthCheckPolicy"
    )
    return notes
