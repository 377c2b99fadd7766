"""Cloud Logging emulation, written and read with google-cloud-logging over its HTTP path."""

from __future__ import annotations

import datetime as dt

import pytest
from google.api_core import exceptions as gexc
from google.cloud import logging as gl
from google.cloud.logging import Resource

from mtlskit.cloud.clients import Clients
from tests.conftest import PROJECT, sandbox_call

LB_TYPE = "type.googleapis.com/google.cloud.loadbalancing.type.LoadBalancerLogEntry"


def _write(clients: Clients, fr: str, details: list[str]) -> None:
    logger = clients.logging.logger("requests")
    for i, d in enumerate(details):
        logger.log_struct(
            {"@type": LB_TYPE, "statusDetails": d},
            resource=Resource(
                type="http_load_balancer",
                labels={"forwarding_rule_name": fr, "project_id": PROJECT, "zone": "global"},
            ),
            http_request={"requestMethod": "GET", "status": 0 if d.startswith("client_cert") else 200},
            timestamp=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=len(details) - i),
        )


def test_entries_list_filters_like_logs_explorer(clients: Clients, unique: str) -> None:
    _write(
        clients,
        unique,
        ["response_sent_by_backend", "client_cert_not_provided", "client_cert_validation_failed"],
    )
    _write(clients, f"{unique}-other", ["client_cert_not_provided"])
    # The @type clause also drops the diagnostic entry the logging client writes on first use.
    base = (
        f'resource.type="http_load_balancer" AND resource.labels.forwarding_rule_name="{unique}" '
        f'AND jsonPayload.@type="{LB_TYPE}"'
    )
    all_entries = list(clients.logging.list_entries(filter_=base))
    assert len(all_entries) == 3
    assert all(isinstance(e, gl.StructEntry) for e in all_entries)
    certs = list(clients.logging.list_entries(filter_=base + ' AND jsonPayload.statusDetails=~"client_cert"'))
    assert sorted(e.payload["statusDetails"] for e in certs) == [
        "client_cert_not_provided",
        "client_cert_validation_failed",
    ]
    exact = list(
        clients.logging.list_entries(
            filter_=base + ' AND jsonPayload.statusDetails="client_cert_not_provided"'
        )
    )
    assert len(exact) == 1 and exact[0].http_request["status"] == 0
    newest = list(clients.logging.list_entries(filter_=base, order_by=gl.DESCENDING, max_results=1))
    assert newest[0].payload["statusDetails"] == "client_cert_validation_failed"
    since = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)).isoformat()
    assert list(clients.logging.list_entries(filter_=base + f' AND timestamp>="{since}"')) == []


def test_entries_list_pages(clients: Clients, unique: str) -> None:
    _write(clients, unique, ["response_sent_by_backend"] * 5)
    f = f'resource.labels.forwarding_rule_name="{unique}" AND jsonPayload.@type="{LB_TYPE}"'
    sandbox_call(clients, "counters", "DELETE")
    entries = list(clients.logging.list_entries(filter_=f, page_size=2))
    assert len(entries) == 5
    assert sandbox_call(clients, "counters")["counts"]["logging.entries.list"] == 3


def test_unsupported_filter_is_an_error_not_a_match_all(clients: Clients) -> None:
    with pytest.raises(gexc.BadRequest, match="Unsupported filter"):
        list(
            clients.logging.list_entries(
                filter_='jsonPayload.statusDetails="a" OR jsonPayload.statusDetails="b"'
            )
        )
