"""One YAML file per environment, validated before anything talks to an API.

A typo in a params file must never reach Google Cloud: unknown and duplicated keys are errors, names
are checked against the rules the APIs will apply, certificate files must exist and pass the
certificate lint's rules, and every problem is reported at once with the field path, the offending
value and what is allowed. Loading calls nothing and writes nothing; relative paths are taken from
the params file's own directory, as compose files and kustomizations do.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from mtlskit.config import paths, topology
from mtlskit.core.errors import KitError
from mtlskit.pki import certs, lint
from mtlskit.pki.files import ParamsFile
from mtlskit.rules import dns as dns_rules
from mtlskit.rules import gateway as gw
from mtlskit.rules import iam, names
from mtlskit.rules.logentry import DOCUMENTED_OUTCOMES

DEFAULT_MTLS_HEADERS = [
    "X-Client-Cert-Present:{client_cert_present}",
    "X-Client-Cert-Chain-Verified:{client_cert_chain_verified}",
    "X-Client-Cert-Error:{client_cert_error}",
    "X-Client-Cert-Hash:{client_cert_sha256_fingerprint}",
    "X-Client-Cert-Serial-Number:{client_cert_serial_number}",
    "X-Client-Cert-SPIFFE:{client_cert_spiffe_id}",
    "X-Client-Cert-URI-SANs:{client_cert_uri_sans}",
    "X-Client-Cert-DNSName-SANs:{client_cert_dnsname_sans}",
    "X-Client-Cert-Valid-Not-Before:{client_cert_valid_not_before}",
    "X-Client-Cert-Valid-Not-After:{client_cert_valid_not_after}",
    "X-Client-Cert-Issuer-Dn:{client_cert_issuer_dn}",
    "X-Client-Cert-Subject-Dn:{client_cert_subject_dn}",
    "X-Client-Cert-Leaf:{client_cert_leaf}",
    "X-Client-Cert-Chain:{client_cert_chain}",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _by(rule: names.NameRule) -> Any:
    """A field validator applying one of the API name rules (stated once in `mtlskit.rules.names`)."""

    def check(value: str) -> str:
        problem = rule.problem(value)
        if problem:
            raise ValueError(problem)
        return value

    return check


_google_name = _by(names.GOOGLE_RESOURCE)
_dns_label = _by(names.KUBERNETES_LABEL)
_dns_subdomain = _by(names.KUBERNETES_SUBDOMAIN)


class SandboxSettings(_Strict):
    state_dir: str = ".sandbox"
    port: int = Field(0, ge=0, le=65535, description="0 picks a free port")
    data_plane_port: int = Field(8443, ge=1024, le=65535)
    dns_port: int = Field(
        0, ge=0, le=65535, description="the DNS responder's UDP and TCP port; 0 picks a free one"
    )
    operation_delay_seconds: float = Field(0.2, ge=0, le=30)
    managed_cert_delay_seconds: float = Field(1.0, ge=0, le=600)
    demo_pki: bool = Field(True, description="generate the demo PKI into the state directory on first use")
    # Practice for a real project's refusals: the sandbox answers as if the caller lacked these IAM
    # permissions (testIamPermissions leaves them out, the matching call gets Google's 403) and as if
    # these Compute quota metrics were used up (projects.get shows limit = usage, an insert gets 403
    # QUOTA_EXCEEDED).
    withhold_permissions: list[str] = Field(default_factory=list)
    exhaust_quota: list[str] = Field(default_factory=list)
    # The Gateway API CRD bundle the simulated cluster serves: v1.5 and later carry frontend mTLS
    # (spec.tls.frontend) in the standard channel; v1.4 and v1.3 are an older cluster's; "none" is a
    # cluster without the Gateway API enabled.
    gateway_api: Literal["v1.5", "v1.4", "v1.3", "none"] = "v1.5"
    # How long a trust-config, server-TLS-policy or proxy change takes to reach the data plane, as
    # Google's load balancer takes minutes: a runbook that verifies before it is applied is caught.
    propagation_delay_seconds: float = Field(0.0, ge=0, le=600)

    @field_validator("withhold_permissions", "exhaust_quota")
    @classmethod
    def _known_names(cls, v: list[str], info: ValidationInfo) -> list[str]:
        permissions = info.field_name == "withhold_permissions"
        unknown = iam.unknown_permissions(v) if permissions else iam.unknown_metrics(v)
        if unknown:
            what, known = ("permission", iam.PERMISSIONS) if permissions else ("quota metric", iam.METRICS)
            scope = "the sandbox can withhold only a permission the kit needs, " if permissions else ""
            raise ValueError(
                f"unknown {what} {', '.join(map(repr, unknown))}: {scope}one of {', '.join(sorted(known))}"
            )
        return v


class KubernetesSettings(_Strict):
    context: str | None = None
    kubeconfig: str | None = None
    namespace: str = "default"
    service: str = "web"
    service_port: int = Field(80, ge=1, le=65535)
    target_port: int = Field(8080, ge=1, le=65535)
    app_label: str = "web"
    backend_config: str = "web-backendconfig"
    ingress: str = "web-anchor"

    _ns = field_validator("namespace", "service")(_dns_label)
    _sub = field_validator("backend_config", "ingress")(_dns_subdomain)

    _label = field_validator("app_label")(_by(names.KUBERNETES_LABEL_VALUE))


class FrontendSettings(_Strict):
    address: str = "mtls-ip"
    certificate: str = "mtls-cert"
    domains: list[str] = Field(default_factory=lambda: ["api.example.com"], min_length=1, max_length=100)
    ssl_policy: str = "mtls-ssl"
    ssl_profile: Literal["COMPATIBLE", "MODERN", "RESTRICTED", "FIPS_202205"] = "MODERN"
    min_tls_version: Literal["TLS_1_0", "TLS_1_1", "TLS_1_2", "TLS_1_3"] = "TLS_1_2"
    url_map: str = "mtls-urlmap"
    target_proxy: str = "mtls-proxy"
    forwarding_rule: str = "mtls-fr"
    # The GKE Ingress controller (class gce) builds a classic load balancer whose backend service is
    # EXTERNAL, and Compute refuses a forwarding rule of another scheme: EXTERNAL is the only value.
    load_balancing_scheme: Literal["EXTERNAL"] = "EXTERNAL"

    @field_validator("load_balancing_scheme", mode="before")
    @classmethod
    def _scheme(cls, v: Any) -> Any:
        if v != "EXTERNAL":
            managed = (
                " (the newer global external Application Load Balancer)" if v == "EXTERNAL_MANAGED" else ""
            )
            raise ValueError(
                f"must be EXTERNAL, not {v!r}{managed}: a GKE Ingress (class gce) always builds a classic "
                "load balancer whose backend service is EXTERNAL, and Compute refuses a forwarding rule of "
                "another scheme; set frontend.load_balancing_scheme: EXTERNAL"
            )
        return v

    _names = field_validator(
        "address", "certificate", "ssl_policy", "url_map", "target_proxy", "forwarding_rule"
    )(_google_name)

    @field_validator("domains")
    @classmethod
    def _domains(cls, v: list[str]) -> list[str]:
        bad = [d for d in v if not names.DOMAIN_NAME.matches(d)]
        if bad:
            raise ValueError(f"not a fully qualified domain name: {', '.join(map(repr, bad))}")
        if len(set(v)) != len(v):
            raise ValueError("domains must be unique")
        return v

    @model_validator(mode="after")
    def _tls13(self) -> FrontendSettings:
        if self.min_tls_version == "TLS_1_3" and self.ssl_profile != "RESTRICTED":
            raise ValueError("min_tls_version TLS_1_3 needs ssl_profile RESTRICTED")
        if self.ssl_profile == "FIPS_202205" and self.min_tls_version != "TLS_1_2":
            raise ValueError("ssl_profile FIPS_202205 needs min_tls_version TLS_1_2")
        return self


class MtlsSettings(_Strict):
    trust_config: str = "mtls-trust"
    server_tls_policy: str = "mtls-policy"
    validation_mode: Literal["REJECT_INVALID", "ALLOW_INVALID_OR_MISSING_CLIENT_CERT"] = "REJECT_INVALID"
    trust_anchors: list[str] = Field(default_factory=list, max_length=200)
    intermediates: list[str] = Field(default_factory=list, max_length=100)
    allowlisted: list[str] = Field(default_factory=list)
    custom_headers: list[str] = Field(default_factory=lambda: list(DEFAULT_MTLS_HEADERS), max_length=16)

    _tc = field_validator("trust_config")(_by(names.TRUST_CONFIG_ID))
    _stp = field_validator("server_tls_policy")(_by(names.SERVER_TLS_POLICY_ID))

    @field_validator("custom_headers")
    @classmethod
    def _headers(cls, v: list[str]) -> list[str]:
        seen: set[str] = set()
        problems = []
        for h in v:
            name, sep, _ = h.partition(":")
            low = name.lower()
            refused = names.header_problem(name)
            if not sep:
                problems.append(f"{h!r} is not 'Name:value'")
            elif refused:
                problems.append(refused)
            elif low in seen:
                problems.append(f"{name!r} appears twice")
            seen.add(low)
        if sum(len(h) for h in v) > 8192:
            problems.append("custom headers exceed 8 KB in total")
        if problems:
            raise ValueError("; ".join(problems))
        return v

    @model_validator(mode="after")
    def _trust(self) -> MtlsSettings:
        if self.validation_mode == "REJECT_INVALID" and not (self.trust_anchors or self.allowlisted):
            raise ValueError("REJECT_INVALID needs at least one trust anchor or allowlisted certificate")
        return self


class GatewaySettings(_Strict):
    """The Gateway topology's Kubernetes objects (used when `topology: gateway`)."""

    class_name: Literal["gke-l7-global-external-managed", "gke-l7-regional-external-managed"] = (
        "gke-l7-global-external-managed"
    )
    namespace: str | None = Field(None, description="default: kubernetes.namespace")
    name: str = "web-gateway"
    http_route: str = "web-route"
    ca_configmap: str = Field(
        "web-client-ca",
        description="ConfigMap whose ca.crt holds the client CA bundle (anchors and intermediates)",
    )
    gateway_policy: str = "web-gateway-policy"
    backend_policy: str = "web-backend-policy"
    health_check_policy: str = "web-health-check"
    # How the listener gets its server certificate: the kit's Compute SSL certificate
    # (frontend.certificate) named in the listener's TLS options, or a Certificate Manager map.
    certificate: Literal["pre_shared", "certificate_map"] = "pre_shared"
    certificate_map: str | None = None
    # new_ip: the controller allocates an address (side by side with a split frontend);
    # named_address: the Gateway takes the kit's reserved address (frontend.address).
    address: Literal["new_ip", "named_address"] = "new_ip"

    _ns = field_validator("namespace")(lambda v: v if v is None else _dns_label(v))
    _sub = field_validator(
        "name", "http_route", "ca_configmap", "gateway_policy", "backend_policy", "health_check_policy"
    )(_dns_subdomain)

    @model_validator(mode="after")
    def _certificate_map(self) -> GatewaySettings:
        if self.certificate == "certificate_map" and not self.certificate_map:
            raise ValueError("certificate: certificate_map needs gateway.certificate_map (the map's name)")
        return self

    @property
    def facts(self) -> gw.GatewayClassFacts:
        return gw.CLASSES[self.class_name]


