"""Reconcile a RetrainPolicy: evaluate its triggers, guard them, and hand a run request to its
TrainingPipeline — exactly once.

Each evaluation takes the triggers' verdicts (`reconcile.triggers`), passes the firing ones
through the guards (suspend, a request already pending, cooldown, runs per day, an active run,
new data), and records every decision with its figures. A fired trigger becomes
`status.pending` in the same status write that consumes its event (the manual request, the
alert, the fire time); only then is the FeatureSet asked to materialize or the pipeline asked
to run, under the request's id. A restart between the two finds the pending request and asks
again with the same id, which the pipeline honours once: nothing lost, nothing doubled.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from ..api.v1alpha1 import RetrainPolicy
from ..contracts.labels import ALERT_ANNOTATION_PREFIX, MATERIALIZE_REQUEST, POLICY_RUN_REQUEST
from ..resources.conditions import ConditionUpdate, rfc3339
from ..resources.kinds import FEATURESETS, RETRAIN_POLICIES, TRAINING_PIPELINES
from .common import (
    Action,
    Event,
    Invalid,
    Outcome,
    Patch,
    Plan,
    WriteStatus,
    describe_validation_error,
    invalid_spec,
)
from .schedules import cron_problem, next_fire_time
from .triggers import (
    Verdict,
    alert_verdicts,
    drift_verdict,
    manual_verdict,
    performance_verdict,
    schedule_verdict,
)

__all__ = [
    "PolicyPlan",
    "PolicyWorld",
    "new_rows_since_production",
    "parse_retrainpolicy",
    "reconcile_retrainpolicy",
]

DAY = timedelta(days=1)


@dataclass(frozen=True)
class PolicyWorld:
    now: datetime
    pipeline: Mapping[str, Any] | None = None
    """The referenced TrainingPipeline, or None when it does not exist."""
    production: Mapping[str, Any] | None = None
    """The pipeline's Production ModelVersion (its liveMetrics and lineage), when any."""
    featureset: Mapping[str, Any] | None = None
    """The pipeline's FeatureSet, when it exists."""


@dataclass
class PolicyPlan(Plan):
    decisions: list[dict[str, Any]] = field(default_factory=list)
    """The decisions this evaluation made (for the triggers counter)."""
    writes: list[Action] = field(default_factory=list)
    """After the status: ask the FeatureSet or the pipeline, drop consumed alerts."""

    def actions(self) -> list[Action]:
        return [WriteStatus(), *self.writes]


# Parse -----------------------------------------------------------------------------------------


