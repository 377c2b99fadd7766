"""The load balancer's client-certificate rules, one test per documented rule.

Each test builds the certificates it needs and asserts the outcome the reference documents
(/work/shared/reference/gcp-mtls.md, cited as "ref §x.y"): the `client_cert_*` statusDetails string
of §4.3, or acceptance. Where the reference marks a point unverified, the docstring says which
reading the kit takes.
"""

from __future__ import annotations

import ast
import datetime as dt
import inspect
import ipaddress
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from mtlskit.pki import certs
from mtlskit.rules import logentry, verdict
from mtlskit.rules.verdict import TrustMaterial, Verdict, judge

# ref §4.3, "mTLS statusDetails values": the documented strings for closed connections.
DOCUMENTED_OUTCOMES = {
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
}
CLIENT = certs.CLIENT_AUTH
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def root() -> certs.Issued:
    return certs.issue("rules root", ca=True, eku=CLIENT)


@pytest.fixture(scope="module")
def intermediate(root: certs.Issued) -> certs.Issued:
    return certs.issue("rules intermediate", issuer=root, ca=True, eku=CLIENT)


@pytest.fixture(scope="module")
def trust(root: certs.Issued) -> TrustMaterial:
    return TrustMaterial(anchors=(root.cert,))


def _outcome(v: Verdict) -> str:
    """The statusDetails the load balancer would log: "" when the request goes through."""
    assert v.ok == (v.error == ""), v
    return v.error


def _leaf(issuer: certs.Issued, **kw: object) -> certs.Issued:
    kw.setdefault("eku", CLIENT)
    return certs.issue("client.rules.test", issuer=issuer, **kw)  # type: ignore[arg-type]


# ---- §2.1 key types, sizes and curves ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("rsa1024", "client_cert_invalid_rsa_key_size"),
        ("rsa2048", ""),
        ("rsa4096", ""),
        ("ec256", ""),
        ("ec384", ""),
        ("ec521", "client_cert_unsupported_elliptic_curve_key"),
        ("ed25519", "client_cert_unsupported_key_algorithm"),
    ],
)
def test_leaf_key_types_sizes_and_curves(
    kind: str, expected: str, intermediate: certs.Issued, trust: TrustMaterial
) -> None:
    """ref §2.1: RSA or ECDSA only; RSA 2048-4096 bits; ECDSA on P-256 or P-384 (backend-doc numbers,
    the frontend errors `client_cert_invalid_rsa_key_size`, `..._unsupported_elliptic_curve_key` and
    `..._unsupported_key_algorithm` are [V])."""
    leaf = _leaf(intermediate, key=certs.new_key(kind))
    assert _outcome(judge(leaf.cert, [intermediate.cert], trust)) == expected


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("rsa1024", "client_cert_invalid_rsa_key_size"),
        ("ec521", "client_cert_unsupported_elliptic_curve_key"),
    ],
)
def test_intermediate_keys_follow_the_same_rules(
    kind: str, expected: str, root: certs.Issued, trust: TrustMaterial
) -> None:
    """ref §4.3: the key size and curve errors fire for the "leaf or intermediate"."""
    weak = certs.issue("weak intermediate", issuer=root, key=certs.new_key(kind), ca=True, eku=CLIENT)
    leaf = _leaf(weak)
    assert _outcome(judge(leaf.cert, [weak.cert], trust)) == expected


def test_sha1_signature_fails_validation(intermediate: certs.Issued, trust: TrustMaterial) -> None:
    """ref §2.1: signature hash SHA-256 or stronger; ref §4.3 names SHA-1 as the example of
    `client_cert_validation_failed`."""
    leaf = _leaf(intermediate, hash_alg=hashes.SHA1())
    assert _outcome(judge(leaf.cert, [intermediate.cert], trust)) == "client_cert_validation_failed"


# ---- §2.1 EKU and basic constraints ------------------------------------------------------------------


def test_leaf_without_client_auth_eku(intermediate: certs.Issued, trust: TrustMaterial) -> None:
    """ref §2.1: the leaf's extendedKeyUsage must include clientAuth -> `client_cert_chain_invalid_eku`."""
    server_only = _leaf(intermediate, eku=certs.SERVER_AUTH)
    assert _outcome(judge(server_only.cert, [intermediate.cert], trust)) == "client_cert_chain_invalid_eku"
    no_eku = _leaf(intermediate, eku=[])
    assert _outcome(judge(no_eku.cert, [intermediate.cert], trust)) == "client_cert_chain_invalid_eku"


