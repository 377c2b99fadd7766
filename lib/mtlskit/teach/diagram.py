"""The design as a picture drawn from the params, so a trainee sees their own names on it.

An SVG (not Mermaid) because the HTML report of a headless run is read offline, where no script from a
CDN can draw a Mermaid block; JupyterLab and nbconvert both show `image/svg+xml` as it is. The Mermaid
source is offered too, for pasting into documents that render it.

Every name is XML-escaped: the params are validated against the APIs' name rules, but the picture
must not depend on that to stay well-formed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from mtlskit.config.params import Params

WIDTH, HEIGHT = 1360, 860
BOX_W, BOX_H = 190, 74
# Columns and rows of the grid the boxes sit on (left edges, top edges).
COL = {"client": 14, "c0": 250, "c1": 470, "c2": 690, "c3": 910, "c4": 1140}
ZONE_LEFT = 232
KIT_TOP, KIT_BOTTOM = 56, 440
K8S_TOP, K8S_BOTTOM = 470, 790
ROW = {"r1": 104, "r2": 232, "r3": 350, "k1": 526, "k2": 668}

KIT_FILL, KIT_STROKE = "#eef4ff", "#3367d6"
K8S_FILL, K8S_STROKE = "#eefaf0", "#1e8e3e"
GKE_FILL, GKE_STROKE = "#fef7e0", "#b06000"
REQUEST = "#1a237e"
SYNC = "#e8710a"
REFERS = "#80868b"
# Why the line between the zones runs where it does, written into the empty corner of the kit's zone.
WHY = (
    "Two tools writing one load balancer undo each other's changes,",
    "so it is split at the backend service: the kit never edits what",
    "Kubernetes owns, and the controller never sees the frontend.",
    "With GKE Gateway (gke-l7-global-external-managed) one controller",
    "builds it all, frontend mTLS included: no split, no anchor Ingress.",
)


SANS = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
MONO = "ui-monospace, 'DejaVu Sans Mono', Menlo, monospace"
# How each kind of text looks, as presentation attributes rather than a <style> sheet: the picture is
# inlined into HTML pages (JupyterLab, the report), where a style sheet would restyle the whole page.
TEXT_LOOK = {
    "": 'fill="#202124"',
    "kind": 'fill="#3c4043" font-weight="600"',
    "name": f'fill="#202124" font-family="{MONO}"',
    "detail": 'fill="#5f6368"',
    "note": 'fill="#5f6368"',
    "zone kit": 'fill="#174ea6" font-weight="700"',
    "zone k8s": 'fill="#137333" font-weight="700"',
    "zone gke": 'fill="#b06000" font-weight="700"',
    "label request": f'fill="{REQUEST}"',
    "label sync": 'fill="#b06000"',
    "label refers": 'fill="#5f6368"',
    "warn": 'fill="#c5221f" font-weight="600"',
    "why": 'fill="#3c4043" font-style="italic"',
}


@dataclass(frozen=True)
class Box:
    key: str
    x: float
    y: float
    kind: str  # the resource type, small and bold on top
    name: str  # the params' name, monospace
    detail: str = ""  # one short line under the name
    zone: str = "kit"  # "kit", "k8s", "gke" (built by the Gateway controller) or "none" (the client)
    full: str = ""  # the box's tooltip: everything, untruncated

    @property
    def cx(self) -> float:
        return self.x + BOX_W / 2

    @property
    def cy(self) -> float:
        return self.y + BOX_H / 2


@dataclass(frozen=True)
class Diagram:
    """The picture as SVG text (shown by JupyterLab and nbconvert) and the same design as Mermaid."""

    svg: str
    mermaid: str

    def _repr_svg_(self) -> str:
        return self.svg

    def _repr_html_(self) -> str:
        """Inline, so the names stay text (searchable, selectable, with a tooltip per box): nbconvert's
        HTML templates would otherwise embed `image/svg+xml` as an opaque base64 image."""
        return f'<div class="mtlskit-design" style="overflow-x:auto">{self.svg}</div>'

    def __repr__(self) -> str:
        return f"Diagram(svg=<{len(self.svg)} characters>, mermaid=<{self.mermaid.count(chr(10))} lines>)"


CLIENT = Box(
    "client", COL["client"], ROW["r1"], "client", "curl / the app", "sends its client certificate", "none"
)


def certificate_box(name: str, domains: list[str], how: str = "") -> Box:
    """The managed certificate, its first domains on the box and all of them in the tooltip."""
    return Box(
        "certificate",
        COL["c1"],
        ROW["r2"],
        "managed certificate",
        name,
        domains_shown(domains),
        full=f"managed certificate {name}{how}: {', '.join(domains)}",
    )


def domains_shown(domains: list[str]) -> str:
    """The first two domains and how many more: a box has room for one short line."""
    return ", ".join(domains[:2]) + (f" +{len(domains) - 2} more" if len(domains) > 2 else "")


def boxes(params: Params) -> dict[str, Box]:
    """Every resource of the design with the params' names, placed on the grid."""
    f, k, m = params.frontend, params.kubernetes, params.mtls
    domains = list(f.domains)
    anchors = len(m.trust_anchors)
    trust_detail = (
        f"{anchors} anchor{'s' if anchors != 1 else ''} · {len(m.intermediates)} intermediate"
        f"{'s' if len(m.intermediates) != 1 else ''} · {len(m.allowlisted)} allowlisted"
    )
    bs_name = f"k8s1-…-{k.namespace}-{k.service}-{k.service_port}-…"
    items = [
        CLIENT,
        Box(
            "forwarding_rule",
            COL["c0"],
            ROW["r1"],
            "forwarding rule",
            f.forwarding_rule,
            f"{f.load_balancing_scheme} · TCP 443",
        ),
        Box("address", COL["c0"], ROW["r2"], "global address", f.address, "the IP clients resolve to"),
        Box("proxy", COL["c2"], ROW["r1"], "target HTTPS proxy", f.target_proxy, "terminates TLS + mTLS"),
        Box("url_map", COL["c4"], ROW["r1"], "URL map", f.url_map, "every host and path"),
        certificate_box(f.certificate, domains),
        Box(
            "ssl_policy",
            COL["c2"],
            ROW["r2"],
            "SSL policy",
            f.ssl_policy,
            f"{f.ssl_profile}, min {f.min_tls_version.replace('_', ' ').replace('TLS 1 ', 'TLS 1.')}",
        ),
        Box(
            "server_tls_policy",
            COL["c3"],
            ROW["r2"],
            "server TLS policy",
            m.server_tls_policy,
            m.validation_mode,
        ),
        Box("trust_config", COL["c3"], ROW["r3"], "trust config", m.trust_config, trust_detail),
        Box(
            "backend_service",
            COL["c4"],
            ROW["k1"],
            "backend service",
            bs_name,
            "created by the GKE Ingress controller",
            "k8s",
        ),
        Box(
            "neg",
            COL["c3"],
            ROW["k1"],
            "zonal NEG",
            bs_name,
            "same name; the pods' IP:port",
            "k8s",
        ),
        Box(
            "service",
            COL["c2"],
            ROW["k1"],
            "Service",
            f"{k.namespace}/{k.service}",
            f"port {k.service_port} → {k.target_port}, app={k.app_label}",
            "k8s",
        ),
        Box(
            "ingress",
            COL["c0"],
            ROW["k1"],
            "anchor Ingress (class gce)",
            k.ingress,
            "allow-http false, no TLS",
            "k8s",
        ),
        Box(
            "backend_config",
            COL["c2"],
            ROW["k2"],
            "BackendConfig",
            k.backend_config,
            f"logging {on_off(params.logging.enable)}, mTLS headers",
            "k8s",
        ),
    ]
    return {b.key: b for b in items}


