"""Before/after montages on the real acquisitions: input | an older bundle | the bundled one.

`python -m ganrt.benchmarks.realscan_compare --old DIR [--bundle us-enhance] --out DIR` writes
``compare_<bundle>_<acquisition>.png`` per installed acquisition: the middle frame of the
acquisition (the one `ganrt bench realscan` shows), each bundle's bare output (fp32, no runtime
checks: what the model itself does) and each one's signed difference from the input. The older
bundle is any bundle directory, e.g. a previous commit's ``runtime/models/<bundle>`` checked out
into a temporary folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from ganrt.runtime.model.ops import to_uint8

from .realscan_data import load_annotations, locate, read_frames
from .realscan_report import _panel, signed_diff

PANEL_W = 360
MAX_FRAMES = 30


def bare_output(model_dir: Path, frame: np.ndarray, profile: str = "cpu-x86-2core") -> np.ndarray:
    """One frame through a bundle's fp32 artifact (ONNX Runtime), no runtime checks."""
    from ganrt.runtime.backends.base import Backend
    from ganrt.runtime.backends.registry import select
    from ganrt.runtime.frames import Frame
    from ganrt.runtime.model.manifest import Manifest, Precision
    from ganrt.runtime.model.ops import Enhancer
    from ganrt.runtime.model.profiles import DeviceProfile

    manifest = Manifest.load(model_dir)
    sel = select(manifest, Backend.ONNXRUNTIME, DeviceProfile.load(profile), Precision.parse("fp32"))
    with sel.runner as runner:
        return Enhancer(runner, manifest, artifact=sel.artifact).enhance(Frame(0, 0, frame))


def compare(old: Path, new: Path, bundle: str, out: Path, names: tuple[str, ...] = ()) -> list[Path]:
    """Write one montage per installed acquisition (or only ``names``); returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for acq in load_annotations():
        if names and acq.name not in names:
            continue
        path, _ = locate(acq)
        if path is None:
            continue
        frames, _ = read_frames(path, MAX_FRAMES)
        if not frames:
            continue
        f = frames[len(frames) // 2]
        inp = to_uint8(f)
        o_old, o_new = bare_output(old, f), bare_output(new, f)
        size = (o_new.shape[1], o_new.shape[0])
        shown_in = cv2.resize(inp, size, interpolation=cv2.INTER_CUBIC) if inp.shape[:2] != o_new.shape[:2] else inp
        top = np.hstack([_panel(shown_in, PANEL_W, f"{acq.name}: input"),
                         _panel(o_old, PANEL_W, f"{bundle} before (bare fp32)"),
                         _panel(o_new, PANEL_W, f"{bundle} now (bare fp32)")])
        bottom = np.hstack([_panel(np.full_like(shown_in, 128), PANEL_W, "signed difference from the input, x2:"),
                            _panel(signed_diff(inp, o_old), PANEL_W, "before - input"),
                            _panel(signed_diff(inp, o_new), PANEL_W, "now - input")])
        p = out / f"compare_{bundle}_{acq.name}.png"
        cv2.imwrite(str(p), np.vstack([top, bottom]), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        written.append(p)
    return written


def main(argv: list[str] | None = None) -> int:
    from ganrt.runtime.model.manifest import bundled_model_dir

    ap = argparse.ArgumentParser(prog="python -m ganrt.benchmarks.realscan_compare", description=__doc__.split("\n")[0])
    ap.add_argument("--old", type=Path, required=True, help="the older bundle directory")
    ap.add_argument("--bundle", default="us-enhance", help="the bundled model it is compared with")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/realscan"))
    a = ap.parse_args(argv)
    for p in compare(a.old, bundled_model_dir(a.bundle), a.bundle, a.out):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
