"""The live-quality monitor: a timer on each model's Production version reads the model's new
prediction and feedback logs, then writes status.liveMetrics and the Prometheus gauges.

Why inside the operator, and what it watches: see `reconcile/livequality.py`. The state of each
model's monitor (keys read, summaries, labels waiting to be joined) lives in this process; a
restarted operator reads the window's logs again, once.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

import kopf

from ..api.v1alpha1 import GROUP, VERSION
from ..clients.s3 import StorageError, split_uri
from ..contracts.labels import LABEL_MODEL
from ..contracts.layouts import PredictionLogLayout
from ..features.livequality import LiveLimits, ModelMonitor, VersionReference, VersionReport
from ..metrics import (
    FEATURE_DRIFT,
    LABELLED_SAMPLES,
    LIVE_SCORE,
    MONITOR_LOG_OBJECTS,
    MONITOR_UNREADABLE_OBJECTS,
)
from ..reconcile.livequality import Watched, gauge_drift, live_metrics_status, watched_versions
from ..resources.kinds import MODEL_VERSIONS
from .context import Context

__all__ = ["LiveQuality", "register_monitor"]

logger = logging.getLogger(__name__)


def register_monitor(registry: kopf.OperatorRegistry, context: Context) -> None:
    live = LiveQuality(context)
    interval = context.settings.monitor_interval_seconds

    @kopf.timer(
        GROUP,
        VERSION,
        MODEL_VERSIONS.plural,
        registry=registry,
        id="live-quality",
        interval=interval,
        initial_delay=interval,
        when=lambda spec, status, **_: "Production" in (spec.get("stage"), status.get("stage")),
    )
    def live_quality(namespace: str, spec: kopf.Spec, **_: Any) -> None:
        live.refresh(namespace, str(spec["model"]))


class LiveQuality:
    """One `ModelMonitor` per model; `refresh()` observes, computes and publishes."""

    def __init__(self, context: Context) -> None:
        self.context = context
        settings = context.settings
        self.limits = LiveLimits(window_seconds=settings.monitor_window_seconds)
        self.monitors: dict[tuple[str, str], ModelMonitor] = {}
        self.published: dict[tuple[str, str], set[tuple[str, ...]]] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()

    def refresh(self, namespace: str, model: str) -> list[VersionReport]:
        """One refresh of the model's monitor; skipped while another runs for it."""
        with self._lock:
            lock = self._locks.setdefault((namespace, model), threading.Lock())
        if not lock.acquire(blocking=False):
            return []
        try:
            return self._refresh(namespace, model)
        finally:
            lock.release()

    def _refresh(self, namespace: str, model: str) -> list[VersionReport]:
        context = self.context
        items = context.kube.list(MODEL_VERSIONS, namespace, selector=f"{LABEL_MODEL}={model}")
        now = context.clock()
        watched = watched_versions(items, now, self.limits.window_seconds)
        try:
            monitor = self._monitor(namespace, model)
            references = self._references(watched)
            reports, counts = monitor.refresh(references, now)
        except StorageError as error:
            logger.warning("Live quality of model %s/%s not refreshed: %s", namespace, model, error)
            return []
        for kind, read in counts.objects.items():
            MONITOR_LOG_OBJECTS.labels(namespace, model, kind).inc(read)
            MONITOR_UNREADABLE_OBJECTS.labels(namespace, model, kind).inc(counts.unreadable[kind])
        totals = monitor.totals
        for kind in counts.objects:
            totals.objects[kind] += counts.objects[kind]
            totals.unreadable[kind] += counts.unreadable[kind]
        self._publish(namespace, model, reports)
        bodies = {int(item["spec"]["version"]): item for item in items}
        for report in reports:
            block = live_metrics_status(
                report,
                read=sum(totals.objects.values()),
                unreadable=sum(totals.unreadable.values()),
            )
            self._write(namespace, bodies[report.version], block)
        return reports

    def _monitor(self, namespace: str, model: str) -> ModelMonitor:
        key = (namespace, model)
        if key not in self.monitors:
            storage = self.context.storage()
            bucket = self.context.settings.s3_bucket
            layout = PredictionLogLayout(namespace, model)
            self.monitors[key] = ModelMonitor(storage, bucket, layout, self.limits)
        return self.monitors[key]

    def _references(self, watched: list[Watched]) -> dict[int, VersionReference]:
        references = {}
        for version in watched:
            card = self._card(version.card_uri) if version.card_uri else None
            references[version.version] = VersionReference.from_card(
                version.version, version.task, card or {}
            )
        return references

    def _card(self, uri: str) -> dict[str, Any] | None:
        """A model card, kept once read (a card is never rewritten); None when unreadable."""

        def read() -> dict[str, Any] | None:
            bucket, key = split_uri(uri)
            try:
                card = json.loads(self.context.storage().get_bytes(bucket, key))
            except (StorageError, ValueError) as error:
                logger.warning("Model card %s unreadable; drift is not computed: %s", uri, error)
                return None
            return card if isinstance(card, dict) else None

        return self.context.remember(("model-card", uri), read)

    def _publish(self, namespace: str, model: str, reports: list[VersionReport]) -> None:
        """Set the gauges of these reports; remove the series of versions no longer reported."""
        series: set[tuple[str, ...]] = set()
        for report in reports:
            labels = (namespace, model, str(report.version))
            LABELLED_SAMPLES.labels(*labels).set(report.labelled)
            series.add(("labelled", *labels))
            for metric, value in report.metrics.items():
                LIVE_SCORE.labels(*labels, metric).set(value)
                series.add(("score", *labels, metric))
            for (feature, method), value in gauge_drift(report).items():
                FEATURE_DRIFT.labels(*labels, feature, method).set(value)
                series.add(("drift", *labels, feature, method))
        gauges = {"labelled": LABELLED_SAMPLES, "score": LIVE_SCORE, "drift": FEATURE_DRIFT}
        for stale in self.published.get((namespace, model), set()) - series:
            gauges[stale[0]].remove(*stale[1:])
        self.published[(namespace, model)] = series

    def _write(self, namespace: str, body: Mapping[str, Any], block: dict[str, Any]) -> None:
        # A merge patch merges maps: columns no longer reported are removed explicitly.
        current = ((body.get("status") or {}).get("liveMetrics") or {}).get("drift") or {}
        block["drift"] = {**dict.fromkeys(current), **block.get("drift", {})}
        name = body["metadata"]["name"]
        patch = {"status": {"liveMetrics": block}}
        self.context.kube.patch(MODEL_VERSIONS, namespace, name, patch, status=True)
