"""Rejected rows: counted per broken rule, sampled, checked against maxRejectRatio.

A row is rejected when it is a malformed CSV row or JSON line, when conform() finds it breaks the
schema (both while reading), or when a transform gives it a non-finite result (pass 2, see
features/transforms.py). All of them count against `spec.validation.maxRejectRatio`, over the
rows read. Past the limit the run fails with TooManyRejects, whose message lists each distinct
rule broken with its count of rows and points at the sample kept in storage (rejects.jsonl,
which a failed run keeps while it removes everything else it wrote).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from ...features.transforms import TransformRejects
from .errors import SourceNotFound, TooManyRejects

__all__ = ["TRANSFORMS_ORIGIN", "RejectTally", "check_rejects"]

TRANSFORMS_ORIGIN = "spec.transforms"
"""The `source` of a sampled row a transform rejected (it was read and conformed already)."""
_RULES_LISTED = 5
_RULE_CHARS = 160


@dataclass
class RejectTally:
    """Rejected rows across the run: a count, the rows per broken rule with the first offending
    value of each, and the first `limit` rows with their reasons."""

    limit: int
    rejected: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    """Rows per broken rule ("x: above max 5"); a row breaking two rules counts under both."""
    examples: dict[str, str] = field(default_factory=dict)
    """The first offending value seen for each rule about a value."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(
        self,
        count: int,
        samples: Sequence[dict[str, Any]],
        reasons: Mapping[str, int],
        examples: Mapping[str, str] | None = None,
    ) -> None:
        with self._lock:
            self.rejected += count
            room = self.limit - len(self.samples)
            if room > 0:
                self.samples.extend(samples[:room])
            for rule, rows in reasons.items():
                self.reasons[rule] = self.reasons.get(rule, 0) + rows
            for rule, value in (examples or {}).items():
                self.examples.setdefault(rule, value)

    def add_transform_rejects(self, batch: pa.RecordBatch, rejects: TransformRejects) -> None:
        """The rows of `batch` (conformed) that the transforms rejected."""
        sampled = rejects.rows[: len(rejects.reasons)]
        samples = [
            {"source": TRANSFORMS_ORIGIN, "row": batch.slice(row, 1).to_pylist()[0], "reason": why}
            for row, why in zip(sampled, rejects.reasons, strict=True)
        ]
        self.add(rejects.count, samples, rejects.rules, rejects.examples)

    @property
    def room(self) -> int:
        return max(0, self.limit - len(self.samples))

    def by_reason(self) -> list[dict[str, Any]]:
        """Each distinct rule broken, the most broken first: what the profile records."""
        ranked = sorted(self.reasons.items(), key=lambda item: (-item[1], item[0]))
        return [
            {"reason": rule, "rows": rows, "example": self.examples.get(rule)}
            for rule, rows in ranked
        ]

    def describe(self, most: int = _RULES_LISTED) -> str:
        """The distinct rules broken, the most broken first, each with its rows and a value."""
        entries = []
        for entry in self.by_reason()[:most]:
            rows = entry["rows"]
            example = f", e.g. {_shorten(entry['example'], 40)}" if entry["example"] else ""
            plural = "s" if rows != 1 else ""
            rule = _shorten(entry["reason"], _RULE_CHARS)
            entries.append(f"{rule} ({rows} row{plural}{example})")
        others = len(self.reasons) - most
        return "; ".join(entries) + (f"; and {others} other reasons" if others > 0 else "")


def check_rejects(
    tally: RejectTally, total: int, limit: float, *, objects: int, rejects_uri: str
) -> None:
    """Fail when more than `limit` of the `total` rows read were rejected, or all of them.

    `rejects_uri` is where the failed run keeps its sample; the message points there.
    """
    if total == 0:
        raise SourceNotFound(
            f"The sources matched {objects} object(s) but they hold no data rows; "
            "upload data, or fix spec.sources."
        )
    ratio = tally.rejected / total
    if ratio > limit or tally.rejected == total:
        raise TooManyRejects(
            f"{tally.rejected} of {total} rows ({ratio:.2%}) were rejected, more than "
            f"spec.validation.maxRejectRatio {limit:.2%}. By reason: {tally.describe()}. "
            f"The first {len(tally.samples)} rejected rows, with their reasons: {rejects_uri}. "
            "Fix the source data, spec.schema.columns or spec.transforms, or raise "
            "maxRejectRatio."
        )


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