def test_issuer_eku_must_include_client_auth_when_present(root: certs.Issued, trust: TrustMaterial) -> None:
    """ref §2.1/§4.3: "the client certificate or its issuer doesn't have EKU that includes clientAuth".
    An issuer without any EKU is [unverified]; the kit accepts it (an absent EKU restricts nothing)."""
    server_ca = certs.issue("serverAuth CA", issuer=root, ca=True, eku=certs.SERVER_AUTH)
    leaf = _leaf(server_ca)
    assert _outcome(judge(leaf.cert, [server_ca.cert], trust)) == "client_cert_chain_invalid_eku"
    plain_ca = certs.issue("no-EKU CA", issuer=root, ca=True)
    leaf = _leaf(plain_ca)
    assert _outcome(judge(leaf.cert, [plain_ca.cert], trust)) == ""


def test_ca_leaf_is_refused(intermediate: certs.Issued, trust: TrustMaterial) -> None:
    """ref §2.1: the leaf's basicConstraints must not contain CA=true; such a leaf fails validation."""
    ca_leaf = certs.issue("ca-leaf.rules.test", issuer=intermediate, ca=True, eku=CLIENT)
    assert _outcome(judge(ca_leaf.cert, [intermediate.cert], trust)) == "client_cert_validation_failed"


# ---- §2.1 expiry ----------------------------------------------------------------------------------------


def test_expired_and_not_yet_valid_leaves_fail(intermediate: certs.Issued, trust: TrustMaterial) -> None:
    """ref §2.1: the leaf must not be expired (only the allowlist accepts an expired certificate)."""
    expired = _leaf(
        intermediate, not_before=NOW - dt.timedelta(days=30), not_after=NOW - dt.timedelta(days=1)
    )
    assert _outcome(judge(expired.cert, [intermediate.cert], trust)) == "client_cert_validation_failed"
    future = _leaf(intermediate, not_before=NOW + dt.timedelta(days=1), not_after=NOW + dt.timedelta(days=30))
    assert _outcome(judge(future.cert, [intermediate.cert], trust)) == "client_cert_validation_failed"
    # The same certificate judged at a time inside its validity is fine: time is the only fault.
    assert _outcome(judge(future.cert, [intermediate.cert], trust, now=NOW + dt.timedelta(days=2))) == ""


# ---- §2.2 numeric limits -------------------------------------------------------------------------------


def _chain(root: certs.Issued, intermediates: int) -> Iterator[certs.Issued]:
    issuer = root
    for i in range(intermediates):
        issuer = certs.issue(f"depth {i}", issuer=issuer, ca=True, eku=CLIENT)
        yield issuer


@pytest.mark.parametrize(
    ("intermediates", "expected"), [(8, ""), (9, "client_cert_validation_search_limit_exceeded")]
)
def test_chain_depth_is_ten_certificates_with_root_and_leaf(
    intermediates: int, expected: str, root: certs.Issued, trust: TrustMaterial
) -> None:
    """ref §2.2: max chain depth 10 certificates including root and leaf (backend-doc number); past it
    `client_cert_validation_search_limit_exceeded` ("depth or iteration limit", ref §4.3)."""
    issuers = list(_chain(root, intermediates))
    leaf = _leaf(issuers[-1])
    sent = [c.cert for c in reversed(issuers)]
    assert _outcome(judge(leaf.cert, sent, trust)) == expected


