"""The sandbox under day-2 changes, driven by the real client libraries and real TLS clients (requests,
curl): every call a change makes is served in place (trust-config PATCH with an update mask, server
TLS policy PATCH of the mode alone, the proxy's serverTlsPolicy detached and attached with the typed
Compute client); the data plane applies each change only after `sandbox.propagation_delay_seconds`,
so a new connection made right after the PATCH still gets the old verdict; a connection made before
a change keeps the verdict of its handshake until it closes; and the request log names each client
by its own source address and certificate (fingerprint, serial, issuer and subject DN) in both modes.

"Right after the PATCH" is made certain, not raced: the delay is set to minutes while the old verdict
is checked, then shortened at run time (changes keep the time they were made), so the new verdict
arrives at once."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from google.cloud import certificate_manager_v1 as cm
from google.cloud import compute_v1
from google.cloud import network_security_v1 as ns

from mtlskit.build import stack
from mtlskit.cloud.clients import build_clients
from mtlskit.core.poll import poll
from mtlskit.pki import certs
from mtlskit.rules import dn
from mtlskit.rules import logentry as le
from mtlskit.sandbox import process
from tests.conftest import PROJECT, free_port, sandbox_call, sandbox_params
from tests.test_dataplane import ALLOW, DOMAIN, REJECT, Plane, _headers, _listener, _one

pytestmark = pytest.mark.e2e  # starts a sandbox load balancer of its own

LOC = f"projects/{PROJECT}/locations/global"
LONG = 600.0  # the delay while the old verdict is checked: nothing can apply meanwhile
SHORT = 0.3  # then: every change waiting is older than this, so it applies at the next refresh


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    work = tmp_path_factory.mktemp("day2")
    state = work / "state"
    pki = state / "pki"
    certs.generate_demo_pki(pki)
    params = sandbox_params(
        state,
        sandbox={
            "state_dir": str(state),
            "data_plane_port": free_port(),
            "managed_cert_delay_seconds": 0.2,
            "operation_delay_seconds": 0.05,
            "propagation_delay_seconds": 0.25,
        },
        mtls={
            "trust_anchors": [str(pki / "root.pem")],
            "intermediates": [str(pki / "intermediate.pem")],
            "allowlisted": [str(pki / "allowlisted-client.pem")],
            "validation_mode": ALLOW,
        },
        frontend={"domains": [DOMAIN]},
    )
    clients = build_clients(params)
    bs = stack.build(clients, params, 60)
    fr = clients.compute.forwarding_rules.get(
        project=PROJECT, forwarding_rule=params.frontend.forwarding_rule
    )
    yield Plane(
        params,
        clients,
        fr.I_p_address,
        params.sandbox.data_plane_port,
        state / "dataplane" / "ca.pem",
        pki,
        work,
        bs.name,
    )
    process.stop(state)


# ---- helpers ------------------------------------------------------------------------------------------


def _wait(plane: Plane, done: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
    """The listener's status once `done` holds (the deadline only keeps a broken sandbox from hanging)."""
    polled = poll(lambda: _listener(plane.clients), done, 20.0, every=0.05)
    assert polled.done, f"{what}: {polled.value}"
    return polled.value


def _applied(plane: Plane) -> dict[str, Any]:
    return _wait(
        plane, lambda s: s.get("certificates_served", 0) >= 1 and not s["pending"], "nothing pending"
    )


def _delay(plane: Plane, seconds: float) -> None:
    info = process.status(plane.params.state_dir)
    assert info is not None
    process.set_propagation_delay(info, seconds)


def _propagate(plane: Plane) -> dict[str, Any]:
    """Let every change made so far apply now, and return the listener once it has: the second data
    plane refresh from now has read the control plane after every change (the first may have begun
    before the last one), and nothing it saw is still waiting."""
    start = sandbox_call(plane.clients, "dataplane")["refreshes"]
    _delay(plane, SHORT)
    polled = poll(
        lambda: sandbox_call(plane.clients, "dataplane"),
        lambda s: s["refreshes"] >= start + 2 and not s["listeners"][0]["pending"],
        20.0,
        every=0.05,
    )
    assert polled.done, polled.value
    return dict(polled.value["listeners"][0])


