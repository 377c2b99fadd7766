"""The words of a load-balancer request log entry, as Google documents them for the global external
Application Load Balancer: the resource type, the payload's type, the `statusDetails` strings, and the
client certificate's fields under `jsonPayload.mtls` with the formats of their values.

The sandbox's data plane writes entries with these words and the kit's log analysis, synthetic logs,
probes and labs read them; stating them once here is what keeps the writer and the readers agreeing.
"""

from __future__ import annotations

import base64
import binascii

RESOURCE_TYPE = "http_load_balancer"
PAYLOAD_TYPE = "type.googleapis.com/google.cloud.loadbalancing.type.LoadBalancerLogEntry"

# A request the load balancer passed to the backend and answered from it.
FORWARDED = "response_sent_by_backend"
# The load balancer found no backend to send to, or the backend did not answer in time.
NO_BACKEND = "failed_to_pick_backend"
BACKEND_UNREACHABLE = "failed_to_connect_to_backend"
BACKEND_TIMEOUT = "backend_timeout"
BACKEND_OUTCOMES = (NO_BACKEND, BACKEND_UNREACHABLE, BACKEND_TIMEOUT)
VALIDATION_FAILED = "client_cert_validation_failed"

# Every refused client certificate's statusDetails starts with this.
REFUSED_PREFIX = "client_cert_"
NOT_PROVIDED = "client_cert_not_provided"

# The documented `statusDetails` for a refused client certificate ("Logged errors for closed
# connections"): the only strings a verdict may carry.
DOCUMENTED_OUTCOMES = (
    NOT_PROVIDED,
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

# ---- the client certificate's fields (`jsonPayload.mtls`) ------------------------------------------
# The Envoy-style `mtls` object (gcp-mtls.md section 4.2): each field carries the value of the custom
# header variable of the same meaning, in the same format. The sandbox writes it in ALLOW and
# REJECT_INVALID modes (not when no server TLS policy is attached); the synthetic generator writes the
# same words and the impact and readiness reports read them, by these names only.
MTLS = "mtls"
CERT_PRESENT = "clientCertPresent"
CERT_CHAIN_VERIFIED = "clientCertChainVerified"
CERT_ERROR = "clientCertError"
CERT_FINGERPRINT = "clientCertSha256Fingerprint"  # unpadded Base64 of the leaf's SHA-256
CERT_SERIAL = "clientCertSerialNumber"  # colon-joined lowercase hex of the DER integer
CERT_ISSUER_DN = "clientCertIssuerDn"  # Base64 of the DER Issuer field (`rules.dn`)
CERT_SUBJECT_DN = "clientCertSubjectDn"  # Base64 of the DER Subject field (`rules.dn`)
CERT_VALID_START = "clientCertValidStartTime"  # RFC 3339
CERT_VALID_END = "clientCertValidEndTime"  # RFC 3339

# The fields the sandbox writes (and the synthetic generator), in this order.
MTLS_FIELDS = (
    CERT_PRESENT,
    CERT_CHAIN_VERIFIED,
    CERT_ERROR,
    CERT_FINGERPRINT,
    CERT_SERIAL,
    CERT_ISSUER_DN,
    CERT_SUBJECT_DN,
    CERT_VALID_START,
    CERT_VALID_END,
)
MTLS_BOOLEANS = (CERT_PRESENT, CERT_CHAIN_VERIFIED)  # JSON booleans (some exporters write strings)


def mtls_path(field: str) -> str:
    """The field's dotted path in a LogEntry, as a Logging filter or a DuckDB column names it:
    `jsonPayload.mtls.clientCertIssuerDn`."""
    return f"jsonPayload.{MTLS}.{field}"


def fingerprint_value(der_sha256: bytes) -> str:
    """A leaf's SHA-256 digest as the load balancer writes it: Base64 without padding."""
    return base64.b64encode(der_sha256).decode().rstrip("=")


def fingerprint_hex(value: str) -> str:
    """A logged fingerprint (unpadded Base64) as lowercase hex, the way the kit names certificates;
    a value that is not Base64 of 32 bytes gives "". The reports read logged fingerprints back with it."""
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (ValueError, binascii.Error):
        return ""
    return raw.hex() if len(raw) == 32 else ""


def serial_value(serial: int) -> str:
    """A serial number as the load balancer writes it: the DER integer's bytes (a leading 00 when the
    high bit is set) as colon-joined lowercase hex."""
    raw = serial.to_bytes((serial.bit_length() + 8) // 8, "big")
    return ":".join(f"{b:02x}" for b in raw)
