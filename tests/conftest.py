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


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After a run of every integration module: fail when manifests/rbac/ grants the operator
    something none of its calls used (least privilege, checked from the sandboxes' audit)."""
    from tests.apiaudit import SESSION_CALLS, operator_grants, unused

    if exitstatus != 0 or not _ran_every_integration_module(session):
        return
    spare = unused(SESSION_CALLS, operator_grants())
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"least privilege: {len(SESSION_CALLS)} operator calls checked against "
            f"manifests/rbac/; grants never used: {spare or 'none'}"
        )
    if spare:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _ran_every_integration_module(session: pytest.Session) -> bool:
    options = session.config.option
    if getattr(options, "keyword", "") or getattr(options, "markexpr", ""):
        return False
    ran = {Path(item.path) for item in session.items}
    modules = set((ROOT / "tests" / "integration").rglob("test_*.py"))
    return modules <= ran
