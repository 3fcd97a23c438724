"""Plan a FeatureSet's materialization from what was observed: pure, so every case is testable.

The snapshot id is content-addressed (definition + source listing + code version), and the Job
is named after it, so a restart, a repeated trigger or a re-run never duplicates work: either the
snapshot's manifest exists (nothing to do), or the Job for that id exists (follow it), or it is
created. A failed attempt is retried with exponential back-off when the program said a retry
may help (`retryable`: storage was down, a partition missing); otherwise it waits until the data
or the definition changes (which changes the id) or someone asks again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import croniter

from ..api.v1alpha1 import FeatureSet, ModelVersion
from ..contracts.invocations import MaterializePhase
from ..contracts.labels import LABEL_PHASE, LABEL_SNAPSHOT, MATERIALIZE_REQUEST
from ..contracts.manifest import SnapshotManifest
from ..resources.conditions import ConditionUpdate, rfc3339
from ..resources.jobs import build_materialize_job
from ..resources.kinds import JOBS
from ..resources.workloads import JobSettings
from .common import Action, Create, Delete, Event, GrantWorkloadAccess, Outcome, Plan, WriteStatus
from .jobs import JobState, JobView
from .leader import leading_version
from .schedules import due_fire_time

__all__ = [
    "FeatureSetWorld",
    "MaterializationPlan",
    "ObservedJob",
    "logs_cutoff",
    "plan_materialization",
]

BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_MAX = timedelta(minutes=30)


@dataclass(frozen=True)
class ObservedJob:
    """A materialize Job as the operator sees it."""

    name: str
    snapshot: str
    phase: str  # all | partition | combine
    state: JobState
    finished_at: datetime | None = None
    reason: str = ""
    message: str = ""
    retryable: bool = True
    """The program's verdict on a failure: whether running it again may succeed."""
    retry_note: str = ""
    """While the Job retries a failed pod: why it failed."""

    @classmethod
    def from_view(cls, job: JobView) -> ObservedJob:
        snapshot, phase = job.labels.get(LABEL_SNAPSHOT, ""), job.labels.get(LABEL_PHASE, "all")
        return cls(
            job.name,
            snapshot,
            phase,
            job.state,
            job.finished_at,
            job.reason,
            job.message,
            job.retryable,
            job.retry_note,
        )


@dataclass(frozen=True)
class FeatureSetWorld:
    """Everything the plan depends on besides the object itself."""

    now: datetime
    snapshot_id: str | None = None
    """The id the current definition and sources give; None when the listing failed or the
    sources match no object."""
    source_objects: int = 0
    source_fingerprint: str | None = None
    listing_error: tuple[str, str] | None = None
    """(reason, message) when the sources could not be listed or the manifest not read."""
    manifest: SnapshotManifest | None = None
    """The manifest of `snapshot_id`, when that snapshot exists."""
    jobs: Sequence[ObservedJob] = ()
    logs_until: datetime | None = None
    """The bound of the prediction logs listed (`logs_cutoff`); None without predictionLogs."""
    versions: Sequence[ModelVersion] = ()
    """The ModelVersions trained on this FeatureSet: the candidates for `status.leader`."""


@dataclass
class MaterializationPlan(Plan):
    create: list[dict[str, Any]] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    workloads: bool = False
    """Jobs run or start: the namespace needs its credentials and workload ServiceAccount."""

    def actions(self) -> list[Action]:
        access: list[Action] = [GrantWorkloadAccess()] if self.workloads else []
        return [
            *(Delete(JOBS, name) for name in self.delete),
            *access,
            *(Create(JOBS, job) for job in self.create),
            WriteStatus(),
        ]


def _snapshot_ref(manifest: SnapshotManifest) -> dict[str, Any]:
    ref = {
        "id": manifest.id,
        "uri": manifest.uri,
        "rows": manifest.rows,
        "createdAt": rfc3339(manifest.created),
        "reportUrl": manifest.report,
    }
    return {key: value for key, value in ref.items() if value is not None}


def _profile_summary(manifest: SnapshotManifest) -> dict[str, Any]:
    summary = dict(manifest.profile_summary)
    summary["rejectedRows"] = manifest.rejected
    allowed = {"columns", "rejectedRows", "nullCells", "maxDriftScore", "driftedColumns"}
    return {key: value for key, value in summary.items() if key in allowed and value is not None}


def _backoff(failures: int) -> timedelta:
    return min(BACKOFF_BASE * (2 ** max(failures - 1, 0)), BACKOFF_MAX)


def logs_cutoff(featureset: FeatureSet, now: datetime) -> datetime | None:
    """Up to when the prediction logs are listed: the present (whole seconds, as status keeps
    it) when a materialization is asked for now or none was yet, else the bound kept in
    status; None without spec.predictionLogs."""
    if featureset.spec.prediction_logs is None:
        return None
    status = featureset.status
    request = (featureset.metadata.get("annotations") or {}).get(MATERIALIZE_REQUEST)
    asked = request and request != status.last_materialize_request
    if asked or status.logs_read_until is None or _schedule_due(featureset, now) is not None:
        return now.astimezone(UTC).replace(microsecond=0)
    return status.logs_read_until


