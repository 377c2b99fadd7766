"""frontend: one registry of resource kinds; plans and printed commands come from it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from google.cloud import compute_v1

from mtlskit.build import frontend, stack
from mtlskit.build.backend import BackendService
from mtlskit.cloud import ownership
from mtlskit.cloud.clients import Clients, ComputeClients
from mtlskit.config import params as params_mod
from mtlskit.config.params import Params
from mtlskit.core.errors import SchemeMismatch
from tests.conftest import sandbox_params

BS = BackendService("k8s1-x", "", "EXTERNAL", "HTTP", "default/web", "80", "HEALTHY", True, 1.0, [])


def test_registry_is_complete_and_in_dependency_order() -> None:
    assert list(frontend.KINDS) == [
        "Address",
        "SslCertificate",
        "SslPolicy",
        "UrlMap",
        "TargetHttpsProxy",
        "ForwardingRule",
    ]
    compute_attrs = {f.name for f in dataclasses.fields(ComputeClients)}
    for kind in frontend.KINDS.values():
        assert kind.client in compute_attrs, kind.name
        assert kind.insert_request.__name__.startswith("Insert"), kind.name
        assert kind.resource_arg in kind.insert_request.meta.fields, kind.name  # the request takes the body
        assert kind.name_arg + "_resource" == kind.resource_arg
        assert kind.proto is getattr(compute_v1, kind.name), kind.name


def test_every_kind_refers_only_to_kinds_before_it(tmp_path: Path) -> None:
    p = sandbox_params(tmp_path / "state")
    inputs = frontend.Inputs(p, BS, "//networksecurity.googleapis.com/x")
    order = list(frontend.KINDS.values())
    for i, kind in enumerate(order):
        text = str(kind.desired(inputs))
        later = [k.collection for k in order[i:]]
        assert not any(f"/{c}/" in text for c in later), (kind.name, text)


def test_resource_names_come_from_the_params(tmp_path: Path) -> None:
    p = sandbox_params(tmp_path / "state", frontend={"url_map": "my-um", "address": "my-ip"})
    names = frontend.resource_names(p)
    assert names["UrlMap"] == "my-um" and names["Address"] == "my-ip" and len(names) == len(frontend.KINDS)


def test_patchable_kinds_are_the_ones_with_an_update_command() -> None:
    assert {k.name for k in frontend.KINDS.values() if k.patchable} == {
        "SslPolicy",
        "UrlMap",
        "TargetHttpsProxy",
    }


def test_desired_resources_carry_the_ownership_marker(clients_offline: Clients, tmp_path: Path) -> None:
    p = sandbox_params(tmp_path / "state", stack="blue")
    desired = frontend.desired_frontend(clients_offline, p, BS)
    assert set(desired) == set(frontend.KINDS)
    for fields in desired.values():
        assert ownership.owns_compute(fields["description"], "blue")
    assert desired["UrlMap"]["default_service"].endswith("/backendServices/k8s1-x")
    # every desired field exists on the compute_v1 message it is sent as
    for name, fields in desired.items():
        frontend.KINDS[name].proto(name="x", **fields)


def test_scheme_mismatch_is_refused_before_anything_is_built(tmp_path: Path) -> None:
    p = sandbox_params(tmp_path / "state")
    managed = dataclasses.replace(BS, scheme="EXTERNAL_MANAGED")
    with pytest.raises(SchemeMismatch, match="load_balancing_scheme"):
        frontend.check_scheme(p, managed)


def test_update_commands_name_only_patchable_kinds(tmp_path: Path) -> None:
    p = sandbox_params(tmp_path / "state")
    assert frontend.gcloud("UrlMap", "um", p, BS, exists=True).startswith(
        "gcloud compute url-maps set-default-service um --default-service=k8s1-x"
    )
    assert frontend.gcloud("Address", "ip", p, BS, exists=True).startswith(
        "gcloud compute addresses describe ip"
    )


def own_stack(state_dir: Path, unique: str) -> Params:
    """Params whose every resource name is `unique`'s, so e2e tests share the session sandbox safely."""
    names = params_mod.another_stack({"target": "sandbox"}, unique, stack=unique)
    return sandbox_params(state_dir, **{k: v for k, v in names.items() if k != "target"})


@pytest.fixture
def clients_offline() -> Clients:
    none = None
    return Clients("sandbox", "p", None, none, none, none, none, none)  # type: ignore[arg-type]


@pytest.mark.e2e
def test_build_then_replan_is_no_change_and_a_changed_field_is_one_update(
    clients: Clients, state_dir: Path, unique: str
) -> None:
    p = own_stack(state_dir, unique)
    bs = stack.build(clients, p)
    replan = frontend.plan_frontend(clients, p, bs)
    assert {c.action for c in replan} == {"no change"}, [(c.kind, c.action, c.fields) for c in replan]
    stricter = p.model_copy(update={"frontend": p.frontend.model_copy(update={"ssl_profile": "RESTRICTED"})})
    changes = frontend.plan_frontend(clients, stricter, bs)
    assert [(c.kind, c.fields) for c in changes if c.action != "no change"] == [("SslPolicy", ["profile"])]
    frontend.apply_frontend(clients, stricter, changes, bs)
    policy = clients.call(
        clients.compute.ssl_policies.get, project=clients.project, ssl_policy=p.frontend.ssl_policy
    )
    assert policy.profile == "RESTRICTED" and isinstance(policy, compute_v1.SslPolicy)
    assert {c.action for c in frontend.plan_frontend(clients, stricter, bs)} == {"no change"}
