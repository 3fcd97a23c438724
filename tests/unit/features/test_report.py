"""The HTML data report and the text table of `conveyor features describe`."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser

import numpy as np
import pyarrow as pa
import pytest

from conveyor.features.profile import Profile, ProfileBuilder
from conveyor.features.report import render_profile_table, render_report

# Elements HTML defines as empty: they have no closing tag.
VOID_ELEMENTS = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr"}


class StructureChecker(HTMLParser):
    """Checks that every element is closed in order, and collects each section's tags."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.errors: list[str] = []
        self.sections: list[list[str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "section":
            self.sections.append([])
        if self.open and "section" in self.open and self.sections:
            self.sections[-1].append(tag)
        if tag not in VOID_ELEMENTS:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.open[-1] if self.open else None}>")
            return
        self.open.pop()


def check_structure(page: str) -> StructureChecker:
    checker = StructureChecker()
    checker.feed(page)
    checker.close()
    assert checker.errors == []
    assert checker.open == []
    return checker


def snapshot(shift: float, seed: int, previous: Profile | None = None) -> Profile:
    rng = np.random.default_rng(seed)
    rows = 3_000
    builder = ProfileBuilder(target="species", categorical=["species", "<script>"])
    builder.add(
        pa.table(
            {
                "petal_length": rng.normal(4 + shift, 1, rows),
                "sepal_width": rng.normal(3, 0.4, rows),
                "<script>": rng.choice(["<b>bold</b>", "a&b"], rows),
                "price $USD$": rng.lognormal(1, 0.5, rows),
                "species": rng.choice(["setosa", "versicolor", "virginica"], rows),
            }
        )
    )
    return builder.finish(previous=previous, snapshot_id=f"sha256-{seed}")


@pytest.fixture(scope="module")
def profiles() -> tuple[Profile, Profile]:
    previous = snapshot(0.0, seed=1)
    return previous, snapshot(1.0, seed=2, previous=previous)


def render(profiles: tuple[Profile, Profile]) -> str:
    previous, current = profiles
    return render_report(
        current,
        previous=previous,
        title="iris <features>",
        snapshot_id="sha256-2",
        rejected=2,
        reject_samples=[
            {"row": 17, "reason": "petal_length < 0", "value": "<img src=x onerror=alert(1)>"},
            {"row": 99, "reason": "species not in categories"},
        ],
        created_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
    )


def test_the_report_is_well_formed_html_with_a_plot_per_numeric_column(profiles) -> None:
    page = render(profiles)
    checker = check_structure(page)

    assert page.startswith("<!DOCTYPE html>")
    column_plots = [tags.count("svg") for tags in checker.sections]
    # sections in column order: petal_length, sepal_width, <script>, price, species
    assert column_plots == [1, 1, 1, 1, 1]
    assert "sha256-2" in page
    assert "2026-03-01T12:00:00+00:00" in page


def test_the_report_escapes_names_and_values_from_the_data(profiles) -> None:
    page = render(profiles)

    assert "<script" not in page
    assert "&lt;script&gt;" in page
    assert "<b>bold" not in page
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "iris &lt;features&gt;" in page
    assert "price $USD$" in page  # a dollar sign is text, not a formula


def test_the_report_overlays_the_previous_snapshot_and_marks_drift(profiles) -> None:
    _, current = profiles
    page = render(profiles)
    drifted = current.columns["petal_length"].drift_score
    stable = current.columns["sepal_width"].drift_score

    assert drifted > 0.2 > stable
    assert page.count("class=drift-high") == len(current.summary()["driftedColumns"])
    petal_section = page.split("<h3>petal_length</h3>")[1].split("</section>")[0]
    assert "class=drift-high" in petal_section
    assert "previous" in petal_section  # the overlaid histogram's legend
    no_previous = render_report(current, previous=None, title="t", snapshot_id="s")
    check_structure(no_previous)
    assert "previous" not in no_previous.split("<h3>petal_length</h3>")[1].split("</section>")[0]


def test_the_report_shows_rejects_target_and_correlations(profiles) -> None:
    page = render(profiles)

    assert "<h2>Target: species</h2>" in page
    assert "<h2>Correlations with the target</h2>" in page
    assert re.search(r"<p>2 rows broke the schema\.</p>", page)
    assert "species not in categories" in page


def test_the_same_profile_renders_the_same_page(profiles) -> None:
    assert render(profiles) == render(profiles)


def test_the_text_table_lines_up(profiles) -> None:
    _, current = profiles
    table = render_profile_table(current)
    lines = table.splitlines()
    header = lines[0]
    starts = [match.start() for match in re.finditer(r"\S+", header)]

    assert header.split() == [
        "NAME", "KIND", "COUNT", "NULLS", "MEAN/TOP", "STD", "MIN", "MAX", "DRIFT",
    ]  # fmt: skip
    assert [line.split("  ")[0].strip() for line in lines[1:]] == list(current.columns)
    for line in lines[1:]:
        for start in starts[1:]:
            assert line[start - 1] == " " and line[start] != " ", (line, start)
    petal = next(line for line in lines if line.startswith("petal_length"))
    assert f"{current.columns['petal_length'].mean:.4g}" in petal
    species = next(line for line in lines if line.startswith("species"))
    assert "categorical" in species
