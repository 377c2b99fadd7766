"""k8s: manifests carry the kit's labels and the anchor's hardening; plans and applies through the API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mtlskit.build import k8s
from mtlskit.cloud import ownership
from mtlskit.cloud.clients import Clients
from mtlskit.core.errors import IngressNotReady
from tests.conftest import sandbox_call, sandbox_params
from tests.test_frontend import own_stack
from tests.test_runbook import mutating_calls


def test_manifests_are_labelled_as_the_stacks_and_point_at_each_other(tmp_path: Path) -> None:
    p = sandbox_params(tmp_path / "state", stack="blue")
    m = k8s.manifests(p)
    assert list(m) == ["Service", "BackendConfig", "Ingress"]
    for obj in m.values():
        assert ownership.owns_kube(obj["metadata"]["labels"], "blue"), obj["kind"]
    service_annotations = m["Service"]["metadata"]["annotations"]
    assert json.loads(service_annotations["cloud.google.com/neg"]) == {"ingress": True}
    assert json.loads(service_annotations["cloud.google.com/backend-config"]) == {
        "default": p.kubernetes.backend_config
    }
    backend = m["Ingress"]["spec"]["defaultBackend"]["service"]
    assert backend == {"name": p.kubernetes.service, "port": {"number": p.kubernetes.service_port}}


def test_anchor_is_hardened_so_it_has_no_frontend_of_its_own(tmp_path: Path) -> None:
    ingress = k8s.manifests(sandbox_params(tmp_path / "state"))["Ingress"]
    annotations = ingress["metadata"]["annotations"]
    assert annotations["kubernetes.io/ingress.allow-http"] == "false"
    assert annotations["kubernetes.io/ingress.class"] == "gce"
    assert "tls" not in ingress["spec"]


def test_backends_of_reads_the_controllers_annotation_and_tolerates_garbage() -> None:
    def ing(value: str | None) -> dict[str, object]:
        return {"metadata": {"annotations": {} if value is None else {k8s.BACKENDS_ANNOTATION: value}}}

    assert k8s.backends_of(ing('{"k8s1-a": "HEALTHY"}')) == {"k8s1-a": "HEALTHY"}
    assert k8s.backends_of(ing("not json")) == {}
    assert k8s.backends_of(ing('["a list"]')) == {}
    assert k8s.backends_of(ing(None)) == {} and k8s.backends_of(None) == {}


def test_anchor_exposure_finds_forwarding_rules_and_addresses() -> None:
    ingress = {
        "metadata": {
            "annotations": {"ingress.kubernetes.io/https-forwarding-rule": "k8s2-fs-x", "other": "y"}
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}, {}]}},
    }
    assert k8s.anchor_exposure(ingress) == (
        ["ingress.kubernetes.io/https-forwarding-rule=k8s2-fs-x"],
        ["203.0.113.7"],
    )
    assert k8s.anchor_exposure({"metadata": {}}) == ([], [])


def test_kubectl_target_names_namespace_and_only_the_given_cluster_flags(tmp_path: Path) -> None:
    p = sandbox_params(tmp_path / "state", kubernetes={"namespace": "team-a"})
    assert k8s.kubectl_target(p) == "-n team-a"
    assert k8s.kubectl_target(p, namespaced=False) == ""


@pytest.mark.e2e
def test_plan_apply_replan_sends_nothing_the_second_time(
    clients: Clients, state_dir: Path, unique: str
) -> None:
    p = own_stack(state_dir, unique)
    first = k8s.plan_ingress(clients, p)
    assert {c.kind: c.action for c in first} == {
        "Service": "create",
        "BackendConfig": "create",
        "Ingress": "create",
    }
    k8s.apply_ingress(clients, p, first)
    sandbox_call(clients, "counters", "DELETE")
    again = k8s.plan_ingress(clients, p)
    k8s.apply_ingress(clients, p, again)
    assert {c.action for c in again} == {"no change"}
    assert mutating_calls(sandbox_call(clients, "counters")["counts"]) == {}
    assert k8s.wait_for_backends(clients, p, timeout=30)


@pytest.mark.e2e
def test_a_label_changed_by_hand_is_planned_back_as_an_update(
    clients: Clients, state_dir: Path, unique: str
) -> None:
    p = own_stack(state_dir, unique)
    k8s.apply_ingress(clients, p, k8s.plan_ingress(clients, p))
    k8s.kube_call(clients, "patch", "Service", p, {"metadata": {"labels": {"mtlskit/stack": "other"}}})
    changes = {c.kind: c for c in k8s.plan_ingress(clients, p)}
    assert changes["Service"].action == "update" and changes["Service"].fields == [
        "metadata.labels.mtlskit/stack"
    ]
    assert changes["Ingress"].action == "no change"


@pytest.mark.e2e
def test_missing_anchor_is_a_prerequisite_naming_the_notebook(
    clients: Clients, state_dir: Path, unique: str
) -> None:
    with pytest.raises(IngressNotReady, match="10_ingress"):
        k8s.read_anchor(clients, own_stack(state_dir, unique))
