"""The HTML data report and the text table of `conveyor features describe`."""

from __future__ import annotations

import dataclasses
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
    reasons = [
        {"reason": "petal_length: below min 0", "rows": 1, "example": "-1.0"},
        {"reason": "species: not one of the categories", "rows": 1, "example": "'tulip'"},
    ]
    return render_report(
        dataclasses.replace(current, rejected=2, reject_reasons=reasons),
        previous=previous,
        title="iris <features>",
        snapshot_id="sha256-2",
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
    assert "<th>Created</th><td>2026-03-01T12:00:00Z</td>" in page  # as status says createdAt
    assert "not recorded" not in page


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
    assert re.search(r"<p>2 rows broke the schema or gave a non-finite feature\.</p>", page)
    assert "species not in categories" in page
    assert "<td>petal_length: below min 0</td><td class=number>1</td><td>-1.0</td>" in page


def test_the_same_profile_renders_the_same_page(profiles) -> None:
    assert render(profiles) == render(profiles)


def test_the_text_table_lines_up(profiles) -> None:
    _, current = profiles
    table = render_profile_table(current)
    lines = table.splitlines()
    header = lines[0]
    starts = [match.start() for match in re.finditer(r"\S+", header)]

    assert header.split() == [
        "NAME", "KIND", "ROLE", "COUNT", "NULLS", "MEAN/TOP", "STD", "MIN", "MAX", "DRIFT",
    ]  # fmt: skip
    assert [line.split("  ")[0].strip() for line in lines[1:]] == list(current.columns)
    for line in lines[1:]:
        for start in starts[1:]:
            assert line[start - 1] == " " and line[start] != " ", (line, start)
    petal = next(line for line in lines if line.startswith("petal_length"))
    assert f"{current.columns['petal_length'].mean:.4g}" in petal
    species = next(line for line in lines if line.startswith("species"))
    assert "categorical" in species


def keyed(shift: float, seed: int, previous: Profile | None = None) -> Profile:
    """Rows of new entities each time, with a profile of the model's inputs after transforms."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, 1001) + seed * 10_000
    raw = pa.table({"flower_id": ids, "length": rng.normal(4 + shift, 1, 1000)})
    builder = ProfileBuilder(target=None, entity_key="flower_id")
    features = ProfileBuilder(target=None, include_target=False, seed=1)
    builder.add(raw)
    features.add(pa.table({"length_scaled": rng.normal(shift, 1, 1000)}))
    return builder.finish(previous=previous, snapshot_id=f"s{seed}", features=features)


def test_the_report_shows_the_model_inputs_and_scores_no_drift_for_keys() -> None:
    previous = keyed(0.0, seed=1)
    current = keyed(1.0, seed=2, previous=previous)

    page = render_report(current, previous=previous, title="t", snapshot_id="s2")

    check_structure(page)
    key_section = page.split("<h3>flower_id</h3>")[1].split("</section>")[0]
    assert "<th>role</th><td>entity key</td>" in key_section
    assert "not scored: the entity key names rows" in key_section
    inputs = page.split("<h2>Model inputs after the transforms</h2>")[1]
    scaled = inputs.split("<h3>length_scaled</h3>")[1].split("</section>")[0]
    assert "class=drift-high" in scaled and "previous" in scaled
    assert page.count("class=drift-high") == 2  # length, length_scaled; never the key
    table = render_profile_table(current)
    assert "MODEL INPUTS AFTER THE TRANSFORMS" in table
    assert re.search(r"^flower_id +numeric +entityKey .* -$", table, re.MULTILINE)
    assert re.search(r"^length_scaled +numeric +feature ", table, re.MULTILINE)
