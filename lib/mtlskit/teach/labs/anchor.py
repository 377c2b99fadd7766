"""Lab 02: the anchor Ingress.

Only an Ingress makes the GKE Ingress controller create the backend service and keep it in sync.
The trainee deletes the anchor, watches the backend service lose its owner and the frontend answer a
valid client with 502, the classic load balancer's answer to failed_to_pick_backend (nothing syncs the backend's endpoints any more), then puts the anchor back.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mtlskit.build import k8s
from mtlskit.teach.labs import sending
from mtlskit.teach.labs.lab import BUILD_TIMEOUT_SECONDS, Lab, wait_for_data_plane
from mtlskit.verify import drift, probe

NAME = "02_anchor_ingress"
CHOICES = ("HTTP 200", "HTTP 502", "refused in the handshake")


def delete_anchor(lab: Lab) -> str:
    """Delete the anchor Ingress through the Kubernetes API (what `kubectl delete ingress` does)."""
    k8s.kube_call(lab.step.clients, "delete", "Ingress", lab.params)
    wait_for_data_plane(lab)
    return f"deleted Ingress {lab.params.kubernetes.namespace}/{lab.params.kubernetes.ingress}"


def restore_anchor(lab: Lab) -> str:
    """Apply the anchor again (what `kubectl apply -f` of 10_ingress's manifest does) and wait for the
    controller to name the backend service on it."""
    clients, params = lab.step.clients, lab.params
    k8s.apply_ingress(clients, params, k8s.plan_ingress(clients, params))
    k8s.wait_for_backends(clients, params, BUILD_TIMEOUT_SECONDS)
    wait_for_data_plane(lab)
    return f"applied Ingress {params.kubernetes.namespace}/{params.kubernetes.ingress}"


def delete_command(lab: Lab) -> str:
    k = lab.params.kubernetes
    return f"kubectl delete ingress {k.ingress} -n {k.namespace}"


def restore_command(lab: Lab) -> str:
    manifest = k8s.manifest_file(lab.params, k8s.manifests(lab.params)["Ingress"])
    return f"kubectl apply -f {manifest} -n {lab.params.kubernetes.namespace}"


def observe(lab: Lab) -> pd.DataFrame:
    """The anchor, the backend service as the drift check sees it, and what a valid client gets now."""
    state = lab.step.call(drift.read_split_state)
    anchor_check = drift.check_anchor(lab.params, state)
    answer = sending.send(lab, sending.cases(lab, ["client"]))[0]
    now = {
        "anchor": state.anchor is not None,
        "names the backend service": anchor_check.status == "pass",
        "valid client gets": _answer(answer),
    }
    lab.seen.setdefault("observed", []).append(now)
    return pd.DataFrame(
        [
            {"what": "anchor Ingress", "now": "present" if now["anchor"] else "deleted"},
            {
                "what": "drift check: " + anchor_check.name,
                "now": f"{anchor_check.status}: {anchor_check.evidence}",
            },
            {"what": "a client with a valid certificate gets", "now": now["valid client gets"]},
        ]
    )


def _answer(result: probe.ProbeResult) -> str:
    if result.http_status is not None:
        return f"HTTP {result.http_status}"
    return "refused in the handshake" if result.outcome.startswith("closed") else result.outcome


def check_deleted(lab: Lab, prediction: Any) -> Any:
    """Was the anchor deleted, what did a valid client get then, and did the prediction say so?"""
    seen = [o for o in lab.seen.get("observed", []) if not o["anchor"]]
    got = seen[-1]["valid client gets"] if seen else None
    rows = [
        {"item": "anchor deleted and observed", "value": bool(seen)},
        {"item": "a valid client got", "value": got or "(not observed)"},
        {"item": "your prediction", "value": prediction if prediction is not None else "(none)"},
    ]
    right = bool(seen) and prediction == got
    if not seen:
        hint = (
            f"delete the anchor ({delete_command(lab)} or labs.delete_anchor(lab)), then run the observe cell"
        )
    elif prediction is None:
        hint = f"set `prediction` to one of {', '.join(CHOICES)}"
    else:
        hint = (
            f"the client got {got}: the certificate is fine, but the backend service lost its owner and "
            "nothing syncs its endpoints any more"
        )
    return lab.judged(rows, right, f"deleting the anchor left valid clients with {got}", hint)


def check_restored(lab: Lab) -> Any:
    """After a deletion was seen: is the anchor back, naming the backend service, and do clients get 200?"""
    observed = lab.seen.get("observed", [])
    deleted_at = max((i for i, o in enumerate(observed) if not o["anchor"]), default=None)
    after = observed[deleted_at + 1 :] if deleted_at is not None else []
    last = after[-1] if after else None
    ok = bool(
        last
        and last["anchor"]
        and last["names the backend service"]
        and last["valid client gets"] == "HTTP 200"
    )
    rows = [
        {"item": "anchor deleted earlier", "value": deleted_at is not None},
        {"item": "anchor back", "value": bool(last and last["anchor"])},
        {"item": "names the backend service", "value": bool(last and last["names the backend service"])},
        {"item": "a valid client gets", "value": last["valid client gets"] if last else "(not observed)"},
    ]
    if deleted_at is None:
        hint = "delete the anchor first (the task above)"
    elif last is None:
        hint = f"put the anchor back ({restore_command(lab)} or labs.restore_anchor(lab)), then observe again"
    else:
        hint = "the anchor is not serving yet: apply it again and observe"
    return lab.judged(rows, ok, "the anchor is back and valid clients get HTTP 200 again", hint)
