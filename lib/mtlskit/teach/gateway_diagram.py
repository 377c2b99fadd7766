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
    COL,
    GKE_FILL,
    GKE_STROKE,
    K8S_BOTTOM,
    K8S_FILL,
    K8S_STROKE,
    K8S_TOP,
    KIT_BOTTOM,
    KIT_FILL,
    KIT_STROKE,
    KIT_TOP,
    ROW,
    WIDTH,
    ZONE_LEFT,
    Box,
    Diagram,
    mermaid_text,
    svg_arrow,
    svg_box,
    svg_document,
    svg_text,
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
    shown = ", ".join(domains[:2]) + (f" +{len(domains) - 2} more" if len(domains) > 2 else "")
    named = g.address == "named_address"
    bundle = len(m.trust_anchors) + len(m.intermediates)
    mode = gw.MODE_FOR_VALIDATION[m.validation_mode]
    certificate = (
        Box(
            "certificate",
            COL["c1"],
            ROW["r2"],
            "managed certificate",
            f.certificate,
            shown,
            full=f"managed certificate {f.certificate} (listener option {gw.PRE_SHARED_CERTS_OPTION}): "
            + ", ".join(domains),
        )
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
    items = [
        Box(
            "client",
            COL["client"],
            ROW["r1"],
            "client",
            "curl / the app",
            "sends its client certificate",
            "none",
        ),
        Box(
            "forwarding_rule",
            COL["c0"],
            ROW["r1"],
            "forwarding rule",
            built,
            "EXTERNAL_MANAGED · TCP 443",
            "gke",
        ),
        Box(
            "address",
            COL["c0"],
            ROW["r2"],
            "global address",
            f.address if named else built,
            "the kit's reserved IP (NamedAddress)" if named else "a new IP, allocated by the controller",
            "kit" if named else "gke",
        ),
        Box("proxy", COL["c2"], ROW["r1"], "target HTTPS proxy", built, "terminates TLS + mTLS", "gke"),
        Box("url_map", COL["c4"], ROW["r1"], "URL map", built, f"from HTTPRoute {g.http_route}", "gke"),
        certificate,
        Box(
            "ssl_policy",
            COL["c2"],
            ROW["r2"],
            "SSL policy",
            f.ssl_policy,
            f"{f.ssl_profile}, named by {g.gateway_policy}",
        ),
        Box("server_tls_policy", COL["c3"], ROW["r2"], "server TLS policy", built, m.validation_mode, "gke"),
        Box(
            "trust_config",
            COL["c3"],
            ROW["r3"],
            "trust config",
            built,
            f"from ConfigMap {g.ca_configmap}",
            "gke",
        ),
        Box(
            "backend_service",
            COL["c4"],
            ROW["r2"],
            "backend service",
            backend,
            "logging from the policy",
            "gke",
        ),
        Box("neg", COL["c4"], ROW["r3"], "zonal NEG", backend, "the pods' IP:port", "gke"),
        Box(
            "gateway",
            COL["c0"],
            ROW["k1"],
            "Gateway",
            f"{ns}/{g.name}",
            f"{g.class_name}",
            "k8s",
            full=f"Gateway {ns}/{g.name}: class {g.class_name}, HTTPS :443, spec.tls.frontend {mode}",
        ),
        Box(
            "ca_configmap",
            COL["c1"],
            ROW["k1"],
            "ConfigMap",
            g.ca_configmap,
            f"{gw.CA_KEY}: {bundle} certificate{'s' if bundle != 1 else ''}",
            "k8s",
        ),
        Box(
            "http_route",
            COL["c2"],
            ROW["k1"],
            "HTTPRoute",
            g.http_route,
            f"{len(m.custom_headers)} mTLS headers (filter)",
            "k8s",
        ),
        Box(
            "service",
            COL["c4"],
            ROW["k1"],
            "Service",
            f"{k.namespace}/{k.service}",
            f"port {k.service_port} → {k.target_port}, app={k.app_label}",
            "k8s",
        ),
        Box(
            "gateway_policy",
            COL["c1"],
            ROW["k2"],
            "GCPGatewayPolicy",
            g.gateway_policy,
            f"sslPolicy {f.ssl_policy}",
            "k8s",
        ),
        Box(
            "health_check_policy",
            COL["c2"],
            ROW["k2"],
            "HealthCheckPolicy",
            g.health_check_policy,
            f"targets Service {k.service}",
            "k8s",
        ),
        Box(
            "backend_policy",
            COL["c4"],
            ROW["k2"],
            "GCPBackendPolicy",
            g.backend_policy,
            f"logging {'on' if params.logging.enable else 'off'}, rate {params.logging.sample_rate:g}",
            "k8s",
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
        svg_arrow(
            [(right("client"), b["client"].cy), (b["forwarding_rule"].x, b["client"].cy)], "request", "HTTPS"
        ),
        svg_arrow(
            [(right("forwarding_rule"), b["proxy"].cy), (b["proxy"].x, b["proxy"].cy)], "request", "TLS"
        ),
        svg_arrow(
            [(right("proxy"), b["proxy"].cy), (b["url_map"].x, b["url_map"].cy)], "request", "mTLS passed"
        ),
        svg_arrow(
            [(b["url_map"].cx, bottom("url_map")), (b["url_map"].cx, b["backend_service"].y)], "request"
        ),
        svg_arrow([(b["neg"].cx, bottom("backend_service")), (b["neg"].cx, b["neg"].y)], "request"),
        svg_arrow([(b["neg"].cx, bottom("neg")), (b["service"].cx, b["service"].y)], "request"),
        svg_arrow(
            [(b["forwarding_rule"].cx, bottom("forwarding_rule")), (b["address"].cx, b["address"].y)],
            "refers",
        ),
        svg_arrow(
            [(b["proxy"].x + 30, bottom("proxy")), (b["certificate"].cx, b["certificate"].y)], "refers"
        ),
        svg_arrow([(b["proxy"].cx, bottom("proxy")), (b["ssl_policy"].cx, b["ssl_policy"].y)], "refers"),
        svg_arrow(
            [(right("proxy") - 30, bottom("proxy")), (b["server_tls_policy"].cx, b["server_tls_policy"].y)],
            "refers",
        ),
        svg_arrow(
            [
                (b["server_tls_policy"].cx, bottom("server_tls_policy")),
                (b["trust_config"].cx, b["trust_config"].y),
            ],
            "refers",
        ),
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
        f'<rect x="{ZONE_LEFT}" y="{KIT_TOP}" width="{WIDTH - ZONE_LEFT - 10}" height="{KIT_BOTTOM - KIT_TOP}" rx="14" '
        f'fill="{GKE_FILL}" stroke="{GKE_STROKE}" stroke-width="1.5"/>',
        svg_text(
            ZONE_LEFT + 16,
            KIT_TOP + 24,
            f"Built by the GKE Gateway controller ({gw.NAME_PREFIX}…) — the blue boxes stay the kit's",
            size=14,
            cls="zone gke",
            anchor="start",
        ),
        f'<rect x="{ZONE_LEFT}" y="{K8S_TOP}" width="{WIDTH - ZONE_LEFT - 10}" height="{K8S_BOTTOM - K8S_TOP}" rx="14" '
        f'fill="{K8S_FILL}" stroke="{K8S_STROKE}" stroke-width="1.5"/>',
        svg_text(
            ZONE_LEFT + 16,
            K8S_TOP + 24,
            f"Applied by the kit to Kubernetes — namespace {params.gateway_namespace}, server-side apply",
            size=14,
            cls="zone k8s",
            anchor="start",
        ),
        *(
            svg_text(COL["c1"] + 4, ROW["r3"] + 14 + 17 * i, line, size=11.5, cls="why", anchor="start")
            for i, line in enumerate(WHY)
        ),
    ]
    legend_y = K8S_BOTTOM + 38
    legend = [
        svg_arrow([(30, legend_y), (80, legend_y)], "request"),
        svg_text(88, legend_y + 4, "request path", size=11.5, anchor="start"),
        svg_arrow([(210, legend_y), (260, legend_y)], "sync"),
        svg_text(
            268, legend_y + 4, "builds / keeps in sync (GKE Gateway controller)", size=11.5, anchor="start"
        ),
        svg_arrow([(560, legend_y), (610, legend_y)], "refers"),
        svg_text(618, legend_y + 4, "uses / names", size=11.5, anchor="start"),
        f'<rect x="730" y="{legend_y - 9}" width="18" height="14" rx="3" fill="{KIT_FILL}" stroke="{KIT_STROKE}"/>',
        svg_text(754, legend_y + 4, "the kit's", size=11.5, anchor="start"),
        f'<rect x="830" y="{legend_y - 9}" width="18" height="14" rx="3" fill="{K8S_FILL}" stroke="{K8S_STROKE}"/>',
        svg_text(854, legend_y + 4, "Kubernetes'", size=11.5, anchor="start"),
        f'<rect x="950" y="{legend_y - 9}" width="18" height="14" rx="3" fill="{GKE_FILL}" stroke="{GKE_STROKE}"/>',
        svg_text(974, legend_y + 4, "the controller's", size=11.5, anchor="start"),
        svg_text(
            WIDTH - 20,
            legend_y + 4,
            f"{params.target}: project {params.project}",
            size=11.5,
            cls="note",
            anchor="end",
        ),
    ]
    body = "".join([*zones, *arrows, *(svg_box(x) for x in b.values()), *legend])
    return svg_document(
        params, f"mtlskit: the Gateway {g.name} of {params.project} (stack {params.stack})", body
    )


def _mermaid(params: Params, b: dict[str, Box]) -> str:
    def node(key: str) -> str:
        box = b[key]
        label = f"{box.kind}<br/>{box.name}" + (f"<br/>{box.detail}" if box.detail else "")
        return f'{key}["{mermaid_text(label)}"]'

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
