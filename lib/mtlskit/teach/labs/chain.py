"""Lab 04: the certificate chain that stops a rollout.

The team whose write-up started this kit got as far as a working mTLS frontend and then stopped short
of production: their client CA broke one of the load balancer's certificate rules. This lab replays
it with a partner CA whose issuing intermediate carries an extendedKeyUsage of serverAuth only (a
common default in corporate CAs). The load balancer refuses every certificate it issued with
`client_cert_chain_invalid_eku`, although `openssl verify` is happy with the chain. The trainee finds
the broken certificate with the lint and fixes it either way the load balancer accepts: the partner
re-issues the intermediate (same name and key, clientAuth added), or the trust config allowlists the
leaf (what the original team did; it then works certificate by certificate).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtlskit.build import trust
from mtlskit.build.trust import TRUST_CONFIG
from mtlskit.config.params import Params, ParamsFile
from mtlskit.pki import certs, lint
from mtlskit.teach.labs import sending
from mtlskit.teach.labs.lab import Lab, wait_for_data_plane
from mtlskit.verify.probe import VERIFIED, Case, ProbeResult, mtls_header_names

NAME = "04_chain_that_stops_a_rollout"
ROOT_CN, INTERMEDIATE_CN, LEAF_CN = "partner root CA", "partner issuing CA", "app.partner.test"
ROLES = {ROOT_CN: "root", INTERMEDIATE_CN: "intermediate", LEAF_CN: "leaf"}
CASE = "partner client"


def partner_dir(params: Params) -> Path:
    return params.state_dir / "labs" / "partner-pki"


def files(params: Params) -> dict[str, Path]:
    pki = certs.PkiFiles(partner_dir(params))
    return {
        "root": pki.cert("root"),
        "intermediate": pki.cert("intermediate"),
        "leaf": pki.cert("client"),
        "key": pki.key("client"),
    }


def _load(directory: Path, name: str) -> certs.Issued:
    pki = certs.PkiFiles(directory)
    cert = x509.load_pem_x509_certificate(pki.cert(name).read_bytes())
    key = serialization.load_pem_private_key(pki.key(name).read_bytes(), password=None)
    return certs.Issued(cert, key)  # type: ignore[arg-type]


def _issue_intermediate(directory: Path, eku: list[x509.ObjectIdentifier]) -> certs.Issued:
    """The partner's intermediate, (re-)issued under its root with the same name and key, so the
    leaves it already signed keep chaining to it."""
    root = _load(directory, "root")
    key_file = certs.PkiFiles(directory).key("intermediate")
    key = (
        serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        if key_file.is_file()
        else None
    )
    issued = certs.issue(INTERMEDIATE_CN, issuer=root, key=key, ca=True, eku=eku)  # type: ignore[arg-type]
    certs.write_issued(directory, "intermediate", issued)
    return issued


def with_partner(params: Params, allowlist_leaf: bool = False) -> Params:
    """The params plus the partner's root as a trust anchor (and its leaf allowlisted, when asked)."""
    f = files(params)
    mtls = params.mtls.model_copy(
        update={
            "trust_anchors": [*params.mtls.trust_anchors, str(f["root"])],
            "allowlisted": [*params.mtls.allowlisted, *([str(f["leaf"])] if allowlist_leaf else [])],
        }
    )
    return params.model_copy(update={"mtls": mtls})


def _apply_trust(lab: Lab, params: Params) -> None:
    clients = lab.step.clients
    trust.apply_trust(clients, params, trust.plan_trust(clients, params))
    wait_for_data_plane(lab)


def setup(lab: Lab) -> pd.DataFrame:
    """The partner's PKI as they handed it over (root, a serverAuth-only intermediate, a client
    certificate), and their root added to the trust config. Running it again starts over."""
    d = partner_dir(lab.params)
    pki = certs.PkiFiles(d)
    if not pki.key("root").is_file():
        certs.write_issued(d, "root", certs.issue(ROOT_CN, ca=True, eku=certs.CLIENT_AUTH))
    intermediate = _issue_intermediate(d, certs.SERVER_AUTH)
    if not pki.key("client").is_file():
        leaf = certs.issue(LEAF_CN, issuer=intermediate, eku=certs.CLIENT_AUTH, dns_names=[LEAF_CN])
        certs.write_issued(d, "client", leaf)
    _apply_trust(lab, with_partner(lab.params))
    return pd.DataFrame(
        [
            {"file": str(path), "what": what}
            for what, path in (
                ("root CA, now a trust anchor in the trust config", files(lab.params)["root"]),
                (
                    "issuing intermediate, sent by the client with its certificate",
                    files(lab.params)["intermediate"],
                ),
                ("client certificate", files(lab.params)["leaf"]),
            )
        ]
    )


def try_partner(lab: Lab) -> pd.DataFrame:
    """One real request with the partner's client certificate and the chain it sends."""
    result = _send(lab)
    return pd.DataFrame(
        [{"case": CASE, "the client saw": result.outcome, "backend received": _verified(lab, result)}]
    )


def _send(lab: Lab) -> ProbeResult:
    f = files(lab.params)
    case = Case(CASE, "ok", str(f["leaf"]), str(f["key"]), (str(f["intermediate"]),), "partner PKI")
    result = sending.send(lab, [case])[0]
    lab.seen.setdefault("probes", []).append(result)
    return result


def _verified(lab: Lab, result: ProbeResult) -> str:
    header = mtls_header_names(lab.params).get(VERIFIED, "")
    return f"{header}={result.backend_headers.get(header)}" if header in result.backend_headers else "-"


