"""Lab 03: the two validation modes.

`REJECT_INVALID` closes the connection of a client whose certificate does not validate; the backend
never hears of it. `ALLOW_INVALID_OR_MISSING_CLIENT_CERT` forwards every request and tells the
backend the verdict in the mTLS custom headers, so the backend decides. The trainee switches the
server TLS policy, predicts what the backend now receives, and reads it from the echo backend.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mtlskit.build import trust
from mtlskit.build.trust import SERVER_TLS_POLICY
from mtlskit.config.params import Params
from mtlskit.teach.labs import sending
from mtlskit.teach.labs.lab import Lab, wait_for_data_plane
from mtlskit.verify.probe import ERROR, PRESENT, VERIFIED, mtls_header_names

NAME = "03_validation_modes"
ALLOW = "ALLOW_INVALID_OR_MISSING_CLIENT_CERT"
CASES = [sending.NO_CERTIFICATE, "client", "expired-client", "untrusted-client"]
# What the trainee predicts per case, by mTLS variable: chain verified, and the error.
PREDICTED = (VERIFIED, ERROR)


def with_mode(params: Params, mode: str) -> Params:
    """The params with another validation mode; everything else (trust config included) unchanged."""
    return params.model_copy(update={"mtls": params.mtls.model_copy(update={"validation_mode": mode})})


def switch_mode(lab: Lab, mode: str = ALLOW) -> pd.DataFrame:
    """Update the server TLS policy through the Network Security API (what `gcloud ... import` does)."""
    clients, params = lab.step.clients, with_mode(lab.params, mode)
    changes = trust.apply_trust(clients, params, trust.plan_trust(clients, params))
    wait_for_data_plane(lab)
    return pd.DataFrame([c.row() for c in changes])


def switch_command(lab: Lab, mode: str = ALLOW) -> str:
    """The same change by hand: gcloud imports the policy file the kit writes."""
    changes = trust.plan_trust(lab.step.clients, with_mode(lab.params, mode))
    return next(c.gcloud for c in changes if c.kind == SERVER_TLS_POLICY.name)


def mode_now(lab: Lab) -> str:
    clients = lab.step.clients
    policy = SERVER_TLS_POLICY.get(clients, trust.policy_name(clients, lab.params))
    return policy.mtls_policy.client_validation_mode.name if policy else "(no server TLS policy)"


def backend_receives(lab: Lab) -> pd.DataFrame:
    """Send each case and show what the echo backend received in the mTLS headers."""
    names = mtls_header_names(lab.params)
    mode = mode_now(lab)
    sent = sending.send(lab, sending.cases(lab, CASES))
    received: dict[str, dict[str, str] | None] = {}
    rows = []
    for r in sent:
        case = sending.short(r.case)
        if r.http_status is None:
            received[case] = None
            rows.append({"case": case, "answer": r.outcome})
            continue
        got = {v: r.backend_headers.get(names[v], "") for v in (PRESENT, *PREDICTED) if v in names}
        received[case] = got
        rows.append({"case": case, "answer": f"HTTP {r.http_status}", **{names[v]: got[v] for v in got}})
    lab.seen["received"] = {"mode": mode, "headers": received}
    return pd.DataFrame(rows).fillna("-")


def check(lab: Lab, predictions: dict[str, Any] | None) -> Any:
    """The mode is ALLOW now, and each prediction matches the headers the backend received."""
    seen = lab.seen.get("received") or {"mode": "", "headers": {}}
    names = mtls_header_names(lab.params)
    predicted = predictions if isinstance(predictions, dict) else {}
    rows, wrong = [], []
    for case in CASES:
        guess = predicted.get(case) if isinstance(predicted.get(case), dict) else {}
        got = seen["headers"].get(case)
        for variable in PREDICTED:
            header = names.get(variable, variable)
            want = None if got is None else got.get(variable)
            mine = guess.get(header, guess.get(variable))
            ok = want is not None and mine == want
            rows.append(
                {
                    "case": case,
                    "header": header,
                    "your prediction": "(none)" if mine is None else repr(mine),
                    "backend received": "(no request reached it)" if want is None else repr(want),
                    "right": ok,
                }
            )
            if not ok:
                wrong.append(f"{case} {header}")
    switched = seen["mode"] == ALLOW
    if not switched:
        hint = (
            f"the backend was read in mode {seen['mode'] or '(not read yet)'}: switch to {ALLOW} "
            "(labs.switch_mode(lab) or the gcloud command above), then run the cell that reads the backend"
        )
    elif not predicted:
        hint = "fill in `predictions`: per case, the values of the chain-verified and error headers"
    else:
        hint = (
            f"{len(wrong)} differ ({', '.join(wrong)}): in {ALLOW} every request is forwarded; the error "
            "header carries the same client_cert_* string the log would, and is empty for a valid chain"
        )
    return lab.judged(rows, switched and not wrong, f"{ALLOW} forwards everything and says why", hint)