def _name_constrained_ca(root: certs.Issued, count: int) -> certs.Issued:
    key = certs.new_key()
    subtrees = [x509.IPAddress(ipaddress.ip_network(f"10.{i}.0.0/16")) for i in range(count)]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"constrained {count}")]))
        .issuer_name(root.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(root.cert.not_valid_before_utc)
        .not_valid_after(root.cert.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(
            x509.NameConstraints(permitted_subtrees=None, excluded_subtrees=subtrees), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root.key.public_key()), critical=False
        )
        .sign(root.key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return certs.Issued(cert, key)


@pytest.mark.parametrize(
    ("count", "expected"), [(10, ""), (11, "client_cert_chain_max_name_constraints_exceeded")]
)
def test_name_constraints_per_issuer(
    count: int, expected: str, root: certs.Issued, trust: TrustMaterial
) -> None:
    """ref §2.2: no more than 10 name constraints per intermediate or root [V]."""
    ca = _name_constrained_ca(root, count)
    leaf = _leaf(ca)
    assert _outcome(judge(leaf.cert, [ca.cert], trust)) == expected


@pytest.mark.parametrize(("twins", "expected"), [(10, ""), (11, "client_cert_pki_too_large")])
def test_intermediates_sharing_subject_and_key(twins: int, expected: str, root: certs.Issued) -> None:
    """ref §2.2/§4.3: more than ten intermediates sharing one Subject and SPKI -> `client_cert_pki_too_large`.
    The backend page says three; the kit follows the frontend error text (ten)."""
    key = certs.new_key()
    same = [certs.issue("twin CA", issuer=root, key=key, ca=True, eku=CLIENT) for _ in range(twins)]
    leaf = _leaf(same[0])
    trust = TrustMaterial(anchors=(root.cert,), intermediates=tuple(t.cert for t in same))
    assert _outcome(judge(leaf.cert, [], trust)) == expected


# ---- §2.3 allowlisted certificates ---------------------------------------------------------------------


def test_allowlisted_self_signed_needs_no_trust_store() -> None:
    """ref §2.3: allowlisting is for self-signed or otherwise invalid certificates; no trust store is needed."""
    selfsigned = certs.issue("allowlisted.rules.test", eku=CLIENT)
    assert _outcome(judge(selfsigned.cert, [], TrustMaterial(allowlisted=(selfsigned.cert,)))) == ""


def test_allowlisted_expired_certificate_is_accepted() -> None:
    """ref §2.3: expiry is not among the allowlist's conditions ("expired" is a documented use case)."""
    expired = certs.issue(
        "expired.rules.test",
        eku=CLIENT,
        not_before=NOW - dt.timedelta(days=30),
        not_after=NOW - dt.timedelta(days=1),
    )
    assert _outcome(judge(expired.cert, [], TrustMaterial(allowlisted=(expired.cert,)))) == ""


def test_allowlist_matches_the_exact_certificate(root: certs.Issued) -> None:
    """ref §2.3: matching appears to be by exact certificate [unverified]; the kit compares whole
    certificates, so a second certificate with the same name and key is not allowlisted."""
    key = certs.new_key()
    listed = certs.issue("same-name.rules.test", key=key, eku=CLIENT)
    other = certs.issue("same-name.rules.test", key=key, eku=CLIENT)
    trust = TrustMaterial(anchors=(root.cert,), allowlisted=(listed.cert,))
    assert _outcome(judge(other.cert, [], trust)) == "client_cert_validation_failed"


# ---- §2.4 validation flow ------------------------------------------------------------------------------


def test_chain_builds_from_trust_config_intermediates(
    root: certs.Issued, intermediate: certs.Issued, trust: TrustMaterial
) -> None:
    """ref §2.4: the chain is built to an anchor; an intermediate may come from the trust config
    instead of the client."""
    leaf = _leaf(intermediate)
    assert _outcome(judge(leaf.cert, [], trust)) == "client_cert_validation_failed"
    with_store = TrustMaterial(anchors=(root.cert,), intermediates=(intermediate.cert,))
    v = judge(leaf.cert, [], with_store)
    assert _outcome(v) == ""
    assert v.chain == [leaf.cert, intermediate.cert, root.cert]


def test_self_signed_and_foreign_leaves_fail(trust: TrustMaterial) -> None:
    """ref §2.4: self-signed client certificates never form a chain of trust unless allowlisted; a leaf
    from a CA that is not an anchor fails the same way."""
    selfsigned = certs.issue("self.rules.test", eku=CLIENT)
    assert _outcome(judge(selfsigned.cert, [], trust)) == "client_cert_validation_failed"
    foreign_root = certs.issue("foreign root", ca=True, eku=CLIENT)
    foreign = _leaf(foreign_root)
    assert _outcome(judge(foreign.cert, [foreign_root.cert], trust)) == "client_cert_validation_failed"


def test_no_certificate_and_no_trust_config(intermediate: certs.Issued) -> None:
    """ref §4.3: `client_cert_not_provided` when the client sends none; `client_cert_validation_not_performed`
    when mTLS is configured without a trust config."""
    leaf = _leaf(intermediate)
    assert _outcome(judge(None, [], None)) == "client_cert_not_provided"
    assert _outcome(judge(None, [], TrustMaterial())) == "client_cert_not_provided"
    assert _outcome(judge(leaf.cert, [intermediate.cert], None)) == "client_cert_validation_not_performed"


def test_every_outcome_the_rules_can_give_is_documented() -> None:
    """ref §4.3: the module never invents a statusDetails string (e.g. the secondary sources'
    `client_cert_invalid_eku`)."""
    literals = {
        node.value
        for module in (verdict, logentry)
        for node in ast.walk(ast.parse(inspect.getsource(module)))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.startswith("client_cert_")
        and node.value != logentry.REFUSED_PREFIX
    }
    assert literals, "no outcome strings found"
    assert literals <= DOCUMENTED_OUTCOMES, literals - DOCUMENTED_OUTCOMES
    # the list the kit validates params against is exactly the reference's
    assert set(logentry.DOCUMENTED_OUTCOMES) == DOCUMENTED_OUTCOMES
