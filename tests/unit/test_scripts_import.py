"""The benchmark scripts are not run by the suite (they take minutes), but what they import must
exist: moving the tests' helpers once broke two of them silently."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parents[2] / "scripts").glob("*.py"))


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_there_are_scripts() -> None:
    assert len(SCRIPTS) >= 5


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_module_a_script_imports_exists(script: Path) -> None:
    missing = sorted(m for m in imported_modules(script) if importlib.util.find_spec(m) is None)
    assert not missing, f"{script.name} imports {missing}"
