"""Alertmanager's webhook notifications: read, refused with the problem named, matched to
policies as Alertmanager's routes match."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from conveyor.api.v1alpha1 import RetrainPolicy
from conveyor.api.v1alpha1.retrainpolicy import AlertMatcher
from conveyor.contracts.labels import ALERT_ANNOTATION_PREFIX
from conveyor.reconcile.alerts import (
    PayloadError,
    alert_annotation,
    matches,
    parse_notification,
    policies_for,
)
from tests.alertmanager import alert, notification


def _alert(status: str = "firing", **labels: str) -> dict[str, Any]:
    return alert({"alertname": "ConveyorFeatureDrift", "namespace": "ml", **labels}, status=status)


_notification = notification


def _policy(name: str, namespace: str = "ml", *matchers: dict[str, str]) -> RetrainPolicy:
    return RetrainPolicy.from_body(
        {
            "apiVersion": "conveyor.dev/v1alpha1",
            "kind": "RetrainPolicy",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"pipeline": "iris", "triggers": {"alert": {"matchers": list(matchers)}}},
        }
    )


def test_a_grouped_notification_is_read_alert_by_alert() -> None:
    alerts = parse_notification(
        _notification(_alert(model="iris"), {**_alert("resolved"), "fingerprint": "00ff"})
    )
    assert [(a.name, a.status, a.fingerprint) for a in alerts] == [
        ("ConveyorFeatureDrift", "firing", "3f2a9c0d11e4b6a7"),
        ("ConveyorFeatureDrift", "resolved", "00ff"),
    ]


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"{not json", "the body is not JSON"),
        (b"[1, 2]", "the body is not a JSON object"),
        (
            _notification(_alert(), version="3"),
            "version '3' is not Alertmanager's webhook version 4",
        ),
        (json.dumps({"version": "4"}).encode(), "alerts: a list is required"),
        (_notification({**_alert(), "status": "pending"}), "alerts[0].status: 'pending'"),
        (_notification({**_alert(), "labels": {"a": 1}}), "alerts[0].labels: an object of strings"),
        (_notification({**_alert(), "fingerprint": "zz"}), "alerts[0].fingerprint: 'zz'"),
        (_notification(_alert(), {**_alert(), "startsAt": None}), "alerts[1].startsAt"),
        (_notification(*[_alert()] * 1001), "1001 alerts, more than 1000"),
    ],
)
def test_a_malformed_notification_names_its_problem(raw: bytes, problem: str) -> None:
    with pytest.raises(PayloadError) as error:
        parse_notification(raw)
    assert problem in str(error.value)


@pytest.mark.parametrize(
    ("operator", "value", "labels", "expected"),
    [
        ("=", "iris", {"model": "iris"}, True),
        ("=", "iris", {"model": "iris-2"}, False),
        ("!=", "iris", {"model": "wine"}, True),
        ("!=", "", {}, False),  # a missing label is the empty string
        ("=~", "iris|wine", {"model": "wine"}, True),
        ("=~", "iris", {"model": "iris-2"}, False),  # anchored
        ("!~", "ir.*", {"model": "wine"}, True),
        ("!~", "ir.*", {"model": "iris"}, False),
    ],
)
def test_matchers_as_alertmanager_routes(
    operator: str, value: str, labels: dict[str, str], expected: bool
) -> None:
    matcher = AlertMatcher(label="model", operator=operator, value=value)  # type: ignore[arg-type]
    assert matches(matcher, labels) is expected


def test_alerts_map_to_policies_by_matchers_or_by_the_conveyor_policy_label() -> None:
    iris = _policy("iris", "ml", {"label": "model", "value": "iris"})
    drift = _policy("any-drift", "ml", {"label": "alertname", "operator": "=~", "value": ".*Drift"})
    named_only = _policy("named-only")
    other = _policy("iris", "other", {"label": "namespace", "value": "other"})
    policies = [iris, drift, named_only, other]
    alert = parse_notification(_notification(_alert(model="iris")))[0]
    assert [p.name for p in policies_for(alert, policies)] == ["iris", "any-drift"]
    labelled = parse_notification(_notification(_alert(conveyor_policy="ml/named-only")))[0]
    assert policies_for(labelled, policies) == [named_only]
    resolved = parse_notification(_notification(_alert("resolved", model="iris")))[0]
    assert policies_for(resolved, policies) == []


def test_the_annotation_carries_the_alert_to_the_policy() -> None:
    alert = parse_notification(_notification(_alert(model="iris")))[0]
    annotation = alert_annotation(alert, datetime(2026, 12, 7, 10, 0, 5, tzinfo=UTC))
    [(key, value)] = annotation.items()
    assert key == f"{ALERT_ANNOTATION_PREFIX}3f2a9c0d11e4b6a7"
    assert json.loads(value) == {
        "alertname": "ConveyorFeatureDrift",
        "labels": {"namespace": "ml", "model": "iris"},
        "startsAt": "2026-12-07T10:00:00Z",
        "receivedAt": "2026-12-07T10:00:05Z",
        "summary": "iris-classifier-v1: input drift PSI 0.61",
    }
