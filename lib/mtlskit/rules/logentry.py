"""The words of a load-balancer request log entry, as Google documents them for the global external
Application Load Balancer: the resource type, the payload's type, and the `statusDetails` strings.

The sandbox's data plane writes entries with these words and the kit's log analysis, synthetic logs,
probes and labs read them; stating them once here is what keeps the writer and the readers agreeing.
"""

from __future__ import annotations

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