def design_diagram(params: Params) -> Diagram:
    """The split load balancer with the params' names: who owns what, the request path, what syncs."""
    b = boxes(params)
    return Diagram(_svg(params, b), _mermaid(params, b))


# ---- SVG ---------------------------------------------------------------------------------------------


def svg_text(
    x: float,
    y: float,
    text: str,
    *,
    size: float = 12,
    cls: str = "",
    anchor: str = "middle",
    max_w: float = 0,
) -> str:
    fit = ""
    if max_w and len(text) * size * 0.62 > max_w:  # squeeze a long name rather than cut it
        fit = f' textLength="{max_w:.0f}" lengthAdjust="spacingAndGlyphs"'
    look = TEXT_LOOK.get(cls, TEXT_LOOK[""])
    return (
        f'<text x="{x:.0f}" y="{y:.0f}" font-size="{size}" text-anchor="{anchor}" {look}{fit}>'
        f"{escape(text)}</text>"
    )


def svg_box(box: Box) -> str:
    fill, stroke = {
        "kit": ("#ffffff", KIT_STROKE),
        "k8s": ("#ffffff", K8S_STROKE),
        "gke": ("#ffffff", GKE_STROKE),
        "none": ("#fff8e1", "#f9ab00"),
    }[box.zone]
    title = box.full or f"{box.kind}: {box.name}" + (f" ({box.detail})" if box.detail else "")
    inner = BOX_W - 20
    return "".join(
        [
            f'<g class="mtlskit-box" data-resource={quoteattr(box.key)}><title>{escape(title)}</title>',
            f'<rect x="{box.x}" y="{box.y}" width="{BOX_W}" height="{BOX_H}" rx="9" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="1.6"/>',
            svg_text(box.cx, box.y + 19, box.kind, size=11.5, cls="kind", max_w=inner),
            svg_text(box.cx, box.y + 42, box.name, size=13, cls="name", max_w=inner),
            svg_text(box.cx, box.y + 62, box.detail, size=10.5, cls="detail", max_w=inner)
            if box.detail
            else "",
            "</g>",
        ]
    )


