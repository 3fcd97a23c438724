"""The three patch formats as pure functions."""

from __future__ import annotations

import pytest

from conveyor.sandbox.apiserver.patching import (
    PatchError,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)


def test_merge_patch_merges_objects_deletes_nulls_and_replaces_the_rest() -> None:
    target = {"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2], "f": "x"}
    patch = {"b": {"c": None, "g": 4}, "e": [3], "f": {"now": "object"}, "a": None}
    assert merge_patch(target, patch) == {"b": {"d": 3, "g": 4}, "e": [3], "f": {"now": "object"}}
    assert target["b"] == {"c": 2, "d": 3}  # the input is left alone


def test_json_patch_operations() -> None:
    document = {"spec": {"items": ["a", "c"], "old": 1}}
    patched = json_patch(
        document,
        [
            {"op": "add", "path": "/spec/items/1", "value": "b"},
            {"op": "add", "path": "/spec/items/-", "value": "d"},
            {"op": "replace", "path": "/spec/old", "value": 2},
            {"op": "copy", "from": "/spec/old", "path": "/spec/copied"},
            {"op": "move", "from": "/spec/copied", "path": "/spec/moved"},
            {"op": "remove", "path": "/spec/items/0"},
            {"op": "add", "path": "/metadata~1name", "value": "escaped"},
            {"op": "test", "path": "/spec/old", "value": 2},
        ],
    )
    assert patched == {
        "spec": {"items": ["b", "c", "d"], "old": 2, "moved": 2},
        "metadata/name": "escaped",
    }


@pytest.mark.parametrize(
    "operations, message",
    [
        ([{"op": "test", "path": "/a", "value": 2}], "testing value /a failed"),
        ([{"op": "remove", "path": "/missing"}], "does not exist"),
        ([{"op": "replace", "path": "/b/0", "value": 1}], "out of range"),
        ([{"op": "jump", "path": "/a"}], "unknown JSON patch operation"),
        ({"op": "add"}, "must be an array"),
    ],
)
def test_json_patch_failures_name_the_problem(operations: object, message: str) -> None:
    with pytest.raises(PatchError, match=message):
        json_patch({"a": 1, "b": []}, operations)


def test_strategic_merge_merges_lists_by_their_keys() -> None:
    target = {
        "metadata": {"finalizers": ["a"]},
        "spec": {
            "containers": [{"name": "app", "image": "1", "ports": [{"containerPort": 80}]}],
            "tolerations": [{"key": "x"}],
        },
    }
    patch = {
        "metadata": {"finalizers": ["b"]},
        "spec": {
            "containers": [
                {"name": "app", "ports": [{"containerPort": 81}]},
                {"name": "sidecar", "image": "2"},
            ],
            "tolerations": [{"key": "y"}],
        },
    }
    assert strategic_merge_patch(target, patch) == {
        "metadata": {"finalizers": ["a", "b"]},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "1",
                    "ports": [{"containerPort": 80}, {"containerPort": 81}],
                },
                {"name": "sidecar", "image": "2"},
            ],
            "tolerations": [{"key": "y"}],
        },  # lists without a merge key are replaced
    }


def test_strategic_merge_directives() -> None:
    target = {
        "spec": {
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
            "args": ["x", "y"],
        }
    }
    patch = {
        "spec": {
            "$setElementOrder/env": [{"name": "B"}],
            "env": [{"name": "A", "$patch": "delete"}],
            "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
            "$deleteFromPrimitiveList/args": ["x"],
        }
    }
    assert strategic_merge_patch(target, patch) == {
        "spec": {
            "env": [{"name": "B", "value": "2"}],
            "strategy": {"type": "Recreate"},
            "args": ["y"],
        }
    }
