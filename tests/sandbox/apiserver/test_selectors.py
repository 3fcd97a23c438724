"""Label and field selectors as pure functions."""

from __future__ import annotations

import pytest

from conveyor.sandbox.apiserver.errors import ApiError
from conveyor.sandbox.apiserver.selectors import parse_field_selector, parse_label_selector

POD = {
    "metadata": {"name": "p", "namespace": "ml", "labels": {"app": "train", "tier": "gpu"}},
    "status": {"phase": "Running"},
    "spec": {"hostNetwork": False},
}


@pytest.mark.parametrize(
    "selector, matches",
    [
        ("", True),
        ("app=train", True),
        ("app==train", True),
        ("app!=train", False),
        ("app!=serve", True),
        ("tier in (gpu, cpu)", True),
        ("tier notin (gpu)", False),
        ("tier in (cpu)", False),
        ("app", True),
        ("!app", False),
        ("missing", False),
        ("!missing", True),
        ("app=train,tier in (gpu),!missing", True),
        ("app=train,tier=cpu", False),
        ("missing!=x", True),  # an absent label is not equal to anything
    ],
)
def test_label_selectors(selector: str, matches: bool) -> None:
    assert parse_label_selector(selector).matches(POD) is matches


@pytest.mark.parametrize(
    "selector, matches",
    [
        ("metadata.name=p", True),
        ("metadata.namespace==ml", True),
        ("metadata.name!=p", False),
        ("status.phase=Running", True),
        ("status.phase=Pending", False),
        ("spec.hostNetwork=false", True),
        ("spec.nodeName=", True),
        ("metadata.name=p,status.phase!=Failed", True),
    ],
)
def test_field_selectors(selector: str, matches: bool) -> None:
    assert parse_field_selector(selector).matches(POD) is matches


@pytest.mark.parametrize(
    "parse, selector",
    [
        (parse_label_selector, "app in gpu"),
        (parse_label_selector, "=x"),
        (parse_field_selector, "justaname"),
    ],
)
def test_malformed_selectors_are_400(parse: object, selector: str) -> None:
    with pytest.raises(ApiError) as raised:
        parse(selector)  # type: ignore[operator]
    assert raised.value.code == 400
