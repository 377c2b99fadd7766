"""How the kit marks what it creates, how it recognises it again, and when it may change anything.

Teardown deletes only what carries the marker of this stack, and the frontend never updates a
resource someone else made under the same name; both decisions read the predicates below. Each API
family has its own place for a marker:

- Compute resources have no labels on every kind the kit uses, so the marker is the description:
  `managed-by=mtlskit stack=<stack>`.
- Network Security and Certificate Manager resources carry labels: `managed-by: mtlskit`,
  `mtlskit-stack: <stack>`.
- Kubernetes objects carry the recommended `app.kubernetes.io/managed-by: mtlskit` and
  `mtlskit/stack: <stack>`. The Gateway topology applies them with server-side apply under the field
  manager `mtlskit`, so the API server also records which of their fields the kit set.
"""

from __future__ import annotations

from collections.abc import Mapping

from mtlskit.config.params import Params
from mtlskit.core.errors import ApplyRefused

OWNER = "mtlskit"
DESCRIPTION_MARKER = f"managed-by={OWNER}"
KUBE_MANAGED_BY = "app.kubernetes.io/managed-by"
KUBE_STACK = "mtlskit/stack"
LABEL_MANAGED_BY = "managed-by"
LABEL_STACK = "mtlskit-stack"
# Why a teardown keeps a resource of the stack's name.
NOT_OURS = "not created by this stack (no ownership marker)"
# The field manager of every server-side apply the kit sends (`kubectl get --show-managed-fields`).
FIELD_MANAGER = OWNER


def compute_description(stack: str) -> str:
    """Written as the description of every Compute resource the kit creates."""
    return f"{DESCRIPTION_MARKER} stack={stack}"


def cloud_labels(stack: str) -> dict[str, str]:
    """Written as labels on the trust config and the server TLS policy."""
    return {LABEL_MANAGED_BY: OWNER, LABEL_STACK: stack}


def kube_labels(stack: str) -> dict[str, str]:
    """Written as labels on every Kubernetes object the kit applies."""
    return {KUBE_MANAGED_BY: OWNER, KUBE_STACK: stack}


def owns_compute(description: str | None, stack: str) -> bool:
    """A Compute resource is this stack's when its description starts with the stack's marker (text
    after it is allowed: someone may have added a note)."""
    return (description or "").split()[:2] == compute_description(stack).split()


def owns_labelled(labels: Mapping[str, str] | None, stack: str) -> bool:
    """A Network Security / Certificate Manager resource is this stack's when both labels match."""
    return _has_all(labels, cloud_labels(stack))


def owns_kube(labels: Mapping[str, str] | None, stack: str) -> bool:
    """A Kubernetes object is this stack's when both kit labels match."""
    return _has_all(labels, kube_labels(stack))


def _has_all(labels: Mapping[str, str] | None, wanted: dict[str, str]) -> bool:
    have = labels or {}
    return all(have.get(k) == v for k, v in wanted.items())


def may_apply(params: Params, apply: bool) -> None:
    """The one gate in front of every change: raise `ApplyRefused` when `apply` is asked for but the
    params do not allow it; planning (`apply=False`) is always allowed.

    Against a real project a change needs `apply: true` in the params plus the project id typed again
    as `confirm_project`, so a params file copied from another environment cannot change it by
    accident. The sandbox needs only the caller's switch: it is a throwaway local target. `runbook.start`
    calls this with the notebook's switch; every applier calls it with `apply=True`, so scripts that
    skip the runbook meet the same gate.
    """
    if not apply or params.target != "gcp":
        return
    missing = []
    if not params.apply:
        missing.append("apply: true")
    if params.confirm_project != params.project:
        missing.append(f"confirm_project: {params.project}")
    if missing:
        raise ApplyRefused(
            f"changes to project {params.project!r} need {' and '.join(missing)} in the params file"
        )
