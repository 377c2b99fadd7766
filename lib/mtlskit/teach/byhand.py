"""The "how to check by hand" commands of every runbook step, written with the reader's own names.

A page that prints `gcloud compute url-maps describe mtls-urlmap` teaches the sandbox's names: a
reader of a real environment copies them and reads the wrong resource, or none. Here every command
is built from the params' fields (project, names, domains, certificate files), the kubectl ones with
the namespace and context flags the kit's own printed commands carry (`build.k8s.kubectl_target`).
`STEPS` says which commands each notebook shows. The backend service's name is not in the params:
it comes from what the step located, else the placeholder `BACKEND_SERVICE`, with where to read it.

Like `verify.logs.by_hand(params)`, which 60_logs prints, `by_hand(params, step)` prints as shell
lines a reader can paste (each with a `# why` comment); the commands are data too, so a test runs
every read through the real gcloud and kubectl.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from mtlskit.build import k8s, lbnames
from mtlskit.build.backend import BackendService
from mtlskit.build.lbnames import LoadBalancerNames
from mtlskit.cloud import ownership
from mtlskit.config.params import Params
from mtlskit.rules.logentry import NOT_PROVIDED
from mtlskit.verify import probe
from mtlskit.verify.drift import DriftState, GatewayDriftState

BACKEND_SERVICE = "BACKEND_SERVICE"
SANDBOX_CA = "SANDBOX_CA"
# Where a reader finds what a placeholder stands for.
PLACEHOLDERS = {
    BACKEND_SERVICE: "the backend service's name: the first row of 20_backend_service's table, or "
    "the name in the anchor Ingress's ingress.kubernetes.io/backends annotation",
    SANDBOX_CA: "the sandbox's stand-in for Google's public CAs: the 'server trust' row of "
    "50_verify's frontend table",
}
# A Gateway's load balancer not resolved yet: each name its controller wrote on the Gateway.
GATEWAY_PLACEHOLDERS = {
    "forwarding_rule": "GATEWAY_FORWARDING_RULE",
    "target_proxy": "GATEWAY_HTTPS_PROXY",
    "url_map": "GATEWAY_URL_MAP",
    "server_tls_policy": "GATEWAY_SERVER_TLS_POLICY",
    "trust_config": "GATEWAY_TRUST_CONFIG",
}
GATEWAY_WHERE = (
    "a name the Gateway's controller built: its networking.gke.io/* annotations (kubectl describe gateway), "
    "then the HTTPS proxy's serverTlsPolicy and that policy's trust config; 50_verify's frontend table "
    "and 70_drift's first table show them once the Gateway is Programmed"
)
PLACEHOLDERS.update({name: GATEWAY_WHERE for name in GATEWAY_PLACEHOLDERS.values()})
# The Compute fields each describe shows: what the step's checks judge, nothing else.
BACKEND_FIELDS = "yaml(description,loadBalancingScheme,logConfig,customRequestHeaders,backends)"
PROXY_FIELDS = "yaml(urlMap,sslCertificates,sslPolicy,serverTlsPolicy)"


@dataclass(frozen=True)
class Command:
    """One command to type, and the one line that says what it shows."""

    line: str  # as typed in a POSIX shell
    why: str
    sets: str = ""  # a shell variable the command's output is stored in (IP=$(...)), for the next ones
    reads: bool = True  # changes nothing: safe to run any time, against any environment

    @property
    def tool(self) -> str:
        return shlex.split(self.line)[0]

    def __str__(self) -> str:
        typed = f"{self.sets}=$({self.line})" if self.sets else self.line
        return f"# {self.why}\n{typed}"


@dataclass(frozen=True)
class ByHand:
    """A step's commands and the placeholders they still contain (each with where to find its value)."""

    step: str
    commands: tuple[Command, ...]
    placeholders: dict[str, str]

    def reads(self, tool: str) -> list[str]:
        """The commands of one tool (gcloud, kubectl, ...) that only read, as typed."""
        return [c.line for c in self.commands if c.reads and c.tool == tool]

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"command": str(c).split("\n", 1)[1], "shows": c.why} for c in self.commands])

    def __str__(self) -> str:
        blocks = [str(c) for c in self.commands]
        if self.placeholders:
            blocks.insert(0, "\n".join(f"# {name}: {where}" for name, where in self.placeholders.items()))
        return "\n\n".join(blocks)