M = TypeVar("M", bound=BaseModel)


def _at_most(model: M, low: str, high: str, why: str) -> M:
    """A model validator's refusal of field `low` above field `high`, naming both values and why."""
    lo, hi = getattr(model, low), getattr(model, high)
    if lo > hi:
        raise ValueError(f"{low} ({lo:g}) must not exceed {high} ({hi:g}): {why}")
    return model


class DnsSettings(_Strict):
    """Where the frontend's domains are published, for a migration's cut-over (`build.dns`)."""

    managed_zone: str | None = Field(None, description="Cloud DNS zone of the domains; None: change by hand")
    ttl_seconds: int = Field(300, ge=0, le=86400, description="the records' usual TTL")
    cutover_ttl_seconds: int = Field(60, ge=0, le=3600, description="TTL lowered to before a cut-over")
    nameserver: str | None = Field(
        None, description="ip[:port] asked when waiting; None: the sandbox's responder or the system's"
    )

    _zone = field_validator("managed_zone")(lambda v: v if v is None else _by(names.DNS_ZONE)(v))

    @field_validator("nameserver")
    @classmethod
    def _nameserver(cls, v: str | None) -> str | None:
        if v is not None:
            dns_rules.nameserver_address(v)
        return v

    @model_validator(mode="after")
    def _short_ttl(self) -> DnsSettings:
        return _at_most(self, "cutover_ttl_seconds", "ttl_seconds", "a cut-over lowers the TTL first")