def svg_arrow(
    points: list[tuple[float, float]], style: str, label: str = "", at: int = 0, dy: float = -6
) -> str:
    """A polyline through `points`, ending in the style's arrowhead; the label sits on segment `at`."""
    colour, width, dash, marker = {
        "request": (REQUEST, 2.6, "", "req"),
        "sync": (SYNC, 2.2, ' stroke-dasharray="7 5"', "sync"),
        "refers": (REFERS, 1.3, "", "ref"),
    }[style]
    path = " ".join(f"{x:.0f},{y:.0f}" for x, y in points)
    out = (
        f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="{width}"{dash} '
        f'marker-end="url(#mtlskit-{marker})"/>'
    )
    if label:
        (x1, y1), (x2, y2) = points[at], points[at + 1]
        if x1 == x2:  # beside a vertical segment, not across it
            out += svg_text(x1 - 8, (y1 + y2) / 2 + 4, label, size=10.5, cls=f"label {style}", anchor="end")
        else:
            out += svg_text((x1 + x2) / 2, (y1 + y2) / 2 + dy, label, size=10.5, cls=f"label {style}")
    return out


def frontend_arrows(b: dict[str, Box]) -> list[str]:
    """The frontend's part of the picture, the same in both topologies: the request from the client to
    the URL map, and what the forwarding rule, the proxy and the server TLS policy use."""

    def right(k: str) -> float:
        return b[k].x + BOX_W

    def bottom(k: str) -> float:
        return b[k].y + BOX_H

    stp, tc = b["server_tls_policy"], b["trust_config"]
    return [
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
            [(b["forwarding_rule"].cx, bottom("forwarding_rule")), (b["address"].cx, b["address"].y)],
            "refers",
        ),
        svg_arrow(
            [(b["proxy"].x + 30, bottom("proxy")), (b["certificate"].cx, b["certificate"].y)], "refers"
        ),
        svg_arrow([(b["proxy"].cx, bottom("proxy")), (b["ssl_policy"].cx, b["ssl_policy"].y)], "refers"),
        svg_arrow([(right("proxy") - 30, bottom("proxy")), (stp.cx, stp.y)], "refers"),
        svg_arrow([(stp.cx, bottom("server_tls_policy")), (tc.cx, tc.y)], "refers"),
    ]


