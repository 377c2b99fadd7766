"""ownership: one marker per API family, predicates that read it, and the one apply gate."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtlskit.cloud import ownership
from mtlskit.core.errors import ApplyRefused, KitError
from tests.conftest import sandbox_params


def test_compute_marker_round_trips_and_tolerates_a_note_after_it() -> None:
    desc = ownership.compute_description("blue")
    assert ownership.owns_compute(desc, "blue")
    assert ownership.owns_compute(desc + " edited by hand", "blue")
    assert not ownership.owns_compute(desc, "green")
    assert not ownership.owns_compute("created by hand", "blue")
    assert not ownership.owns_compute(None, "blue")


@pytest.mark.parametrize(
    ("mark", "owns"),
    [(ownership.cloud_labels, ownership.owns_labelled), (ownership.kube_labels, ownership.owns_kube)],
)
def test_label_markers_need_both_labels_of_the_same_stack(mark, owns) -> None:  # type: ignore[no-untyped-def]
    labels = mark("blue")
    assert owns({**labels, "team": "x"}, "blue")
    assert not owns(labels, "green")
    for key in labels:
        assert not owns({k: v for k, v in labels.items() if k != key}, "blue")
    assert not owns(None, "blue")


def test_kube_and_cloud_markers_are_not_interchangeable() -> None:
    assert not ownership.owns_kube(ownership.cloud_labels("s"), "s")
    assert not ownership.owns_labelled(ownership.kube_labels("s"), "s")


def _gcp(tmp_path: Path, **overrides: object) -> object:
    params = sandbox_params(tmp_path / "state")
    return params.model_copy(update={"target": "gcp", "project": "prod-1", **overrides})


def test_planning_is_always_allowed(tmp_path: Path) -> None:
    ownership.may_apply(_gcp(tmp_path), False)  # type: ignore[arg-type]


def test_sandbox_apply_needs_only_the_callers_switch(tmp_path: Path) -> None:
    ownership.may_apply(sandbox_params(tmp_path / "state"), True)


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({}, "apply: true and confirm_project: prod-1"),
        ({"apply": True}, "need confirm_project: prod-1 in"),
        ({"confirm_project": "prod-1"}, "need apply: true in"),
        ({"apply": True, "confirm_project": "prod-2"}, "need confirm_project: prod-1 in"),
    ],
)
def test_gcp_apply_refused_until_params_allow_it(
    tmp_path: Path, overrides: dict[str, object], says: str
) -> None:
    with pytest.raises(ApplyRefused, match=says) as err:
        ownership.may_apply(_gcp(tmp_path, **overrides), True)  # type: ignore[arg-type]
    assert isinstance(err.value, KitError)


def test_gcp_apply_allowed_when_confirmed(tmp_path: Path) -> None:
    ownership.may_apply(_gcp(tmp_path, apply=True, confirm_project="prod-1"), True)  # type: ignore[arg-type]
