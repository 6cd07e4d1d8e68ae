"""Task registry: what a model learns, its I/O contract and where its pairs come from.

A new task (``us-sr2x``, ``intraop-enhance``) is one new entry here plus its data generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from ganrt.runtime.errors import ConfigError

from .archs import StudentConfig, TeacherConfig


@dataclass
class PairSet:
    """Paired frames with the regions the quality metrics need (all (N,H,W))."""

    inputs: np.ndarray
    targets: np.ndarray
    sector: np.ndarray
    lesion: np.ndarray
    background: np.ndarray
    homogeneous: np.ndarray


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    channels: int
    scale: int
    size_multiple: int
    make_pairs: Callable[[Sequence[int], tuple[int, int]], PairSet]
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    color_order: str = "gray"


def _us_pairs(seeds: Sequence[int], hw: tuple[int, int]) -> PairSet:
    from .data.simulator import SimConfig, render_pair

    cfg = SimConfig(out_hw=hw)
    samples = [render_pair(int(s), cfg) for s in seeds]
    stack = lambda name, dt: np.stack([getattr(s, name) for s in samples]).astype(dt)  # noqa: E731
    return PairSet(
        inputs=stack("input", np.float32),
        targets=stack("target", np.float32),
        sector=stack("sector", bool),
        lesion=stack("lesion", bool),
        background=stack("background", bool),
        homogeneous=stack("homogeneous", bool),
    )


TASKS: dict[str, Task] = {
    "us-enhance": Task(
        name="us-enhance",
        description="Ultrasound B-mode despeckle + detail restoration at the same size "
        "(point-of-care probe -> cart-quality image)",
        channels=1,
        scale=1,
        size_multiple=4,
        make_pairs=_us_pairs,
    ),
}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r} (available: {', '.join(sorted(TASKS))})") from None
