"""Alertmanager's webhook notifications (version 4) as the tests send them."""

from __future__ import annotations

import json
from typing import Any


def alert(
    labels: dict[str, str], *, status: str = "firing", fingerprint: str = "3f2a9c0d11e4b6a7"
) -> dict[str, Any]:
    """One alert of a notification, with every field Alertmanager sends."""
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": "iris-classifier-v1: input drift PSI 0.61"},
        "startsAt": "2026-12-07T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": fingerprint,
    }


def notification(*alerts: dict[str, Any], version: str = "4") -> bytes:
    """The body Alertmanager posts for a group of alerts."""
    return json.dumps(
        {
            "version": version,
            "groupKey": '{}:{alertname="ConveyorFeatureDrift"}',
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "conveyor-retrain",
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "alerts": list(alerts),
        }
    ).encode()