@dataclass(frozen=True)
class _Names:
    """What the commands are written with: the params and what the step located."""

    params: Params
    backend_service: str
    port: int
    server_ca: str | None
    lb: LoadBalancerNames  # the load balancer the step resolved, or the params' (placeholders for a Gateway)

    @property
    def kubectl(self) -> str:
        return k8s.kubectl_target(self.params)

    def gcloud(self, group: str, verb: str, name: str = "", scope: str = "--global", extra: str = "") -> str:
        project = f"--project={shlex.quote(self.params.project)}"
        words = ["gcloud", group, verb, shlex.quote(name) if name else "", scope, project, extra]
        return " ".join(w for w in words if w)


# ---- the commands, one function each --------------------------------------------------------------------


def _kube_objects(n: _Names) -> list[Command]:
    k = n.params.kubernetes
    objects = [f"service/{k.service}", f"backendconfig/{k.backend_config}", f"ingress/{k.ingress}"]
    line = f"kubectl get {' '.join(map(shlex.quote, objects))} {n.kubectl}"
    return [Command(line, "the Service, the BackendConfig and the anchor Ingress (10_ingress applies them)")]


def _anchor_backends(n: _Names) -> list[Command]:
    k = n.params.kubernetes
    path = "{.metadata.annotations." + k8s.BACKENDS_ANNOTATION.replace(".", "\\.") + "}"
    line = f"kubectl get ingress {shlex.quote(k.ingress)} {n.kubectl} -o jsonpath={shlex.quote(path)}"
    return [
        Command(
            line, "the backend services the Ingress controller made, as it wrote them on the anchor Ingress"
        )
    ]


def _anchor_events(n: _Names) -> list[Command]:
    line = f"kubectl describe ingress {shlex.quote(n.params.kubernetes.ingress)} {n.kubectl}"
    return [
        Command(
            line, "the controller's events for the anchor (Translate and GarbageCollection warnings say why)"
        )
    ]


def _backend_config(n: _Names) -> list[Command]:
    line = f"kubectl get backendconfig {shlex.quote(n.params.kubernetes.backend_config)} {n.kubectl} -o yaml"
    return [
        Command(
            line,
            "what the BackendConfig asks of the backend service: request logging, the mTLS request headers",
        )
    ]


def _backend_services(n: _Names) -> list[Command]:
    line = n.gcloud("compute backend-services", "list", scope="")
    return [Command(line, "every backend service of the project; the Ingress controller's are named k8s1-…")]


def _backend_health(n: _Names) -> list[Command]:
    line = n.gcloud("compute backend-services", "get-health", n.backend_service)
    return [Command(line, "the health of each NEG endpoint behind the backend service")]


@dataclass(frozen=True)
class _Describe:
    """A `gcloud ... describe` of one resource the params name, with the fields its step judges."""

    group: str
    name: Callable[[_Names], str]
    why: str
    fields: str = ""
    scope: str = "--global"

    def __call__(self, n: _Names) -> list[Command]:
        extra = f"--format='{self.fields}'" if self.fields else ""
        return [
            Command(n.gcloud(self.group, "describe", self.name(n), scope=self.scope, extra=extra), self.why)
        ]


