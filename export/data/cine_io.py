"""Write simulated cine loops as MP4 (OpenCV, 'mp4v'), PNG frames, or multi-frame DICOM US.

Frames are uint8 gray (HxW) or, for MP4 and PNG, BGR colour (HxWx3, OpenCV's order)."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ganrt.runtime.errors import ConfigError

US_MULTIFRAME_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.3.1"  # Ultrasound Multi-frame Image Storage
FORMATS = ("mp4", "png", "dcm")


def _check_frames(frames: Sequence[np.ndarray]) -> np.ndarray:
    if len(frames) == 0:
        raise ConfigError("write_cine needs at least one frame")
    arr = np.stack([np.asarray(f) for f in frames])
    if not (arr.ndim == 3 or (arr.ndim == 4 and arr.shape[3] == 3)):
        raise ConfigError(f"write_cine expects gray HxW or BGR HxWx3 frames, got shape {arr.shape[1:]}")
    if arr.dtype != np.uint8:
        raise ConfigError(f"write_cine expects uint8 frames, got {arr.dtype}")
    return np.ascontiguousarray(arr)


def write_cine(
    out_dir: Path,
    frames: Sequence[np.ndarray],
    fps: float,
    formats: Sequence[str] = ("mp4",),
    stem: str = "cine",
) -> list[Path]:
    """Write `frames` (uint8 HxW, or HxWx3 BGR for mp4/png) in each of `formats`; returns the written paths
    (mp4: one file, png: one file per frame `stem_00000.png`, dcm: one multi-frame file)."""
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ConfigError(f"unknown cine format(s) {bad}; choose from {list(FORMATS)}")
    if not fps > 0:
        raise ConfigError(f"fps must be positive, got {fps}")
    arr = _check_frames(frames)
    if arr.ndim == 4 and "dcm" in formats:
        raise ConfigError("the DICOM US writer takes gray frames only; write colour frames as mp4 or png")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for fmt in formats:
        if fmt == "mp4":
            written.append(_write_mp4(out_dir / f"{stem}.mp4", arr, fps))
        elif fmt == "png":
            written.extend(_write_pngs(out_dir, stem, arr))
        else:
            written.append(_write_dcm(out_dir / f"{stem}.dcm", arr, fps))
    return written


def _write_mp4(path: Path, arr: np.ndarray, fps: float) -> Path:
    n, h, w = arr.shape[:3]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h), True)
    if not vw.isOpened():
        raise ConfigError(f"OpenCV cannot write MP4 (mp4v) to {path}")
    try:
        for f in arr:
            vw.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR) if f.ndim == 2 else f)
    finally:
        vw.release()
    return path


def _write_pngs(out_dir: Path, stem: str, arr: np.ndarray) -> list[Path]:
    paths = []
    for i, f in enumerate(arr):
        p = out_dir / f"{stem}_{i:05d}.png"
        if not cv2.imwrite(str(p), f):
            raise ConfigError(f"cannot write {p}")
        paths.append(p)
    return paths


def _write_dcm(path: Path, arr: np.ndarray, fps: float) -> Path:
    try:
        import pydicom
        from pydicom.dataset import FileDataset, FileMetaDataset
        from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    except ImportError as e:
        raise ConfigError("writing DICOM needs pydicom; install ganrt[dicom]") from e

    n, h, w = arr.shape
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = US_MULTIFRAME_SOP_CLASS
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID

    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    now = _dt.datetime.now()
    ds.SOPClassUID = US_MULTIFRAME_SOP_CLASS
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.Modality = "US"
    ds.ConversionType = "SYN"  # synthetic image (simulator)
    ds.PatientName = "SIMULATED^PHANTOM"
    ds.PatientID = "SIM0000"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
    ds.StudyID = "1"
    # Type 2 (present, may be empty) in the US Multi-frame IOD: dciodvfy checks every written file
    ds.PatientBirthDate = ds.PatientSex = ds.ReferringPhysicianName = ds.AccessionNumber = ""
    ds.Laterality = ds.PositionReferenceIndicator = ds.PatientOrientation = ""
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Manufacturer = "ganrt simulator"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = h, w
    ds.NumberOfFrames = n
    ds.FrameIncrementPointer = pydicom.tag.Tag(0x0018, 0x1063)  # -> FrameTime
    ds.FrameTime = f"{1000.0 / float(fps):.4f}"  # ms
    ds.CineRate = int(round(float(fps)))
    ds.RecommendedDisplayFrameRate = int(round(float(fps)))
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = arr.tobytes()
    if hasattr(ds, "set_original_encoding"):
        ds.set_original_encoding(False, True)
    else:  # pydicom < 3
        ds.is_little_endian, ds.is_implicit_VR = True, False
    try:
        ds.save_as(str(path), enforce_file_format=True)
    except TypeError:  # pydicom < 3
        ds.save_as(str(path), write_like_original=False)
    return path
