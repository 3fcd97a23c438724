"""Cron schedules, as Kubernetes CronJobs keep them: the fire times of a five-field cron
expression in an IANA time zone, the next one, and the latest one due since a moment — one run
for however many were missed. Pure; FeatureSet materializations (UTC) and RetrainPolicy
schedules use the same rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import CroniterError, croniter

__all__ = ["MISSED_COUNT_LIMIT", "cron_problem", "due_fire_time", "next_fire_time"]

MISSED_COUNT_LIMIT = 100
"""Missed fire times are counted up to this (CronJob warns at 100 too); one run either way."""


def cron_problem(field: str, cron: str) -> str | None:
    """Why `cron` is not a schedule — not five fields, or no date ever matches it (February
    30th) — naming `field`; None when it is one."""
    if not croniter.is_valid(cron):
        return f"{field}: {cron!r} is not a five-field cron expression"
    try:
        croniter(cron, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterError:
        return f"{field}: {cron!r} matches no date (a day that month does not have)"
    return None


def _fire_times(cron: str, time_zone: str, after: datetime) -> Iterator[datetime]:
    """Fire times strictly after `after`, in UTC. A wall-clock time the autumn change repeats
    fires once (its first pass); one the spring change skips fires at the first instant after
    the gap, as cron does."""
    zone = ZoneInfo(time_zone)
    times = croniter(cron, after.astimezone(zone))
    while True:
        fire = times.get_next(datetime).astimezone(zone)
        if fire.fold == 1 and fire.replace(fold=0).utcoffset() != fire.utcoffset():
            continue  # the second pass of a repeated hour
        yield fire.astimezone(UTC)


def next_fire_time(cron: str, time_zone: str, after: datetime) -> datetime:
    """The schedule's first fire time strictly after `after`."""
    return next(_fire_times(cron, time_zone, after))


def due_fire_time(
    cron: str, time_zone: str, since: datetime, now: datetime
) -> tuple[datetime, int] | None:
    """The latest fire time in (since, now] and how many there were (counted up to
    MISSED_COUNT_LIMIT), or None when none is due."""
    latest, count = None, 0
    for fire in _fire_times(cron, time_zone, since):
        if fire > now:
            break
        latest, count = fire, count + 1
        if count >= MISSED_COUNT_LIMIT:  # years missed: jump to the last fire time before now
            latest = _last_fire_before(cron, time_zone, now, latest)
            break
    return None if latest is None else (latest, count)


def _last_fire_before(cron: str, time_zone: str, now: datetime, floor: datetime) -> datetime:
    zone = ZoneInfo(time_zone)
    # get_prev is strictly before its start: a second later includes a fire time of exactly now.
    start = (now + timedelta(seconds=1)).astimezone(zone)
    fire: datetime = croniter(cron, start).get_prev(datetime)
    return max(fire.astimezone(UTC), floor)
