"""The verdict of each RetrainPolicy trigger on its own: pure functions of the policy, the
clock and the figures the operator's monitor wrote on the Production ModelVersion.

A verdict says whether the trigger's condition holds, and why, with the figures. Whether a run
then starts is the guards' business (`reconcile.retrainpolicy`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from ..api.v1alpha1 import RetrainPolicy
from ..api.v1alpha1.retrainpolicy import DriftTrigger, PerformanceTrigger
from ..contracts.labels import ALERT_ANNOTATION_PREFIX, RETRAIN_REQUEST
from ..resources.conditions import rfc3339
from .canary import live_score
from .livequality import live_metric_name
from .schedules import MISSED_COUNT_LIMIT, due_fire_time

__all__ = [
    "Verdict",
    "alert_verdicts",
    "drift_verdict",
    "manual_verdict",
    "performance_verdict",
    "schedule_verdict",
]


@dataclass(frozen=True)
class Verdict:
    """One trigger's verdict. `fires`: its condition holds now. `consumed`: an event (a
    request, an alert, a fire time) that this evaluation uses up, run or not; `key` names it."""

    trigger: str
    fires: bool
    reason: str
    message: str
    key: str | None = None
    consumed: bool = False
    waiting: bool = False
    """Not judged: too few samples, or no figures yet."""
    score: float | None = None
    """The metric, or the largest drift score of a watched feature."""
    name: str = ""
    """The alert's name."""


# Manual ----------------------------------------------------------------------------------------


def manual_verdict(policy: RetrainPolicy) -> Verdict | None:
    """A new conveyor.dev/retrain-requested value on the policy, or None."""
    request = (policy.metadata.get("annotations") or {}).get(RETRAIN_REQUEST)
    if not request or request == policy.status.last_manual_request:
        return None
    return Verdict("manual", True, "Requested", f"Requested: {request}", key=request, consumed=True)


# Alerts ----------------------------------------------------------------------------------------


def alert_verdicts(
    policy: RetrainPolicy, now: datetime, production: Mapping[str, Any] | None = None
) -> list[Verdict]:
    """One verdict per alert the webhook left on the policy, oldest first: a repeat of an
    alert that started a run within its repeat interval is a duplicate, and an alert about a
    version of the Production model that no longer serves (its `model` and `version` labels,
    as the monitor's gauges carry them) is stale: the monitor keeps reporting a replaced
    version while its logs are in the window."""
    trigger = policy.spec.triggers.alert
    repeat = timedelta(seconds=trigger.repeat_interval_seconds if trigger else 0)
    fired = {seen.fingerprint: seen.last_fired_time for seen in policy.status.alerts}
    verdicts = []
    for fingerprint, notice in _alert_notices(policy):
        name = str(notice.get("alertname") or "?")
        summary = str(notice.get("summary") or "")
        what = f"alert {name} (fingerprint {fingerprint}) firing since {notice.get('startsAt')}"
        if summary:
            what += f": {summary}"
        last = fired.get(fingerprint)
        stale = _stale_version(notice, production)
        if trigger is None:
            verdict = Verdict(
                "alert", False, "NoAlertTrigger", f"{what}; spec.triggers.alert is not set"
            )
        elif last is not None and now - last < repeat:
            verdict = Verdict(
                "alert",
                False,
                "DuplicateAlert",
                f"{what}; it started a run at {rfc3339(last)}, within its repeat interval "
                f"({trigger.repeat_interval_seconds} s)",
            )
        elif stale is not None:
            verdict = Verdict("alert", False, "NotProduction", f"{what}; {stale}")
        else:
            verdict = Verdict("alert", True, "AlertFiring", what)
        verdicts.append(replace(verdict, key=fingerprint, consumed=True, name=name))
    return verdicts


def _stale_version(notice: Mapping[str, Any], production: Mapping[str, Any] | None) -> str | None:
    """Why the alert is about a version that no longer serves, or None."""
    raw = notice.get("labels")
    labels: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
    spec = (production or {}).get("spec") or {}
    if not spec or "version" not in labels or labels.get("model") != spec.get("model"):
        return None
    if str(labels["version"]) == str(spec.get("version")):
        return None
    name = (production or {}).get("metadata", {}).get("name", "")
    return f"version {labels['version']} of {labels['model']} no longer serves ({name} does)"


def _alert_notices(policy: RetrainPolicy) -> list[tuple[str, dict[str, Any]]]:
    notices = []
    for key, value in (policy.metadata.get("annotations") or {}).items():
        if not key.startswith(ALERT_ANNOTATION_PREFIX):
            continue
        try:
            notice = json.loads(value)
        except ValueError:
            notice = {}
        # Anyone who may annotate the policy may write here: only an object is a notice.
        notice = notice if isinstance(notice, dict) else {}
        notices.append((key.removeprefix(ALERT_ANNOTATION_PREFIX), notice))
    return sorted(notices, key=lambda item: str(item[1].get("receivedAt", "")))


# Schedule --------------------------------------------------------------------------------------


def _created(timestamp: Any) -> datetime | None:
    """metadata.creationTimestamp, or None when it is not an RFC 3339 time."""
    try:
        return datetime.fromisoformat(str(timestamp)) if timestamp else None
    except ValueError:
        return None


