"""The sandbox data plane, driven by real TLS clients (Python requests, curl, openssl s_client, wget,
and tlslite-ng for a client that does not hold its certificate's key), with certificates issued in
the test. Every case checks what the client got, what the backend saw, and the request log entry
read back through google-cloud-logging."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from mtlskit.build import backend, frontend, k8s, stack, trust
from mtlskit.cloud.clients import Clients, build_clients
from mtlskit.config.params import Params
from mtlskit.pki import certs
from mtlskit.rules.gateway import DATA_PLANE
from tests.conftest import PROJECT, ResolveAdapter, free_port, sandbox_call, sandbox_params

pytestmark = pytest.mark.e2e  # starts a sandbox load balancer of its own

DOMAIN = "api.mtlskit.test"
REJECT, ALLOW = "REJECT_INVALID", "ALLOW_INVALID_OR_MISSING_CLIENT_CERT"
SPECS = {s.name: s for s in certs.demo_pki_specs()}
CASES = ["none", *SPECS]  # every demo PKI case plus "no certificate at all"
EXPECTED = {"none": "client_cert_not_provided", **{n: s.expected for n, s in SPECS.items()}}
# Lets OpenSSL-based clients load the deliberately weak keys (RSA-1024) the load balancer must judge.
OPENSSL_CNF = """openssl_conf = default_conf
[default_conf]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
CipherString = DEFAULT:@SECLEVEL=0
"""


@dataclass
class Plane:
    params: Params
    clients: Clients
    ip: str
    port: int
    ca: Path
    pki: Path
    work: Path
    bs_name: str

    def params_with(self, **mtls: Any) -> Params:
        data = self.params.model_dump()
        data["mtls"].update(mtls)
        return Params.model_validate(data)

    def bundle(self, case: str) -> tuple[Path, Path] | None:
        """Certificate file (leaf + the issuers it sends, TLS order) and key for one case."""
        if case == "none":
            return None
        path = self.work / f"{case}-bundle.pem"
        if not path.exists():
            parts = [(self.pki / f"{case}.pem").read_text()]
            chain = SPECS[case].chain if case in SPECS else []  # the next and partner CAs' clients: none
            parts += [(self.pki / f"{n}.pem").read_text() for n in chain]
            path.write_text("".join(parts))
        return path, self.pki / f"{case}.key"

    def session(self, case: str, source_ip: str | None = None) -> requests.Session:
        """A client presenting `case`'s certificate ("none": no certificate), connecting from
        `source_ip` when given (127.0.0.N), keeping its connection alive between requests."""
        ctx = ssl.create_default_context(cafile=str(self.ca))
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        pair = self.bundle(case)
        if pair:
            ctx.load_cert_chain(str(pair[0]), str(pair[1]))
        s = requests.Session()
        s.mount("https://", ResolveAdapter(ctx, DOMAIN, source_ip))
        s.headers["Host"] = DOMAIN  # as curl --resolve sends it: the URL map matches on it
        return s

    def url(self, path: str = "/") -> str:
        return f"https://{self.ip}:{self.port}{path}"

    def entries(self) -> list[Any]:
        flt = (
            f'logName="projects/{PROJECT}/logs/requests" '
            f'resource.labels.forwarding_rule_name="{self.params.frontend.forwarding_rule}"'
        )
        return list(self.clients.logging.list_entries(filter_=flt))

    def entry_for(self, path: str, before: int) -> Any:
        """The log entry of one request, among those written since `before`: other connections may
        log meanwhile (a keep-alive closing), so position alone does not say which is which."""
        return self.entry_where(lambda e: (e.http_request or {}).get("requestUrl", "").endswith(path), before)

    def entry_where(self, match: Any, before: int, timeout: float = 5.0) -> Any:
        """The first entry since `before` that `match`es, waiting for it: the data plane logs a
        refused handshake as it closes the connection, which the client may notice first."""
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.entries()[before:] if match(e)]
            if found or time.monotonic() > deadline:
                assert found, f"no matching log entry within {timeout:.0f}s"
                return found[0]
            time.sleep(0.05)

    def set_mode(self, mode: str, **mtls: Any) -> None:
        p = self.params_with(validation_mode=mode, **mtls)
        trust.apply_trust(self.clients, p, trust.plan_trust(self.clients, p))


def _listener(clients: Clients) -> dict[str, Any]:
    listeners = sandbox_call(clients, "dataplane")["listeners"]
    return listeners[0] if listeners else {}


def _until(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    work = tmp_path_factory.mktemp("dataplane")
    state = work / "state"
    pki = state / "pki"
    certs.generate_demo_pki(pki)  # issued here, for this test run
    port = free_port()
    params = sandbox_params(
        state,
        sandbox={
            "state_dir": str(state),
            "data_plane_port": port,
            "managed_cert_delay_seconds": 4.0,
            "operation_delay_seconds": 0.05,
        },
        mtls={
            "trust_anchors": [str(pki / "root.pem")],
            "intermediates": [str(pki / "intermediate.pem")],
            "allowlisted": [str(pki / "allowlisted-client.pem"), str(pki / "allowlisted-expired-client.pem")],
            "validation_mode": REJECT,
        },
        frontend={"domains": [DOMAIN]},
    )
    clients = build_clients(params)
    bs = stack.build(clients, params, 60)
    fr = clients.compute.forwarding_rules.get(
        project=PROJECT, forwarding_rule=params.frontend.forwarding_rule
    )
    (work / "openssl.cnf").write_text(OPENSSL_CNF)
    yield Plane(params, clients, fr.I_p_address, port, state / "dataplane" / "ca.pem", pki, work, bs.name)
    from mtlskit.sandbox import process

    process.stop(state)


def _ready(plane: Plane) -> None:
    assert _until(lambda: _listener(plane.clients).get("certificates_served", 0) >= 1, 30), _listener(
        plane.clients
    )


def _set_proxy_certificates(plane: Plane, links: list[str]) -> None:
    from google.cloud import compute_v1

    plane.clients.compute.target_https_proxies.set_ssl_certificates(
        project=PROJECT,
        target_https_proxy=plane.params.frontend.target_proxy,
        target_https_proxies_set_ssl_certificates_request_resource=(
            compute_v1.TargetHttpsProxiesSetSslCertificatesRequest(ssl_certificates=links)
        ),
    ).result()


def _proxy_certificates(plane: Plane) -> list[str]:
    proxy = plane.clients.compute.target_https_proxies.get(
        project=PROJECT, target_https_proxy=plane.params.frontend.target_proxy
    )
    return list(proxy.ssl_certificates)


def test_managed_certificate_is_served_only_once_active(plane: Plane) -> None:
    from google.cloud import compute_v1

    _ready(plane)
    c = plane.clients.compute.ssl_certificates
    c.insert(
        project=PROJECT,
        ssl_certificate_resource=compute_v1.SslCertificate(
            name="fresh-managed",
            type_="MANAGED",
            managed=compute_v1.SslCertificateManagedSslCertificate(domains=[DOMAIN]),
        ),
    ).result()
    primary = _proxy_certificates(plane)
    _set_proxy_certificates(plane, [c.get(project=PROJECT, ssl_certificate="fresh-managed").self_link])
    try:
        _follows(lambda: _listener(plane.clients).get("certificates_served") == 0)
        with pytest.raises(requests.exceptions.SSLError):  # nothing to present yet
            plane.session("client").get(plane.url(), timeout=5)
        # the handshake failed because the certificate was still provisioning (sandbox delay: 4 s)
        assert c.get(project=PROJECT, ssl_certificate="fresh-managed").managed.status == "PROVISIONING"
        _follows(lambda: _listener(plane.clients).get("certificates_served") == 1)
        assert c.get(project=PROJECT, ssl_certificate="fresh-managed").managed.status == "ACTIVE"
        r = plane.session("client").get(plane.url("/hello"), timeout=5)
        assert r.status_code == 200 and r.json()["service"].endswith("/web")
    finally:
        _set_proxy_certificates(plane, primary)
        c.delete(project=PROJECT, ssl_certificate="fresh-managed").result()


def _headers(response: requests.Response) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in response.json()["headers"]:
        out.setdefault(k.lower(), []).append(v)
    return out


def _one(headers: dict[str, list[str]], name: str) -> str:
    values = headers.get(name.lower(), [])
    assert len(values) == 1, (name, values)
    return values[0]


@pytest.mark.parametrize("mode", [REJECT, ALLOW])
def test_every_certificate_case_with_requests(plane: Plane, mode: str) -> None:
    _ready(plane)
    plane.set_mode(mode)
    assert _until(lambda: _listener(plane.clients).get("mtls") == mode, 5)
    for case in CASES:
        expected = EXPECTED[case]
        before = len(plane.entries())
        session = plane.session(case)
        if mode == REJECT and expected != "ok":
            forwarded = sandbox_call(plane.clients, "dataplane")["counters"]["requests"]
            with pytest.raises(requests.exceptions.ConnectionError):
                session.get(plane.url(f"/{case}"), timeout=5)
            # closed before any HTTP request was read: nothing reached the backend
            assert sandbox_call(plane.clients, "dataplane")["counters"]["requests"] == forwarded, case
            entry = plane.entry_where(lambda e: e.http_request["status"] == 0, before)
            assert entry.payload["statusDetails"] == expected, case
            assert entry.payload["mtls"]["clientCertPresent"] is (case != "none"), case
            continue
        r = session.get(plane.url(f"/{case}"), timeout=5)
        assert r.status_code == 200, case
        seen = _headers(r)
        assert _one(seen, "X-Client-Cert-Present") == ("false" if case == "none" else "true"), case
        assert _one(seen, "X-Client-Cert-Chain-Verified") == ("true" if expected == "ok" else "false"), case
        errors = _one(seen, "X-Client-Cert-Error").split(",")
        assert (expected if expected != "ok" else "") == errors[0], (case, errors)
        if expected == "ok":
            assert _one(seen, "X-Client-Cert-Leaf").startswith(":")  # RFC 9440, only when validated
        else:
            assert _one(seen, "X-Client-Cert-Leaf") == ""
        entry = plane.entry_for(f"/{case}", before)
        assert entry.payload["statusDetails"] == "response_sent_by_backend", case
        assert entry.payload["mtls"]["clientCertChainVerified"] is (expected == "ok"), case
        assert entry.payload["mtls"]["clientCertError"].split(",")[0] == errors[0], case
        assert entry.http_request["status"] == 200
        assert entry.http_request["requestUrl"].endswith(f"/{case}")
        assert entry.resource.type == "http_load_balancer"
        assert entry.resource.labels["backend_service_name"] == plane.bs_name
        assert entry.payload["tls"]["protocol"] in ("TLSv1.2", "TLSv1.3")
    plane.set_mode(REJECT)


def test_header_values_in_googles_formats(plane: Plane) -> None:
    import base64

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    _ready(plane)
    r = plane.session("client").get(plane.url("/formats"), timeout=5)
    seen = _headers(r)
    leaf = x509.load_pem_x509_certificate((plane.pki / "client.pem").read_bytes())
    inter = x509.load_pem_x509_certificate((plane.pki / "intermediate.pem").read_bytes())
    digest = base64.b64encode(leaf.fingerprint(hashes.SHA256())).decode().rstrip("=")
    assert _one(seen, "X-Client-Cert-Hash") == digest
    serial = leaf.serial_number.to_bytes((leaf.serial_number.bit_length() + 8) // 8, "big")
    assert _one(seen, "X-Client-Cert-Serial-Number") == ":".join(f"{b:02x}" for b in serial)
    assert _one(seen, "X-Client-Cert-SPIFFE") == "spiffe://mtlskit.test/ns/default/sa/client"
    assert _one(seen, "X-Client-Cert-URI-SANs") == ""  # the SPIFFE ID is not repeated there
    assert _one(seen, "X-Client-Cert-DNSName-SANs") == base64.b64encode(b"client.mtlskit.test").decode()
    assert _one(seen, "X-Client-Cert-Subject-Dn") == base64.b64encode(leaf.subject.public_bytes()).decode()
    assert _one(seen, "X-Client-Cert-Issuer-Dn") == base64.b64encode(leaf.issuer.public_bytes()).decode()
    assert _one(seen, "X-Client-Cert-Valid-Not-After") == leaf.not_valid_after_utc.strftime(
        "%Y-%m-%dT%H:%M:%S+00:00"
    )
    der = leaf.public_bytes(serialization.Encoding.DER)
    assert _one(seen, "X-Client-Cert-Leaf") == f":{base64.b64encode(der).decode()}:"
    chain_der = inter.public_bytes(serialization.Encoding.DER)
    assert _one(seen, "X-Client-Cert-Chain") == f":{base64.b64encode(chain_der).decode()}:"
    assert _one(seen, "X-Client-Cert-Error") == ""


def test_client_cannot_spoof_mtls_headers(plane: Plane) -> None:
    _ready(plane)
    plane.set_mode(ALLOW)
    assert _until(lambda: _listener(plane.clients).get("mtls") == ALLOW, 5)
    names = [h.split(":", 1)[0] for h in plane.params.mtls.custom_headers]
    forged = {n: "true" if "Present" in n or "Verified" in n else "forged" for n in names}
    r = plane.session("none").get(plane.url("/spoof"), headers=forged, timeout=5)
    seen = _headers(r)
    for name in names:
        value = _one(seen, name)  # exactly one: the load balancer's, never the client's
        assert value != forged[name], name
    assert _one(seen, "X-Client-Cert-Present") == "false"
    assert _one(seen, "X-Client-Cert-Error") == "client_cert_not_provided"
    plane.set_mode(REJECT)


def _curl(plane: Plane, case: str, path: str) -> subprocess.CompletedProcess[str]:
    cmd = ["curl", "-sS", "--max-time", "10", "--resolve", f"{DOMAIN}:{plane.port}:{plane.ip}"]
    cmd += ["--cacert", str(plane.ca), "-o", "-", "-w", "\n%{http_code}"]
    pair = plane.bundle(case)
    if pair:
        cmd += ["--cert", str(pair[0]), "--key", str(pair[1])]
    env = {**os.environ, "OPENSSL_CONF": str(plane.work / "openssl.cnf")}
    return subprocess.run(
        [*cmd, f"https://{DOMAIN}:{plane.port}{path}"], capture_output=True, text=True, env=env
    )


def test_every_certificate_case_with_curl_reject_mode(plane: Plane) -> None:
    _ready(plane)
    plane.set_mode(REJECT)
    assert _until(lambda: _listener(plane.clients).get("mtls") == REJECT, 5)
    for case in CASES:
        before = len(plane.entries())
        result = _curl(plane, case, f"/curl-{case}")
        if EXPECTED[case] == "ok":
            assert result.returncode == 0 and result.stdout.endswith("200"), (case, result.stderr)
            body = json.loads(result.stdout.rsplit("\n", 1)[0])
            assert ["X-Client-Cert-Chain-Verified", "true"] in body["headers"], case
        else:
            # closed without an HTTP answer: curl 52 (empty reply) or 56 (connection reset)
            assert result.returncode in (52, 56, 35), (case, result.returncode, result.stderr)
            entry = plane.entry_where(lambda e: e.http_request["status"] == 0, before)
            assert entry.payload["statusDetails"] == EXPECTED[case], case


def _s_client(plane: Plane, *args: str, case: str = "client") -> subprocess.CompletedProcess[str]:
    pair = plane.bundle(case)
    assert pair
    cmd = ["openssl", "s_client", "-connect", f"{plane.ip}:{plane.port}", "-servername", DOMAIN]
    cmd += ["-CAfile", str(plane.ca), "-cert", str(pair[0]), "-key", str(pair[1]), "-ign_eof", *args]
    request = f"GET /s_client HTTP/1.1\r\nHost: {DOMAIN}\r\nConnection: close\r\n\r\n"
    env = {**os.environ, "OPENSSL_CONF": str(plane.work / "openssl.cnf")}
    return subprocess.run(cmd, input=request, capture_output=True, text=True, timeout=20, env=env)


def test_tls_versions_follow_the_ssl_policy(plane: Plane) -> None:
    """The params' SSL policy is MODERN with TLS 1.2 minimum."""
    _ready(plane)
    policy = plane.clients.compute.ssl_policies.get(
        project=PROJECT, ssl_policy=plane.params.frontend.ssl_policy
    )
    assert (policy.profile, policy.min_tls_version) == ("MODERN", "TLS_1_2")
    old = _s_client(plane, "-tls1_1")
    assert old.returncode != 0 and "HTTP/1.1 200" not in old.stdout
    assert "Cipher is (NONE)" in old.stdout  # no TLS 1.1 session was agreed
    assert "protocol version" in old.stderr or "unsupported protocol" in old.stderr, old.stderr[-300:]
    for flag, name in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
        out = _s_client(plane, flag)
        assert "HTTP/1.1 200" in out.stdout, (flag, out.stderr[-500:])
        assert name in out.stdout
        assert "Verify return code: 0 (ok)" in out.stdout  # the sandbox CA's certificate for the domain