def _schedule_problems(policy: RetrainPolicy) -> list[str]:
    schedule = policy.spec.triggers.schedule
    if schedule is None:
        return []
    problem = cron_problem("spec.triggers.schedule.cron", schedule.cron)
    problems = [problem] if problem else []
    try:
        ZoneInfo(schedule.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(
            f"spec.triggers.schedule.timeZone: {schedule.time_zone!r} is not an IANA time zone"
        )
    return problems


def _matcher_problems(policy: RetrainPolicy) -> list[str]:
    """Every =~ and !~ value compiles, anchored as Alertmanager anchors it (^(?:value)$)."""
    alert = policy.spec.triggers.alert
    if alert is None:
        return []
    problems = []
    for index, matcher in enumerate(alert.matchers):
        if matcher.operator not in ("=~", "!~"):
            continue
        try:
            re.compile(f"^(?:{matcher.value})$")
        except (re.error, OverflowError, RecursionError) as error:  # a{99999999999}
            problems.append(
                f"spec.triggers.alert.matchers[{index}].value: {matcher.value!r} is not a "
                f"regular expression: {error}"
            )
    return problems


def parse_retrainpolicy(body: Mapping[str, Any]) -> RetrainPolicy | Invalid:
    """The policy, or why it cannot trigger anything."""
    try:
        policy = RetrainPolicy.from_body(body)
    except ValidationError as error:
        return Invalid(invalid_spec(describe_validation_error(error)))
    triggers = policy.spec.triggers
    if not any((triggers.schedule, triggers.performance, triggers.drift, triggers.alert)):
        return Invalid(
            invalid_spec("spec.triggers: set at least one of schedule, performance, drift or alert")
        )
    problems = _schedule_problems(policy) + _matcher_problems(policy)
    if problems:
        return Invalid(invalid_spec("; ".join(problems)))
    return policy


# Data ------------------------------------------------------------------------------------------


def new_rows_since_production(world: PolicyWorld) -> tuple[int | None, str]:
    """Rows the FeatureSet's newest snapshot has beyond the Production version's snapshot
    (None: no newer snapshot to train on), and the figures in words."""
    status = (world.featureset or {}).get("status") or {}
    latest = status.get("latestSnapshot") or {}
    if not latest.get("id"):
        return None, "the FeatureSet has no snapshot yet"
    if world.production is None:
        return int(latest.get("rows") or 0), f"no Production version; snapshot {latest['id']}"
    trained = ((world.production.get("spec") or {}).get("lineage") or {}).get("snapshot")
    if trained == latest["id"]:
        return None, f"the newest snapshot {trained} is the one Production was trained on"
    known = {s.get("id"): int(s.get("rows") or 0) for s in status.get("snapshots") or []}
    before = known.get(trained, 0)
    new = int(latest.get("rows") or 0) - before
    return new, f"snapshot {latest['id']} has {new} rows more than {trained} (Production's)"


# Reconcile -------------------------------------------------------------------------------------


class _Evaluation:
    """One evaluation's running state: the status fields it sets and the decisions it makes."""

    def __init__(self, policy: RetrainPolicy, world: PolicyWorld) -> None:
        self.policy, self.world, self.now = policy, world, world.now
        status = policy.status
        self.pending = status.pending.to_wire() if status.pending else None
        self.recent = [t for t in status.recent_runs if world.now - t < DAY]
        self.last_triggered = status.last_triggered_time
        self.states: dict[str, dict[str, Any]] = {
            str(s.trigger): s.to_wire() for s in status.triggers
        }
        self.decisions = [d.to_wire() for d in status.decisions]
        self.alerts = {a.fingerprint: a.to_wire() for a in status.alerts}
        self.plan = PolicyPlan(Outcome(conditions=[], fields={}, events=[]))
        self.fields = self.plan.outcome.fields
        self.fired_now = False

    # Decisions ------------------------------------------------------------------------------

    def decide(self, verdict: Verdict, fired: bool, reason: str, message: str) -> None:
        """Record a decision, its Event, and the trigger's state."""
        state = "Fired" if fired else "Suppressed"
        decision: dict[str, Any] = {
            "time": rfc3339(self.now),
            "trigger": verdict.trigger,
            "fired": fired,
            "reason": reason,
            "message": message,
        }
        if fired and self.pending is not None:
            decision["request"] = self.pending["request"]
        self.decisions.insert(0, decision)
        self.plan.decisions.append(decision)
        self._set_state(verdict.trigger, state, reason, message)
        what = "RetrainTriggered" if fired else "RetrainSuppressed"
        self.plan.outcome.events.append(
            Event("Normal", what, f"{verdict.trigger}: {reason}: {message}")
        )

    def _set_state(self, trigger: str, state: str, reason: str, message: str) -> None:
        old = self.states.get(trigger) or {}
        changed = (old.get("state"), old.get("reason")) != (state, reason)
        self.states[trigger] = {
            "trigger": trigger,
            "state": state,
            "reason": reason,
            "message": message,
            "lastTransitionTime": rfc3339(self.now) if changed else old["lastTransitionTime"],
        }

    def quiet(self, verdict: Verdict) -> None:
        self._set_state(
            verdict.trigger,
            "Waiting" if verdict.waiting else "Quiet",
            verdict.reason,
            verdict.message,
        )

    def repeats_suppression(self, verdict: Verdict, reason: str) -> bool:
        """A condition trigger still suppressed for the same reason: no new decision."""
        old = self.states.get(verdict.trigger) or {}
        return not verdict.consumed and (old.get("state"), old.get("reason")) == (
            "Suppressed",
            reason,
        )

    # Guards ---------------------------------------------------------------------------------

    def guard(self, verdict: Verdict) -> tuple[str, str] | None:
        """Why a firing trigger must not start a run now, or None."""
        spec, now = self.policy.spec, self.now
        if spec.suspend:
            return "Suspended", "spec.suspend is true: decisions are recorded, no run starts"
        if self.pending is not None:
            return "RunPending", (
                f"the {self.pending['trigger']} trigger's request {self.pending['request']} "
                f"is still {self.pending['phase']}"
            )
        if self.last_triggered is not None:
            left = spec.cooldown_seconds - (now - self.last_triggered).total_seconds()
            if left > 0:
                return "Cooldown", (
                    f"a run was requested at {rfc3339(self.last_triggered)}; cooldown "
                    f"{spec.cooldown_seconds} s, {left:.0f} s left"
                )
        if spec.max_runs_per_day is not None and len(self.recent) >= spec.max_runs_per_day:
            return "MaxRunsPerDay", (
                f"{len(self.recent)} runs requested in the last 24 h; spec.maxRunsPerDay is "
                f"{spec.max_runs_per_day}"
            )
        pipeline_status = (self.world.pipeline or {}).get("status") or {}
        active = pipeline_status.get("activeRun")
        if active and spec.concurrency_policy == "Forbid":
            return (
                "RunActive",
                f"run {active} of {spec.pipeline} is active (concurrencyPolicy Forbid)",
            )
        if not spec.refresh_features:
            return self.data_guard()
        return None

    def data_guard(self) -> tuple[str, str] | None:
        minimum = self.policy.spec.min_new_rows
        if minimum == 0:
            return None
        new, figures = new_rows_since_production(self.world)
        if new is None or new < minimum:
            return "NotEnoughNewData", f"{figures}; spec.minNewRows is {minimum}"
        return None

    # Firing ---------------------------------------------------------------------------------

    def fire(self, verdict: Verdict) -> None:
        stamp = f"{self.now:%Y%m%d-%H%M%S}-{verdict.trigger}"
        phase = "Materializing" if self.policy.spec.refresh_features else "Requested"
        self.pending = {
            "request": f"{self.policy.name[:40]}-{stamp}",
            "trigger": verdict.trigger,
            "reason": f"RetrainPolicy {self.policy.name}: {verdict.message}",
            "phase": phase,
            "since": rfc3339(self.now),
        }
        self.last_triggered = self.now
        self.recent.append(self.now)
        self.fired_now = True
        self.decide(verdict, True, "Fired", verdict.message)
        if verdict.trigger == "alert" and verdict.key:
            self.alerts[verdict.key] = {
                "fingerprint": verdict.key,
                "alertname": verdict.name,
                "lastFiredTime": rfc3339(self.now),
            }

    def evaluate(self, verdict: Verdict) -> None:
        if not verdict.fires:
            if verdict.consumed:  # a duplicate alert, a missed deadline: recorded, no run
                self.decide(verdict, False, verdict.reason, verdict.message)
            else:
                self.quiet(verdict)
            return
        blocked = self.guard(verdict)
        if blocked is None:
            self.fire(verdict)
        elif not self.repeats_suppression(verdict, blocked[0]):
            self.decide(verdict, False, blocked[0], f"{verdict.message}; {blocked[1]}")

    # The pending request --------------------------------------------------------------------

    def advance_pending(self) -> None:
        """Carry a pending request on: features refreshed → data checked → run requested →
        the pipeline started it (or refused it)."""
        pending = self.pending
        if pending is None:
            return
        if pending["phase"] == "Materializing":
            if not self._materialized(pending["request"]):
                self.plan.writes.append(
                    Patch(
                        FEATURESETS,
                        self._featureset_name(),
                        {"metadata": {"annotations": {MATERIALIZE_REQUEST: pending["request"]}}},
                    )
                )
                return
            blocked = self.data_guard()
            if blocked is not None:
                self._abandon(pending, *blocked)
                return
            pending["phase"] = "Requested"
        pipeline_status = (self.world.pipeline or {}).get("status") or {}
        if pipeline_status.get("lastPolicyRequest") != pending["request"]:
            request = {
                "id": pending["request"],
                "trigger": pending["trigger"],
                "reason": pending["reason"],
                "policy": self.policy.name,
            }
            annotations = {POLICY_RUN_REQUEST: json.dumps(request, sort_keys=True)}
            self.plan.writes.append(
                Patch(
                    TRAINING_PIPELINES,
                    self.policy.spec.pipeline,
                    {"metadata": {"annotations": annotations}},
                )
            )
            return
        run = _run_of(pipeline_status, pending["request"])
        for decision in self.decisions:
            if decision.get("request") == pending["request"]:
                decision["run"] = run or "NotStarted"
        if run is None:
            self.plan.outcome.events.append(
                Event(
                    "Warning",
                    "RetrainNotStarted",
                    f"{self.policy.spec.pipeline} did not start a run for request "
                    f"{pending['request']} (its concurrencyPolicy kept the active run)",
                )
            )
        self.pending = None

    def _materialized(self, request: str) -> bool:
        status = (self.world.featureset or {}).get("status") or {}
        return status.get("lastMaterializeRequest") == request and not status.get("activeJob")

    def _featureset_name(self) -> str:
        return str(((self.world.pipeline or {}).get("spec") or {}).get("featureSet", ""))

    def _abandon(self, pending: dict[str, Any], reason: str, message: str) -> None:
        self.pending = None
        verdict = Verdict(pending["trigger"], True, reason, pending["reason"])
        self.decide(verdict, False, reason, f"{pending['reason']}; features refreshed, {message}")

    # Result ---------------------------------------------------------------------------------

    def finish(self, verdicts: list[Verdict], checked: bool) -> PolicyPlan:
        policy, fields = self.policy, self.fields
        limit = policy.spec.decision_history_limit
        fields.update(
            pending=self.pending,
            recentRuns=[rfc3339(t) for t in self.recent],
            lastTriggeredTime=rfc3339(self.last_triggered) if self.last_triggered else None,
            triggers=[self.states[k] for k in sorted(self.states)],
            decisions=self.decisions[:limit],
            alerts=sorted(self.alerts.values(), key=lambda a: a["lastFiredTime"], reverse=True)[
                :50
            ],
        )
        keys = {"manual": "lastManualRequest", "schedule": "lastScheduledTime"}
        scores = {"performance": "lastPerformance", "drift": "lastDriftScore"}
        for verdict in verdicts:
            if verdict.trigger in keys:
                fields[keys[verdict.trigger]] = verdict.key
            if checked and verdict.trigger in scores:
                fields[scores[verdict.trigger]] = verdict.score
        if checked:
            fields["lastCheckTime"] = rfc3339(self.now)
        schedule = policy.spec.triggers.schedule
        if schedule is not None:
            upcoming = next_fire_time(schedule.cron, schedule.time_zone, self.now)
            fields["nextScheduledTime"] = rfc3339(upcoming)
        consumed = {
            f"{ALERT_ANNOTATION_PREFIX}{v.key}": None for v in verdicts if v.trigger == "alert"
        }
        if consumed:  # after the status that records them
            self.plan.writes.append(
                Patch(RETRAIN_POLICIES, policy.name, {"metadata": {"annotations": consumed}})
            )
        self.plan.outcome.conditions = [self._ready()]
        return self.plan

    def _ready(self) -> ConditionUpdate:
        triggers = self.policy.spec.triggers
        declared = [
            name
            for name in ("schedule", "performance", "drift", "alert")
            if getattr(triggers, name)
        ]
        what = (
            f'Retrains "{self.policy.spec.pipeline}" on {", ".join(declared)} and manual requests'
        )
        if self.policy.spec.suspend:
            return ConditionUpdate(
                "Ready", "True", "Suspended", f"{what}; suspended: no run starts"
            )
        if self.pending is not None:
            return ConditionUpdate(
                "Ready",
                "True",
                "RunRequested",
                f"{what}; {self.pending['trigger']} request {self.pending['request']} is "
                f"{self.pending['phase']}",
            )
        return ConditionUpdate("Ready", "True", "Watching", what)


def _run_of(pipeline_status: Mapping[str, Any], request: str) -> str | None:
    marker = f"[request {request}]"
    for run in pipeline_status.get("runs") or []:
        if marker in ((run.get("trigger") or {}).get("reason") or ""):
            return str(run.get("id"))
    return None


def _verdicts(policy: RetrainPolicy, world: PolicyWorld) -> tuple[list[Verdict], bool]:
    """Every trigger's verdict now, events first; and whether performance and drift were
    checked (they are, every checkIntervalSeconds)."""
    triggers = policy.spec.triggers
    verdicts = [v for v in (manual_verdict(policy),) if v is not None]
    verdicts += alert_verdicts(policy, world.now, world.production)
    scheduled = schedule_verdict(policy, world.now)
    if scheduled is not None:
        verdicts.append(scheduled)
    last_check = policy.status.last_check_time
    due = last_check is None or (world.now - last_check).total_seconds() >= (
        policy.spec.check_interval_seconds
    )
    if not due or not (triggers.performance or triggers.drift):
        return verdicts, False
    production = world.production
    if production is None:
        no_version = f"{policy.spec.pipeline} has no Production version serving"
        for name in ("performance", "drift"):
            if getattr(triggers, name):
                verdicts.append(Verdict(name, False, "NoProduction", no_version, waiting=True))
        return verdicts, True
    version = str(production["metadata"]["name"])
    live = (production.get("status") or {}).get("liveMetrics")
    if triggers.performance is not None:
        metric = ((world.pipeline or {}).get("spec") or {}).get("metric")
        verdicts.append(performance_verdict(triggers.performance, live, metric, version))
    if triggers.drift is not None:
        verdicts.append(drift_verdict(triggers.drift, live, version))
    return verdicts, True


def reconcile_retrainpolicy(policy: RetrainPolicy, world: PolicyWorld) -> PolicyPlan:
    if world.pipeline is None:
        return PolicyPlan(
            invalid_spec(
                f'TrainingPipeline "{policy.spec.pipeline}" not found in namespace '
                f'"{policy.namespace}": create it, or fix spec.pipeline',
                reason="PipelineNotFound",
                stalled=False,  # Git may apply the pipeline after the policy
            )
        )
    evaluation = _Evaluation(policy, world)
    evaluation.advance_pending()
    verdicts, checked = _verdicts(policy, world)
    for verdict in verdicts:
        evaluation.evaluate(verdict)
    if evaluation.fired_now:  # ask at once: the status write comes first all the same
        evaluation.advance_pending()
    return evaluation.finish(verdicts, checked)
