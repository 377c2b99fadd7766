"""Tables a notebook reads from the live target through its step: the Ingress's events, the DNS
records with the managed certificate's status, and the Gateway's conditions. They go through the step so an API error becomes the
step's verdict, not a traceback."""

from __future__ import annotations

import pandas as pd

from mtlskit.build import frontend, gateway_status, k8s
from mtlskit.core.errors import NotFound
from mtlskit.runner.step import Step
from mtlskit.runner.tables import EVENT_COLUMNS, skipped_frame


def events_frame(step: Step) -> pd.DataFrame:
    """The controller's events for the anchor Ingress (what `kubectl describe ingress` lists)."""
    return pd.DataFrame(k8s.ingress_events(step.clients, step.params), columns=EVENT_COLUMNS)


def dns_frame(step: Step) -> pd.DataFrame:
    """The A records the domains need and the managed certificate's status, which turns ACTIVE only
    once those records point at the address."""
    try:
        status = frontend.frontend_status(step.clients, step.params)
    except NotFound:
        return skipped_frame("the frontend is not built yet (40_frontend with apply=True)")
    return pd.DataFrame(status.dns_records()).assign(certificate=status.certificate_status)


def gateway_conditions_frame(state: gateway_status.GatewayState) -> pd.DataFrame:
    """Each listener's conditions and the Gateway's own, as the controller wrote them (GEP-91 reasons
    such as InvalidCACertificateRef appear here)."""
    rows = gateway_status.listener_rows(state)
    if not rows:
        return skipped_frame(
            "no Gateway status yet" if state.exists else "no Gateway yet (gw20_gateway with apply=True)"
        )
    return pd.DataFrame(rows)