def test_openssl_without_certificate_is_closed_and_logged(plane: Plane) -> None:
    _ready(plane)
    before = len(plane.entries())
    cmd = ["openssl", "s_client", "-connect", f"{plane.ip}:{plane.port}", "-servername", DOMAIN, "-ign_eof"]
    request = f"GET / HTTP/1.1\r\nHost: {DOMAIN}\r\n\r\n"
    out = subprocess.run(cmd, input=request, capture_output=True, text=True, timeout=20)
    assert "HTTP/1.1" not in out.stdout
    entry = plane.entry_where(lambda e: e.http_request["status"] == 0, before)
    assert entry.payload["statusDetails"] == "client_cert_not_provided"


def test_wget_as_in_the_original_write_up(plane: Plane) -> None:
    # wget has no --resolve: it connects to the listener's IP, so the name check is left to the
    # other clients, which all verify the sandbox CA's certificate for the domain.
    _ready(plane)
    pair = plane.bundle("client")
    assert pair
    base = ["wget", "-q", "-O", "-", "--no-check-certificate", "--timeout=10", "--tries=1"]
    ok = subprocess.run(
        [*base, f"--certificate={pair[0]}", f"--private-key={pair[1]}", plane.url("/wget")],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and json.loads(ok.stdout)["path"] == "/wget"
    refused = subprocess.run([*base, plane.url("/wget-none")], capture_output=True, text=True)
    assert refused.returncode != 0


def test_a_certificate_without_its_key_fails_the_handshake_without_a_log(plane: Plane) -> None:
    """Proof of possession: tlslite-ng can send a certificate with a key that does not match it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from tlslite import HandshakeSettings, TLSConnection, X509CertChain, parsePEMKey
    from tlslite.errors import TLSError

    _ready(plane)
    inter = certs.Issued(
        x509.load_pem_x509_certificate((plane.pki / "intermediate.pem").read_bytes()),
        serialization.load_pem_private_key((plane.pki / "intermediate.key").read_bytes(), None),  # type: ignore[arg-type]
    )
    victim = certs.issue(
        "victim.mtlskit.test", issuer=inter, key=certs.new_key("rsa2048"), eku=certs.CLIENT_AUTH
    )
    chain = X509CertChain()
    chain.parsePemList(certs.pem(victim.cert) + certs.pem(inter.cert))

    def pem_key(k: Any) -> Any:
        text = k.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return parsePEMKey(text, private=True)

    settings = HandshakeSettings()
    settings.minVersion = settings.maxVersion = (3, 3)  # TLS 1.2

    def attempt(key: Any) -> bytes:
        with socket.create_connection((plane.ip, plane.port), timeout=10) as sock:
            tls = TLSConnection(sock)
            tls.handshakeClientCert(chain, key, serverName=DOMAIN, settings=settings)
            tls.write(f"GET /pop HTTP/1.1\r\nHost: {DOMAIN}\r\nConnection: close\r\n\r\n".encode())
            return bytes(tls.read())

    start = len(plane.entries())
    assert attempt(pem_key(victim.key)).startswith(b"HTTP/1.1 200")  # the owner gets through
    plane.entry_for("/pop", start)  # logged as its connection closes, which the client may not wait for
    before = len(plane.entries())
    with pytest.raises((TLSError, OSError)):
        attempt(pem_key(certs.new_key("rsa2048")))  # someone else's certificate, their own key
    time.sleep(0.3)
    assert len(plane.entries()) == before  # closed in the handshake, nothing logged


def _follows(check: Callable[[], bool]) -> None:
    """The data plane follows a control-plane change without a restart. How fast is measured, not
    asserted: `make bench` (bench/dataplane.py) prints the reaction time against the one-second
    bar; the deadline here only keeps a broken data plane from hanging the suite."""
    assert _until(check, 10.0)


def _status(plane: Plane, case: str) -> int:
    try:
        return plane.session(case).get(plane.url("/cp"), timeout=5).status_code
    except requests.exceptions.ConnectionError:
        return 0


def test_control_plane_changes_reach_the_data_plane(plane: Plane) -> None:
    _ready(plane)
    plane.set_mode(REJECT)
    assert _until(lambda: _status(plane, "none") == 0, 5)
    c = plane.clients.compute.target_https_proxies
    name = plane.params.frontend.target_proxy
    from mtlskit.sandbox import process

    def sandbox_pid() -> int:
        info = process.status(plane.params.state_dir)
        assert info is not None
        return info.pid

    pid = sandbox_pid()

    # detach the server TLS policy (JSON merge patch with null, as gcloud --clear-server-tls-policy)
    proxy = c.get(project=PROJECT, target_https_proxy=name)
    requests.patch(
        f"{plane.clients.endpoint}/compute/v1/projects/{PROJECT}/global/targetHttpsProxies/{name}",
        json={"serverTlsPolicy": None, "fingerprint": proxy.fingerprint},
        timeout=10,
    ).raise_for_status()
    _follows(lambda: _status(plane, "none") == 200)

    # attach it again with the kit (REJECT): no certificate is refused again
    frontend.apply_frontend(
        plane.clients,
        plane.params,
        frontend.plan_frontend(
            plane.clients, plane.params, backend.locate_backend_service(plane.clients, plane.params)
        ),
    )
    _follows(lambda: _status(plane, "none") == 0)

    # switch the mode
    plane.set_mode(ALLOW)
    _follows(lambda: _status(plane, "none") == 200)
    plane.set_mode(REJECT)
    _follows(lambda: _status(plane, "none") == 0)

    # add a self-signed certificate to the allowlist
    assert _status(plane, "selfsigned-client") == 0
    allow = [*plane.params.mtls.allowlisted, str(plane.pki / "selfsigned-client.pem")]
    plane.set_mode(REJECT, allowlisted=allow)
    _follows(lambda: _status(plane, "selfsigned-client") == 200)
    plane.set_mode(REJECT)

    # take the forwarding rule, proxy and URL map down: the listener goes away
    fr_name = plane.params.frontend.forwarding_rule
    plane.clients.compute.forwarding_rules.delete(project=PROJECT, forwarding_rule=fr_name).result()
    c.delete(project=PROJECT, target_https_proxy=name).result()
    plane.clients.compute.url_maps.delete(project=PROJECT, url_map=plane.params.frontend.url_map).result()
    _follows(lambda: _status(plane, "client") == 0)
    with pytest.raises(requests.exceptions.ConnectionError):
        plane.session("client").get(plane.url("/gone"), timeout=2)

    # and the kit builds it again: served again, by the same sandbox process
    bs = backend.locate_backend_service(plane.clients, plane.params)
    frontend.apply_frontend(
        plane.clients, plane.params, frontend.plan_frontend(plane.clients, plane.params, bs), bs
    )
    _follows(lambda: _status(plane, "client") == 200)
    assert sandbox_pid() == pid  # the same process throughout: no restart


def test_backend_without_endpoints_answers_502_and_logs_it(plane: Plane) -> None:
    """The classic load balancer's answer when it cannot pick a backend (EXTERNAL_MANAGED: 503)."""
    _ready(plane)
    core = plane.clients.kube.core
    ns, svc = plane.params.kubernetes.namespace, plane.params.kubernetes.service
    body = core.read_namespaced_service(svc, ns)
    core.delete_namespaced_service(svc, ns)
    try:
        before = len(plane.entries())
        r = plane.session("client").get(plane.url("/nobody"), timeout=5)
        assert r.status_code == DATA_PLANE["EXTERNAL"].no_healthy_backend == 502
        entry = plane.entry_for("/nobody", before)
        assert entry.payload["statusDetails"] == "failed_to_pick_backend"
        assert entry.http_request["status"] == 502
    finally:
        body.metadata.resource_version = None
        core.create_namespaced_service(ns, body)
    assert _until(lambda: _status(plane, "client") == 200, 5)


def test_headers_over_the_limit_get_the_classic_load_balancers_413(plane: Plane) -> None:
    _ready(plane)
    r = plane.session("client").get(plane.url("/"), headers={"X-Big": "a" * 70_000}, timeout=5)
    assert r.status_code == DATA_PLANE["EXTERNAL"].header_too_large == 413


def test_request_logs_follow_the_backend_services_log_config(plane: Plane) -> None:
    """Logging is the backend service's setting, which the BackendConfig (Kubernetes) controls."""
    _ready(plane)
    off = plane.params.model_copy(
        update={"logging": plane.params.logging.model_copy(update={"enable": False})}
    )

    def log_enabled() -> bool:
        bs = plane.clients.compute.backend_services.get(project=PROJECT, backend_service=plane.bs_name)
        return bool(bs.log_config.enable)

    k8s.apply_ingress(plane.clients, off, k8s.plan_ingress(plane.clients, off))
    try:
        assert _until(lambda: not log_enabled(), 10)
        before = len(plane.entries())
        assert plane.session("client").get(plane.url("/unlogged"), timeout=5).status_code == 200
        assert _status(plane, "none") == 0
        time.sleep(0.3)
        assert len(plane.entries()) == before
    finally:
        k8s.apply_ingress(plane.clients, plane.params, k8s.plan_ingress(plane.clients, plane.params))
    assert _until(log_enabled, 10)
    before = len(plane.entries())
    assert plane.session("client").get(plane.url("/logged"), timeout=5).status_code == 200
    assert plane.entry_for("/logged", before).http_request["status"] == 200


def test_sni_selects_among_the_proxys_certificates(plane: Plane) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from google.cloud import compute_v1

    _ready(plane)
    other_ca = certs.issue("other CA", ca=True)
    other = certs.issue(
        "other.mtlskit.test", issuer=other_ca, eku=certs.SERVER_AUTH, dns_names=["other.mtlskit.test"]
    )
    ca_file = plane.work / "other-ca.pem"
    ca_file.write_text(certs.pem(other_ca.cert))
    key_pem = other.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    c = plane.clients.compute
    c.ssl_certificates.insert(
        project=PROJECT,
        ssl_certificate_resource=compute_v1.SslCertificate(
            name="sni-other", certificate=certs.pem(other.cert), private_key=key_pem
        ),
    ).result()
    primary = _proxy_certificates(plane)
    other_link = c.ssl_certificates.get(project=PROJECT, ssl_certificate="sni-other").self_link

    def served(name: str) -> str:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        with (
            socket.create_connection((plane.ip, plane.port), 5) as s,
            ctx.wrap_socket(s, server_hostname=name) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        cert = x509.load_der_x509_certificate(der)
        return cert.subject.rfc4514_string()

    _set_proxy_certificates(plane, [*primary, other_link])
    try:
        assert _until(lambda: _listener(plane.clients).get("certificates_served") == 2, 10.0)
        assert "other.mtlskit.test" in served("other.mtlskit.test")
        assert DOMAIN in served(DOMAIN)
        assert DOMAIN in served("unknown.example")  # no match: the primary (first) certificate
    finally:
        _set_proxy_certificates(plane, primary)
        c.ssl_certificates.delete(project=PROJECT, ssl_certificate="sni-other").result()


def test_ssl_policy_profile_and_minimum_follow_the_policy_resource(plane: Plane) -> None:
    """RESTRICTED drops the CBC suites MODERN keeps; COMPATIBLE with TLS 1.0 minimum lets TLS 1.1 in."""
    from google.cloud import compute_v1

    _ready(plane)
    policies = plane.clients.compute.ssl_policies
    name = plane.params.frontend.ssl_policy

    def set_policy(profile: str, minimum: str) -> None:
        current = policies.get(project=PROJECT, ssl_policy=name)
        policies.patch(
            project=PROJECT,
            ssl_policy=name,
            ssl_policy_resource=compute_v1.SslPolicy(
                profile=profile, min_tls_version=minimum, fingerprint=current.fingerprint
            ),
        ).result()

    def works(*args: str) -> bool:
        return "HTTP/1.1 200" in _s_client(plane, *args).stdout

    cbc = ("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0")
    try:
        assert works(*cbc)  # MODERN, as the params ask
        set_policy("RESTRICTED", "TLS_1_2")
        _follows(lambda: not works(*cbc))
        assert works("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")
        assert not works("-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
        set_policy("COMPATIBLE", "TLS_1_0")
        _follows(lambda: works("-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"))
    finally:
        set_policy("MODERN", "TLS_1_2")
    _follows(lambda: not works("-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"))


def test_url_map_host_and_path_rules_pick_the_backend_service(plane: Plane) -> None:
    from google.cloud import compute_v1

    _ready(plane)
    c = plane.clients.compute
    c.backend_services.insert(
        project=PROJECT,
        backend_service_resource=compute_v1.BackendService(
            name="no-endpoints",
            load_balancing_scheme="EXTERNAL",
            protocol="HTTP",
            log_config=compute_v1.BackendServiceLogConfig(enable=True, sample_rate=1.0),
        ),
    ).result()
    empty = c.backend_services.get(project=PROJECT, backend_service="no-endpoints").self_link
    name = plane.params.frontend.url_map
    original = c.url_maps.get(project=PROJECT, url_map=name)
    routed = compute_v1.UrlMap(original)
    routed.host_rules = [compute_v1.HostRule(hosts=[DOMAIN], path_matcher="paths")]
    routed.path_matchers = [
        compute_v1.PathMatcher(
            name="paths",
            default_service=original.default_service,
            path_rules=[compute_v1.PathRule(paths=["/empty/*"], service=empty)],
        )
    ]
    c.url_maps.update(project=PROJECT, url_map=name, url_map_resource=routed).result()
    try:
        session = plane.session("client")
        before = len(plane.entries())
        assert session.get(plane.url("/empty/x"), timeout=5).status_code == 502
        entry = plane.entry_for("/empty/x", before)
        assert entry.payload["statusDetails"] == "failed_to_pick_backend"
        assert entry.resource.labels["backend_service_name"] == "no-endpoints"
        assert session.get(plane.url("/full"), timeout=5).status_code == 200
    finally:
        restored = compute_v1.UrlMap(original)
        restored.fingerprint = c.url_maps.get(project=PROJECT, url_map=name).fingerprint
        c.url_maps.update(project=PROJECT, url_map=name, url_map_resource=restored).result()
        c.backend_services.delete(project=PROJECT, backend_service="no-endpoints").result()
    assert plane.session("client").get(plane.url("/empty/x"), timeout=5).status_code == 200


def test_methods_bodies_and_kept_alive_connections(plane: Plane) -> None:
    _ready(plane)
    session = plane.session("client")
    posted = session.post(plane.url("/upload?x=1"), data=b"a" * 100_000, timeout=5)
    assert posted.status_code == 200
    assert posted.json()["method"] == "POST" and posted.json()["body_bytes"] == 100_000
    assert posted.json()["path"] == "/upload?x=1"
    head = session.head(plane.url("/head"), timeout=5)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["Content-Length"]) > 0  # the length a GET would have, as HTTP asks
    before = _listener(plane.clients)
    counters = sandbox_call(plane.clients, "dataplane")["counters"]
    for i in range(5):  # one TLS connection serves them all
        assert session.get(plane.url(f"/again/{i}"), timeout=5).status_code == 200
    after = sandbox_call(plane.clients, "dataplane")["counters"]
    assert after["requests"] - counters["requests"] == 5
    assert after["connections"] == counters["connections"]
    assert before["listening"]


def test_deleting_the_anchor_ingress_orphans_the_backend_until_it_is_applied_again(plane: Plane) -> None:
    _ready(plane)
    net = plane.clients.kube.networking
    ns, name = plane.params.kubernetes.namespace, plane.params.kubernetes.ingress
    net.delete_namespaced_ingress(name, ns)
    try:
        before = len(plane.entries())
        _follows(lambda: _status(plane, "client") == 502)
        entry = plane.entry_where(lambda e: e.http_request["status"] == 502, before)
        assert entry.payload["statusDetails"] == "failed_to_pick_backend"
        # the backend service is still there (the URL map uses it), just no longer served
        assert plane.clients.compute.backend_services.get(project=PROJECT, backend_service=plane.bs_name)
    finally:
        k8s.apply_ingress(plane.clients, plane.params, k8s.plan_ingress(plane.clients, plane.params))
    _follows(lambda: _status(plane, "client") == 200)


def test_the_data_plane_counts_its_refreshes_so_a_change_can_be_waited_for(clients: Clients) -> None:
    """The labs wait for the second refresh after a change instead of sleeping; that needs the count
    to move on its own, about every REFRESH_SECONDS, and never backwards."""
    seen = [sandbox_call(clients, "dataplane")["refreshes"]]
    deadline = time.monotonic() + 10
    while seen[-1] < seen[0] + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
        seen.append(sandbox_call(clients, "dataplane")["refreshes"])
    assert seen[-1] >= seen[0] + 2, seen
    assert seen == sorted(seen)
