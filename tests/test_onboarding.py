"""The runbook teaches: every failure message the kit can give is in notebooks/TROUBLESHOOTING.md, every
step notebook has its runbook sections, and the design picture of 00_design carries the params' names.

The catalogue check reads the source statically (ast), so a new check, error class or CLI message
without an entry fails here rather than reaching a trainee undocumented.
"""

from __future__ import annotations

import ast
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mtlskit import runbook
from mtlskit.config import params as params_mod
from mtlskit.config import paths
from mtlskit.teach import diagram, gateway_diagram

ROOT = paths.repo_root()
LIB = ROOT / "lib" / "mtlskit"
NOTEBOOKS = ROOT / "notebooks"
CATALOGUE = NOTEBOOKS / "TROUBLESHOOTING.md"
# The runbook's step pages (60_logs and notebooks/labs/ keep their own pages).
STEPS = [
    "00_preflight",
    "10_ingress",
    "20_backend_service",
    "30_trust",
    "40_frontend",
    "50_verify",
    "70_drift",
    "90_teardown",
]
SECTIONS = ("what changes", "why", "how to check by hand", "what can go wrong")
# Each classic failure a trainee meets, and the pages that must explain it (words any explanation uses).
FAILURES = {
    "managed certificate stuck in PROVISIONING": (
        ("40_frontend", "50_verify", "70_drift"),
        ("PROVISIONING",),
    ),
    "scheme mismatch": (("20_backend_service", "40_frontend"), ("EXTERNAL_MANAGED", "EXTERNAL")),
    "backend service not yet created": (("10_ingress", "20_backend_service"), ("not created yet",)),
    "trust anchor the load balancer refuses": (("00_preflight", "30_trust"), ("trust anchor", "refuse")),
}
CLICK_ERRORS = {"ClickException", "UsageError", "BadParameter"}
ERROR_ROOTS = {"Exception", "ValueError", "RuntimeError", "KeyError", "LookupError", "OSError"}


# ---- the static scan ------------------------------------------------------------------------------------


@dataclass
class Found:
    """What the source can raise or report: literal texts (an f-string counts by its constant prefix)
    and the places whose text the scan could not read."""

    checks: set[str] = field(default_factory=set)
    errors: set[str] = field(default_factory=set)
    cli: set[str] = field(default_factory=set)
    params: set[str] = field(default_factory=set)
    unreadable: list[str] = field(default_factory=list)


