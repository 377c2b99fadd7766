"""Long waits a reader watches: a text progress bar around the library's own wait.

The library's waits take a progress callback and know nothing of bars; this module is the one place
that draws them for a notebook. tqdm's text bar needs no widget library and prints no warning in a
headless run.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from tqdm.std import tqdm

from mtlskit import k8s

if TYPE_CHECKING:
    from mtlskit.step import Step

# On GKE the controller needs minutes (NEGs, health checks) before it names the backend service.
INGRESS_TIMEOUT_SECONDS = 900.0


def wait_for_backends(step: Step, timeout: float = INGRESS_TIMEOUT_SECONDS) -> dict[str, str]:
    """The controller's backends annotation on the anchor Ingress, with the seconds waited so far."""
    if step.need(k8s.read_anchor) is None:
        return {}
    with tqdm(
        total=None,
        desc="waiting for the GKE Ingress controller",
        bar_format="{desc}{postfix}",
        file=sys.stdout,  # progress, not an error
    ) as bar:

        def shown(elapsed: float) -> None:
            bar.set_postfix(elapsed=f"{elapsed:.0f}s")

        return dict(step.need(k8s.wait_for_backends, timeout, shown) or {})