def _fresh(
    plane: Plane, case: str, path: str = "/fresh", source_ip: str | None = None
) -> requests.Response | None:
    """One request on a new connection; None when the load balancer closed it (refused)."""
    with plane.session(case, source_ip) as s:
        try:
            return s.get(plane.url(path), timeout=5)
        except requests.exceptions.ConnectionError:
            return None


def _present(r: requests.Response | None) -> str | None:
    """What the backend was told about the client's certificate (None: refused, no request)."""
    if r is None:
        return None
    assert r.status_code == 200
    return _one(_headers(r), "X-Client-Cert-Chain-Verified")


def _policy_name(plane: Plane) -> str:
    return f"{LOC}/serverTlsPolicies/{plane.params.mtls.server_tls_policy}"


def _set_mode(plane: Plane, mode: str) -> ns.ServerTlsPolicy:
    """PATCH the policy's mode alone, as a day-2 change does: the update mask names one nested field."""
    nsc = plane.clients.network_security
    policy = ns.ServerTlsPolicy(
        name=_policy_name(plane), mtls_policy=ns.ServerTlsPolicy.MTLSPolicy(client_validation_mode=mode)
    )
    nsc.update_server_tls_policy(
        server_tls_policy=policy, update_mask={"paths": ["mtls_policy.client_validation_mode"]}
    ).result()
    return nsc.get_server_tls_policy(name=_policy_name(plane))


def _sha256(path: Path) -> str:
    der = x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def _logged_fingerprint(path: Path) -> str:
    """A certificate file's SHA-256 as the load balancer logs it."""
    return le.fingerprint_value(bytes.fromhex(_sha256(path)))


def _pem(path: Path) -> str:
    return path.read_text()


def _proxy(plane: Plane) -> compute_v1.TargetHttpsProxy:
    return plane.clients.compute.target_https_proxies.get(
        project=PROJECT, target_https_proxy=plane.params.frontend.target_proxy
    )


def _patch_proxy(plane: Plane, server_tls_policy: str) -> None:
    px = _proxy(plane)
    body = compute_v1.TargetHttpsProxy(fingerprint=px.fingerprint, server_tls_policy=server_tls_policy)
    plane.clients.wait(
        plane.clients.compute.target_https_proxies.patch(
            project=PROJECT, target_https_proxy=px.name, target_https_proxy_resource=body
        ),
        "patch proxy",
    )


# ---- the tests -------------------------------------------------------------------------------------------


def test_the_params_delay_reaches_the_sandbox_and_a_new_stack_is_served_at_once(plane: Plane) -> None:
    listener = _applied(plane)
    assert sandbox_call(plane.clients, "dataplane")["propagation_delay_seconds"] == 0.25
    enforced = listener["enforced"]
    assert enforced["mode"] == ALLOW
    assert enforced["anchors"] == [_sha256(plane.pki / "root.pem")]
    assert enforced["allowlisted"] == [_sha256(plane.pki / "allowlisted-client.pem")]
    for bad in ({"propagation_delay_seconds": -1}, {"propagation_delay": 1}):
        refused = requests.post(f"{plane.clients.endpoint}/_sandbox/dataplane", json=bad, timeout=10)
        assert refused.status_code == 400 and "propagation_delay" in refused.text, refused.text
    assert sandbox_call(plane.clients, "dataplane")["propagation_delay_seconds"] == 0.25  # unchanged
    # Params edited while the sandbox runs: the next client factory call passes the new delay on.
    edited = plane.params.model_copy(
        update={"sandbox": plane.params.sandbox.model_copy(update={"propagation_delay_seconds": 0.4})}
    )
    build_clients(edited)
    assert sandbox_call(plane.clients, "dataplane")["propagation_delay_seconds"] == 0.4


