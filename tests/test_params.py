"""Params validation: every malformed file names the field, and nothing is started or called."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from mtlskit import certs, paths
from mtlskit import params as params_mod
from mtlskit.params import ParamsError
from mtlskit.sandbox import process


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    root = certs.issue("test root", ca=True, eku=certs.CLIENT_AUTH)
    certs.write_issued(d, "root", root)
    certs.write_issued(d, "client", certs.issue("client", issuer=root, eku=certs.CLIENT_AUTH))
    return d


@pytest.fixture
def base(pki: Path, tmp_path: Path) -> dict[str, Any]:
    return {
        "target": "sandbox",
        "project": "mtlskit-sandbox",
        "sandbox": {"state_dir": str(tmp_path / "state"), "demo_pki": False},
        "mtls": {"trust_anchors": [str(pki / "root.pem")]},
        "probe": {"client_cert": str(pki / "client.pem"), "client_key": str(pki / "client.key")},
    }


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    node = data
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    if value is _DELETE:
        node.pop(keys[-1], None)
    else:
        node[keys[-1]] = value


_DELETE = object()

# (case id, field path to change, new value, field the error must name)
CASES = [
    ("missing-target", "target", _DELETE, "target"),
    ("missing-project", "project", _DELETE, "project"),
    ("wrong-target", "target", "aws", "target"),
    ("bad-project-id", "project", "My_Project", "project"),
    ("unknown-top-level-key", "projcet", "x", "projcet"),
    ("unknown-nested-key", "frontend.adress", "x", "frontend.adress"),
    ("bad-url-map-name", "frontend.url_map", "Mtls_UM", "frontend.url_map"),
    ("name-too-long", "frontend.forwarding_rule", "a" * 64, "frontend.forwarding_rule"),
    ("name-ends-with-dash", "frontend.address", "mtls-", "frontend.address"),
    ("bad-namespace", "kubernetes.namespace", "Default", "kubernetes.namespace"),
    ("port-wrong-type", "kubernetes.service_port", "eighty", "kubernetes.service_port"),
    ("port-out-of-range", "kubernetes.service_port", 70000, "kubernetes.service_port"),
    ("bad-ingress-name", "kubernetes.ingress", "Web_Anchor", "kubernetes.ingress"),
    ("bad-ssl-profile", "frontend.ssl_profile", "ULTRA", "frontend.ssl_profile"),
    ("bad-min-tls", "frontend.min_tls_version", "TLS_2_0", "frontend.min_tls_version"),
    ("bad-scheme", "frontend.load_balancing_scheme", "INTERNAL", "frontend.load_balancing_scheme"),
    ("bad-domain", "frontend.domains", ["not a domain"], "frontend.domains"),
    ("bad-validation-mode", "mtls.validation_mode", "STRICT", "mtls.validation_mode"),
    ("missing-trust-anchor-file", "mtls.trust_anchors", ["/nonexistent/root.pem"], "mtls.trust_anchors[0]"),
    ("reject-without-trust", "mtls.trust_anchors", [], "mtls"),
    ("header-without-colon", "mtls.custom_headers", ["X-Client-Cert-Present"], "mtls.custom_headers"),
    ("reserved-header", "mtls.custom_headers", ["X-Goog-Cert:{client_cert_present}"], "mtls.custom_headers"),
    (
        "duplicate-header",
        "mtls.custom_headers",
        ["X-A:{client_cert_present}", "x-a:{client_cert_error}"],
        "mtls.custom_headers",
    ),
    ("bad-policy-id", "mtls.server_tls_policy", "1policy", "mtls.server_tls_policy"),
    ("bad-trust-config-id", "mtls.trust_config", "Trust_Config", "mtls.trust_config"),
    ("cert-without-key", "probe.client_key", _DELETE, "probe"),
    ("missing-key-file", "probe.client_key", "/nonexistent/client.key", "probe.client_key"),
    ("sample-rate-too-high", "logging.sample_rate", 1.5, "logging.sample_rate"),
    ("apply-wrong-type", "apply", "yes please", "apply"),
    ("horizon-negative", "expiry_horizon_days", -3, "expiry_horizon_days"),
]


@pytest.mark.parametrize(("case", "path", "value", "field"), CASES, ids=[c[0] for c in CASES])
def test_malformed_params_name_the_field_and_start_nothing(
    base: dict[str, Any], tmp_path: Path, case: str, path: str, value: Any, field: str
) -> None:
    data = copy.deepcopy(base)
    _set(data, path, value)
    file = tmp_path / f"{case}.yaml"
    file.write_text(yaml.safe_dump(data))
    with pytest.raises(ParamsError) as info:
        params_mod.load(file)
    fields = [p.field for p in info.value.problems]
    assert any(f == field or f.startswith(field + ".") or f.startswith(field + "[") for f in fields), fields
    assert str(file) in str(info.value)
    state = Path(data["sandbox"]["state_dir"])
    assert not (state / process.INFO).exists()
    assert process.status(state) is None


def test_gcp_apply_needs_confirm_project(base: dict[str, Any]) -> None:
    data = {**base, "target": "gcp", "apply": True}
    with pytest.raises(ParamsError, match="confirm_project"):
        params_mod.parse(data)
    assert params_mod.parse({**data, "confirm_project": "mtlskit-sandbox"}).apply is True


def test_not_yaml_and_not_a_mapping_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("target: sandbox\n  project: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML at line"):
        params_mod.load(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- target\n- sandbox\n")
    with pytest.raises(ParamsError, match="must be a mapping"):
        params_mod.load(listy)
    with pytest.raises(ParamsError, match="params file not found"):
        params_mod.load(tmp_path / "absent.yaml")


def test_all_problems_are_reported_at_once(base: dict[str, Any]) -> None:
    data = copy.deepcopy(base)
    _set(data, "frontend.url_map", "Bad_Name")
    _set(data, "kubernetes.namespace", "Bad")
    _set(data, "typo", 1)
    with pytest.raises(ParamsError) as info:
        params_mod.parse(data)
    fields = {p.field for p in info.value.problems}
    assert {"frontend.url_map", "kubernetes.namespace", "typo"} <= fields
    assert "Bad_Name" in str(info.value)


def test_relative_paths_resolve_from_the_repository_root(
    base: dict[str, Any], pki: Path, monkeypatch
) -> None:
    monkeypatch.chdir(pki)  # the cwd must not matter
    data = copy.deepcopy(base)
    data["sandbox"]["state_dir"] = ".sandbox-test-relative"
    p = params_mod.parse(data)
    assert p.state_dir == paths.repo_root() / ".sandbox-test-relative"


def test_shipped_sandbox_params_are_valid() -> None:
    p = params_mod.load(paths.repo_root() / "params" / "sandbox.yaml")
    assert p.target == "sandbox"
    assert all(Path(f).is_file() for f in p.mtls.trust_anchors + p.mtls.intermediates)
    assert p.frontend.load_balancing_scheme == "EXTERNAL"


def test_example_gcp_template_is_complete_but_for_its_certificate_files() -> None:
    """The template uses every key; the only problems are the placeholder certificate paths."""
    with pytest.raises(ParamsError) as info:
        params_mod.load(paths.repo_root() / "params" / "example-gcp.yaml")
    assert info.value.problems
    assert all("not found" in p.message for p in info.value.problems), info.value.problems
