"""One YAML file per environment, validated before anything talks to an API.

A typo in a params file must never reach Google Cloud: unknown keys are errors, names are checked
against the rules the APIs will apply, certificate files must exist, and every problem is reported at
once with the field path, the offending value and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mtlskit import paths
from mtlskit.rules import names

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
    operation_delay_seconds: float = Field(0.2, ge=0, le=30)
    managed_cert_delay_seconds: float = Field(1.0, ge=0, le=600)
    demo_pki: bool = Field(True, description="generate the demo PKI into the state directory on first use")


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
    load_balancing_scheme: Literal["EXTERNAL", "EXTERNAL_MANAGED"] = "EXTERNAL"

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


# The load balancer's documented `statusDetails` for a refused client certificate (global external
# ALB, "Logged errors for closed connections"); a probe case may expect one of these or "ok".
CLIENT_CERT_STATUS_DETAILS = (
    "client_cert_not_provided",
    "client_cert_validation_failed",
    "client_cert_chain_invalid_eku",
    "client_cert_invalid_rsa_key_size",
    "client_cert_unsupported_elliptic_curve_key",
    "client_cert_unsupported_key_algorithm",
    "client_cert_pki_too_large",
    "client_cert_chain_max_name_constraints_exceeded",
    "client_cert_validation_timed_out",
    "client_cert_validation_search_limit_exceeded",
    "client_cert_validation_not_performed",
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
        if v != "ok" and v not in CLIENT_CERT_STATUS_DETAILS:
            raise ValueError(
                "must be 'ok' or one of the documented client_cert_* statusDetails: "
                + ", ".join(CLIENT_CERT_STATUS_DETAILS)
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


class LoggingSettings(_Strict):
    enable: bool = True
    sample_rate: float = Field(1.0, ge=0.0, le=1.0)
    lookback_minutes: int = Field(60, ge=1, le=60 * 24 * 30)


class Params(_Strict):
    """A validated environment. Paths inside it are already absolute."""

    target: Literal["sandbox", "gcp"]
    project: str
    stack: str = Field("mtlskit", description="ownership marker written into what the kit creates")
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    frontend: FrontendSettings = Field(default_factory=FrontendSettings)
    mtls: MtlsSettings  # required: the trust settings are the point of the kit, no default fits
    probe: ProbeSettings = Field(default_factory=ProbeSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
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
        return self

    @property
    def state_dir(self) -> Path:
        return paths.resolve(self.sandbox.state_dir)


@dataclass(frozen=True)
class FieldProblem:
    field: str
    message: str
    value: str | None = None

    def __str__(self) -> str:
        shown = f" (got {self.value})" if self.value is not None else ""
        return f"{self.field}: {self.message}{shown}"


class ParamsError(ValueError):
    """All problems of one params file, so the user can fix them in one go."""

    def __init__(self, source: str, problems: list[FieldProblem]):
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s) in params:\n{lines}")


def _show(value: Any) -> str | None:
    if isinstance(value, dict | list):
        return None
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


def _problems_from(err: ValidationError) -> list[FieldProblem]:
    problems = []
    for e in err.errors(include_url=False):
        loc = tuple(x for x in e["loc"] if not (isinstance(x, str) and x.startswith("function-")))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see params/example-gcp.yaml for every key)"
        elif e["type"] == "missing":
            msg = "required field is missing"
        elif e["type"] == "literal_error":
            msg = msg.replace("Input should be", "must be one of")
        value = None if e["type"] == "missing" else _show(e.get("input"))
        problems.append(FieldProblem(_field_path(loc), msg, value))
    return problems


def parse(data: Any, source: str = "<params>", base: Path | None = None) -> Params:
    """Validate a params mapping; relative paths resolve from `base` (default: the repository root)."""
    if not isinstance(data, dict):
        raise ParamsError(source, [FieldProblem("(top level)", "must be a mapping of keys to values")])
    try:
        params = Params.model_validate(data)
    except ValidationError as err:
        raise ParamsError(source, _problems_from(err)) from None
    params = _absolutise(params, base)
    _prepare_demo_pki(params)
    missing = _missing_files(params)
    if missing:
        raise ParamsError(source, missing)
    return params


def load(path: str | Path | None = None) -> Params:
    """Read and validate a params file. Never starts a sandbox and never calls an API."""
    file = paths.resolve(path) if path else paths.default_params_file()
    source = str(file)
    if not file.is_file():
        raise ParamsError(source, [FieldProblem("(file)", f"params file not found: {file}")])
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ParamsError(source, [FieldProblem("(file)", f"not valid YAML{where}")]) from None
    return parse(data, source)


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
    sandbox = params.sandbox.model_copy(update={"state_dir": fix(params.sandbox.state_dir)})
    kube = params.kubernetes.model_copy(update={"kubeconfig": fix(params.kubernetes.kubeconfig)})
    return params.model_copy(update={"mtls": mtls, "probe": probe, "sandbox": sandbox, "kubernetes": kube})


def _prepare_demo_pki(params: Params) -> None:
    """The sandbox's default params point into a PKI the kit generates on first use (never committed)."""
    if params.target != "sandbox" or not params.sandbox.demo_pki:
        return
    from mtlskit import certs  # local: certificate generation is only needed for the demo PKI

    certs.ensure_demo_pki(params.state_dir / "pki")


def _missing_files(params: Params) -> list[FieldProblem]:
    problems = []
    groups: dict[str, list[str | None]] = {
        "mtls.trust_anchors": list(params.mtls.trust_anchors),
        "mtls.intermediates": list(params.mtls.intermediates),
        "mtls.allowlisted": list(params.mtls.allowlisted),
        "probe.extra_client_certs": list(params.probe.extra_client_certs),
    }
    for field, files in groups.items():
        for i, f in enumerate(files):
            if f and not Path(f).is_file():
                problems.append(FieldProblem(f"{field}[{i}]", f"certificate file not found: {f}"))
    for field in ("client_cert", "client_key"):
        f = getattr(params.probe, field)
        if f and not Path(f).is_file():
            problems.append(FieldProblem(f"probe.{field}", f"file not found: {f}"))
    for i, case in enumerate(params.probe.cases):
        for field in ("cert", "key"):
            f = getattr(case, field)
            if not Path(f).is_file():
                problems.append(FieldProblem(f"probe.cases[{i}].{field}", f"file not found: {f}"))
    if params.kubernetes.kubeconfig and not Path(params.kubernetes.kubeconfig).is_file():
        problems.append(
            FieldProblem("kubernetes.kubeconfig", f"file not found: {params.kubernetes.kubeconfig}")
        )
    return problems
