"""Shared test fixtures: paths, and loaders for the examples and CRDs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
CRDS = ROOT / "crds"


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def crd_schemas() -> dict[str, dict[str, Any]]:
    """Kind → the openAPIV3Schema of the committed CRD."""
    schemas = {}
    for path in sorted(CRDS.glob("*.yaml")):
        for crd in load_yaml_documents(path):
            kind = crd["spec"]["names"]["kind"]
            schemas[kind] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schemas


def example_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*/*.yaml"))


@pytest.fixture(scope="session")
def schemas() -> dict[str, dict[str, Any]]:
    return crd_schemas()