def _schedule_due(featureset: FeatureSet, now: datetime) -> datetime | None:
    """The schedule's latest fire time since the last one honoured (or since the FeatureSet
    was created), when there is one."""
    schedule = featureset.spec.materialization.schedule
    if not schedule or not croniter.is_valid(schedule):
        return None
    created = featureset.metadata.get("creationTimestamp")
    since = featureset.status.last_scheduled_time or (
        datetime.fromisoformat(created) if created else now
    )
    due = due_fire_time(schedule, "UTC", since, now)
    return None if due is None else due[0]


def plan_materialization(
    featureset: FeatureSet, world: FeatureSetWorld, settings: JobSettings
) -> MaterializationPlan:
    status = featureset.status
    fields: dict[str, Any] = _leader_fields(featureset, world.versions)
    events: list[Event] = _leader_events(featureset, fields["leader"])
    retry_now = False

    request = (featureset.metadata.get("annotations") or {}).get(MATERIALIZE_REQUEST)
    if request and request != status.last_materialize_request:
        fields["lastMaterializeRequest"] = request
        events.append(Event("Normal", "MaterializeRequested", f"Requested: {request}"))
        retry_now = True
    due = _schedule_due(featureset, world.now)
    if due is not None:
        fields["lastScheduledTime"] = rfc3339(due)
        events.append(Event("Normal", "Scheduled", "The schedule fired: checking the sources"))
        retry_now = True

    latest = status.latest_snapshot
    if world.listing_error is not None:
        reason, message = world.listing_error
        return MaterializationPlan(_failed(latest is not None, reason, message, fields, events))
    if world.snapshot_id is None:  # the sources match no object (yet)
        uris = ", ".join(source.uri for source in featureset.spec.sources)
        message = f"No object matches {uris}: upload data there, or fix spec.sources[].uri"
        return MaterializationPlan(
            _failed(latest is not None, "SourceNotFound", message, fields, events)
        )
    fields["sourceFingerprint"] = world.source_fingerprint
    if world.logs_until is not None:
        fields["logsReadUntil"] = rfc3339(world.logs_until)

    if world.manifest is not None:
        stale = [job.name for job in world.jobs if job.snapshot != world.snapshot_id]
        return MaterializationPlan(_ready(featureset, world.manifest, fields, events), delete=stale)
    return _follow_jobs(featureset, world, settings, fields, events, retry_now)


def _leader_fields(featureset: FeatureSet, versions: Sequence[ModelVersion]) -> dict[str, Any]:
    leader = leading_version(versions)
    return {"leader": leader.to_wire() if leader is not None else None}


def _leader_events(featureset: FeatureSet, leader: dict[str, Any] | None) -> list[Event]:
    before = featureset.status.leader
    if leader is None or (before is not None and before.version == leader["version"]):
        return []
    return [Event("Normal", "LeaderChanged", f"{leader['version']} leads: {leader['message']}")]


def _ready(
    featureset: FeatureSet,
    manifest: SnapshotManifest,
    fields: dict[str, Any],
    events: list[Event],
) -> Outcome:
    ref = _snapshot_ref(manifest)
    history = [s.to_wire() for s in featureset.status.snapshots if s.id != ref["id"]]
    limit = featureset.spec.snapshot_history_limit
    latest = featureset.status.latest_snapshot
    published = latest is None or latest.id != ref["id"]
    if published:
        events.append(Event("Normal", "Materialized", f"Snapshot {ref['id']}: {ref['rows']} rows"))
    fields.update(
        latestSnapshot=ref,
        snapshots=[ref, *history][:limit],
        profile=_profile_summary(manifest),
        specHash=manifest.spec_hash,
        activeJob=None,
        failures=0,
    )
    return Outcome(
        conditions=[
            ConditionUpdate(
                "Ready", "True", "SnapshotReady", f"Snapshot {ref['id']} has {ref['rows']} rows"
            ),
            ConditionUpdate(
                "Progressing",
                "False",
                "UpToDate",
                "The latest snapshot matches the definition and the sources",
            ),
            ConditionUpdate("Degraded", "False", "UpToDate", ""),
        ],
        fields=fields,
        events=events,
        announced=published,
    )


def _failed(
    has_snapshot: bool, reason: str, message: str, fields: dict[str, Any], events: list[Event]
) -> Outcome:
    """A failure keeps an older snapshot usable (Ready stays True) but says Degraded."""
    conditions = [
        ConditionUpdate("Degraded", "True", reason, message),
        ConditionUpdate("Progressing", "False", reason, message),
    ]
    if has_snapshot:
        conditions.append(
            ConditionUpdate(
                "Ready",
                "True",
                "SnapshotReady",
                f"Serving the previous snapshot; the newest attempt failed: {message}",
            )
        )
    else:
        conditions.append(ConditionUpdate("Ready", "False", reason, message))
    fields["activeJob"] = None
    return Outcome(conditions=conditions, fields=fields, events=events)