def why_refused(lab: Lab) -> pd.DataFrame:
    """The load balancer's log entry for the last partner request."""
    probes = lab.seen.get("probes", [])
    matched = sending.logged(lab, probes[-1:])
    return matched[["case", "logged_status_details"]].rename(
        columns={"logged_status_details": "statusDetails"}
    )


def lint_now(lab: Lab) -> pd.DataFrame:
    """The certificate lint (00_preflight's) over the trust config as Certificate Manager holds it now
    and the chain the partner's client sends, as it is on disk now."""
    findings = _lint_now(lab)
    lab.seen["findings"] = findings
    frame = pd.DataFrame([f.row() for f in findings])
    frame["certificate"] = [ROLES.get(_cn(f.subject), f.subject) for f in findings]
    return frame[["severity", "role", "certificate", "rule", "outcome", "detail", "fix"]]


def _cn(subject: str) -> str:
    for part in subject.split(","):
        if part.startswith("CN="):
            return part[3:]
    return subject


def _lint_now(lab: Lab) -> list[lint.Finding]:
    clients, params = lab.step.clients, lab.params
    config = TRUST_CONFIG.get(clients, trust.trust_config_name(clients, params))
    f = files(params)
    with tempfile.TemporaryDirectory(prefix="mtlskit-lab-trust-") as work:
        refs: list[ParamsFile] = []

        def add(role: Any, field: str, pem: str) -> None:
            path = Path(work) / f"{field}.pem"
            path.write_text(pem)
            refs.append(ParamsFile(field, path, role))

        if config is not None:
            for store in config.trust_stores:
                for i, a in enumerate(store.trust_anchors):
                    add("trust anchor", f"trust_anchors[{i}]", a.pem_certificate)
                for i, c in enumerate(store.intermediate_cas):
                    add("intermediate", f"intermediate_cas[{i}]", c.pem_certificate)
            for i, c in enumerate(config.allowlisted_certificates):
                add("allowlisted", f"allowlisted_certificates[{i}]", c.pem_certificate)
        add("client", "partner-client-chain", f["leaf"].read_text() + f["intermediate"].read_text())
        findings = lint.lint_files(refs, params.expiry_horizon_days)
    return [x for x in findings if x.field == "partner-client-chain"]


# ---- the two fixes -----------------------------------------------------------------------------------


def reissue_intermediate(lab: Lab) -> str:
    """The partner re-issues its intermediate with clientAuth in its extendedKeyUsage (same name, same
    key: the client certificates it signed stay valid) and their clients send the new one."""
    issued = _issue_intermediate(partner_dir(lab.params), certs.CLIENT_AUTH)
    return f"re-issued {INTERMEDIATE_CN} (serial {issued.cert.serial_number:x}) with EKU clientAuth"


def allowlist_leaf(lab: Lab) -> str:
    """Add the partner's client certificate to the trust config's allowlist (Certificate Manager API)."""
    _apply_trust(lab, with_partner(lab.params, allowlist_leaf=True))
    return f"allowlisted {files(lab.params)['leaf'].name} in trust config {lab.params.mtls.trust_config}"


def allowlist_command(lab: Lab) -> str:
    changes = trust.plan_trust(lab.step.clients, with_partner(lab.params, allowlist_leaf=True))
    return next(c.gcloud for c in changes if c.kind == TRUST_CONFIG.name)


# ---- checks ------------------------------------------------------------------------------------------


def check_found(lab: Lab, culprit: dict[str, str] | None) -> Any:
    """The trainee's culprit against the lint's error for the partner's chain."""
    errors = [f for f in lab.seen.get("findings", []) if f.severity == "error" and f.rule != "chain"]
    found = errors[0] if errors else None
    truth = (
        {
            "certificate": ROLES.get(_cn(found.subject), found.subject),
            "rule": found.rule,
            "outcome": found.outcome,
        }
        if found
        else {}
    )
    given = culprit if isinstance(culprit, dict) else {}
    rows = [
        {
            "item": k,
            "your answer": given.get(k, "(none)"),
            "the lint says": truth.get(k, "(lint not run)"),
            "right": bool(truth) and sending.same(given.get(k), truth.get(k)),
        }
        for k in ("certificate", "rule", "outcome")
    ]
    right = all(r["right"] for r in rows)
    if not truth:
        hint = "run the lint cell first (it must find the partner chain's broken certificate)"
    elif not given:
        hint = "fill in `culprit` with the certificate (root, intermediate or leaf), the rule and the outcome"
    else:
        hint = "read the lint's error row again: which certificate is it about, which rule, which outcome?"
    return lab.judged(rows, right, f"the {truth.get('certificate')} breaks '{truth.get('rule')}'", hint)


def check_fixed(lab: Lab) -> Any:
    """After a fix: the lint's verdict on the partner's chain (the load balancer's own rules) is ok and
    a real request with it is answered with a verified chain."""
    findings = _lint_now(lab)
    chain = next((f for f in findings if f.rule == "chain"), None)
    result = _send(lab)
    verified = _verified(lab, result)
    rows = [
        {
            "check": "lint: the load balancer's verdict on the partner chain",
            "now": f"{chain.severity}: {chain.detail or chain.outcome}" if chain else "-",
        },
        {"check": "real request with the partner certificate", "now": result.outcome},
        {"check": "backend received", "now": verified},
    ]
    right = bool(
        chain and chain.severity == "ok" and result.http_status == 200 and verified.endswith("=true")
    )
    hint = (
        "fix it one of two ways: labs.reissue_intermediate(lab) (the partner re-issues the intermediate with "
        "clientAuth) or labs.allowlist_leaf(lab) (the trust config allowlists the leaf), then check again"
    )
    return lab.judged(rows, right, "the partner's clients are accepted", hint)
