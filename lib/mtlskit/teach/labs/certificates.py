"""Lab 01: what each kind of client certificate gets.

The trainee predicts the `statusDetails` the load balancer logs for a handful of the demo PKI's
certificates, sends them for real, and reads the verdicts in the request logs. The point: in
`REJECT_INVALID` a refused certificate gets no HTTP answer at all, so the log entry is the only place
that says why.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mtlskit.rules.logentry import DOCUMENTED_OUTCOMES, FORWARDED
from mtlskit.teach.labs import sending
from mtlskit.teach.labs.lab import Lab
from mtlskit.verify.probe import ProbeResult

NAME = "01_client_certificates"
CASES = [
    sending.NO_CERTIFICATE,
    "client",
    "expired-client",
    "untrusted-client",
    "no-clientauth-client",
    "rsa1024-client",
    "allowlisted-client",
]
CHOICES = (FORWARDED, *DOCUMENTED_OUTCOMES)


def the_cases(lab: Lab) -> pd.DataFrame:
    """What the trainee predicts for: each case, what the certificate is, and the chain it sends."""
    from mtlskit.pki import certs

    purposes = {s.name: s.purpose for s in certs.demo_pki_specs()}
    rows = [
        {
            "case": sending.short(c.name),
            "what it is": purposes.get(sending.short(c.name), "no client certificate at all"),
            "sends along": ", ".join(p.rsplit("/", 1)[-1] for p in c.chain) or "-",
        }
        for c in sending.cases(lab, CASES)
    ]
    return pd.DataFrame(rows)


def send_cases(lab: Lab) -> pd.DataFrame:
    """Send every case for real; what the client saw (the outcome) is shown, the verdict is left to the logs."""
    sent = sending.send(lab, sending.cases(lab, CASES))
    lab.seen["sent"] = sent
    return pd.DataFrame([{"case": sending.short(r.case), "the client saw": r.outcome} for r in sent])


def read_verdicts(lab: Lab) -> pd.DataFrame:
    """The load balancer's log entry for every request sent: its statusDetails."""
    sent: list[ProbeResult] = lab.seen.get("sent", [])
    matched = sending.logged(lab, sent)
    lab.seen["logged"] = {
        sending.short(row.case): row.logged_status_details for row in matched.itertuples() if row.found
    }
    return pd.DataFrame(
        [
            {"case": sending.short(row.case), "statusDetails": row.logged_status_details}
            for row in matched.itertuples()
        ],
        columns=["case", "statusDetails"],
    )


def check(lab: Lab, predictions: dict[str, Any] | None) -> Any:
    """Each prediction against what the load balancer logged."""
    logged: dict[str, str] = lab.seen.get("logged", {})
    predicted = predictions if isinstance(predictions, dict) else {}
    rows = []
    for case in CASES:
        guess, got = predicted.get(case), logged.get(case)
        rows.append(
            {
                "case": case,
                "your prediction": guess if guess is not None else "(none)",
                "the log says": got if got is not None else "(not read yet)",
                "right": guess is not None and guess == got,
            }
        )
    wrong = [r["case"] for r in rows if not r["right"]]
    if not logged:
        hint = "run the cells that send the cases and read the logs first"
    elif not predicted:
        hint = f"fill in `predictions`: one statusDetails per case, from {', '.join(CHOICES[:4])}, ..."
    else:
        hint = (
            f"{len(wrong)} of {len(CASES)} differ ({', '.join(wrong)}). An accepted request is logged "
            f"{FORWARDED}; each refusal names the rule it broke (see the table of choices above)"
        )
    return lab.judged(rows, not wrong, "every prediction matches the load balancer's log", hint)