class MigrationSettings(_Strict):
    """How a live split frontend moves to the Gateway."""

    drained_requests_per_minute: float = Field(
        0.0, ge=0, description="the old frontend counts as drained at or below this rate"
    )
    # Seconds, not minutes: a production cut-over watches for minutes (300 = 5 min), a test or the
    # sandbox for a few seconds; the rate is still shown per minute.
    drain_window_seconds: float = Field(
        300.0, gt=0, le=86400, description="how long the old frontend's rate must stay at or below it"
    )
    watch_timeout_seconds: float = Field(
        3600.0, gt=0, le=7 * 86400, description="how long to watch before the drain gate refuses"
    )
    poll_seconds: float = Field(30.0, gt=0, le=3600, description="how often the request logs are read")
    gateway_timeout_seconds: float = Field(
        1800.0, gt=0, le=86400, description="how long to wait for the Gateway to be programmed and answer"
    )
    publish_missing_records: bool = Field(
        False,
        description="a domain with no A record in dns.managed_zone is published at the split frontend's IP "
        "before the cut-over (a zone nobody published to yet, as the sandbox's)",
    )

    @model_validator(mode="after")
    def _poll_within_window(self) -> MigrationSettings:
        return _at_most(
            self, "poll_seconds", "drain_window_seconds", "the window would pass between two reads"
        )


# Case names the probe uses for its own two cases.
RESERVED_PROBE_CASES = ("probe certificate", "no certificate")


class ProbeCase(_Strict):
    """A client certificate 50_verify presents, and what the load balancer should make of it."""

    name: str = Field(min_length=1, max_length=63)
    cert: str = Field(description="leaf first, then the issuers the client sends (TLS order)")
    key: str = Field(description="read by path only; never shown in any output")
    expect: str = Field("ok", description='"ok" or the documented client_cert_* statusDetails')

    @field_validator("expect")
    @classmethod
    def _expect(cls, v: str) -> str:
        if v != "ok" and v not in DOCUMENTED_OUTCOMES:
            raise ValueError(
                "must be 'ok' or one of the documented client_cert_* statusDetails: "
                + ", ".join(DOCUMENTED_OUTCOMES)
            )
        return v


class ProbeSettings(_Strict):
    client_cert: str | None = None
    client_key: str | None = None
    extra_client_certs: list[str] = Field(default_factory=list)
    cases: list[ProbeCase] = Field(default_factory=list, max_length=50)
    demo_cases: bool = Field(
        True,
        description="also probe every demo PKI certificate, when the trust config is built from the demo PKI",
    )
    timeout_seconds: float = Field(5.0, gt=0, le=60, description="bound on every connect and request")

    @field_validator("cases")
    @classmethod
    def _unique(cls, v: list[ProbeCase]) -> list[ProbeCase]:
        names = [c.name for c in v]
        clashes = sorted({n for n in names if names.count(n) > 1 or n in RESERVED_PROBE_CASES})
        if clashes:
            raise ValueError(
                f"case names must be unique and not {' or '.join(map(repr, RESERVED_PROBE_CASES))}: "
                f"{', '.join(map(repr, clashes))}"
            )
        return v

    @model_validator(mode="after")
    def _pair(self) -> ProbeSettings:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key go together: give both or neither")
        return self