def schedule_verdict(policy: RetrainPolicy, now: datetime) -> Verdict | None:
    """CronJob's semantics: the latest missed fire time runs once however many were missed,
    unless it is older than startingDeadlineSeconds; None when no fire time is due."""
    schedule = policy.spec.triggers.schedule
    if schedule is None:
        return None
    created = policy.metadata.get("creationTimestamp")
    since = policy.status.last_scheduled_time or _created(created) or now
    due = due_fire_time(schedule.cron, schedule.time_zone, since, now)
    if due is None:
        return None
    fire, count = due
    missed = "" if count == 1 else f" ({_missed(count)} fire times were due; one run for all)"
    what = f"schedule {schedule.cron!r} ({schedule.time_zone}) fire time {rfc3339(fire)}{missed}"
    deadline = schedule.starting_deadline_seconds
    late = (now - fire).total_seconds()
    if deadline is not None and late > deadline:
        return Verdict(
            "schedule",
            False,
            "MissedDeadline",
            f"{what} is {late:.0f} s late, past startingDeadlineSeconds ({deadline}): skipped",
            key=rfc3339(fire),
            consumed=True,
        )
    return Verdict("schedule", True, "ScheduleDue", what, key=rfc3339(fire), consumed=True)


def _missed(count: int) -> str:
    return f"{count}+" if count >= MISSED_COUNT_LIMIT else str(count)


# Performance and drift -------------------------------------------------------------------------


def performance_verdict(
    trigger: PerformanceTrigger,
    live_metrics: Mapping[str, Any] | None,
    pipeline_metric: str | None,
    version: str,
) -> Verdict:
    """The Production version's live metric against the threshold, once enough predictions
    have their ground truth."""
    preferred = trigger.metric or pipeline_metric
    score = live_score(live_metrics, preferred or "")
    if score is None:
        return Verdict(
            "performance",
            False,
            "NoLiveMetrics",
            f"{version} has no live metrics yet",
            waiting=True,
        )
    metrics = (live_metrics or {}).get("metrics") or {}
    name = live_metric_name(metrics, preferred)
    if trigger.metric is not None and name != trigger.metric:
        return Verdict(
            "performance",
            False,
            "MetricNotLive",
            f"{trigger.metric} is not computed live for {version} (live: "
            f"{', '.join(sorted(metrics))}): fix spec.triggers.performance.metric",
            waiting=True,
        )
    figures = (
        f"{version} live {name} {score.score:.4g} on {score.labelled_samples} labelled "
        f"predictions; threshold {trigger.threshold:g}"
    )
    if score.labelled_samples < trigger.min_samples:
        return Verdict(
            "performance",
            False,
            "NotEnoughSamples",
            f"{figures}; waiting for {trigger.min_samples} labelled predictions",
            waiting=True,
            score=score.score,
        )
    worse = (
        score.score < trigger.threshold
        if score.higher_is_better
        else score.score > trigger.threshold
    )
    if not math.isfinite(score.score) or not worse:
        return Verdict("performance", False, "WithinThreshold", figures, score=score.score)
    return Verdict("performance", True, "BelowThreshold", figures, score=score.score)


_SCORE_ORDER = {"psi": ("psi",), "ks": ("ks", "cramersV"), "chi2": ("cramersV", "ks")}


def drift_verdict(
    trigger: DriftTrigger, live_metrics: Mapping[str, Any] | None, version: str
) -> Verdict:
    """The watched features' drift scores against the threshold; fires when the drifted
    share reaches minDriftedShare."""
    drift: Mapping[str, Mapping[str, Any]] = (live_metrics or {}).get("drift") or {}
    predictions = int((live_metrics or {}).get("predictions") or 0)
    if not drift:
        return Verdict(
            "drift", False, "NoLiveMetrics", f"{version} has no drift figures yet", waiting=True
        )
    if predictions < trigger.min_samples:
        return Verdict(
            "drift",
            False,
            "NotEnoughSamples",
            f"{version} has {predictions} logged predictions in the window; waiting for "
            f"{trigger.min_samples}",
            waiting=True,
        )
    watched = trigger.features or sorted(drift)
    scores = {name: _drift_score(drift.get(name) or {}, trigger.method) for name in watched}
    judged = {name: score for name, score in scores.items() if score is not None}
    unknown = sorted(set(watched) - set(judged))
    drifted = sorted(
        (name for name, score in judged.items() if score > trigger.threshold),
        key=lambda name: -judged[name],
    )
    share = len(drifted) / len(watched)
    top = max(judged.values(), default=None)
    listed = ", ".join(f"{name} {judged[name]:.3g}" for name in drifted[:5])
    message = (
        f"{version}: {trigger.method} over {trigger.threshold:g} on {len(drifted)} of "
        f"{len(watched)} watched features ({share:.0%}, needs {trigger.min_drifted_share:.0%})"
        f" over {predictions} predictions"
    )
    if listed:
        message += f": {listed}"
    if unknown:
        message += f"; no figures for {', '.join(unknown)}"
    if drifted and share >= trigger.min_drifted_share:
        return Verdict("drift", True, "Drifted", message, score=top)
    return Verdict("drift", False, "NoDrift", message, score=top)


def _drift_score(scores: Mapping[str, Any], method: str) -> float | None:
    """The feature's score under `method`, or the other effect size when the method does not
    apply to its kind (KS is numeric only, Cramer's V categorical only)."""
    for key in _SCORE_ORDER[method]:
        value = scores.get(key)
        if isinstance(value, int | float) and math.isfinite(value):
            return float(value)
    return None
