"""plan: a plan row per resource, decided from desired vs current; only what differs is a change."""

from __future__ import annotations

from mtlskit.build import plan


def test_missing_resource_is_created() -> None:
    c = plan.decide("UrlMap", "um", {"a": 1}, None, "gcloud create")
    assert (c.action, c.gcloud, c.fields) == ("create", "gcloud create", [])


def test_equal_resource_is_no_change_and_prints_no_command() -> None:
    c = plan.decide("UrlMap", "um", {"a": 1}, {"a": 1, "extra": 2}, "gcloud update")
    assert (c.action, c.gcloud) == ("no change", "")


def test_differing_field_is_an_update_naming_its_path() -> None:
    c = plan.decide("S", "n", {"spec": {"port": 80, "name": "x"}}, {"spec": {"port": 81, "name": "x"}}, "cmd")
    assert (c.action, c.fields, c.gcloud) == ("update", ["spec.port"], "cmd")


def test_explicit_diff_overrides_the_generic_comparison() -> None:
    assert plan.decide("K", "n", {"a": 1}, {"a": 2}, "cmd", diff=[]).action == "no change"
    assert plan.decide("K", "n", {"a": 1}, {"a": 1}, "cmd", diff=["a"]).action == "update"


def test_changed_fields_ignores_extra_keys_but_sees_missing_ones() -> None:
    assert plan.changed_fields({"a": {"b": 1}}, {"a": {"b": 1, "c": 2}, "d": 3}) == []
    assert plan.changed_fields({"a": {"b": 1}}, {}) == ["a"]
    assert plan.changed_fields({"a": {"b": 1}}, {"a": {}}) == ["a.b"]
    assert plan.changed_fields([1, 2], [2, 1]) == ["(value)"]


def test_summary_counts_and_table_rows() -> None:
    changes = [
        plan.decide("A", "a", 1, None, "c"),
        plan.decide("B", "b", 1, 2, "u", diff=["x"]),
        plan.decide("C", "c", 1, 1, "", diff=[]),
    ]
    assert plan.summary(changes) == "1 to create, 1 to update, 1 unchanged"
    assert plan.summary(changes[2:]) == "no change: all 1 resources already match the params"
    assert plan.table(changes)[1] == {
        "resource": "B",
        "name": "b",
        "action": "update",
        "changed fields": "x",
        "equivalent command": "u",
    }