class ProofClient(_Strict):
    """A client certificate the day-2 changes present to prove each phase. Unlike a probe case it
    carries no expectation: what the load balancer should answer is judged by the kit's verdict
    rules against each phase's trust config (`rules.verdict.judge`)."""

    name: str = Field(min_length=1, max_length=63)
    cert: str = Field(description="leaf first, then the issuers the client sends (TLS order)")
    key: str = Field(description="read by path only; never shown in any output")
    chain: list[str] = Field(default_factory=list, description="issuer files sent after the leaf (TLS order)")


class ChangeSettings(_Strict):
    """Day-2 changes (client-CA rotation, enforcement, partner certificates, break-glass): how their
    reports are read, when their gates pass, and where their records go."""

    report_window_seconds: float = Field(
        86400.0, gt=0, le=30 * 86400, description="request logs the impact and readiness reports read"
    )
    max_refused_share: float = Field(
        0.0, ge=0, le=1, description="enforcement: the share of requests the flip may refuse (0: none)"
    )
    client_certificates: str | None = Field(
        None, description="a folder of the team's known client certificates (PEM), judged by the report"
    )
    intended_refusals: list[str] = Field(
        default_factory=list,
        description="certificate files or SHA-256 fingerprints (hex) of clients a change means to refuse",
    )
    proof_clients: list[ProofClient] = Field(default_factory=list, max_length=20)
    propagation_timeout_seconds: float = Field(
        900.0, gt=0, le=86400, description="how long to wait for the load balancer to apply a change"
    )
    poll_seconds: float = Field(5.0, gt=0, le=600, description="how often propagation and watches look")
    watch_seconds: float = Field(
        300.0, ge=0, le=86400, description="how long probes and logs are watched after a change"
    )
    rollback_on_failure: bool = Field(
        False, description="apply the way back when the watch after a change fails (else only name it)"
    )
    break_glass: Literal["allow", "detach"] = Field(
        "allow", description="allow: ALLOW_INVALID_OR_MISSING_CLIENT_CERT; detach: no server TLS policy"
    )
    records: str | None = Field(
        None, description="local folder or gs://BUCKET/PREFIX for change records (default: runs/changes)"
    )
    half_done_warning_days: float = Field(
        14.0, gt=0, le=3650, description="70_drift warns when a rotation stays half done longer"
    )

    @field_validator("proof_clients")
    @classmethod
    def _unique_clients(cls, v: list[ProofClient]) -> list[ProofClient]:
        names = [c.name for c in v]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"names must be unique: {', '.join(map(repr, twice))}")
        return v

    @field_validator("records")
    @classmethod
    def _records(cls, v: str | None) -> str | None:
        if v is not None and v.startswith("gs://") and not v[len("gs://") :].split("/")[0]:
            raise ValueError(f"{v}: name a bucket, as in gs://BUCKET/PREFIX")
        return v

    @model_validator(mode="after")
    def _poll_within_timeout(self) -> ChangeSettings:
        return _at_most(
            self, "poll_seconds", "propagation_timeout_seconds", "the wait would end before its first look"
        )


class LoggingSettings(_Strict):
    enable: bool = True
    sample_rate: float = Field(1.0, ge=0.0, le=1.0)
    lookback_minutes: int = Field(60, ge=1, le=60 * 24 * 30)