def test_a_mode_patch_reaches_only_new_connections_after_the_delay(plane: Plane) -> None:
    _propagate(plane)
    before = sandbox_call(plane.clients, "dataplane")["counters"]["connections"]
    kept = plane.session("none")  # a connection made before the change, kept alive
    assert _present(kept.get(plane.url("/kept/1"), timeout=5)) == "false"
    _delay(plane, LONG)

    policy = _set_mode(plane, REJECT)
    assert (
        policy.mtls_policy.client_validation_mode
        == ns.ServerTlsPolicy.MTLSPolicy.ClientValidationMode.REJECT_INVALID
    )
    assert policy.mtls_policy.client_validation_trust_config.endswith(plane.params.mtls.trust_config)  # kept
    listener = _wait(plane, lambda s: bool(s["pending"]), "the change seen")
    assert listener["enforced"]["mode"] == ALLOW and listener["pending"][0]["mode"] == REJECT
    assert listener["pending"][0]["applies_in_seconds"] > 60
    # A runbook that verifies right after its PATCH still sees the old verdict on a new connection.
    assert _present(_fresh(plane, "none")) == "false"

    assert _propagate(plane)["enforced"]["mode"] == REJECT
    assert _fresh(plane, "none") is None  # a new connection without a certificate is refused now
    # The connection made before the change keeps its handshake's verdict until it closes.
    assert _present(kept.get(plane.url("/kept/2"), timeout=5)) == "false"
    counters = sandbox_call(plane.clients, "dataplane")["counters"]
    assert counters["connections"] == before + 3  # kept, the fresh one before and the refused one after
    kept.close()
    assert _fresh(plane, "none") is None


def test_a_trust_config_patch_is_in_place_and_kept_connections_keep_their_verdict(plane: Plane) -> None:
    _set_mode(plane, REJECT)
    _propagate(plane)
    cmc = plane.clients.certificate_manager
    name = f"{LOC}/trustConfigs/{plane.params.mtls.trust_config}"
    original = cmc.get_trust_config(name=name)
    kept = plane.session("client")
    assert _present(kept.get(plane.url("/kept/1"), timeout=5)) == "true"
    assert _fresh(plane, "partner-client") is None
    _delay(plane, LONG)

    # Move the trust store to the partner's CA alone: the mask names trust_stores, so the allowlist stays.
    changed = cm.TrustConfig(
        name=name,
        trust_stores=[
            cm.TrustConfig.TrustStore(
                trust_anchors=[
                    cm.TrustConfig.TrustAnchor(pem_certificate=_pem(plane.pki / "partner-root.pem"))
                ]
            )
        ],
    )
    cmc.update_trust_config(trust_config=changed, update_mask={"paths": ["trust_stores"]}).result()
    after = cmc.get_trust_config(name=name)
    assert after.name == original.name and after.create_time == original.create_time  # in place
    assert after.etag != original.etag
    assert len(after.allowlisted_certificates) == 1
    listener = _wait(plane, lambda s: bool(s["pending"]), "the change seen")
    assert listener["enforced"]["anchors"] == [_sha256(plane.pki / "root.pem")]
    assert listener["pending"][0]["anchors"] == [_sha256(plane.pki / "partner-root.pem")]
    assert _present(_fresh(plane, "client")) == "true"  # not applied yet: old verdicts
    assert _fresh(plane, "partner-client") is None

    assert _propagate(plane)["enforced"]["anchors"] == [_sha256(plane.pki / "partner-root.pem")]
    assert _present(_fresh(plane, "partner-client")) == "true"
    assert _fresh(plane, "client") is None
    assert _present(kept.get(plane.url("/kept/2"), timeout=5)) == "true"  # its handshake's verdict
    kept.close()

    restored = cm.TrustConfig(name=name, trust_stores=list(original.trust_stores))
    cmc.update_trust_config(trust_config=restored, update_mask={"paths": ["trust_stores"]}).result()
    assert _propagate(plane)["enforced"]["anchors"] == [_sha256(plane.pki / "root.pem")]


