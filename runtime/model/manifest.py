"""The model bundle contract: ``manifest.json`` beside the ONNX artifacts.

The runtime trusts nothing the manifest does not describe and whose sha256
does not match. Reading an artifact always goes through ``verified_bytes``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from ..errors import ModelError

FORMAT = "ganrt-bundle/1"
MANIFEST_NAME = "manifest.json"


class Precision(Enum):
    FP32 = "fp32"
    FP16 = "fp16"
    INT8_CPU = "int8-cpu"  # u8 asymmetric activations, s8 per-channel weights (ORT CPU)
    INT8_TRT = "int8-trt"  # s8 symmetric activations and weights, zero points 0 (TensorRT)

    @classmethod
    def parse(cls, value: str) -> Precision:
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(p.value for p in cls)
            raise ModelError(f"unknown precision {value!r} (choose from {choices})") from None


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class TensorSpec:
    name: str
    channels: int  # 1 = gray, 3 = RGB/BGR as stated by color_order
    dtype: str = "float32"
    layout: str = "NCHW"
    value_range: tuple[float, float] = (0.0, 1.0)
    color_order: str = "gray"  # gray | rgb | bgr

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> TensorSpec:
        try:
            return cls(
                name=str(d["name"]),
                channels=int(d["channels"]),
                dtype=str(d.get("dtype", "float32")),
                layout=str(d.get("layout", "NCHW")),
                value_range=tuple(float(v) for v in d.get("range", (0.0, 1.0))),  # type: ignore[arg-type]
                color_order=str(d.get("color_order", "gray" if int(d["channels"]) == 1 else "bgr")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{where}: malformed tensor spec ({exc})") from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "channels": self.channels,
            "dtype": self.dtype,
            "layout": self.layout,
            "range": list(self.value_range),
            "color_order": self.color_order,
        }


@dataclass(frozen=True)
class Artifact:
    key: str
    path: Path
    precision: Precision
    sha256: str
    notes: str = ""

    def verified_bytes(self) -> bytes:
        """The artifact's bytes, only if they hash to what the manifest says."""
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise ModelError(f"artifact {self.key!r}: cannot read {self.path} ({exc.strerror})") from None
        actual = sha256_bytes(data)
        if actual != self.sha256:
            raise ModelError(
                f"artifact {self.key!r}: sha256 mismatch for {self.path.name} "
                f"(manifest {self.sha256[:12]}…, file {actual[:12]}…); the bundle was modified or corrupted"
            )
        return data


# Task -> DICOM modality of its frames (US ultrasound, ES endoscopy), for defaults that depend on it.
TASK_MODALITY = {"us-enhance": "US", "us-sr2x": "US", "intraop-enhance": "ES"}


@dataclass(frozen=True)
class Manifest:
    root: Path
    task: str
    input: TensorSpec
    output: TensorSpec
    size_multiple: int
    scale: int
    artifacts: dict[str, Artifact]
    raw: dict[str, Any]
    dynamic_batch: bool = False  # io.dynamic_batch: every artifact takes N frames on axis 0

    @property
    def modality(self) -> str:
        """The DICOM modality of the frames the model is for: the manifest's ``modality``, else by its
        task (``TASK_MODALITY``); "" when unknown."""
        return str(self.raw.get("modality") or TASK_MODALITY.get(self.task, ""))

    @property
    def model_id(self) -> str:
        """Short identity for records: the fp32 artifact's sha (first 12 hex)."""
        first = self.artifacts.get("fp32") or next(iter(self.artifacts.values()))
        return first.sha256[:12]

    def artifact(self, key: str) -> Artifact:
        if key not in self.artifacts:
            raise ModelError(
                f"bundle {self.root} has no artifact {key!r} (has: {', '.join(sorted(self.artifacts))})"
            )
        return self.artifacts[key]

    def artifact_for(self, precision: Precision) -> Artifact:
        for art in self.artifacts.values():
            if art.precision is precision:
                return art
        raise ModelError(f"bundle {self.root} has no {precision.value} artifact")

    @classmethod
    def load(cls, path: str | Path) -> Manifest:
        """Load from a bundle directory or its manifest.json."""
        p = Path(path)
        mpath = p / MANIFEST_NAME if p.is_dir() else p
        if not mpath.exists():
            raise ModelError(f"no model bundle at {path} (expected a directory with {MANIFEST_NAME} or the file itself)")
        try:
            raw = json.loads(mpath.read_text())
        except RecursionError:
            raise ModelError(f"{mpath}: not a readable manifest (nested too deeply)") from None
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ModelError(f"{mpath}: not a readable manifest ({exc})") from None
        return cls.from_dict(raw, mpath.parent, str(mpath))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], root: Path, where: str = MANIFEST_NAME) -> Manifest:
        """A manifest of the wrong shape anywhere (a list for a map, text for a number) is a ModelError."""
        try:
            return cls._from_dict(raw, root, where)
        except (TypeError, ValueError, AttributeError, RecursionError) as exc:
            raise ModelError(f"{where}: malformed manifest ({type(exc).__name__}: {exc})") from None

    @classmethod
    def _from_dict(cls, raw: dict[str, Any], root: Path, where: str) -> Manifest:
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise ModelError(f"{where}: not a ganrt bundle manifest (format must be {FORMAT!r})")
        try:
            io = raw["io"]
            arts_raw = raw["artifacts"]
            task = str(raw["task"])
        except KeyError as exc:
            raise ModelError(f"{where}: missing key {exc}") from None
        artifacts: dict[str, Artifact] = {}
        for key, a in arts_raw.items():
            try:
                artifacts[key] = Artifact(
                    key=key,
                    path=_inside_bundle(root, a["file"], f"{where}: artifact {key!r}"),
                    precision=Precision.parse(a["precision"]),
                    sha256=str(a["sha256"]),
                    notes=str(a.get("notes", "")),
                )
            except (KeyError, TypeError) as exc:
                raise ModelError(f"{where}: artifact {key!r} malformed ({exc})") from None
        if not artifacts:
            raise ModelError(f"{where}: no artifacts listed")
        return cls(
            root=root,
            task=task,
            input=TensorSpec.from_dict(io.get("input", {}), f"{where}: io.input"),
            output=TensorSpec.from_dict(io.get("output", {}), f"{where}: io.output"),
            size_multiple=int(io.get("size_multiple", 1)),
            scale=int(io.get("scale", 1)),
            artifacts=artifacts,
            raw=raw,
            dynamic_batch=io.get("dynamic_batch") is True,
        )


def _inside_bundle(root: Path, name: Any, where: str) -> Path:
    """An artifact's file, confined to the bundle: an absolute path, ``..`` or a link leading out
    would load a model from anywhere on the machine."""
    if not isinstance(name, str) or not name:
        raise ModelError(f"{where}: 'file' must be a file name inside the bundle")
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts:
        raise ModelError(f"{where}: file {name!r} is outside the bundle (give a name relative to {root})")
    path = root / rel
    if not path.resolve().is_relative_to(root.resolve()):
        raise ModelError(f"{where}: file {name!r} leads outside the bundle")
    return path


def bundled_model_dir(task: str = "us-enhance") -> Path:
    """The student bundle shipped inside the package (no training needed)."""
    return Path(__file__).resolve().parents[1] / "models" / task