def _svg(params: Params, b: dict[str, Box]) -> str:
    right = lambda k: b[k].x + BOX_W  # noqa: E731 - two tiny geometry helpers read better inline
    bottom = lambda k: b[k].y + BOX_H  # noqa: E731
    k = params.kubernetes
    arrows = [
        *frontend_arrows(b),
        svg_arrow(
            [(b["url_map"].cx, b["url_map"].y + BOX_H), (b["url_map"].cx, b["backend_service"].y)],
            "request",
            "default service",
            dy=4,
        ),
        svg_arrow([(b["backend_service"].x, b["neg"].cy), (right("neg"), b["neg"].cy)], "request"),
        svg_arrow([(b["neg"].x, b["service"].cy), (right("service"), b["service"].cy)], "request"),
        # Kubernetes' references
        svg_arrow(
            [(right("ingress"), b["ingress"].cy), (b["service"].x, b["service"].cy)],
            "refers",
            f"backend {k.service}:{k.service_port}",
        ),
        svg_arrow(
            [(b["service"].cx, bottom("service")), (b["backend_config"].cx, b["backend_config"].y)],
            "refers",
            "annotation names it",
            dy=4,
        ),
        # what the controller creates and keeps in sync
        svg_arrow(
            [
                (b["ingress"].x + 30, bottom("ingress")),
                (b["ingress"].x + 30, K8S_BOTTOM - 22),
                (b["backend_service"].x + 150, K8S_BOTTOM - 22),
                (b["backend_service"].x + 150, bottom("backend_service")),
            ],
            "sync",
            "GKE Ingress controller creates the backend service + NEG and keeps them in sync, only while this Ingress exists",
            at=1,
        ),
        svg_arrow(
            [
                (right("backend_config"), b["backend_config"].cy),
                (b["backend_service"].x + 60, b["backend_config"].cy),
                (b["backend_service"].x + 60, bottom("backend_service")),
            ],
            "sync",
            "applied by the controller: logging, mTLS headers",
            at=0,
        ),
        svg_arrow(
            [(b["neg"].cx, K8S_BOTTOM - 22), (b["neg"].cx, bottom("neg"))],
            "sync",
        ),
    ]
    zones = [
        *svg_zones(
            ("kit", "Owned by mtlskit — 30_trust, 40_frontend (teardown: 90)"),
            (
                "k8s",
                f"Owned by Kubernetes — namespace {k.namespace}, applied by 10_ingress; the GKE Ingress "
                "controller builds the rest",
            ),
        ),
        svg_text(
            WIDTH - 24,
            KIT_TOP + 24,
            f"description managed-by=mtlskit stack={params.stack}",
            size=11,
            cls="note",
            anchor="end",
        ),
        *(
            svg_text(
                b["ingress"].x + 40,
                bottom("ingress") + 20 + 15 * i,
                line,
                size=11,
                cls="warn",
                anchor="start",
            )
            for i, line in enumerate(("never delete it: without it nothing", "syncs the backend service"))
        ),
        *svg_why(b["address"].x + 4, WHY),
    ]
    legend = svg_legend(params, "creates / keeps in sync (GKE Ingress controller)", ("kit", "k8s"))
    body = "".join([*zones, *arrows, *(svg_box(x) for x in b.values()), *legend])
    title = f"mtlskit: the split load balancer of {params.project} (stack {params.stack})"
    return svg_document(params, title, body)


ZONE_LOOK = {"kit": (KIT_FILL, KIT_STROKE), "k8s": (K8S_FILL, K8S_STROKE), "gke": (GKE_FILL, GKE_STROKE)}
OWNER_WORDS = {"kit": "the kit's", "k8s": "Kubernetes'", "gke": "the controller's"}


def svg_zones(upper: tuple[str, str], lower: tuple[str, str]) -> list[str]:
    """The two owners' zones, upper (the load balancer) and lower (Kubernetes), each titled."""
    out = []
    for (owner, title), top, bottom in ((upper, KIT_TOP, KIT_BOTTOM), (lower, K8S_TOP, K8S_BOTTOM)):
        fill, stroke = ZONE_LOOK[owner]
        out.append(
            f'<rect x="{ZONE_LEFT}" y="{top}" width="{WIDTH - ZONE_LEFT - 10}" height="{bottom - top}" rx="14" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>'
        )
        out.append(svg_text(ZONE_LEFT + 16, top + 24, title, size=14, cls=f"zone {owner}", anchor="start"))
    return out


