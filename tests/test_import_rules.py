"""The runtime imports and `ganrt --help` runs with torch (and other heavy extras) blocked."""

from __future__ import annotations

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


def test_runtime_source_has_no_torch_import():
    root = Path(ganrt.runtime.__file__).parent
    offenders = [p for p in root.rglob("*.py") if "import torch" in p.read_text() or "from torch" in p.read_text()]
    assert offenders == []
