"""The CPU's int8 kernels and the default artifact: a colour model runs fp32 where ONNX Runtime's
int8 kernels saturate (x86 without VNNI); grey models and explicit precisions are left alone."""

from __future__ import annotations

import pytest

from ganrt.runtime.backends import registry
from ganrt.runtime.backends.base import Backend
from ganrt.runtime.backends.cpu_int8 import cpu_flags, int8_saturates
from ganrt.runtime.model.manifest import Manifest, Precision, bundled_model_dir
from ganrt.runtime.model.profiles import DeviceProfile, resolve_profile_path

CPUINFO = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse4_2 avx avx2 fma {extra}\n\nprocessor\t: 1\n"


def test_flags_are_read_from_cpuinfo(tmp_path):
    p = tmp_path / "cpuinfo"
    p.write_text(CPUINFO.format(extra="avx512f avx512_vnni"))
    assert {"avx2", "avx512_vnni"} <= cpu_flags(p)
    assert cpu_flags(tmp_path / "missing") is None
    p.write_text("processor\t: 0\n")
    assert cpu_flags(p) is None


@pytest.mark.parametrize("machine, flags, saturates", [
    ("x86_64", {"avx2", "fma"}, True),
    ("x86_64", {"avx2", "avx512f", "avx512bw"}, True),  # AVX-512 without VNNI
    ("x86_64", {"avx2", "avx512f", "avx512_vnni"}, False),
    ("AMD64", {"avx2", "avx_vnni"}, False),
    ("aarch64", {"asimd"}, False),
])
def test_only_x86_without_vnni_saturates(machine, flags, saturates):
    assert int8_saturates(machine, frozenset(flags)) is saturates


def test_unreadable_flags_are_not_taken_for_saturation(monkeypatch):
    from ganrt.runtime.backends import cpu_int8

    monkeypatch.setattr(cpu_int8, "_this_cpu", lambda: None)
    assert not int8_saturates("x86_64")


def _select(task: str, precision: Precision | None = None):
    profile = DeviceProfile.load(resolve_profile_path("cpu-x86-2core"))
    return registry.select(Manifest.load(bundled_model_dir(task)), Backend.ONNXRUNTIME, profile, precision)


def test_a_colour_model_defaults_to_fp32_where_int8_saturates(monkeypatch):
    monkeypatch.setattr(registry, "int8_saturates", lambda: True)
    assert _select("intraop-enhance").precision is Precision.FP32
    assert _select("us-enhance").precision is Precision.INT8_CPU  # grey ultrasound: unaffected (measured)
    assert _select("intraop-enhance", Precision.INT8_CPU).precision is Precision.INT8_CPU  # asked for: honoured
    monkeypatch.setattr(registry, "int8_saturates", lambda: False)
    assert _select("intraop-enhance").precision is Precision.INT8_CPU
