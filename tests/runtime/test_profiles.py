from pathlib import Path

import pytest

from ganrt.runtime.backends.base import Backend
from ganrt.runtime.errors import ConfigError
from ganrt.runtime.model.manifest import Precision
from ganrt.runtime.model.profiles import DeviceProfile, shipped_profiles


def test_shipped_profiles_validate():
    names = {DeviceProfile.load(p).name for p in shipped_profiles()}
    assert {"cpu-x86-2core", "jetson-orin-nano", "jetson-agx-orin", "desktop-rtx"} <= names


def test_profile_by_name_and_fields():
    p = DeviceProfile.load("jetson-agx-orin")
    assert p.precision is Precision.INT8_TRT and p.backends[0] is Backend.TENSORRT
    assert p.tensorrt.dla_core == 0 and p.tensorrt.min_hw == p.tensorrt.max_hw  # DLA: static shapes
    assert DeviceProfile.load("jetson-orin-nano").tensorrt.dla_core is None  # Orin Nano has no DLA


@pytest.mark.parametrize(
    "body, message",
    [
        ('name="x"\nbudgte_ms=3\n', "unknown key 'budgte_ms'"),
        ('name="x"\nbudget_ms=33\ninput_hw=[512,512]\nprecision="int8-cpu"\nbackends=["onnxruntime"]\n[threads]\nintra=2\n',
         "unknown key 'threads.intra'"),
        ('name="x"\nbudget_ms=33\ninput_hw=[512,512]\nprecision="int9"\nbackends=["onnxruntime"]\n', "precision 'int9'"),
        ('name="x"\nbudget_ms=33\ninput_hw=[512]\nprecision="fp16"\nbackends=["onnxruntime"]\n', "input_hw must be"),
        ('name="x"\nbudget_ms=33\ninput_hw=[512,512]\nprecision="fp16"\nbackends=["cuda-magic"]\n', "backends 'cuda-magic'"),
        ('name = \n', "malformed TOML"),
        ('name="x"\n', "missing key 'budget_ms'"),
    ],
)
def test_malformed_profiles_name_file_and_key(tmp_path: Path, body: str, message: str):
    f = tmp_path / "cart.toml"
    f.write_text(body)
    with pytest.raises(ConfigError) as ei:
        DeviceProfile.load(f)
    assert str(ei.value).startswith("cart.toml: ")
    assert message in str(ei.value)


def test_missing_profile():
    with pytest.raises(ConfigError, match="no such profile"):
        DeviceProfile.load("no-such-cart")