def svg_why(x: float, lines: tuple[str, ...]) -> list[str]:
    return [
        svg_text(x, ROW["r3"] + 14 + 17 * i, line, size=11.5, cls="why", anchor="start")
        for i, line in enumerate(lines)
    ]


def svg_legend(params: Params, sync_words: str, owners: tuple[str, ...]) -> list[str]:
    """The line under the picture: what each arrow and each colour means, and which project it shows."""
    y = K8S_BOTTOM + 38
    out = [
        svg_arrow([(30, y), (80, y)], "request"),
        svg_text(88, y + 4, "request path", size=11.5, anchor="start"),
        svg_arrow([(210, y), (260, y)], "sync"),
        svg_text(268, y + 4, sync_words, size=11.5, anchor="start"),
        svg_arrow([(560, y), (610, y)], "refers"),
        svg_text(618, y + 4, "uses / names", size=11.5, anchor="start"),
    ]
    for i, owner in enumerate(owners):
        fill, stroke = ZONE_LOOK[owner]
        x = 730 + 110 * i
        out.append(
            f'<rect x="{x}" y="{y - 9}" width="18" height="14" rx="3" fill="{fill}" stroke="{stroke}"/>'
        )
        out.append(svg_text(x + 24, y + 4, OWNER_WORDS[owner], size=11.5, anchor="start"))
    out.append(
        svg_text(
            WIDTH - 20,
            y + 4,
            f"{params.target}: project {params.project}",
            size=11.5,
            cls="note",
            anchor="end",
        )
    )
    return out


def svg_document(params: Params, title: str, body: str) -> str:
    """The picture's frame: size, arrowheads, a white page and the title screen readers announce."""
    markers = "".join(
        f'<marker id="mtlskit-{mid}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="{size}" markerHeight="{size}" '
        f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
        for mid, colour, size in (("req", REQUEST, 5), ("sync", SYNC, 6), ("ref", REFERS, 7))
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="{SANS}" role="img" aria-label="mtlskit design for {escape(params.project)}">'
        f"<title>{escape(title)}</title>"
        f"<defs>{markers}</defs>"
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>{body}</svg>'
    )


# ---- Mermaid -----------------------------------------------------------------------------------------


def mermaid_nodes(b: dict[str, Box]) -> Callable[[str], str]:
    """A Mermaid node per box, labelled as the SVG box is (kind, name, detail)."""

    def node(key: str) -> str:
        box = b[key]
        label = f"{box.kind}<br/>{box.name}" + (f"<br/>{box.detail}" if box.detail else "")
        return f'{key}["{mermaid_text(label)}"]'

    return node


def on_off(flag: bool) -> str:
    return "on" if flag else "off"


def _mermaid(params: Params, b: dict[str, Box]) -> str:
    node = mermaid_nodes(b)
    kit = [
        "forwarding_rule",
        "address",
        "proxy",
        "url_map",
        "certificate",
        "ssl_policy",
        "server_tls_policy",
        "trust_config",
    ]
    k8s = ["ingress", "service", "backend_config", "backend_service", "neg"]
    lines = [
        "flowchart LR",
        f"  {node('client')}",
        '  subgraph kit["Owned by mtlskit"]',
        *(f"    {node(key)}" for key in kit),
        "  end",
        '  subgraph k8s["Owned by Kubernetes (GKE Ingress controller)"]',
        *(f"    {node(key)}" for key in k8s),
        "  end",
        "  client ==> forwarding_rule ==> proxy ==> url_map ==>|default service| backend_service ==> neg ==> service",
        "  forwarding_rule --> address",
        "  proxy --> certificate & ssl_policy & server_tls_policy",
        "  server_tls_policy --> trust_config",
        "  ingress --> service --> backend_config",
        "  ingress -.->|creates, keeps in sync| backend_service & neg",
        "  backend_config -.->|applied to| backend_service",
    ]
    return "\n".join(lines) + "\n"


def mermaid_text(text: str) -> str:
    """Mermaid labels in quotes take HTML entities; a quote or angle bracket in a name must not end them."""
    return (
        text.replace("&", "&amp;")
        .replace('"', "&quot;")
        .replace("<br/>", "\0")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("\0", "<br/>")
    )
