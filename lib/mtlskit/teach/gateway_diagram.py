"""The Gateway topology as a picture, on the same grid and in the same colours as the split one, so a
trainee who knows the split picture sees at a glance what moved: the frontend is no longer the kit's
but the Gateway controller's, built from Kubernetes objects the kit applies; only the SSL policy and
the certificate (and, with `named_address`, the IP) stay the kit's.

The controller names what it builds itself (`gkegw1-…`), so those boxes show the name's shape and
where it comes from; every name the params hold is shown as written.
"""

from __future__ import annotations

from mtlskit.config.params import Params
from mtlskit.rules import gateway as gw
from mtlskit.teach.diagram import (
    BOX_H,
    BOX_W,
    CLIENT,
    COL,
    ROW,
    Box,
    Diagram,
    certificate_box,
    frontend_arrows,
    mermaid_nodes,
    on_off,
    svg_arrow,
    svg_box,
    svg_document,
    svg_legend,
    svg_why,
    svg_zones,
)

WHY = (
    "One controller builds the whole load balancer from the",
    "Kubernetes objects below, client-certificate validation",
    "included (Gateway API v1.5, spec.tls.frontend): no anchor",
    "Ingress, and nothing for two tools to fight over.",
)


def gateway_boxes(params: Params) -> dict[str, Box]:
    """Every resource of the Gateway topology with the params' names, placed on the split picture's grid."""
    f, k, m, g = params.frontend, params.kubernetes, params.mtls, params.gateway
    ns = params.gateway_namespace
    built = f"{gw.NAME_PREFIX}…-{ns}-{g.name}-…"
    backend = f"{gw.NAME_PREFIX}…-{k.namespace}-{k.service}-{k.service_port}-…"
    domains = list(f.domains)
    named = g.address == "named_address"
    bundle = len(m.trust_anchors) + len(m.intermediates)
    mode = gw.MODE_FOR_VALIDATION[m.validation_mode]
    certificate = (
        certificate_box(f.certificate, domains, f" (listener option {gw.PRE_SHARED_CERTS_OPTION})")
        if g.certificate == "pre_shared"
        else Box(
            "certificate",
            COL["c1"],
            ROW["r2"],
            "certificate map",
            g.certificate_map or "",
            f"annotation {gw.CERTMAP_ANNOTATION}",
        )
    )
    service_detail = f"port {k.service_port} → {k.target_port}, app={k.app_label}"
    logging = f"logging {on_off(params.logging.enable)}, rate {params.logging.sample_rate:g}"
    # key, column, row, kind, name, detail, owner: the split picture's grid, row by row
    placed = [
        ("forwarding_rule", "c0", "r1", "forwarding rule", built, "EXTERNAL_MANAGED · TCP 443", "gke"),
        ("proxy", "c2", "r1", "target HTTPS proxy", built, "terminates TLS + mTLS", "gke"),
        ("url_map", "c4", "r1", "URL map", built, f"from HTTPRoute {g.http_route}", "gke"),
        (
            "ssl_policy",
            "c2",
            "r2",
            "SSL policy",
            f.ssl_policy,
            f"{f.ssl_profile}, named by {g.gateway_policy}",
            "kit",
        ),
        ("server_tls_policy", "c3", "r2", "server TLS policy", built, m.validation_mode, "gke"),
        ("backend_service", "c4", "r2", "backend service", backend, "logging from the policy", "gke"),
        ("trust_config", "c3", "r3", "trust config", built, f"from ConfigMap {g.ca_configmap}", "gke"),
        ("neg", "c4", "r3", "zonal NEG", backend, "the pods' IP:port", "gke"),
        (
            "ca_configmap",
            "c1",
            "k1",
            "ConfigMap",
            g.ca_configmap,
            f"{gw.CA_KEY}: {bundle} certificate{'s' if bundle != 1 else ''}",
            "k8s",
        ),
        (
            "http_route",
            "c2",
            "k1",
            "HTTPRoute",
            g.http_route,
            f"{len(m.custom_headers)} mTLS headers (filter)",
            "k8s",
        ),
        ("service", "c4", "k1", "Service", f"{k.namespace}/{k.service}", service_detail, "k8s"),
        (
            "gateway_policy",
            "c1",
            "k2",
            "GCPGatewayPolicy",
            g.gateway_policy,
            f"sslPolicy {f.ssl_policy}",
            "k8s",
        ),
        (
            "health_check_policy",
            "c2",
            "k2",
            "HealthCheckPolicy",
            g.health_check_policy,
            f"targets Service {k.service}",
            "k8s",
        ),
        ("backend_policy", "c4", "k2", "GCPBackendPolicy", g.backend_policy, logging, "k8s"),
    ]
    address_detail = (
        "the kit's reserved IP (NamedAddress)" if named else "a new IP, allocated by the controller"
    )
    items = [
        CLIENT,
        certificate,
        Box(
            "address",
            COL["c0"],
            ROW["r2"],
            "global address",
            f.address if named else built,
            address_detail,
            "kit" if named else "gke",
        ),
        Box(
            "gateway",
            COL["c0"],
            ROW["k1"],
            "Gateway",
            f"{ns}/{g.name}",
            g.class_name,
            "k8s",
            full=f"Gateway {ns}/{g.name}: class {g.class_name}, HTTPS :443, spec.tls.frontend {mode}",
        ),
        *(
            Box(key, COL[col], ROW[row], kind, name, detail, owner)
            for key, col, row, kind, name, detail, owner in placed
        ),
    ]
    return {b.key: b for b in items}


