"""A frame source from the ultrasound simulator (one scene's cine rendered once, then looped),
and the save step of the benchmarks that stream it (soak, fault_bench).

Rendering is the slow part (a 64x64 frame takes milliseconds), so ``frames`` distinct frames
of a moving scene (``export.data.simulator.cine``: drift, breathing, fresh noise) are made up
front and replayed for as long as a benchmark needs, as fast as possible or at ``fps``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ganrt.runtime.serve.clock import SYSTEM_CLOCK, Clock
from ganrt.runtime.sources.base import SourceBase


def render_cine(hw: tuple[int, int], frames: int, seed: int = 950_000, fps: float = 30.0) -> list[np.ndarray]:
    from ganrt.export.data.simulator import SimConfig, cine

    return [(np.clip(s.input, 0, 1) * 255 + 0.5).astype(np.uint8)
            for s in cine(seed, frames, SimConfig(out_hw=hw), fps=fps)]


class SimCineSource(SourceBase):
    def __init__(self, cine: list[np.ndarray], total: int, *, fps: float = 30.0, realtime: bool = False,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__("simulator", fps=fps, frame_count=total, realtime=realtime, clock=clock, loop=True,
                         max_frames=total)
        self._cine, self._pos = cine, 0

    def _next_pixels(self) -> np.ndarray | None:
        img = self._cine[self._pos % len(self._cine)]
        self._pos += 1
        return img


def save(result: dict, path: Path, markdown: Callable[[dict], str]) -> None:
    """``path`` (JSON) and the same name with ``.md``; the table is printed too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    text = markdown(result)
    path.with_suffix(".md").write_text(text)
    print(text)
