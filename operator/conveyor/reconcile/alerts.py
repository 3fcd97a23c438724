"""Alertmanager's webhook notifications (version 4), read and matched to RetrainPolicies.

Pure: the webhook handler (`handlers/webhook.py`) authenticates, reads the policies and writes
what this module decides — for each firing alert, the policies it triggers, as an annotation
on each (`alert_annotation`), which the policy's reconcile consumes exactly once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..api.v1alpha1 import RetrainPolicy
from ..api.v1alpha1.retrainpolicy import AlertMatcher
from ..contracts.labels import ALERT_ANNOTATION_PREFIX
from ..resources.conditions import rfc3339

__all__ = [
    "POLICY_LABEL",
    "Alert",
    "PayloadError",
    "alert_annotation",
    "matches",
    "parse_notification",
    "policies_for",
]

POLICY_LABEL = "conveyor_policy"
"""An alert label naming its policy: "<namespace>/<name>"."""
FINGERPRINT = re.compile(r"^[0-9a-f]{1,32}$")
MAX_ALERTS = 1000


class PayloadError(ValueError):
    """A notification this endpoint cannot take; the message names the problem."""


@dataclass(frozen=True)
class Alert:
    status: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: str
    fingerprint: str

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")


def parse_notification(raw: bytes) -> list[Alert]:
    """The alerts of one notification, or PayloadError saying what is wrong with it."""
    try:
        body = json.loads(raw)
    except ValueError as error:
        raise PayloadError(f"the body is not JSON: {error}") from None
    except RecursionError:  # [[[[... a megabyte deep: json's parser recurses once per level
        raise PayloadError("the body nests too deeply to be a notification") from None
    if not isinstance(body, dict):
        raise PayloadError("the body is not a JSON object")
    if body.get("version") != "4":
        raise PayloadError(
            f"version {body.get('version')!r} is not Alertmanager's webhook version 4"
        )
    alerts = body.get("alerts")
    if not isinstance(alerts, list):
        raise PayloadError("alerts: a list is required")
    if len(alerts) > MAX_ALERTS:
        raise PayloadError(f"alerts: {len(alerts)} alerts, more than {MAX_ALERTS}")
    return [_alert(index, item) for index, item in enumerate(alerts)]


def _alert(index: int, item: Any) -> Alert:
    where = f"alerts[{index}]"
    if not isinstance(item, dict):
        raise PayloadError(f"{where}: an object is required")
    status = item.get("status")
    if status not in ("firing", "resolved"):
        raise PayloadError(f"{where}.status: {status!r} is neither firing nor resolved")
    labels, annotations = item.get("labels"), item.get("annotations") or {}
    for name, value in (("labels", labels), ("annotations", annotations)):
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise PayloadError(f"{where}.{name}: an object of strings is required")
    fingerprint = item.get("fingerprint")
    if not isinstance(fingerprint, str) or not FINGERPRINT.match(fingerprint):
        raise PayloadError(f"{where}.fingerprint: {fingerprint!r} is not a hex fingerprint")
    starts_at = item.get("startsAt")
    if not isinstance(starts_at, str):
        raise PayloadError(f"{where}.startsAt: a time is required")
    return Alert(status, labels, annotations, starts_at, fingerprint)  # type: ignore[arg-type]


def matches(matcher: AlertMatcher, labels: Mapping[str, str]) -> bool:
    """Alertmanager's semantics: a missing label is the empty string; regexes are anchored."""
    value = labels.get(matcher.label, "")
    if matcher.operator == "=":
        return value == matcher.value
    if matcher.operator == "!=":
        return value != matcher.value
    found = re.fullmatch(f"(?:{matcher.value})", value) is not None
    return found if matcher.operator == "=~" else not found


def policies_for(alert: Alert, policies: Iterable[RetrainPolicy]) -> list[RetrainPolicy]:
    """The policies a firing alert triggers: those its conveyor_policy label names, else those
    with an alert trigger whose matchers all match (an empty list matches nothing)."""
    if alert.status != "firing":
        return []
    with_alerts = [p for p in policies if p.spec.triggers.alert is not None]
    named = alert.labels.get(POLICY_LABEL)
    if named:
        return [p for p in with_alerts if f"{p.namespace}/{p.name}" == named]
    return [
        p
        for p in with_alerts
        if p.spec.triggers.alert is not None
        and p.spec.triggers.alert.matchers
        and all(matches(m, alert.labels) for m in p.spec.triggers.alert.matchers)
    ]


def alert_annotation(alert: Alert, received: datetime) -> dict[str, str]:
    """The annotation that hands `alert` to a policy's reconcile."""
    notice = {
        "alertname": alert.name,
        "labels": {
            k: alert.labels[k] for k in ("namespace", "model", "version") if k in alert.labels
        },
        "startsAt": alert.starts_at,
        "receivedAt": rfc3339(received),
        "summary": alert.annotations.get("summary", "")[:500],
    }
    return {f"{ALERT_ANNOTATION_PREFIX}{alert.fingerprint}": json.dumps(notice, sort_keys=True)}