def gateway_diagram(params: Params) -> Diagram:
    """The Gateway topology with the params' names: who owns what, the request path, what the controller builds."""
    b = gateway_boxes(params)
    return Diagram(_svg(params, b), _mermaid(params, b))


def _svg(params: Params, b: dict[str, Box]) -> str:
    right = lambda k: b[k].x + BOX_W  # noqa: E731 - geometry helpers, as in the split picture
    bottom = lambda k: b[k].y + BOX_H  # noqa: E731
    g = params.gateway
    arrows = [
        *frontend_arrows(b),
        svg_arrow(
            [(b["url_map"].cx, bottom("url_map")), (b["url_map"].cx, b["backend_service"].y)], "request"
        ),
        svg_arrow([(b["neg"].cx, bottom("backend_service")), (b["neg"].cx, b["neg"].y)], "request"),
        svg_arrow([(b["neg"].cx, bottom("neg")), (b["service"].cx, b["service"].y)], "request"),
        # Kubernetes' own references
        svg_arrow([(right("gateway"), b["gateway"].cy), (b["ca_configmap"].x, b["gateway"].cy)], "refers"),
        svg_arrow(
            [
                (b["http_route"].x + 30, bottom("http_route")),
                (b["http_route"].x + 30, bottom("http_route") + 16),
                (b["gateway"].cx + 40, bottom("http_route") + 16),
                (b["gateway"].cx + 40, bottom("gateway")),
            ],
            "refers",
            "parentRef",
            at=1,
            dy=12,
        ),
        svg_arrow(
            [
                (b["gateway_policy"].x, b["gateway_policy"].cy),
                (b["gateway"].cx, b["gateway_policy"].cy),
                (b["gateway"].cx, bottom("gateway")),
            ],
            "refers",
            "targetRef",
        ),
        svg_arrow(
            [(right("http_route"), b["http_route"].cy), (b["service"].x, b["service"].cy)],
            "refers",
            "backendRef",
        ),
        svg_arrow(
            [(b["backend_policy"].cx, b["backend_policy"].y), (b["service"].cx, bottom("service"))], "refers"
        ),
        svg_arrow(
            [
                (right("health_check_policy"), b["health_check_policy"].cy),
                (b["service"].x + 30, b["health_check_policy"].cy),
                (b["service"].x + 30, bottom("service")),
            ],
            "refers",
        ),
        # the controller builds the zone above from the objects below
        svg_arrow(
            [(b["gateway"].x + 150, b["gateway"].y), (b["gateway"].x + 150, bottom("address"))],
            "sync",
            "the controller builds",
        ),
    ]
    zones = [
        *svg_zones(
            (
                "gke",
                f"Built by the GKE Gateway controller ({gw.NAME_PREFIX}…) — the blue boxes stay the kit's",
            ),
            (
                "k8s",
                f"Applied by the kit to Kubernetes — namespace {params.gateway_namespace}, server-side apply",
            ),
        ),
        *svg_why(COL["c1"] + 4, WHY),
    ]
    legend = svg_legend(params, "builds / keeps in sync (GKE Gateway controller)", ("kit", "k8s", "gke"))
    body = "".join([*zones, *arrows, *(svg_box(x) for x in b.values()), *legend])
    return svg_document(
        params, f"mtlskit: the Gateway {g.name} of {params.project} (stack {params.stack})", body
    )


def _mermaid(params: Params, b: dict[str, Box]) -> str:
    node = mermaid_nodes(b)
    built = [key for key, box in b.items() if box.zone in ("gke", "kit")]
    k8s = [key for key, box in b.items() if box.zone == "k8s"]
    lines = [
        "flowchart LR",
        f"  {node('client')}",
        '  subgraph gke["Built by the GKE Gateway controller (the kit\'s: SSL policy, certificate)"]',
        *(f"    {node(key)}" for key in built),
        "  end",
        '  subgraph k8s["Applied by the kit to Kubernetes"]',
        *(f"    {node(key)}" for key in k8s),
        "  end",
        "  client ==> forwarding_rule ==> proxy ==> url_map ==> backend_service ==> neg ==> service",
        "  forwarding_rule --> address",
        "  proxy --> certificate & ssl_policy & server_tls_policy",
        "  server_tls_policy --> trust_config",
        "  gateway -->|CA ref| ca_configmap",
        "  http_route --> gateway & service",
        "  gateway_policy --> gateway",
        "  backend_policy & health_check_policy --> service",
        "  gateway -.->|controller builds| forwarding_rule & proxy & server_tls_policy",
        "  ca_configmap -.->|becomes| trust_config",
        "  http_route -.->|becomes| url_map",
        "  backend_policy -.->|logging| backend_service",
    ]
    return "\n".join(lines) + "\n"
