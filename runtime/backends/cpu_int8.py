"""Whether ONNX Runtime's int8 CPU kernels can saturate on this machine.

On x86 CPUs without VNNI (AVX2, AVX-512 without VNNI), ONNX Runtime's u8s8 kernels add pairs of
u8 x s8 products in 16 bits, and saturate when the activations are large. With VNNI the sums are
32-bit. A bundle's int8-cpu artifact is gated on the export machine's kernels. The bundled colour
model, gated on a VNNI CPU, does much worse on an AVX2 one: on a pale stained-tissue photograph it
loses 5.9 dB on smoke, and a clean frame's local lightness moves 12.6 L* at the 95th percentile
(benchmarks/results/realscan_avx2/). The grey ultrasound models stay within 2 % there on every
real scan.
"""

from __future__ import annotations

import platform
from functools import lru_cache
from pathlib import Path

VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
X86 = frozenset({"x86_64", "amd64", "i386", "i686", "x86"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str] | None:
    """The first processor's flags from Linux's cpuinfo; None when they cannot be read."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return None


def int8_saturates(machine: str | None = None, flags: frozenset[str] | None = None) -> bool:
    """True on an x86 CPU known to lack VNNI. Other architectures, and CPUs whose flags cannot be
    read, are not flagged: there is no evidence of saturation for them."""
    if (machine or platform.machine()).lower() not in X86:
        return False
    flags = flags if flags is not None else _this_cpu()
    return flags is not None and not (flags & VNNI_FLAGS)


@lru_cache(maxsize=1)
def _this_cpu() -> frozenset[str] | None:
    return cpu_flags()
