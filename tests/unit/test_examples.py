"""Every example is valid against the CRDs; every resource in the invalid corpus is rejected
with a message that names the field to fix. A corpus file of two documents is an update: the
stored object, then the change that is refused (the CRDs' transition rules)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conveyor.sandbox.apiserver.schema import admit
from tests.conftest import example_files, load_yaml_documents

INVALID = Path(__file__).parent / "invalid"


@pytest.mark.parametrize("path", example_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_example_is_valid(path: Path, schemas: dict[str, dict[str, Any]]) -> None:
    for document in load_yaml_documents(path):
        admitted, errors = admit(schemas[document["kind"]], document)
        assert errors == [], [error.message for error in errors]
        assert _kept(document["spec"], admitted["spec"]), "a field of the example was pruned"


def _kept(written: Any, stored: Any) -> bool:
    """Everything written survives admission (defaults may be added around it)."""
    if isinstance(written, dict):
        return isinstance(stored, dict) and all(
            key in stored and _kept(value, stored[key]) for key, value in written.items()
        )
    if isinstance(written, list):
        return (
            isinstance(stored, list)
            and len(written) == len(stored)
            and all(_kept(a, b) for a, b in zip(written, stored, strict=True))
        )
    return bool(written == stored)


def test_both_examples_have_every_kind_a_person_writes() -> None:
    for example in ("iris", "diabetes"):
        kinds = {
            document["kind"]
            for path in example_files()
            if path.parent.name == example
            for document in load_yaml_documents(path)
        }
        assert kinds == {"FeatureSet", "TrainingPipeline", "RetrainPolicy"}, example


def _expected_field(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: <field>'"
    return first.removeprefix("# expect: ").strip()


@pytest.mark.parametrize("path", sorted(INVALID.glob("*.yaml")), ids=lambda p: p.stem)
def test_invalid_resource_is_rejected_naming_the_field(
    path: Path, schemas: dict[str, dict[str, Any]]
) -> None:
    *stored, document = load_yaml_documents(path)
    schema = schemas[document["kind"]]
    old = None
    if stored:
        old, stored_errors = admit(schema, stored[0])
        assert stored_errors == [], f"the stored object of {path.name} must be valid"
    _, errors = admit(schema, document, old)
    field = _expected_field(path)
    assert errors, f"{path.name} was accepted"
    assert any(error.path == field for error in errors), [error.message for error in errors]
    assert all(error.message.startswith(error.path) for error in errors)