DESCRIBES: dict[str, _Describe] = {
    "backend service": _Describe(
        "compute backend-services",
        lambda n: n.backend_service,
        "the backend service: the Service and port it serves, scheme, request logging, mTLS headers, NEGs",
        BACKEND_FIELDS,
    ),
    "URL map": _Describe(
        "compute url-maps",
        lambda n: n.lb.url_map,
        "the backend service the URL map sends every request to: the anchor's, or the split is broken",
        "value(defaultService)",
    ),
    "HTTPS proxy": _Describe(
        "compute target-https-proxies",
        lambda n: n.lb.target_proxy,
        "the HTTPS proxy: its URL map, managed certificate, SSL policy and server TLS policy (no policy, no mTLS)",
        PROXY_FIELDS,
    ),
    "forwarding rule": _Describe(
        "compute forwarding-rules",
        lambda n: n.lb.forwarding_rule,
        "the forwarding rule: the address clients reach, port 443, and the proxy it targets",
        "value(IPAddress,portRange,target)",
    ),
    "SSL policy": _Describe(
        "compute ssl-policies",
        lambda n: n.lb.ssl_policy,
        "the SSL policy's profile and minimum TLS version",
        "value(profile,minTlsVersion)",
    ),
    "managed certificate": _Describe(
        "compute ssl-certificates",
        lambda n: n.params.frontend.certificate,
        "the managed certificate's status for each domain: ACTIVE once every domain's A record points at the address",
        "yaml(managed)",
    ),
    "address": _Describe(
        "compute addresses",
        lambda n: n.params.frontend.address,
        "the reserved address every domain's A record must point at",
        "value(address)",
    ),
    "server TLS policy": _Describe(
        "network-security server-tls-policies",
        lambda n: n.lb.server_tls_policy_id,
        "the server TLS policy: its validation mode and the trust config it points at",
        scope="--location=global",
    ),
    "trust config": _Describe(
        "certificate-manager trust-configs",
        lambda n: n.lb.trust_config_id,
        "the trust config: its trust anchors, intermediates and allowlisted certificates",
        scope="--location=global",
    ),
}


def _kit_leftovers(n: _Names) -> list[Command]:
    """What teardown leaves of this stack: nothing, once applied (each list filters on the kit's marks)."""
    stack = n.params.stack
    # Names and stacks are API names (letters, digits, hyphens): quoting them needs no escaping.
    description = f"'description~\"{ownership.compute_description(stack)}$\"'"
    labels = f"'labels.{ownership.LABEL_STACK}={stack}'"
    return [
        Command(
            n.gcloud("compute forwarding-rules", "list", extra=f"--filter={description}"),
            "this stack's forwarding rules (empty after teardown)",
        ),
        Command(
            n.gcloud(
                "network-security server-tls-policies",
                "list",
                scope="--location=global",
                extra=f"--filter={labels}",
            ),
            "this stack's server TLS policies (empty after teardown)",
        ),
        Command(
            n.gcloud(
                "certificate-manager trust-configs",
                "list",
                scope="--location=global",
                extra=f"--filter={labels}",
            ),
            "this stack's trust configs (empty after teardown)",
        ),
    ]


def _enabled_apis(n: _Names) -> list[Command]:
    wanted = shlex.quote('name~"compute|networksecurity|certificatemanager|logging"')
    line = n.gcloud("services", "list", scope="--enabled", extra=f"--filter={wanted}")
    return [Command(line, "the APIs the runbook uses, enabled in the project")]


def _quotas(n: _Names) -> list[Command]:
    line = n.gcloud(
        "compute project-info",
        "describe",
        scope="",
        extra="--flatten=quotas --format='table(quotas.metric,quotas.limit,quotas.usage)'",
    )
    return [
        Command(line, "the project's Compute quotas: the limit and usage of each metric the frontend counts")
    ]


def _certificate_files(n: _Names) -> list[Command]:
    m = n.params.mtls
    files = [("trust anchor", f) for f in m.trust_anchors] + [("intermediate", f) for f in m.intermediates]
    files += [("allowlisted certificate", f) for f in m.allowlisted]
    return [
        Command(
            f"openssl x509 -in {shlex.quote(f)} -noout -subject -enddate -fingerprint -sha256",
            f"the {role}'s subject, expiry and fingerprint (the trust config must hold this fingerprint)",
        )
        for role, f in files
    ]


def _chain(n: _Names) -> list[Command]:
    m, p = n.params.mtls, n.params.probe
    if not (p.client_cert and m.trust_anchors):
        return []
    # Every anchor trusted (and nothing else: -trusted leaves the system's CAs out, as the load
    # balancer does), every intermediate offered for path building.
    anchors = " ".join(f"-trusted {shlex.quote(a)}" for a in m.trust_anchors)
    untrusted = " ".join(f"-untrusted {shlex.quote(i)}" for i in m.intermediates)
    line = " ".join(w for w in ["openssl verify", anchors, untrusted, shlex.quote(p.client_cert)] if w)
    return [
        Command(
            line, "the probe certificate's chain, built to the trust anchor as the load balancer builds it"
        )
    ]