def _prefix(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        head = ""
        for part in node.values:
            if not (isinstance(part, ast.Constant) and isinstance(part.value, str)):
                break
            head += part.value
        return head.strip() or None
    return None


def _name(func: ast.expr) -> str:
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


class Scanner:
    """Resolves the text a `Check(name, ...)` gets, following a name to where its value is written:
    the function's own assignments, a loop over literal tuples, a module constant (of any kit module),
    or, for a parameter, the arguments every caller passes (notebook cells included)."""

    def __init__(self, modules: dict[str, ast.Module]):
        self.modules = modules
        self.parents = {where: _parents(tree) for where, tree in modules.items()}
        self.constants: dict[str, set[str]] = {}
        for tree in modules.values():
            for node in tree.body:
                if isinstance(node, ast.Assign) and (text := _prefix(node.value)) is not None:
                    for t in node.targets:
                        if isinstance(t, ast.Name):
                            self.constants.setdefault(t.id, set()).add(text)

    def texts(self, where: str, node: ast.expr, depth: int = 0) -> set[str] | None:
        if (text := _prefix(node)) is not None:
            return {text}
        if not isinstance(node, ast.Name) or depth > 3:
            return None
        func = self._function(where, node)
        if func is not None:
            local = self._local(func, node.id)
            if local:
                return local
            params = [a.arg for a in (*func.args.posonlyargs, *func.args.args, *func.args.kwonlyargs)]
            if node.id in params:
                return self._callers(func.name, params.index(node.id), node.id, depth)
        return self.constants.get(node.id)

    def _function(self, where: str, node: ast.AST) -> ast.FunctionDef | None:
        parents = self.parents[where]
        while node in parents:
            node = parents[node]
            if isinstance(node, ast.FunctionDef):
                return node
        return None

    def _local(self, func: ast.FunctionDef, name: str) -> set[str]:
        found: set[str] = set()
        lists = {
            t.id: n.value
            for n in ast.walk(func)
            if isinstance(n, ast.Assign | ast.AnnAssign) and isinstance(n.value, ast.List | ast.Tuple)
            for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
            if isinstance(t, ast.Name)
        }
        for n in ast.walk(func):
            assigned = isinstance(n, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in n.targets
            )
            if assigned and (text := _prefix(n.value)) is not None:
                found.add(text)
            if isinstance(n, ast.For) and isinstance(n.target, ast.Tuple):
                names = [e.id if isinstance(e, ast.Name) else "" for e in n.target.elts]
                seq = lists.get(n.iter.id) if isinstance(n.iter, ast.Name) else n.iter
                if name in names and isinstance(seq, ast.List | ast.Tuple):
                    at = names.index(name)
                    for row in seq.elts:
                        if isinstance(row, ast.Tuple) and (text := _prefix(row.elts[at])) is not None:
                            found.add(text)
        return found

    def _callers(self, function: str, position: int, keyword: str, depth: int) -> set[str] | None:
        found: set[str] = set()
        for where, tree in self.modules.items():
            for call in ast.walk(tree):
                if not (isinstance(call, ast.Call) and _name(call.func) == function):
                    continue
                args = [k.value for k in call.keywords if k.arg == keyword]
                args += call.args[position : position + 1] if not args else []
                for arg in args:
                    found |= self.texts(where, arg, depth + 1) or set()
        return found or None


def _notebook_code(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def kit_modules() -> dict[str, ast.Module]:
    """Every kit module (the sandbox is a separate server: its answers are Google's, not the kit's) and
    every notebook's code, which passes check names to the harness."""
    modules = {
        str(p.relative_to(ROOT)): ast.parse(p.read_text())
        for p in sorted(LIB.rglob("*.py"))
        if "sandbox" not in p.relative_to(LIB).parts
    }
    for nb in sorted(NOTEBOOKS.rglob("*.ipynb")):
        modules[str(nb.relative_to(ROOT))] = ast.parse(_notebook_code(nb))
    return modules


def scan(modules: dict[str, ast.Module]) -> Found:
    found = Found()
    scanner = Scanner(modules)
    error_names = set(ERROR_ROOTS)
    classes = [n for tree in modules.values() for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    grew = True
    while grew:  # an error class may derive from one defined later in another module
        grew = False
        for cls in classes:
            if cls.name not in error_names and any(_name(b) in error_names for b in cls.bases):
                error_names.add(cls.name)
                found.errors.add(cls.name)
                grew = True
    for where, tree in modules.items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            called = _name(node.func)
            first = (
                node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "name"), None)
            )
            if called == "Check" and first is not None:
                if where == "lib/mtlskit/core/checks.py":  # Check.from_row rebuilds checks made elsewhere
                    continue
                texts = scanner.texts(where, first)
                if texts is None:
                    found.unreadable.append(f"{where}:{node.lineno}")
                found.checks |= texts or set()
            elif called in CLICK_ERRORS and first is not None:
                # a kit error passed on as a ClickException (str(err)) is catalogued by its class
                found.cli |= {t for t in [_prefix(first)] if t}
        if where.endswith("params.py"):
            found.params |= {
                text
                for n in ast.walk(tree)
                if isinstance(n, ast.Raise)
                and isinstance(n.exc, ast.Call)
                and _name(n.exc.func) == "ValueError"
                for text in [_prefix(n.exc.args[0]) if n.exc.args else None]
                if text
            }
    return found


def _undocumented(texts: set[str], catalogue: str) -> list[str]:
    return sorted(t for t in texts if t not in catalogue)


# ---- the catalogue ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def found() -> Found:
    return scan(kit_modules())


def test_every_check_error_and_cli_message_is_in_the_troubleshooting_page(found: Found) -> None:
    catalogue = CATALOGUE.read_text()
    missing = {
        "check names": _undocumented(found.checks, catalogue),
        "error classes": _undocumented(found.errors, catalogue),
        "CLI messages": _undocumented(found.cli, catalogue),
        "params validation messages": _undocumented(found.params, catalogue),
    }
    missing = {k: v for k, v in missing.items() if v}
    assert not missing, f"add these to {CATALOGUE.relative_to(ROOT)} with their meaning and fix: {missing}"


def test_the_scan_reads_every_check_name(found: Found) -> None:
    assert not found.unreadable, (
        "a Check whose name the scan cannot read (give it a literal, an f-string starting with text, or a "
        f"module constant): {found.unreadable}"
    )
    # the scan sees each form it follows, in the kit as it is
    assert {"prerequisites", "frontend answers", "anchor Ingress names the backend service"} <= found.checks
    assert {"Compute API", "Kubernetes API"} <= found.checks  # from a loop over (name, call) tuples
    assert "trust config and server TLS policy match params" in found.checks  # passed in by 30_trust
    assert {"KitError", "SchemeMismatch", "ParamsError", "StepFailed"} <= found.errors


def test_the_scan_follows_literals_prefixes_constants_locals_loops_and_callers() -> None:
    source = """
NAMED = "module constant"
def a(): return Check("literal", "pass", "")
def b(x): return Check(f"prefix {x}", "pass", "")
def c(): return Check(NAMED, "pass", "")
def d():
    name = "local"
    return Check(name, "pass", "")
def e():
    rows = [("looped one", 1), ("looped two", 2)]
    for label, _ in rows:
        Check(label, "pass", "")
def f(step, what): return [Check(what, "pass", "")]
def g(): return f(None, "from a caller"), f(None, what="by keyword")
def h(v): return Check(v.title, "pass", "")
class Oops(ValueError): pass
class Worse(Oops): pass
def i(): raise click.ClickException(f"no such thing: {1}")
"""
    found = scan({"lib/mtlskit/example.py": ast.parse(source)})
    expected = {"literal", "prefix", "module constant", "local", "looped one", "looped two"}
    assert found.checks == expected | {"from a caller", "by keyword"}
    assert found.unreadable == ["lib/mtlskit/example.py:15"]
    assert found.errors == {"Oops", "Worse"}
    assert found.cli == {"no such thing:"}
    assert _undocumented({"literal", "absent"}, "the literal check") == ["absent"]


# ---- the step pages -----------------------------------------------------------------------------------------


def _markdown(name: str) -> str:
    cells = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


@pytest.mark.parametrize("name", STEPS)
def test_every_step_page_has_its_sections_and_links_the_troubleshooting_page(name: str) -> None:
    text = _markdown(name)
    headings = {
        h.strip().lower() for h in re.findall(r"\*\*([^*]+?)[.:]?\*\*|^#+ (.+)$", text, re.M) for h in h if h
    }
    missing = [s for s in SECTIONS if not any(h.startswith(s) or f"/ {s}" in h for h in headings)]
    assert not missing, f"{name}: no bold or heading section for {missing} (found {sorted(headings)})"
    assert "](TROUBLESHOOTING.md" in text, f"{name}: link TROUBLESHOOTING.md from its failure section"


@pytest.mark.parametrize("failure", FAILURES)
def test_each_classic_failure_is_explained_where_it_happens(failure: str) -> None:
    pages, words = FAILURES[failure]
    for page in [*pages, "TROUBLESHOOTING"]:
        text = CATALOGUE.read_text() if page == "TROUBLESHOOTING" else _markdown(page)
        absent = [w for w in words if w.lower() not in text.lower()]
        assert not absent, f"{page} does not explain '{failure}' (no {absent})"


def test_the_design_page_reads_only_the_params() -> None:
    code = _notebook_code(NOTEBOOKS / "00_design.ipynb")
    assert "runbook.design_diagram(" in code and "runbook.start(" not in code


# ---- the picture --------------------------------------------------------------------------------------------


def _unusual_params() -> params_mod.Params:
    """Names no API would accept, each with a character XML must escape: the picture must not rely on
    validation to stay well-formed."""
    base = params_mod.parse(
        {
            "target": "sandbox",
            "project": "odd-project-1",
            "stack": "odd-stack",
            "mtls": {
                "trust_anchors": [],
                "allowlisted": [],
                "validation_mode": "ALLOW_INVALID_OR_MISSING_CLIENT_CERT",
            },
        }
    )
    frontend = base.frontend.model_copy(
        update={
            "address": "ip<1>",
            "certificate": "cert&co",
            "domains": ["a.example.com", 'b"q.example.com', "c'x.example.com"],
            "ssl_policy": "ssl]]>policy",
            "url_map": "map<&>",
            "target_proxy": "proxy'one",
            "forwarding_rule": 'fr"2"',
            "load_balancing_scheme": "EXTERNAL",
        }
    )
    mtls = base.mtls.model_copy(
        update={
            "trust_config": "trust<cfg>",
            "server_tls_policy": "policy&1",
            "trust_anchors": ["/x/a.pem", "/x/b.pem", "/x/c.pem"],
        }
    )
    kube = base.kubernetes.model_copy(
        update={
            "namespace": "ns<a>",
            "service": "svc&b",
            "backend_config": "bc'c",
            "ingress": 'ing"d',
            "service_port": 8081,
            "app_label": "app>e",
        }
    )
    return base.model_copy(update={"frontend": frontend, "mtls": mtls, "kubernetes": kube})


def _all_text(svg: str) -> str:
    return "\n".join(t for t in ET.fromstring(svg).itertext())


def test_the_picture_is_valid_xml_and_shows_every_name_from_the_params() -> None:
    p = _unusual_params()
    picture = diagram.design_diagram(p)
    assert picture._repr_svg_() == picture.svg
    assert picture.svg in picture._repr_html_() and "<style" not in picture.svg  # nothing leaks into a page
    text = _all_text(picture.svg)  # parses: every name was escaped
    f, k, m = p.frontend, p.kubernetes, p.mtls
    names = [f.address, f.certificate, *f.domains, f.ssl_policy, f.url_map, f.target_proxy, f.forwarding_rule]
    names += [
        m.trust_config,
        m.server_tls_policy,
        m.validation_mode,
        k.namespace,
        k.service,
        k.backend_config,
    ]
    names += [k.ingress, k.app_label, str(k.service_port), p.project, p.stack]
    assert [n for n in names if n not in text] == []
    assert "3 anchors" in text
    assert "created by the GKE Ingress controller" in text
    for legend in ("request path", "creates / keeps in sync", "Owned by mtlskit", "Owned by Kubernetes"):
        assert legend in text


def test_the_picture_draws_each_resource_once_in_its_owners_zone() -> None:
    svg = ET.fromstring(diagram.design_diagram(_unusual_params()).svg)
    ns = {"s": "http://www.w3.org/2000/svg"}
    boxes = {g.get("data-resource") for g in svg.iterfind(".//s:g[@class='mtlskit-box']", ns)}
    kit = {"forwarding_rule", "address", "proxy", "url_map", "certificate", "ssl_policy"}
    kit |= {"server_tls_policy", "trust_config"}
    k8s = {"backend_service", "neg", "service", "ingress", "backend_config"}
    assert boxes == kit | k8s | {"client"}
    placed = diagram.boxes(_unusual_params())
    assert {b.key for b in placed.values() if b.zone == "kit"} == kit
    assert {b.key for b in placed.values() if b.zone == "k8s"} == k8s
    kit_rows = {placed[key].y for key in kit}
    assert (
        max(kit_rows) + diagram.BOX_H <= diagram.KIT_BOTTOM < diagram.K8S_TOP <= min(placed[x].y for x in k8s)
    )


def test_the_mermaid_source_names_every_resource_and_escapes_quotes() -> None:
    mermaid = diagram.design_diagram(_unusual_params()).mermaid
    assert mermaid.startswith("flowchart LR")
    assert "fr&quot;2&quot;" in mermaid and 'fr"2"' not in mermaid
    assert "map&lt;&amp;&gt;" in mermaid
    assert "url_map ==>|default service| backend_service" in mermaid


def _unusual_gateway_params(address: str = "new_ip") -> params_mod.Params:
    base = _unusual_params()
    gateway = base.gateway.model_copy(
        update={
            "name": "gw<1>",
            "http_route": "route&2",
            "ca_configmap": "ca'3",
            "gateway_policy": 'gp"4',
            "backend_policy": "bp>5",
            "health_check_policy": "hc<6",
            "address": address,
        }
    )
    mtls = base.mtls.model_copy(update={"validation_mode": "REJECT_INVALID", "allowlisted": []})
    return base.model_copy(update={"topology": "gateway", "gateway": gateway, "mtls": mtls})


@pytest.mark.parametrize("address", ["new_ip", "named_address"])
def test_the_gateway_picture_shows_every_name_and_who_builds_each_box(address: str) -> None:
    p = _unusual_gateway_params(address)
    picture = runbook.design_diagram(p)  # the notebooks' entry point picks the topology's picture
    text = _all_text(picture.svg)
    g, f, k = p.gateway, p.frontend, p.kubernetes
    names = [g.name, g.http_route, g.ca_configmap, g.gateway_policy, g.backend_policy, g.health_check_policy]
    names += [f.certificate, f.ssl_policy, k.service, g.class_name, "gkegw1-", "3 certificates"]
    assert [n for n in names if n not in text] == []
    assert f.forwarding_rule not in text and k.ingress not in text  # no split frontend, no anchor Ingress
    placed = gateway_diagram.gateway_boxes(p)
    kit = {"certificate", "ssl_policy"} | ({"address"} if address == "named_address" else set())
    assert {b.key for b in placed.values() if b.zone == "kit"} == kit
    k8s = {"gateway", "http_route", "ca_configmap", "service", "gateway_policy", "backend_policy"}
    assert {b.key for b in placed.values() if b.zone == "k8s"} == k8s | {"health_check_policy"}
    assert all(b.y >= diagram.K8S_TOP for b in placed.values() if b.zone == "k8s")
    assert all(b.y + diagram.BOX_H <= diagram.KIT_BOTTOM for b in placed.values() if b.zone in ("kit", "gke"))
    assert (f.address in text) == (address == "named_address")
    assert "ca&apos;3" not in picture.mermaid and "gateway -->|CA ref| ca_configmap" in picture.mermaid
    split = runbook.design_diagram(_unusual_params())
    assert "gkegw1-" not in _all_text(split.svg)