class Params(_Strict):
    """A validated environment. Paths inside it are already absolute."""

    target: Literal["sandbox", "gcp"]
    project: str
    # split: Kubernetes owns the backend (anchor Ingress), the kit the frontend; gateway: a GKE
    # Gateway with native client-certificate validation builds both.
    topology: Literal["split", "gateway"] = "split"
    stack: str = Field("mtlskit", description="ownership marker written into what the kit creates")
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    frontend: FrontendSettings = Field(default_factory=FrontendSettings)
    mtls: MtlsSettings  # required: the trust settings are the point of the kit, no default fits
    probe: ProbeSettings = Field(default_factory=ProbeSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    dns: DnsSettings = Field(default_factory=DnsSettings)
    migration: MigrationSettings = Field(default_factory=MigrationSettings)
    changes: ChangeSettings = Field(default_factory=ChangeSettings)
    expiry_horizon_days: int = Field(30, ge=1, le=3650)
    api_retry_seconds: float = Field(
        90.0, gt=0, le=3600, description="how long each API call retries 429/5xx answers before giving up"
    )
    apply: bool = False
    confirm_project: str | None = None

    _project = field_validator("project")(_by(names.PROJECT))
    _stack = field_validator("stack")(_google_name)

    @model_validator(mode="after")
    def _target_rules(self) -> Params:
        if self.target == "gcp" and self.apply and self.confirm_project != self.project:
            raise ValueError(
                f"apply against target gcp needs confirm_project equal to the project id ({self.project!r})"
            )
        if self.target == "gcp" and (self.sandbox.withhold_permissions or self.sandbox.exhaust_quota):
            raise ValueError(
                "sandbox.withhold_permissions and sandbox.exhaust_quota only act on the sandbox: on target "
                "gcp, Google answers with the caller's real permissions and quotas; remove them"
            )
        return self

    @property
    def gateway_namespace(self) -> str:
        return self.gateway.namespace or self.kubernetes.namespace

    @property
    def state_dir(self) -> Path:
        return paths.resolve(self.sandbox.state_dir)

    def files(self) -> list[ParamsFile]:
        """Every file the params name, trust material first (the lint judges client chains against it)."""
        m, p = self.mtls, self.probe
        out = [
            ParamsFile(f"mtls.trust_anchors[{i}]", Path(f), "trust anchor")
            for i, f in enumerate(m.trust_anchors)
        ]
        out += [
            ParamsFile(f"mtls.intermediates[{i}]", Path(f), "intermediate")
            for i, f in enumerate(m.intermediates)
        ]
        out += [
            ParamsFile(f"mtls.allowlisted[{i}]", Path(f), "allowlisted") for i, f in enumerate(m.allowlisted)
        ]
        if p.client_cert and p.client_key:
            out.append(ParamsFile("probe.client_cert", Path(p.client_cert), "client"))
            out.append(ParamsFile("probe.client_key", Path(p.client_key), "client key"))
        out += [
            ParamsFile(f"probe.extra_client_certs[{i}]", Path(f), "client")
            for i, f in enumerate(p.extra_client_certs)
        ]
        for i, case in enumerate(p.cases):
            out.append(ParamsFile(f"probe.cases[{i}].cert", Path(case.cert), "probe case"))
            out.append(ParamsFile(f"probe.cases[{i}].key", Path(case.key), "probe case key"))
        for i, client in enumerate(self.changes.proof_clients):
            out.append(ParamsFile(f"changes.proof_clients[{i}].cert", Path(client.cert), "probe case"))
            out.append(ParamsFile(f"changes.proof_clients[{i}].key", Path(client.key), "probe case key"))
            out += [
                ParamsFile(f"changes.proof_clients[{i}].chain[{j}]", Path(f), "probe case")
                for j, f in enumerate(client.chain)
            ]
        out += [
            ParamsFile(f"changes.intended_refusals[{i}]", Path(v), "probe case")
            for i, v in enumerate(self.changes.intended_refusals)
            if not is_fingerprint(v)
        ]
        if self.kubernetes.kubeconfig:
            out.append(ParamsFile("kubernetes.kubeconfig", Path(self.kubernetes.kubeconfig), "kubeconfig"))
        return out

    def demo_pki_dir(self) -> Path | None:
        """Where the kit generates the demo PKI for these params, or None when it generates none.

        Only the sandbox target with `sandbox.demo_pki: true` gets one, under its own state directory.
        """
        if self.target != "sandbox" or not self.sandbox.demo_pki:
            return None
        return certs.DemoPki.in_state_dir(self.state_dir).directory

    def ensure_demo_pki(self) -> dict[str, object] | None:
        """Generate the demo PKI the params point into, when the kit starts working with the sandbox.

        Loading params never writes anything (`mtlskit check-params` promises that), so the private keys
        are written here, on first real use, and reused afterwards.
        """
        directory = self.demo_pki_dir()
        return None if directory is None else certs.ensure_demo_pki(directory)

    def generated_on_first_use(self, path: Path) -> bool:
        """True for a demo PKI file that does not exist yet: the kit writes it when it first works with
        the sandbox (never while loading params), so its absence is not a mistake."""
        directory = self.demo_pki_dir()
        return (
            directory is not None
            and path.parent == directory
            and path.name in certs.demo_pki_files()
            and not path.exists()
        )


@dataclass(frozen=True)
class FieldProblem:
    field: str
    message: str
    value: str | None = None

    def __str__(self) -> str:
        shown = f" (got {self.value})" if self.value is not None else ""
        return f"{self.field}: {self.message}{shown}"


class ParamsError(KitError, ValueError):
    """All problems of one params file, so the user can fix them in one go (still a ValueError, for
    callers that catch bad input that way)."""

    def __init__(self, source: str, problems: list[FieldProblem]):
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s) in params:\n{lines}")


@dataclass(frozen=True)
class ResolvedPath:
    """One path of validated params, absolute, with what the kit knows about it (for check-params)."""

    field: str
    path: Path | None
    state: str


# ---- reading YAML ---------------------------------------------------------------------------------

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _ParamsLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate keys: plain YAML keeps the last of two `frontend:` blocks
    and silently drops the first, so a run would build a second frontend under default names."""

    def duplicate_keys(self, node: yaml.Node, where: str = "") -> list[FieldProblem]:
        problems: list[FieldProblem] = []
        if isinstance(node, yaml.MappingNode):
            first_line: dict[str, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                    continue
                key, line = str(key_node.value), key_node.start_mark.line + 1
                field = f"{where}.{key}" if where else key
                if key in first_line:
                    problems.append(
                        FieldProblem(
                            field,
                            f"key {key!r} appears twice, at line {first_line[key]} and line {line}; "
                            "YAML would keep only the second and drop the first silently: merge them",
                        )
                    )
                else:
                    first_line[key] = line
                problems += self.duplicate_keys(value_node, field)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                problems += self.duplicate_keys(item, f"{where}[{i}]")
        return problems


def _read_yaml(text: str, source: str) -> tuple[Any, list[FieldProblem]]:
    """The document and its duplicate keys (reported with every other problem, not alone)."""
    loader = _ParamsLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, []
        duplicates = loader.duplicate_keys(node)  # before construction, which flattens merge keys
        return loader.construct_document(node), duplicates
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None)
        why = f": {problem}" if problem else ""
        raise ParamsError(source, [FieldProblem("(file)", f"not valid YAML{where}{why}")]) from None
    finally:
        loader.dispose()


# ---- validation errors in the kit's words ----------------------------------------------------------


def _kind(value: Any) -> str:
    """What a YAML value is, in YAML's terms, for messages about the wrong type."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (true/false)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return repr(value)