def _dns(n: _Names) -> list[Command]:
    return [
        Command(
            f"dig +short A {shlex.quote(d)}",
            f"where {d} points: the address, or the certificate stays PROVISIONING",
        )
        for d in n.params.frontend.domains
    ]


def _requests(n: _Names) -> list[Command]:
    """Real requests as 50_verify sends them: to the domain, connected to the forwarding rule's IP."""
    p, mode = n.params, n.params.mtls.validation_mode
    domain = p.frontend.domains[0]
    url = f"https://{domain}/" if n.port == 443 else f"https://{domain}:{n.port}/"
    trust = f" --cacert {shlex.quote(n.server_ca)}" if n.server_ca else ""
    curl = f"curl -v --resolve {shlex.quote(f'{domain}:{n.port}')}:$IP{trust} {shlex.quote(url)}"
    out = [
        Command(
            n.gcloud(
                "compute forwarding-rules",
                "describe",
                n.lb.forwarding_rule,
                extra="--format='value(IPAddress)'",
            ),
            "the address the domains resolve to, kept in $IP for the requests below",
            sets="IP",
        )
    ]
    if p.probe.client_cert and p.probe.client_key:
        line = f"{curl} --cert {shlex.quote(p.probe.client_cert)} --key {shlex.quote(p.probe.client_key)}"
        out.append(Command(line, f"the probe certificate: {probe.expectation_text('ok', mode)}"))
    out.append(Command(curl, f"no certificate: {_outcome(NOT_PROVIDED, mode)}"))
    invalid = next((c for c in probe.demo_cases(p) if c.expected != "ok" and not c.chain and c.cert), None)
    if invalid and invalid.cert and invalid.key:
        line = f"{curl} --cert {shlex.quote(invalid.cert)} --key {shlex.quote(invalid.key)}"
        out.append(Command(line, f"{invalid.name}: {_outcome(invalid.expected, mode)}"))
    below = probe.BELOW_MINIMUM.get(p.frontend.min_tls_version)
    if below:
        label, version = below
        flag = "-" + version.lower().replace("tlsv", "tls")
        line = f"openssl s_client -connect $IP:{n.port} -servername {shlex.quote(domain)} {flag} </dev/null"
        out.append(Command(line, f"{label}, below the SSL policy's minimum: the handshake must fail"))
    return out


def _outcome(expected: str, mode: str) -> str:
    """What a request should get, with how curl shows a connection closed in the handshake."""
    closed = " (curl exit 35, 52 or 56)" if expected != "ok" and mode == probe.REJECT else ""
    return probe.expectation_text(expected, mode) + closed


def _gateway_target(n: _Names) -> str:
    return k8s.kubectl_target(n.params).replace(
        f"-n {shlex.quote(n.params.kubernetes.namespace)}", f"-n {shlex.quote(n.params.gateway_namespace)}", 1
    )


def _gateway_prerequisites(n: _Names) -> list[Command]:
    g, k = n.params.gateway, n.params.kubernetes
    jsonpath = shlex.quote("{.data.ca\\.crt}")
    return [
        Command(
            f"kubectl get service {shlex.quote(k.service)} {n.kubectl} --show-managed-fields -o yaml",
            "the Service the HTTPRoute sends to, and which field managers set its fields (mtlskit among them)",
        ),
        Command(
            f"kubectl get configmap {shlex.quote(g.ca_configmap)} {_gateway_target(n)} -o jsonpath={jsonpath}"
            " | openssl storeutl -noout -text -certs /dev/stdin",
            "the CA bundle the Gateway validates clients with: the trust anchors, then the intermediates",
        ),
    ]


def _gateway(n: _Names) -> list[Command]:
    g = n.params.gateway
    frontend = shlex.quote("{.spec.tls.frontend}")
    return [
        Command(
            f"kubectl describe gateway {shlex.quote(g.name)} {_gateway_target(n)}",
            "the Gateway's conditions (Accepted, Programmed), address, listener conditions (GEP-91 reasons "
            "such as InvalidCACertificateRef), the controller's networking.gke.io annotations and events",
        ),
        Command(
            f"kubectl get gateway {shlex.quote(g.name)} {_gateway_target(n)} -o jsonpath={frontend}",
            "spec.tls.frontend as the server stored it: empty means an older schema pruned it (no mTLS)",
        ),
        Command(
            f"kubectl describe httproute {shlex.quote(g.http_route)} {n.kubectl}",
            "the route: its parent's Accepted condition, the backend Service and the mTLS header filter",
        ),
        Command(
            f"kubectl get gcpbackendpolicy,healthcheckpolicy {n.kubectl} -l "
            f"{ownership.KUBE_STACK}={shlex.quote(n.params.stack)} -o wide",
            "the backend's policies (request logging, health check) and their Attached condition",
        ),
    ]


