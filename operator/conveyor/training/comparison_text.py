"""The comparison as the text table `conveyor compare` prints: aligned columns, the best value of
each marked with `*`, then what the marks mean, the order, the warnings and the notes."""

from __future__ import annotations

from .comparison import Column, Comparison
from .comparison_format import describe_holdout

__all__ = ["render_text"]

_BEST = "*"


def render_text(comparison: Comparison) -> str:
    """The comparison as an aligned table: the best value of each column marked with `*`,
    then what the marks mean, the order, the warnings and the notes."""
    columns = list(comparison.columns)
    problems = any(row.candidate.problem for row in comparison.rows)
    header = [_cell(column.heading, column, best=False) for column in columns]
    lines = [header + (["PROBLEM"] if problems else [])]
    for row in comparison.rows:
        cells = [_cell(row.text(c), c, best=c.name in row.best) for c in columns]
        lines.append(cells + ([row.candidate.problem or ""] if problems else []))
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    right = [column.numeric for column in columns] + [False] * problems
    table = [
        "  ".join(
            cell.rjust(width) if numeric else cell.ljust(width)
            for cell, width, numeric in zip(line, widths, right, strict=True)
        ).rstrip()
        for line in lines
    ]
    return "\n".join([*table, "", *_legend(comparison)]) + "\n"


def _cell(text: str, column: Column, *, best: bool) -> str:
    """Numbers keep a place for the best marker, so their digits line up."""
    marker = _BEST if best else ""
    return text + marker if not column.numeric else text + (marker or " ")


def _legend(comparison: Comparison) -> list[str]:
    sort = comparison.column(comparison.sort)
    order = "best first" if sort.higher_is_better is not None else "ascending"
    lines = [
        f"{_BEST} best in its column"
        + (
            " (holdout metrics: only among versions judged on the same holdout)"
            if comparison.rows and not comparison.same_holdout
            else ""
        )
        + f"; sorted by {comparison.sort}, {order}.",
    ]
    if comparison.metric:
        lines.append(
            f"BASELINE: a dummy model's {comparison.metric} on the same holdout; LIVE: the live "
            "metric on labelled requests (n: how many)."
        )
    if comparison.same_holdout and comparison.holdouts:
        fingerprint = next(iter(comparison.holdouts))
        assert fingerprint is not None
        details = comparison.holdout_details.get(fingerprint, {})
        lines.append(
            f"Every version was judged on the same {describe_holdout(fingerprint, details)}."
        )
    lines += [f"warning: {warning}" for warning in comparison.warnings]
    lines += [f"note: {note}" for note in comparison.notes]
    return lines
