"""Params validation: every malformed file names the field, and nothing is started or called."""

from __future__ import annotations

import copy
import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization

from mtlskit.cli import main
from mtlskit.config import params as params_mod
from mtlskit.config import paths
from mtlskit.config.params import ParamsError
from mtlskit.pki import certs
from mtlskit.runner.results import EXIT_BAD_PARAMS
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
    with pytest.raises(ParamsError, match=r"\(params file\): not found \(looked for .*absent.yaml"):
        params_mod.load(tmp_path / "absent.yaml")


def test_a_relative_params_path_is_taken_from_the_current_directory_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a shell user means it; the notebooks' default (params/sandbox.yaml) still falls back to the
    repository root, whatever directory the kernel runs in."""
    (tmp_path / "mine.yaml").write_text("target: sandbox\n")
    monkeypatch.chdir(tmp_path)
    assert params_mod.params_file("mine.yaml") == tmp_path / "mine.yaml"
    assert params_mod.params_file("params/sandbox.yaml") == paths.repo_root() / "params" / "sandbox.yaml"
    with pytest.raises(ParamsError, match=f"looked for {tmp_path}/absent.yaml and "):
        params_mod.load("absent.yaml")


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


def test_relative_paths_of_a_mapping_without_a_file_resolve_from_the_repository_root(
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
    assert p.state_dir == paths.repo_root() / ".sandbox"
    assert all(f.path.is_file() or p.generated_on_first_use(f.path) for f in p.files())
    assert p.frontend.load_balancing_scheme == "EXTERNAL"


def test_example_gcp_template_is_complete_but_for_its_certificate_files() -> None:
    """The template uses every key; the only problems are the placeholder certificate paths."""
    with pytest.raises(ParamsError) as info:
        params_mod.load(paths.repo_root() / "params" / "example-gcp.yaml")
    assert info.value.problems
    assert all("not found" in p.message for p in info.value.problems), info.value.problems
    template = yaml.safe_load((paths.repo_root() / "params" / "example-gcp.yaml").read_text())
    assert set(template["changes"]) == set(params_mod.ChangeSettings.model_fields)  # every day-2 key


# ---- the catalogue of broken files: check-params refuses each, names the field, writes nothing -----

FIXTURES = Path(__file__).parent / "fixtures" / "params"

# file -> (field path, words the message must hold) for every problem it must report, and no others
CATALOGUE: dict[str, list[tuple[str, str]]] = {
    "duplicate-section.yaml": [("frontend", "appears twice, at line 6 and line 11")],
    "der-trust-anchor.yaml": [("mtls.trust_anchors[0]", "DER (binary) certificate")],
    "private-key-as-anchor.yaml": [("mtls.trust_anchors[0]", "holds a private key")],
    "garbled-anchor.yaml": [("mtls.trust_anchors[0]", "does not decode")],
    "expired-anchor.yaml": [("mtls.trust_anchors[0]", "expired")],
    "ca-as-client-certificate.yaml": [("probe.client_cert", "leaf has CA=true")],
    "key-of-another-certificate.yaml": [
        ("probe.client_key", "does not belong to the certificate client.pem")
    ],
    "external-managed.yaml": [
        ("frontend.load_balancing_scheme", "must be EXTERNAL, not 'EXTERNAL_MANAGED'"),
    ],
    "wrong-types.yaml": [
        ("kubernetes.service_port", "must be a whole number"),
        ("kubernetes.target_port", "must be a whole number"),
        ("frontend.domains", "must be a list"),
        ("frontend.ssl_profile", "must be one of 'COMPATIBLE', 'MODERN', 'RESTRICTED' or 'FIPS_202205'"),
        ("mtls", "must be a mapping (a YAML block of keys)"),
        ("logging.sample_rate", "must be a number"),
        ("apply", "must be true or false"),
    ],
    "unknown-key.yaml": [("mtls.trust_anchor", "unknown key")],
    "missing-mtls.yaml": [("mtls", "required key is missing")],
    "bad-names.yaml": [
        ("project", "Google Cloud project id"),
        ("kubernetes.namespace", "DNS-1123 label"),
        ("kubernetes.ingress", "DNS-1123 subdomain"),
        ("frontend.url_map", "Google resource name"),
        ("frontend.forwarding_rule", "Google resource name"),
        ("frontend.domains", "not a fully qualified domain name"),
        ("mtls.trust_config", "trust config id"),
        ("mtls.server_tls_policy", "server TLS policy id"),
    ],
    "out-of-range.yaml": [
        ("kubernetes.service_port", "must be at most 65535"),
        ("frontend.domains", "must list at least 1 item"),
        ("logging.sample_rate", "must be at most 1.0"),
        ("expiry_horizon_days", "must be at least 1"),
    ],
    "missing-file.yaml": [("mtls.trust_anchors[0]", "certificate file not found")],
    "empty.yaml": [("(top level)", "must be a mapping")],
}
PYDANTIC_WORDS = ("Input should", "valid dictionary", "instance of", "Value error", "Field required")


def _catalogue_pki(directory: Path) -> None:
    """Certificates the broken files point at, generated here (no committed private keys)."""
    d = directory / "pki"
    root = certs.issue("catalogue root", ca=True, eku=certs.CLIENT_AUTH)
    certs.write_issued(d, "root", root)
    certs.write_issued(d, "client", certs.issue("client", issuer=root, eku=certs.CLIENT_AUTH))
    (d / "root.der").write_bytes(root.cert.public_bytes(serialization.Encoding.DER))
    body = certs.pem(root.cert).splitlines()
    (d / "garbled.pem").write_text("\n".join(body[:3] + body[6:]) + "\n")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    old = certs.issue(
        "expired root",
        ca=True,
        eku=certs.CLIENT_AUTH,
        not_before=past - dt.timedelta(days=90),
        not_after=past,
    )
    certs.write_issued(d, "expired-root", old)
    certs.write_issued(d, "expired-root-client", certs.issue("c", issuer=old, eku=certs.CLIENT_AUTH))


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("catalogue")
    for f in FIXTURES.glob("*.yaml"):
        shutil.copy(f, d / f.name)
    _catalogue_pki(d)
    return d


def _tree(directory: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in directory.rglob("*")}


def test_the_catalogue_covers_every_fixture() -> None:
    assert sorted(CATALOGUE) == sorted(f.name for f in FIXTURES.glob("*.yaml"))


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_catalogue_of_broken_params_files(
    catalogue: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_sandbox(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("check-params started the sandbox")

    monkeypatch.setattr(process, "start", no_sandbox)
    before = _tree(catalogue)
    file = catalogue / name
    result = CliRunner().invoke(main, ["check-params", str(file)])
    assert result.exit_code == EXIT_BAD_PARAMS, result.output
    assert isinstance(result.exception, SystemExit)  # a refusal, not a crash
    out = result.output
    assert "Traceback" not in out and str(file) in out
    assert not any(w in out for w in PYDANTIC_WORDS), out
    assert "PRIVATE KEY" not in out
    assert ": ('" not in out and ': ("' not in out  # sentences, not Python tuples
    problems = [line.removeprefix("  - ") for line in out.splitlines() if line.startswith("  - ")]
    expected = CATALOGUE[name]
    assert len(problems) == len(expected), out  # no knock-on errors
    for field, words in expected:
        assert any(p.startswith(f"{field}: ") and words in p for p in problems), (field, words, out)
    assert _tree(catalogue) == before  # nothing written, in particular no state dir or demo PKI
    assert not (catalogue / "state").exists()


def test_the_committed_sandbox_params_pass_on_a_fresh_state_dir(tmp_path: Path) -> None:
    """params/sandbox.yaml as committed, in a checkout whose demo PKI was never generated."""
    (tmp_path / "params").mkdir()
    shutil.copy(paths.repo_root() / "params" / "sandbox.yaml", tmp_path / "params" / "sandbox.yaml")
    result = CliRunner().invoke(main, ["check-params", str(tmp_path / "params" / "sandbox.yaml")])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split(maxsplit=1)[1] for line in result.output.splitlines()[2:] if line}
    assert rows["sandbox.state_dir"] == f"{tmp_path / '.sandbox'}  [created when the sandbox starts]"
    pki = tmp_path / ".sandbox" / "pki"
    assert rows["mtls.trust_anchors[0]"] == f"{pki / 'root.pem'}  [demo PKI: generated on first use]"
    assert rows["probe.client_key"] == f"{pki / 'client.key'}  [demo PKI: generated on first use]"
    assert (
        rows["changes.proof_clients[0].key"]
        == f"{pki / 'next-client.key'}  [demo PKI: generated on first use]"
    )
    assert not (tmp_path / ".sandbox").exists()  # nothing written: the PKI is made on first use


def test_a_file_in_the_demo_pki_dir_that_the_demo_pki_never_makes_is_missing(tmp_path: Path) -> None:
    data = yaml.safe_load((paths.repo_root() / "params" / "sandbox.yaml").read_text())
    data["mtls"]["trust_anchors"] = ["../.sandbox/pki/rooot.pem"]
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "env.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ParamsError) as info:
        params_mod.load(tmp_path / "params" / "env.yaml")
    [problem] = info.value.problems
    assert problem.field == "mtls.trust_anchors[0]" and "not found" in problem.message


def test_relative_paths_resolve_from_the_params_files_directory(
    pki: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = tmp_path / "envs" / "team-a"
    env.mkdir(parents=True)
    shutil.copytree(pki, tmp_path / "envs" / "pki")
    file = env / "params.yaml"
    file.write_text(
        "target: sandbox\nproject: mtlskit-sandbox\n"
        "sandbox: {state_dir: state, demo_pki: false}\n"
        "mtls: {trust_anchors: [../pki/root.pem]}\n"
        "probe: {client_cert: ../pki/client.pem, client_key: ../pki/client.key}\n"
    )
    monkeypatch.chdir(pki)  # the cwd must not matter
    p = params_mod.load(file)
    assert p.state_dir == env / "state"
    assert p.mtls.trust_anchors == [str(tmp_path / "envs" / "pki" / "root.pem")]
    assert p.probe.client_key == str(tmp_path / "envs" / "pki" / "client.key")
    # a state_dir the file does not set is the kit's own default, wherever the file is
    file.write_text(file.read_text().replace("state_dir: state, ", ""))
    assert params_mod.load(file).state_dir == paths.repo_root() / ".sandbox"


def test_duplicate_keys_are_found_at_any_depth_and_reported_with_the_rest(tmp_path: Path) -> None:
    file = tmp_path / "dup.yaml"
    file.write_text(
        "target: sandbox\nproject: Bad_Project\nmtls:\n  trust_anchors: []\n"
        "probe:\n  cases:\n    - name: a\n      name: b\n      cert: x\n      key: y\n"
    )
    with pytest.raises(ParamsError) as info:
        params_mod.load(file)
    by_field = {p.field: p.message for p in info.value.problems}
    assert "line 7 and line 8" in by_field["probe.cases[0].name"]
    assert "project" in by_field  # every other problem is still reported


def test_yaml_anchors_and_merge_keys_are_not_duplicates(base: dict[str, Any], tmp_path: Path) -> None:
    text = (
        yaml.safe_dump(base) + "kubernetes: &k {service: api}\nlogging: {<<: {enable: true}, enable: false}\n"
    )
    file = tmp_path / "merge.yaml"
    file.write_text(text)
    assert params_mod.load(file).logging.enable is False


def test_loading_params_writes_no_demo_pki(tmp_path: Path) -> None:
    p = params_mod.parse(
        {
            "target": "sandbox",
            "project": "mtlskit-sandbox",
            "sandbox": {"state_dir": str(tmp_path / "state")},
            "mtls": {"trust_anchors": [str(tmp_path / "state" / "pki" / "root.pem")]},
        }
    )
    assert not (tmp_path / "state").exists()
    assert p.ensure_demo_pki() is not None  # what build_clients does on first use
    assert (tmp_path / "state" / "pki" / "root.pem").is_file()
    assert p.model_copy(update={"target": "gcp"}).ensure_demo_pki() is None


def test_the_demo_pki_writes_exactly_the_files_params_may_expect(tmp_path: Path) -> None:
    certs.generate_demo_pki(tmp_path)
    assert {f.name for f in tmp_path.iterdir()} == certs.demo_pki_files()


@pytest.mark.parametrize(
    ("yaml_value", "field", "message"),
    [
        (
            "kubernetes: {service_port: 8.5}",
            "kubernetes.service_port",
            "must be a whole number (no fraction)",
        ),
        ("kubernetes: {service: 5}", "kubernetes.service", "must be text"),
        ("kubernetes: []", "kubernetes", "must be a mapping (a YAML block of keys)"),
        ("probe: {cases: [just-a-name]}", "probe.cases[0]", "must be a mapping"),
        ("probe: {cases: [{name: '', cert: a, key: b}]}", "probe.cases[0].name", "at least 1 character"),
        ("probe: {timeout_seconds: 0}", "probe.timeout_seconds", "must be more than 0"),
        ("mtls: {trust_anchors: root.pem}", "mtls.trust_anchors", "must be a list"),
        ("logging: {enable: maybe}", "logging.enable", "must be true or false"),
    ],
)
def test_messages_are_in_the_kits_words(
    base: dict[str, Any], tmp_path: Path, yaml_value: str, field: str, message: str
) -> None:
    data = copy.deepcopy(base)
    data.update(yaml.safe_load(yaml_value))
    with pytest.raises(ParamsError) as info:
        params_mod.parse(data)
    text = str(info.value)
    assert any(p.field == field and message in p.message for p in info.value.problems), text
    assert not any(w in text for w in PYDANTIC_WORDS), text


def test_another_stack_renames_every_named_resource_and_still_validates() -> None:
    data = yaml.safe_load((paths.repo_root() / "params" / "sandbox.yaml").read_text())
    base = paths.repo_root() / "params"
    one, two = (params_mod.parse(params_mod.another_stack(data, k), base=base) for k in ("a", "b"))
    default = params_mod.parse(data, base=base)

    def names(p: params_mod.Params) -> set[str]:
        k, f, m = p.kubernetes, p.frontend, p.mtls
        return {
            p.stack,
            k.service,
            k.backend_config,
            k.ingress,
            *(getattr(f, n) for n in params_mod.FRONTEND_NAMES),
            *f.domains,
            m.trust_config,
            m.server_tls_policy,
            *(getattr(p.gateway, n) for n in params_mod.GATEWAY_NAMES),
        }

    assert len(names(one)) == len(names(two)) == 19  # every one of them its own
    assert not names(one) & names(two) and not names(one) & names(default)
    assert data == yaml.safe_load((paths.repo_root() / "params" / "sandbox.yaml").read_text())  # not mutated


def test_sandbox_default_moves_the_state_dir_and_the_demo_pki_with_it(tmp_path: Path) -> None:
    data = params_mod.sandbox_default(tmp_path / "elsewhere")
    p = params_mod.parse(data, base=paths.repo_root() / "params")
    state = (tmp_path / "elsewhere").resolve()
    assert p.state_dir == state
    moved = [*p.mtls.trust_anchors, *p.mtls.intermediates, *p.mtls.allowlisted]
    moved += [p.probe.client_cert, p.probe.client_key]
    moved += [f for c in p.changes.proof_clients for f in (c.cert, c.key, *c.chain)]
    assert len(moved) == 8 and all(Path(f).parent == state / "pki" for f in moved), moved
    committed = yaml.safe_load((paths.repo_root() / "params" / "sandbox.yaml").read_text())
    keep = ("sandbox", "mtls", "probe", "changes")
    assert {k: v for k, v in data.items() if k not in keep} == {
        k: v for k, v in committed.items() if k not in keep
    }


def test_shipped_gateway_params_are_valid_and_say_what_the_gateway_expresses_differently() -> None:
    p = params_mod.load(paths.repo_root() / "params" / "sandbox-gateway.yaml")
    assert p.topology == "gateway" and p.gateway.facts.load_balancing_scheme == "EXTERNAL_MANAGED"
    assert p.gateway_namespace == p.kubernetes.namespace
    notes = params_mod.gateway_differences(p)
    assert any("intermediate" in n for n in notes) and any("RequestHeaderModifier" in n for n in notes)
    split = params_mod.load(paths.repo_root() / "params" / "sandbox.yaml")
    assert split.topology == "split" and params_mod.gateway_differences(split) == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"allowlisted": "client"}, "mtls.allowlisted"),
        ({"validation_mode": "ALLOW_INVALID_OR_MISSING_CLIENT_CERT"}, "mtls.validation_mode"),
    ],
)
def test_a_gateway_refuses_at_load_what_it_cannot_carry(
    base: dict[str, Any], pki: Path, change: dict[str, str], field: str
) -> None:
    base["topology"] = "gateway"
    if "allowlisted" in change:
        base["mtls"]["allowlisted"] = [str(pki / "client.pem")]
    else:
        base["mtls"].update(change)
    with pytest.raises(ParamsError) as err:
        params_mod.parse(base)
    assert [p.field for p in err.value.problems] == [field]
    assert "topology: split" in str(err.value)
    base["topology"] = "split"  # the same params are fine in the split topology
    assert params_mod.parse(base).topology == "split"


def test_a_certificate_map_needs_its_name(base: dict[str, Any]) -> None:
    base["gateway"] = {"certificate": "certificate_map"}
    with pytest.raises(ParamsError, match="gateway.certificate_map"):
        params_mod.parse(base)
    base["gateway"]["certificate_map"] = "mtls-map"
    assert params_mod.parse(base).gateway.certificate_map == "mtls-map"