def _phases(featureset: FeatureSet) -> list[MaterializePhase]:
    return ["partition", "combine"] if featureset.spec.materialization.parallelism > 1 else ["all"]


def _follow_jobs(
    featureset: FeatureSet,
    world: FeatureSetWorld,
    settings: JobSettings,
    fields: dict[str, Any],
    events: list[Event],
    retry_now: bool,
) -> MaterializationPlan:
    snapshot = world.snapshot_id
    assert snapshot is not None
    by_phase = {job.phase: job for job in world.jobs if job.snapshot == snapshot}
    stale = [job.name for job in world.jobs if job.snapshot != snapshot]
    has_snapshot = featureset.status.latest_snapshot is not None
    for phase in _phases(featureset):
        job = by_phase.get(phase)
        if job is None:
            return _start(featureset, world, settings, phase, fields, events, stale)
        if job.state == "Active":
            fields["activeJob"] = job.name
            return MaterializationPlan(
                _progressing(has_snapshot, job, fields, events), delete=stale, workloads=True
            )
        if job.state == "Failed":
            return _retry_or_wait(
                featureset, world, settings, job, fields, events, retry_now, stale
            )
    # Every phase succeeded but no manifest is visible yet: look again on the next event.
    fields["activeJob"] = None
    return MaterializationPlan(
        Outcome(
            conditions=[
                ConditionUpdate(
                    "Progressing",
                    "True",
                    "Publishing",
                    f"Waiting for the manifest of snapshot {snapshot}",
                )
            ],
            fields=fields,
            events=events,
        ),
        delete=stale,
    )


def _progressing(
    has_snapshot: bool, job: ObservedJob, fields: dict[str, Any], events: list[Event]
) -> Outcome:
    message = f"Job {job.name} is materializing snapshot {job.snapshot}{job.retry_note}"
    conditions = [ConditionUpdate("Progressing", "True", "Materializing", message)]
    if not has_snapshot:
        conditions.append(ConditionUpdate("Ready", "False", "Materializing", message))
    return Outcome(conditions=conditions, fields=fields, events=events)


def _start(
    featureset: FeatureSet,
    world: FeatureSetWorld,
    settings: JobSettings,
    phase: MaterializePhase,
    fields: dict[str, Any],
    events: list[Event],
    stale: list[str],
) -> MaterializationPlan:
    snapshot = world.snapshot_id
    assert snapshot is not None
    job = build_materialize_job(featureset, snapshot, phase, settings, world.logs_until)
    name = job["metadata"]["name"]
    fields["activeJob"] = name
    events.append(
        Event(
            "Normal",
            "MaterializeStarted",
            f"Job {name} materializes snapshot {snapshot} "
            f"from {world.source_objects} source objects",
        )
    )
    outcome = _progressing(
        featureset.status.latest_snapshot is not None,
        ObservedJob(name, snapshot, phase, "Active"),
        fields,
        events,
    )
    outcome.announced = True  # MaterializeStarted says it
    return MaterializationPlan(outcome, create=[job], delete=stale, workloads=True)


def _retry_or_wait(
    featureset: FeatureSet,
    world: FeatureSetWorld,
    settings: JobSettings,
    job: ObservedJob,
    fields: dict[str, Any],
    events: list[Event],
    retry_now: bool,
    stale: list[str],
) -> MaterializationPlan:
    failures = max(featureset.status.failures, 1)
    permanent = not job.retryable
    finished = job.finished_at or world.now
    due = retry_now or (not permanent and world.now >= finished + _backoff(failures))
    message = f"Job {job.name} failed: {job.reason}: {job.message}"
    announced = featureset.status.failures == 0
    if announced:
        events.append(Event("Warning", job.reason or "MaterializeFailed", message))
    if not due:
        fields["failures"] = failures
        if not permanent:
            retry_at = rfc3339(finished + _backoff(failures))
            message += f" (retrying at {retry_at})"
        else:
            message += " (fix the data or the definition, or request a new materialization)"
        has_snapshot = featureset.status.latest_snapshot is not None
        outcome = _failed(has_snapshot, job.reason or "MaterializeFailed", message, fields, events)
        outcome.announced = announced
        outcome.stalled = permanent
        return MaterializationPlan(outcome, delete=stale)
    fields["failures"] = failures + 1
    # The failed Job holds the deterministic name: remove it first, recreate on the next pass.
    outcome = _failed(
        featureset.status.latest_snapshot is not None,
        "Retrying",
        f"Retrying after: {message}",
        fields,
        events,
    )
    outcome.announced = announced
    return MaterializationPlan(outcome, delete=[*stale, job.name])
