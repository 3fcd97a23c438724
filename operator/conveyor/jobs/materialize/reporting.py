"""The report and the rejects sample, as a materialize run writes them beside the snapshot.

Drawing the raw columns takes most of the report's time, so it runs beside pass 2 when the raw
profile was complete after reading (`draw_columns`); the page is assembled once the features are
profiled and the rejects counted (`render`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ...features.profile import Profile, ProfileBuilder
from .snapshot import json_bytes

__all__ = ["draw_columns", "rejects_jsonl", "render"]

logger = logging.getLogger(__name__)


def draw_columns(
    builder: ProfileBuilder, previous: Profile | None, snapshot_id: str
) -> tuple[Profile, str]:
    """The raw profile (drift against `previous`) and its columns' report sections."""
    # Imported here: matplotlib takes a while to import.
    from ...features.report import render_column_sections

    started = time.perf_counter()
    profile = builder.finish(previous=previous, snapshot_id=snapshot_id)
    drawn = render_column_sections(profile, previous)
    logger.info("Raw profile and its plots done in %.1f s", time.perf_counter() - started)
    return profile, drawn


def render(
    profile: Profile,
    previous: Profile | None,
    drawn: str,
    *,
    title: str,
    samples: Sequence[dict[str, Any]],
    created: datetime,
) -> str:
    """report.html, the raw columns as `draw_columns` drew them."""
    from ...features.report import render_report

    return render_report(
        profile,
        previous=previous,
        title=title,
        snapshot_id=profile.created_from or "",
        reject_samples=samples,
        created_at=created,
        drawn_columns=drawn,
    )


def rejects_jsonl(samples: Sequence[dict[str, Any]]) -> bytes:
    """rejects.jsonl: one sampled rejected row per line, with its source and reason."""
    return b"".join(json_bytes(sample, indent=None) + b"\n" for sample in samples)
