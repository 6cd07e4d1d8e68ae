"""The house rules a newcomer relies on (docs/design.md): a few rooms at the top of the runtime, small
modules, short functions. Sizes count from ``def`` to the function's last line, docstring included."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUNTIME_TOP_MAX = 12  # modules and packages directly in runtime/
MODULE_MAX = {"runtime": 400}
FUNCTION_MAX = {"runtime": 60, "export": 80, "benchmarks": 80}


def long_functions(path: Path, limit: int) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    return [f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > limit]


def test_runtime_top_level_has_few_rooms():
    top = [p.name for p in (REPO / "runtime").iterdir()
           if (p.suffix == ".py") or (p.is_dir() and (p / "__init__.py").exists())]
    assert len(top) <= RUNTIME_TOP_MAX, sorted(top)


@pytest.mark.parametrize("package", sorted(MODULE_MAX))
def test_no_long_modules(package):
    limit = MODULE_MAX[package]
    long = [f"{p.relative_to(REPO)} ({n} lines)" for p in sorted((REPO / package).rglob("*.py"))
            if (n := p.read_text().count("\n")) > limit]
    assert long == []


@pytest.mark.parametrize("package", sorted(FUNCTION_MAX))
def test_no_long_functions(package):
    limit = FUNCTION_MAX[package]
    assert [hit for p in sorted((REPO / package).rglob("*.py")) for hit in long_functions(p, limit)] == []


def test_the_checker_sees_a_long_method(tmp_path, monkeypatch):
    f = tmp_path / "m.py"
    f.write_text("class A:\n    def f(self):\n" + "        x = 1\n" * 61)
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert long_functions(f, 60) == ["m.py:2 f (62 lines)"]
    assert long_functions(f, 62) == []