def _gateway_proxy(n: _Names) -> list[Command]:
    g = n.params.gateway
    key = "networking\\.gke\\.io/target-https-proxies"
    path = shlex.quote("{.metadata.annotations." + key + "}")
    return [
        Command(
            f"kubectl get gateway {shlex.quote(g.name)} {_gateway_target(n)} -o jsonpath={path}",
            "the target HTTPS proxy the controller built (a gkegw1-… path); describe it with "
            "`gcloud compute target-https-proxies describe NAME --global` for its serverTlsPolicy",
        )
    ]


def _gateway_leftovers(n: _Names) -> list[Command]:
    kinds = "gateways,httproutes,gcpgatewaypolicies,gcpbackendpolicies,healthcheckpolicies,configmaps"
    selector = f"{ownership.KUBE_STACK}={shlex.quote(n.params.stack)}"
    description = f"'description~\"{ownership.compute_description(n.params.stack)}$\"'"
    return [
        Command(
            f"kubectl get {kinds} -A -l {selector} {k8s.kubectl_target(n.params, namespaced=False)}".rstrip(),
            "this stack's Gateway objects (none after teardown; the Service stays)",
        ),
        Command(
            n.gcloud("compute ssl-policies", "list", scope="", extra=f"--filter={description}"),
            "this stack's SSL policies (empty after teardown)",
        ),
    ]


COMMANDS: dict[str, Callable[[_Names], list[Command]]] = {
    "enabled APIs": _enabled_apis,
    "quotas": _quotas,
    "certificate files": _certificate_files,
    "probe chain": _chain,
    "Kubernetes objects": _kube_objects,
    "anchor's backend services": _anchor_backends,
    "anchor's events": _anchor_events,
    "BackendConfig": _backend_config,
    "backend services": _backend_services,
    "backend health": _backend_health,
    "DNS": _dns,
    "requests": _requests,
    "kit's leftovers": _kit_leftovers,
    "Gateway prerequisites": _gateway_prerequisites,
    "Gateway": _gateway,
    "Gateway's HTTPS proxy": _gateway_proxy,
    "Gateway leftovers": _gateway_leftovers,
    **DESCRIBES,
}

# Which commands each runbook page shows, in the order a reader goes through them.
STEPS: dict[str, tuple[str, ...]] = {
    "00_design": (
        "Kubernetes objects",
        "anchor's backend services",
        "backend services",
        "URL map",
        "HTTPS proxy",
        "server TLS policy",
        "trust config",
    ),
    "00_preflight": ("enabled APIs", "quotas", "certificate files", "probe chain"),
    "10_ingress": ("Kubernetes objects", "anchor's backend services", "anchor's events"),
    "20_backend_service": ("anchor's backend services", "backend service", "backend health"),
    "30_trust": ("trust config", "server TLS policy"),
    "40_frontend": ("forwarding rule", "HTTPS proxy", "URL map", "SSL policy", "managed certificate"),
    "50_verify": ("managed certificate", "requests"),
    "70_drift": (
        "anchor's backend services",
        "anchor's events",
        "BackendConfig",
        "URL map",
        "backend service",
        "forwarding rule",
        "HTTPS proxy",
        "server TLS policy",
        "trust config",
        "certificate files",
        "managed certificate",
        "address",
        "DNS",
    ),
    "90_teardown": ("kit's leftovers", "Kubernetes objects"),
}
# The Gateway topology's own pages (their reads need a cluster that serves the Gateway API).
GATEWAY_STEPS: dict[str, tuple[str, ...]] = {
    "gw10_gateway_prereqs": ("Gateway prerequisites", "SSL policy", "managed certificate"),
    "gw20_gateway": ("Gateway", "Gateway's HTTPS proxy"),
    "gw90_gateway_teardown": ("Gateway leftovers",),
}

