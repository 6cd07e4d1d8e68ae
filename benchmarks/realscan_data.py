"""The real ultrasound acquisitions of `ganrt bench realscan` and their hand-picked regions.

Each acquisition is a DICOM file shipped by an installable package (``pydicom``'s own test
files, ``pydicom-data``), found offline with ``get_testdata_file(download=False)`` and decoded
by the runtime's own source (``open_source``), so the benchmark sees exactly the frames a
`ganrt run --source FILE` would. The regions (imaging polygon, tissue patches, a homogeneous
patch, a dark structure and its tissue reference, scanner UI and graphics boxes) are data in
``realscan_annotations.json``; how they were chosen is written there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ANNOTATIONS = Path(__file__).with_name("realscan_annotations.json")

Box = tuple[int, int, int, int]  # x, y, w, h


@dataclass(frozen=True)
class Acquisition:
    name: str
    source: str  # "<package>:<file name>"
    what: str
    frame_hw: tuple[int, int]
    imaging: tuple[tuple[int, int], ...]
    tissue: tuple[Box, ...]
    homogeneous: Box
    dark: Box | None
    dark_ref: Box | None
    ui: tuple[Box, ...]
    graphics: tuple[Box, ...]
    same_scene_as: str = ""

    @property
    def package(self) -> str:
        return self.source.split(":", 1)[0]

    @property
    def file_name(self) -> str:
        return self.source.split(":", 1)[1]

    def imaging_mask(self) -> np.ndarray:
        """bool HxW: inside the imaging polygon and outside every UI and graphics box."""
        h, w = self.frame_hw
        m = np.zeros((h, w), np.uint8)
        cv2.fillPoly(m, [np.array(self.imaging, np.int32)], 1)
        m = m.astype(bool)
        m[self.box_mask(self.ui + self.graphics)] = False
        return m

    def box_mask(self, boxes: tuple[Box, ...]) -> np.ndarray:
        m = np.zeros(self.frame_hw, bool)
        for x, y, bw, bh in boxes:
            m[y:y + bh, x:x + bw] = True
        return m


def _box(v) -> Box | None:
    return None if v is None else tuple(int(a) for a in v)  # type: ignore[return-value]


def _scaled(entry: dict, base: dict, s: int) -> dict:
    """``base``'s regions at ``s`` times the resolution (the same scan stored larger)."""

    def boxes(v):
        return None if v is None else [[a * s for a in b] for b in v]

    out = dict(entry)
    out["imaging"] = [[x * s, y * s] for x, y in base["imaging"]]
    for key in ("tissue", "ui", "graphics"):
        out[key] = boxes(base[key])
    for key in ("homogeneous", "dark", "dark_ref"):
        out[key] = None if base[key] is None else [a * s for a in base[key]]
    return out


def load_annotations(path: Path = ANNOTATIONS) -> list[Acquisition]:
    raw = json.loads(path.read_text())["acquisitions"]
    acqs = []
    for name, entry in raw.items():
        if "same_scene_as" in entry:
            entry = _scaled(entry, raw[entry["same_scene_as"]], int(entry["scale"]))
        acqs.append(Acquisition(
            name=name, source=entry["source"], what=entry["what"], frame_hw=tuple(entry["frame_hw"]),
            imaging=tuple(tuple(p) for p in entry["imaging"]), tissue=tuple(_box(b) for b in entry["tissue"]),
            homogeneous=_box(entry["homogeneous"]), dark=_box(entry["dark"]), dark_ref=_box(entry["dark_ref"]),
            ui=tuple(_box(b) for b in entry["ui"]), graphics=tuple(_box(b) for b in entry["graphics"]),
            same_scene_as=entry.get("same_scene_as", "")))
    return acqs


def locate(acq: Acquisition) -> tuple[Path | None, str]:
    """(the file, "") or (None, why it is missing). Never downloads: a package that is not
    installed means the acquisition is skipped with a note."""
    try:
        from pydicom.data import get_testdata_file
    except ImportError:
        return None, "pydicom is not installed (ganrt[dicom])"
    try:
        found = get_testdata_file(acq.file_name, download=False)
    except Exception as exc:  # noqa: BLE001 - a broken external data source is a skip, not a failure
        return None, f"{acq.file_name}: {exc}"
    if not found:
        hint = "pip install pydicom-data (ganrt[dev])" if acq.package == "pydicom-data" else f"install {acq.package}"
        return None, f"{acq.file_name} not installed ({hint})"
    return Path(str(found)), ""


def read_frames(path: Path, max_frames: int) -> tuple[list[np.ndarray], dict]:
    """Up to ``max_frames`` frames as the runtime decodes them, and the source's info."""
    from ganrt.runtime.sources import open_source

    src = open_source(str(path), max_frames=max_frames)
    frames = []
    try:
        while (f := src.read()) is not None:
            frames.append(f.pixels)
        info = src.info() if hasattr(src, "info") else {}
    finally:
        src.close()
    return frames, info
