"""What ships: the operator's image carries the product, not the sandbox that stands in for a
cluster, and the sandbox says how to get it when it is missing."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

from tests.conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
SANDBOX_ONLY = ("kmock", "moto")


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[=<>~! ]", requirement, maxsplit=1)[0] for requirement in requirements}


def test_the_sandbox_is_an_extra_the_runtime_does_not_need() -> None:
    runtime = _names(PYPROJECT["dependencies"])
    assert not runtime & set(SANDBOX_ONLY), "the operator image would carry the sandbox"
    assert set(SANDBOX_ONLY) <= _names(PYPROJECT["optional-dependencies"]["sandbox"])


def test_make_installs_the_sandbox_and_the_image_does_not() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet -e '.[dev,sandbox]'" in makefile
    installs = re.findall(r"pip install ([^\s\\]+)", (ROOT / "images" / "Dockerfile").read_text())
    assert installs == ["."], f"the image installs {installs}, not the bare package"


def test_the_programs_never_import_the_sandbox() -> None:
    modules = [
        "conveyor.cli",
        "conveyor.operator",
        "conveyor.jobs.materialize.program",
        "conveyor.jobs.train.program",
        "conveyor.serving.server",
    ]
    code = (
        f"import sys, importlib; [importlib.import_module(m) for m in {modules!r}]; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {SANDBOX_ONLY!r} "
        "or m.startswith('conveyor.sandbox')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert loaded.stdout.strip() == "[]"


def test_without_the_extra_the_sandbox_says_how_to_get_it() -> None:
    # sys.modules[name] = None makes `import name` fail as if the package were not installed.
    code = (
        "import sys; sys.modules['kmock'] = None; from conveyor.cli import main; "
        "sys.exit(main(['sandbox', 'up', '--state-dir', '/nonexistent']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 1
    assert "the sandbox needs kmock" in result.stderr
    assert "pip install 'conveyor[sandbox]'" in result.stderr
    assert "Traceback" not in result.stderr