GATEWAY_URL_MAP = _Describe(
    "compute url-maps",
    lambda n: n.lb.url_map,
    "the URL map the controller built from the HTTPRoute: each domain's host rule to the Service's backend "
    "service, with the route's mTLS headers as its header action (the default service is its 404 backend)",
    "yaml(defaultService,hostRules,pathMatchers)",
)
COMMANDS["Gateway URL map"] = GATEWAY_URL_MAP

# 50_verify and 70_drift in the Gateway topology: the same reads, of the load balancer the Gateway's
# controller built, and the Gateway's own objects instead of the anchor and the BackendConfig.
GATEWAY_VERIFY_STEPS: dict[str, tuple[str, ...]] = {
    "50_verify": ("Gateway", "managed certificate", "requests"),
    "70_drift": (
        "Gateway",
        "Gateway prerequisites",
        "forwarding rule",
        "HTTPS proxy",
        "Gateway URL map",
        "SSL policy",
        "server TLS policy",
        "trust config",
        "certificate files",
        "managed certificate",
        "DNS",
    ),
}

Located = BackendService | probe.Frontend | DriftState | GatewayDriftState | str | None


def by_hand(params: Params, step: str, located: Located = None) -> ByHand:
    """The commands that check `step` by hand, written with the params' names; `print` it for a page.

    `located` is what the step already found, when it has: the backend service (20), the frontend as a
    client finds it (50), or the drift state (70); a backend service's name also works. Without it, the
    commands that need the backend service's name carry `BACKEND_SERVICE` and say where to read it.
    60_logs prints its own: `mtlskit.verify.logs.by_hand(params)`.
    """
    pages = {**STEPS, **GATEWAY_STEPS}
    if step not in pages:
        raise ValueError(
            f"no by-hand commands for step {step!r}: the steps are {', '.join(pages)} "
            "(60_logs prints its own with mtlskit.verify.logs.by_hand(params))"
        )
    names = _names(params, located)
    if names.lb.topology == "gateway" and step in GATEWAY_VERIFY_STEPS:
        pages = {**pages, **GATEWAY_VERIFY_STEPS}
    commands = tuple(c for key in pages[step] for c in COMMANDS[key](names))
    text = "\n".join(c.line for c in commands)
    placeholders = {name: where for name, where in PLACEHOLDERS.items() if name in text}
    return ByHand(step, commands, placeholders)


def _names(params: Params, located: Any) -> _Names:
    backend: str | None = None
    if isinstance(located, str):
        backend = located
    elif isinstance(located, BackendService):
        backend = located.name
    elif isinstance(located, DriftState):
        ours = located.ours(params) or located.url_map_backend
        backend = ours.name if ours else None
    if isinstance(located, probe.Frontend):
        port, server_ca = located.port, located.server_ca_file
    elif params.target == "sandbox":
        port, server_ca = params.sandbox.data_plane_port, SANDBOX_CA
    else:
        port, server_ca = 443, None
    return _Names(params, backend or BACKEND_SERVICE, port, server_ca, _load_balancer(params, located))


def _load_balancer(params: Params, located: Any) -> LoadBalancerNames:
    """The names the step resolved (a Frontend's, a Gateway drift state's), else the params' split
    frontend, else a Gateway's placeholders."""
    resolved = located.names if isinstance(located, probe.Frontend | GatewayDriftState) else None
    known = lbnames.known_names(params, resolved)
    if known is not None:
        return known
    split = lbnames.split_names(params)
    location = f"projects/{params.project}/locations/global"
    return LoadBalancerNames(
        **{
            **split.__dict__,
            "topology": "gateway",
            "scheme": params.gateway.facts.load_balancing_scheme,
            **{
                k: v
                for k, v in GATEWAY_PLACEHOLDERS.items()
                if k not in ("server_tls_policy", "trust_config")
            },
            "server_tls_policy": f"{location}/serverTlsPolicies/{GATEWAY_PLACEHOLDERS['server_tls_policy']}",
            "trust_config": f"{location}/trustConfigs/{GATEWAY_PLACEHOLDERS['trust_config']}",
            "gateway": lbnames.gateway_where(params),
        }
    )
