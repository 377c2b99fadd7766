"""The reference answers: for each lab, the source of each answer cell (by the cell's tag) as a
trainee who got it right would write it. CI runs every lab with these filled in, and every check
must then say right; a trainee stuck on a task can read them here."""

from __future__ import annotations

REFERENCE: dict[str, dict[str, str]] = {
    "01_client_certificates": {
        "answer-predictions": """predictions = {
    "no certificate": "client_cert_not_provided",
    "client": "response_sent_by_backend",
    "expired-client": "client_cert_validation_failed",
    "untrusted-client": "client_cert_validation_failed",
    "no-clientauth-client": "client_cert_chain_invalid_eku",
    "rsa1024-client": "client_cert_invalid_rsa_key_size",
    "allowlisted-client": "response_sent_by_backend",
}""",
    },
    "02_anchor_ingress": {
        "answer-prediction": 'prediction = "HTTP 502"',
        "answer-delete": "labs.delete_anchor(lab)",
        "answer-restore": "labs.restore_anchor(lab)",
    },
    "03_validation_modes": {
        "answer-switch": 'labs.switch_mode(lab, "ALLOW_INVALID_OR_MISSING_CLIENT_CERT")',
        "answer-predictions": """predictions = {
    "no certificate": {"X-Client-Cert-Chain-Verified": "false", "X-Client-Cert-Error": "client_cert_not_provided"},
    "client": {"X-Client-Cert-Chain-Verified": "true", "X-Client-Cert-Error": ""},
    "expired-client": {"X-Client-Cert-Chain-Verified": "false", "X-Client-Cert-Error": "client_cert_validation_failed"},
    "untrusted-client": {"X-Client-Cert-Chain-Verified": "false", "X-Client-Cert-Error": "client_cert_validation_failed"},
}""",
    },
    "04_chain_that_stops_a_rollout": {
        "answer-culprit": """culprit = {
    "certificate": "intermediate",
    "rule": "issuer EKU",
    "outcome": "client_cert_chain_invalid_eku",
}""",
        "answer-fix": "labs.reissue_intermediate(lab)",
    },
    "05_api_outage": {
        "answer-fault-on": "labs.set_faults(lab, error_rate=1.0)",
        "answer-safe": "safe_to_rerun = True",
        "answer-fault-off": "labs.set_faults(lab, error_rate=0.0)",
    },
    "06_move_to_the_gateway": {
        "answer-build": 'labs.gateway.run_phases(lab, until="verify")',
        "answer-side-by-side": 'after_build = {"resolves to": "split frontend", "answered by": "split frontend"}',
        "answer-refused": "refused = False",
        "answer-cutover": 'labs.gateway.run_phases(lab, until="cutover")',
        "answer-retirement": """retirement = {
    "deleted first": "ForwardingRule",
    "anchor Ingress": "after the split frontend",
    "Service": "kept",
}""",
        "answer-retire": "labs.gateway.run_phases(lab)",
    },
    "07_rotate_the_client_ca": {
        "answer-impact": 'refused = {"phase 1": [], "phase 2": ["old CA"]}',
        "answer-phase-1": """phase_1 = {
    "right after the PATCH": "refused",
    "old CA": "accepted",
    "new CA": "accepted",
    "foreign": "refused",
    "missing": "refused",
}""",
        "answer-run-phase-1": "labs.rotation.run_phase(lab)",
        "answer-phase-2": """phase_2 = {
    "gate": "refused",
    "old CA": "refused",
    "new CA": "accepted",
    "foreign": "refused",
    "missing": "refused",
}""",
        "answer-run-phase-2": "labs.rotation.run_phase(lab)",
        "answer-intend": "labs.rotation.intend_old_ca_refused(lab)\nlabs.rotation.run_phase(lab)",
        "answer-rollback": """after_rollback = {
    "old CA": "accepted",
    "new CA": "accepted",
    "foreign": "refused",
    "missing": "refused",
}""",
        "answer-roll-back": "labs.rotation.roll_back(lab)",
    },
    "08_enforce_mtls": {
        "answer-refused": 'would_be_refused = ["billing-batch", "status-monitor"]',
        "answer-flip": "labs.enforcement.flip(lab)",
        "answer-after-flip": """after_flip = {"gate": "passed", "with a certificate": "accepted", "no certificate": "refused"}""",
        "answer-fix": "labs.enforcement.fix_clients(lab)\nlabs.enforcement.flip(lab)",
        "answer-break-glass": """break_glass = {
    "no certificate during break-glass": "accepted",
    "no certificate after the way back": "refused",
    "mode after the way back": "REJECT_INVALID",
}""",
        "answer-break": "labs.enforcement.break_glass(lab)",
        "answer-way-back": "labs.enforcement.way_back(lab)",
    },
}
