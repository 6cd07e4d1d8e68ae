"""`ganrt.runtime`'s public names: each resolves to the object in its module, loaded on first use."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest
from test_import_rules import BLOCK

import ganrt.runtime as api


def test_every_public_name_is_its_module_object():
    for name in api.__all__:
        if name == "__version__":
            continue
        module, attr = api._EXPORTS[name]
        assert getattr(api, name) is getattr(importlib.import_module(f"ganrt.runtime.{module}"), attr), name
    assert set(api.__all__) <= set(dir(api))


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        api.no_such_name  # noqa: B018


def test_import_is_light_and_names_load_without_torch():
    code = BLOCK + (
        "import ganrt.runtime as r\n"
        "heavy = [m for m in sys.modules if m.startswith('ganrt.runtime.') or m in ('numpy', 'cv2', 'onnxruntime')]\n"
        "assert heavy == [], heavy\n"
        "for name in r.__all__:\n"
        "    getattr(r, name)\n"
        "assert 'torch' not in sys.modules and 'onnxruntime' not in sys.modules\n"
        "print('ok')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"
