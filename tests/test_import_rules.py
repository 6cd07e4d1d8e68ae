"""The runtime imports and `ganrt --help` runs with torch (and other heavy extras) blocked."""

from __future__ import annotations

import ast
import pkgutil
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
