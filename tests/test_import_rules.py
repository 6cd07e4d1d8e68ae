"""The runtime imports and `ganrt --help` runs with torch (and other heavy extras) blocked."""

from __future__ import annotations

import ast
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import ganrt.runtime

BLOCK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'torch', 'tensorrt', 'pycuda', 'pydicom', 'skimage', 'scipy', 'onnxscript'}:
            raise ImportError(f'blocked: {name}')
sys.meta_path.insert(0, Block())
"""


def _runtime_modules() -> list[str]:
    root = Path(ganrt.runtime.__file__).parent
    return [m.name for m in pkgutil.walk_packages([str(root)], prefix="ganrt.runtime.")]


def test_every_runtime_module_imports_without_torch():
    mods = _runtime_modules()
    assert "ganrt.runtime.cli" in mods and "ganrt.runtime.backends.onnxruntime" in mods
    code = BLOCK + "import importlib\n" + "".join(f"importlib.import_module({m!r})\n" for m in mods)
    code += "assert 'torch' not in sys.modules\nprint('ok')\n"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"


def test_cli_help_without_torch():
    code = BLOCK + "from ganrt.runtime.cli import main\nraise SystemExit(main(['--help']))\n"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "demo" in res.stdout and "export" in res.stdout and "exit codes" in res.stdout
    assert "Traceback" not in res.stderr


def _torch_imports(path: Path) -> list[str]:
    """`import torch...` / `from torch... import` statements at any depth, and importlib/__import__ of torch."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""] if node.level == 0 else []
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and ((isinstance(node.func, ast.Name) and node.func.id == "__import__")
                   or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"))):
            names = [str(node.args[0].value)]
        else:
            continue
        found += [f"{path.name}:{node.lineno}: {n}" for n in names if n.split(".")[0] == "torch"]
    return found


def test_runtime_source_has_no_torch_import():
    """Only the lazy form is allowed: lazy_import("torch", extra=...) inside the function that needs it."""
    root = Path(ganrt.runtime.__file__).parent
    offenders = [hit for p in sorted(root.rglob("*.py")) for hit in _torch_imports(p)]
    assert offenders == []


def test_torch_import_checker_sees_nested_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    import torch.nn as nn\n    from torch import cuda\n"
                 "    importlib.import_module('torch')\n    lazy_import('torch', extra='export')\n")
    assert [h.split(": ")[1] for h in _torch_imports(f)] == ["torch.nn", "torch", "torch"]


# --- the runtime reaches ganrt.export and ganrt.benchmarks only through the CLI's plug-in tuple --------------

FOREIGN = ("ganrt.export", "ganrt.benchmarks")
_FOREIGN_NAME = re.compile(r"(ganrt\.|\.+)(export|benchmarks)(\.[A-Za-z_]\w*)*")  # a whole string naming one
PLUGIN_POINT = Path("cli") / "registry.py"  # its PLUGINS tuple is the one allowed place


def _absolute(node: ast.ImportFrom, path: Path, root: Path) -> str:
    """The module a ``from X import`` names, a relative X resolved as if ``root`` were ganrt.runtime."""
    if not node.level:
        return node.module or ""
    package = ["ganrt", "runtime", *path.relative_to(root).parts[:-1]]
    up = package[: len(package) - (node.level - 1)]
    return ".".join(up + ([node.module] if node.module else []))


def _plugin_strings(tree: ast.AST) -> set[int]:
    """The string constants of ``PLUGINS = (...)``."""
    allowed: set[int] = set()
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == "PLUGINS" for t in targets):
            allowed |= {id(c) for c in ast.walk(node.value) if isinstance(c, ast.Constant)}
    return allowed


def _foreign_imports(path: Path, root: Path) -> list[str]:
    """Imports of ganrt.export / ganrt.benchmarks at any depth: absolute, relative (resolved against the
    module's package), and any string naming one of their modules (importlib.import_module, __import__,
    lazy_import or a name kept for later), except in the plug-in tuple of ``root/cli/registry.py``."""
    tree = ast.parse(path.read_text(), str(path))
    allowed = _plugin_strings(tree) if path.relative_to(root) == PLUGIN_POINT else set()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, path, root)
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in allowed:
            names = [node.value] if _FOREIGN_NAME.fullmatch(node.value) else []
        else:
            continue
        hits = [n for n in names if n.startswith(".") or any(n == f or n.startswith(f + ".") for f in FOREIGN)]
        found += [f"{path.relative_to(root)}:{node.lineno}: {hits[0]}"] if hits else []
    return found


def test_runtime_reaches_export_and_benchmarks_only_through_the_plugin_tuple():
    from ganrt.runtime.cli.registry import PLUGINS

    root = Path(ganrt.runtime.__file__).parent
    offenders = [hit for p in sorted(root.rglob("*.py")) for hit in _foreign_imports(p, root)]
    assert offenders == []
    assert {"ganrt.export.cli", "ganrt.benchmarks.cli"} <= set(PLUGINS)  # the allowed place is the one in use


def test_foreign_import_checker_sees_every_form(tmp_path):
    root = tmp_path / "runtime"
    (root / "cli").mkdir(parents=True)
    (root / "__init__.py").write_text("from .. import export\nfrom ..benchmarks.cli import main\n")
    (root / "cli" / "x.py").write_text(
        "import ganrt.export.cli\n"
        "def f():\n"
        "    from ganrt.benchmarks import cli\n"
        "    from ganrt import benchmarks\n"
        "    from ...export import pipeline\n"
        "    importlib.import_module('ganrt.export.cli')\n"
        "    __import__('ganrt.benchmarks')\n"
        "    importlib.import_module('...export', __package__)\n"
        "    PLUGINS = ('ganrt.export.cli',)\n"
        "    from ..serve import stream\n"
        "    from ganrt.exporter import x\n"
        "    return 'ganrt.export writes bundles'\n")
    (root / "cli" / "registry.py").write_text("PLUGINS = ('ganrt.benchmarks.cli', 'ganrt.export.cli')\n"
                                              "LATER = 'ganrt.export.cli'\n")
    hits = [h for p in sorted(root.rglob("*.py")) for h in _foreign_imports(p, root)]
    assert hits == ["__init__.py:1: ganrt.export", "__init__.py:2: ganrt.benchmarks.cli",
                    "cli/registry.py:2: ganrt.export.cli",
                    "cli/x.py:1: ganrt.export.cli", "cli/x.py:3: ganrt.benchmarks", "cli/x.py:4: ganrt.benchmarks",
                    "cli/x.py:5: ganrt.export", "cli/x.py:6: ganrt.export.cli", "cli/x.py:7: ganrt.benchmarks",
                    "cli/x.py:8: ...export", "cli/x.py:9: ganrt.export.cli"]