def test_the_typed_compute_client_detaches_and_attaches_the_policy(plane: Plane) -> None:
    _set_mode(plane, REJECT)
    _propagate(plane)
    reference = _proxy(plane).server_tls_policy
    assert reference.endswith(_policy_name(plane))
    _delay(plane, LONG)

    _patch_proxy(plane, "")  # proto-plus cannot send null: "" is what the Python client sends
    raw = requests.get(
        f"{plane.clients.endpoint}/compute/v1/projects/{PROJECT}/global/targetHttpsProxies/"
        f"{plane.params.frontend.target_proxy}",
        timeout=10,
    ).json()
    assert "serverTlsPolicy" not in raw  # detached, and Google leaves an empty field out
    assert _wait(plane, lambda s: bool(s["pending"]), "the change seen")["pending"][0]["mode"] == "off"
    assert _fresh(plane, "none") is None  # still enforced until the change has propagated
    assert _propagate(plane)["mtls"] == "off"
    r = _fresh(plane, "none")
    assert r is not None and r.status_code == 200  # no mTLS at all: the request is forwarded

    _delay(plane, LONG)
    _patch_proxy(plane, reference)
    assert _fresh(plane, "none") is not None
    assert _propagate(plane)["mtls"] == REJECT
    assert _fresh(plane, "none") is None


def test_log_entries_name_each_source_address_and_certificate_in_both_modes(plane: Plane) -> None:
    _set_mode(plane, ALLOW)
    _propagate(plane)
    before = len(plane.entries())
    leaf = x509.load_pem_x509_certificate((plane.pki / "client.pem").read_bytes())
    issuer = x509.load_pem_x509_certificate((plane.pki / "intermediate.pem").read_bytes())
    assert _present(_fresh(plane, "client", "/src-11", source_ip="127.0.0.11")) == "true"
    bundle = plane.bundle("untrusted-client")
    assert bundle
    curl = ["curl", "-sk", "--max-time", "10", "--resolve", f"{DOMAIN}:{plane.port}:{plane.ip}"]
    url = f"https://{DOMAIN}:{plane.port}"
    subprocess.run([*curl, "--interface", "127.0.0.12", f"{url}/src-12"], check=True, capture_output=True)
    subprocess.run(
        [
            *curl,
            "--interface",
            "127.0.0.13",
            "--cert",
            str(bundle[0]),
            "--key",
            str(bundle[1]),
            f"{url}/src-13",
        ],
        check=True,
        capture_output=True,
    )
    _set_mode(plane, REJECT)
    _propagate(plane)
    refused = subprocess.run(
        [
            *curl,
            "--interface",
            "127.0.0.14",
            "--cert",
            str(bundle[0]),
            "--key",
            str(bundle[1]),
            f"{url}/src-14",
        ],
        capture_output=True,
    )
    assert refused.returncode != 0

    def entry(ip: str) -> Any:
        return plane.entry_where(lambda e: e.http_request.get("remoteIp") == ip, before)

    allowed = entry("127.0.0.11")
    assert allowed.http_request["requestUrl"].endswith("/src-11")
    assert allowed.payload["remoteIp"] == "127.0.0.11"
    mtls = allowed.payload[le.MTLS]
    assert mtls[le.CERT_FINGERPRINT] == _logged_fingerprint(plane.pki / "client.pem")
    assert mtls[le.CERT_SERIAL] == le.serial_value(leaf.serial_number)
    assert dn.text(mtls[le.CERT_ISSUER_DN]) == issuer.subject.rfc4514_string()
    assert dn.text(mtls[le.CERT_SUBJECT_DN]) == leaf.subject.rfc4514_string()
    assert mtls[le.CERT_CHAIN_VERIFIED] is True

    missing = entry("127.0.0.12").payload[le.MTLS]
    assert missing[le.CERT_PRESENT] is False and missing[le.CERT_ISSUER_DN] == ""

    untrusted = x509.load_pem_x509_certificate((plane.pki / "untrusted-client.pem").read_bytes())
    for ip, status in (("127.0.0.13", 200), ("127.0.0.14", 0)):  # ALLOW forwards it, REJECT closes
        e = entry(ip)
        assert e.http_request["status"] == status, ip
        fields = e.payload[le.MTLS]
        assert fields[le.CERT_PRESENT] is True and fields[le.CERT_CHAIN_VERIFIED] is False
        assert dn.text(fields[le.CERT_ISSUER_DN]) == untrusted.issuer.rfc4514_string()
        assert dn.text(fields[le.CERT_SUBJECT_DN]) == untrusted.subject.rfc4514_string()
        assert fields[le.CERT_FINGERPRINT] == _logged_fingerprint(plane.pki / "untrusted-client.pem")