def _count(n: Any, thing: str) -> str:
    return f"{n} {thing}" + ("" if n == 1 else "s")


MAPPING = "must be a mapping (a YAML block of keys)"
# pydantic's error types that a params file can trigger, each said as the kit would say it.
_MESSAGES: dict[str, Callable[[dict[str, Any]], str]] = {
    "missing": lambda c: "required key is missing (params/example-gcp.yaml lists every key)",
    "extra_forbidden": lambda c: "unknown key (check the spelling; params/example-gcp.yaml lists every key)",
    "model_type": lambda c: MAPPING,
    "model_attributes_type": lambda c: MAPPING,
    "dict_type": lambda c: MAPPING,
    "list_type": lambda c: "must be a list (a YAML sequence: [a, b] or lines starting with '- ')",
    "string_type": lambda c: "must be text (a string; quote it in YAML if it looks like a number)",
    "int_type": lambda c: "must be a whole number",
    "int_parsing": lambda c: "must be a whole number",
    "int_from_float": lambda c: "must be a whole number (no fraction)",
    "float_type": lambda c: "must be a number",
    "float_parsing": lambda c: "must be a number",
    "bool_type": lambda c: "must be true or false",
    "bool_parsing": lambda c: "must be true or false",
    "literal_error": lambda c: f"must be one of {c.get('expected', '')}",
    "too_short": lambda c: f"must list at least {_count(c.get('min_length'), 'item')}",
    "too_long": lambda c: f"must list at most {_count(c.get('max_length'), 'item')}",
    "string_too_short": lambda c: f"must be at least {_count(c.get('min_length'), 'character')}",
    "string_too_long": lambda c: f"must be at most {_count(c.get('max_length'), 'character')}",
    "greater_than": lambda c: f"must be more than {c.get('gt')}",
    "greater_than_equal": lambda c: f"must be at least {c.get('ge')}",
    "less_than": lambda c: f"must be less than {c.get('lt')}",
    "less_than_equal": lambda c: f"must be at most {c.get('le')}",
    "finite_number": lambda c: "must be a finite number",
}
# Errors about the value's type: the value is described ("a list of 2") rather than quoted.
_TYPE_ERRORS = {
    "model_type",
    "model_attributes_type",
    "dict_type",
    "list_type",
    "string_type",
    "int_type",
    "float_type",
    "bool_type",
}


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _problem(e: ErrorDetails) -> FieldProblem:
    loc = tuple(x for x in e["loc"] if not (isinstance(x, str) and x.startswith("function-")))
    kind = e["type"]
    ctx = dict(e.get("ctx") or {})
    if kind in _MESSAGES:
        msg = _MESSAGES[kind](ctx)
    else:  # our own validators (value_error, assertion_error) already speak the kit's words
        msg = e["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind in ("missing", "extra_forbidden"):
        value = None
    elif kind in _TYPE_ERRORS or isinstance(e.get("input"), dict | list):
        value = _kind(e.get("input"))
    else:
        value = _show(e.get("input"))
    return FieldProblem(_field_path(loc), msg, value)


def _problems_from(err: ValidationError) -> list[FieldProblem]:
    return [_problem(e) for e in err.errors(include_url=False)]


# ---- loading ------------------------------------------------------------------------------------------


# Replaces the default params file wherever the default is named (no path, or the notebooks'
# `params/sandbox.yaml` / the Gateway notebooks' `params/sandbox-gateway.yaml`): JupyterLab then runs the committed notebooks against another environment
# (a test's own sandbox, a training copy) without editing their parameters cell.
PARAMS_ENV = "MTLSKIT_PARAMS"


def sandbox_default(state_dir: str | Path, source: Path | None = None) -> dict[str, Any]:
    """The committed sandbox params (`params/sandbox.yaml`) as a mapping, moved to another state
    directory: `sandbox.state_dir` and every certificate path under the old one (the demo PKI) now
    point into `state_dir`. A second sandbox of its own (a test, a benchmark, a training seat) then
    starts from exactly what a new user runs, with nothing shared with the repository's `.sandbox/`.
    `source` is another committed sandbox params file (`params/sandbox-gateway.yaml`)."""
    source = source or paths.default_params_file()
    data = yaml.safe_load(source.read_text())
    old = paths.resolve(data["sandbox"]["state_dir"], source.parent)
    new = Path(state_dir).resolve()

    def moved(value: str) -> str:
        path = paths.resolve(value, source.parent)
        return str(new / path.relative_to(old)) if path.is_relative_to(old) else value

    data["sandbox"]["state_dir"] = str(new)
    mtls, probe = data.get("mtls", {}), data.get("probe", {})
    for key in ("trust_anchors", "intermediates", "allowlisted"):
        mtls[key] = [moved(v) for v in mtls.get(key) or []]
    for key in ("client_cert", "client_key"):
        if probe.get(key):
            probe[key] = moved(probe[key])
    changes = data.get("changes") or {}
    for client in changes.get("proof_clients") or []:
        client.update(cert=moved(client["cert"]), key=moved(client["key"]))
        client["chain"] = [moved(v) for v in client.get("chain") or []]
    if changes.get("intended_refusals"):
        changes["intended_refusals"] = [
            v if is_fingerprint(v) else moved(v) for v in changes["intended_refusals"]
        ]
    return data


FRONTEND_NAMES = ("address", "certificate", "ssl_policy", "url_map", "target_proxy", "forwarding_rule")
GATEWAY_NAMES = (
    "name",
    "http_route",
    "ca_configmap",
    "gateway_policy",
    "backend_policy",
    "health_check_policy",
)


def another_stack(data: dict[str, Any], key: str, stack: str | None = None) -> dict[str, Any]:
    """A copy of a params mapping in which every resource the kit or Kubernetes names carries `key`,
    so a second environment lives beside the first in one project, cluster and sandbox (a fleet
    verified together, a training group) without either planning the other's resources away."""
    out = copy.deepcopy(data)
    out["stack"] = stack or f"{out.get('stack', 'mtlskit')}-{key}"
    out.setdefault("kubernetes", {}).update(
        service=f"web-{key}", app_label=f"web-{key}", backend_config=f"{key}-bc", ingress=f"{key}-anchor"
    )
    frontend = out.setdefault("frontend", {})
    frontend.update({part: f"{key}-{part.replace('_', '-')}" for part in FRONTEND_NAMES})
    frontend["domains"] = (
        [f"{key}.mtlskit.test"] if out.get("target") == "sandbox" else frontend.get("domains")
    )
    out.setdefault("mtls", {}).update(trust_config=f"{key}-trust", server_tls_policy=f"{key}-policy")
    out.setdefault("gateway", {}).update(
        {part: f"{key}-gw-{part.replace('_', '-')}" for part in GATEWAY_NAMES}
    )
    return out


def params_file(path: str | Path | None = None) -> Path:
    """The params file `load` reads: `path` as typed (a relative path from the current directory, as a
    shell user means it, else from the repository root, as the notebooks' default names it) or the
    sandbox default, which `MTLSKIT_PARAMS` replaces when set."""
    default = paths.default_params_file()
    chosen = default
    if path:
        here = paths.resolve(path, Path.cwd())
        chosen = here if here.is_file() else paths.resolve(path)
    override = _override()
    return override if override and chosen in paths.default_params_files() else chosen


def _override() -> Path | None:
    given = os.environ.get(PARAMS_ENV, "").strip()
    return paths.resolve(given, Path.cwd()) if given else None


def parse(data: Any, source: str = "<params>", base: Path | None = None) -> Params:
    """Validate a params mapping; relative paths resolve from `base` (default: the repository root)."""
    return _validate(data, source, base, [])


def load(path: str | Path | None = None) -> Params:
    """Read and validate a params file. Calls nothing and writes nothing; relative paths inside the
    file are taken from the file's own directory."""
    file = params_file(path)
    source = str(file)
    if not file.is_file():
        if file == _override():
            named = f"{PARAMS_ENV}={os.environ[PARAMS_ENV]}, which replaces the default params file"
            problem = f"not found ({named}: fix or unset it)"
            raise ParamsError(source, [FieldProblem("(params file)", problem)])
        # the current directory first, then the repository root: the order load looks in
        tried = list(
            dict.fromkeys([str(paths.resolve(path, Path.cwd())), str(file)] if path else [str(file)])
        )
        raise ParamsError(
            source, [FieldProblem("(params file)", f"not found (looked for {' and '.join(tried)})")]
        )
    try:
        text = file.read_text()
    except UnicodeDecodeError:
        raise ParamsError(source, [FieldProblem("(file)", "not a text file (params are YAML)")]) from None
    data, duplicates = _read_yaml(text, source)
    return _validate(data, source, file.parent, duplicates)


def _validate(data: Any, source: str, base: Path | None, problems: list[FieldProblem]) -> Params:
    if not isinstance(data, dict):
        got = "an empty file" if data is None else _kind(data)
        problems = [*problems, FieldProblem("(top level)", f"{MAPPING}, starting with 'target:'", got)]
        raise ParamsError(source, problems)
    try:
        params = Params.model_validate(data)
    except ValidationError as err:
        raise ParamsError(source, problems + _problems_from(err)) from None
    params = _absolutise(params, base)
    problems = problems + _topology_problems(params) + _file_problems(params)
    if problems:
        raise ParamsError(source, problems)
    return params


def _absolutise(params: Params, base: Path | None) -> Params:
    def fix(p: str | None) -> str | None:
        return None if p is None else str(paths.resolve(p, base))

    mtls = params.mtls.model_copy(
        update={
            "trust_anchors": [fix(p) for p in params.mtls.trust_anchors],
            "intermediates": [fix(p) for p in params.mtls.intermediates],
            "allowlisted": [fix(p) for p in params.mtls.allowlisted],
        }
    )
    probe = params.probe.model_copy(
        update={
            "client_cert": fix(params.probe.client_cert),
            "client_key": fix(params.probe.client_key),
            "extra_client_certs": [fix(p) for p in params.probe.extra_client_certs],
            "cases": [
                c.model_copy(update={"cert": fix(c.cert), "key": fix(c.key)}) for c in params.probe.cases
            ],
        }
    )
    # A state_dir written in the file is relative to the file; the default is the kit's own
    # `.sandbox` at the repository root, wherever the params file lives.
    given = "state_dir" in params.sandbox.model_fields_set
    state_dir = paths.resolve(params.sandbox.state_dir, base if given else None)
    sandbox = params.sandbox.model_copy(update={"state_dir": str(state_dir)})
    kube = params.kubernetes.model_copy(update={"kubeconfig": fix(params.kubernetes.kubeconfig)})
    ch = params.changes
    changes = ch.model_copy(
        update={
            "client_certificates": fix(ch.client_certificates),
            "intended_refusals": [v if is_fingerprint(v) else fix(v) for v in ch.intended_refusals],
            "proof_clients": [
                c.model_copy(
                    update={"cert": fix(c.cert), "key": fix(c.key), "chain": [fix(f) for f in c.chain]}
                )
                for c in ch.proof_clients
            ],
            "records": ch.records
            if ch.records is None or ch.records.startswith("gs://")
            else fix(ch.records),
        }
    )
    return params.model_copy(
        update={"mtls": mtls, "probe": probe, "sandbox": sandbox, "kubernetes": kube, "changes": changes}
    )


def is_fingerprint(value: str) -> bool:
    """A SHA-256 fingerprint in hex (colons allowed), as `changes.intended_refusals` may name a client
    instead of its certificate file."""
    return bool(re.fullmatch(r"[0-9a-fA-F]{64}", value.replace(":", "")))


_MISSING = {
    "trust anchor": "certificate file not found",
    "intermediate": "certificate file not found",
    "allowlisted": "certificate file not found",
    "client": "certificate file not found",
    "probe case": "certificate file not found",
    "client key": "key file not found",
    "probe case key": "key file not found",
    "kubeconfig": "kubeconfig file not found",
}


def _topology_problems(params: Params) -> list[FieldProblem]:
    if params.topology != "gateway":
        return []
    found = topology.gateway_problems(
        params.mtls.validation_mode, params.mtls.allowlisted, params.gateway.class_name
    )
    return [FieldProblem(p.field, p.message) for p in found]


def gateway_differences(params: Params) -> list[str]:
    """What the Gateway topology expresses differently from the split frontend, for check-params."""
    if params.topology != "gateway":
        return []
    return topology.gateway_differences(len(params.mtls.intermediates), len(params.mtls.custom_headers))


def _file_problems(params: Params) -> list[FieldProblem]:
    """Missing files, and the certificate lint's errors with the field that names the file.

    Demo PKI files not generated yet are skipped (the kit writes them on first use). A client chain's
    verdict is reported only when nothing else is wrong: an unreadable or expired trust anchor would
    otherwise show up a second time as the probe certificate failing validation.
    """
    problems: list[FieldProblem] = []
    folder = params.changes.client_certificates
    if folder and not Path(folder).is_dir():
        problems.append(FieldProblem("changes.client_certificates", f"folder not found: {folder}"))
    present: list[ParamsFile] = []
    pending = False
    for ref in params.files():
        if ref.path.is_file():
            present.append(ref)
        elif params.generated_on_first_use(ref.path):
            pending = True
        else:
            problems.append(FieldProblem(ref.field, f"{_MISSING[ref.role]}: {ref.path}"))
    by_field = {ref.field: ref for ref in present}
    for ref in present:
        if ref.role in ("client key", "probe case key"):
            cert_field = (
                "probe.client_cert" if ref.role == "client key" else ref.field.removesuffix(".key") + ".cert"
            )
            cert = by_field.get(cert_field)
            why = lint.unreadable_key(ref.path, cert.path if cert else None)
            if why:
                problems.append(FieldProblem(ref.field, f"{why} ({ref.path})"))
    findings = lint.lint_files(
        [r for r in present if r.role in lint.CERTIFICATE_ROLES], params.expiry_horizon_days
    )
    errors = [f for f in findings if f.severity == "error"]
    own = [f for f in errors if f.rule != "chain"]
    chains = [f for f in errors if f.rule == "chain"] if not (problems or own or pending) else []
    for f in own + chains:
        where = by_field[f.field].path if f.field in by_field else None
        outcome = f"; the load balancer would log {f.outcome}" if f.outcome else ""
        fix = f"; fix: {f.fix}" if f.fix else ""
        file = f" ({where})" if where else ""
        problems.append(FieldProblem(f.field, f"{f.rule}: {f.detail}{outcome}{fix}{file}"))
    return problems


def resolved_paths(params: Params) -> list[ResolvedPath]:
    """The absolute paths the params name and their state, for `mtlskit check-params` to print."""
    out: list[ResolvedPath] = []
    if params.target == "sandbox":
        state = "exists" if params.state_dir.is_dir() else "created when the sandbox starts"
        out.append(ResolvedPath("sandbox.state_dir", params.state_dir, state))
    for ref in params.files():
        if ref.path.is_file():
            state = "found"
        elif params.generated_on_first_use(ref.path):
            state = "demo PKI: generated on first use"
        else:
            state = "missing"
        out.append(ResolvedPath(ref.field, ref.path, state))
    if not params.kubernetes.kubeconfig:
        default = (
            "the sandbox writes its own" if params.target == "sandbox" else "$KUBECONFIG or ~/.kube/config"
        )
        out.append(ResolvedPath("kubernetes.kubeconfig", None, f"not set: {default}"))
    return out
