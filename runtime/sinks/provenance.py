"""What produced an output: model, artifact, backend, profile, runtime version.

Every file a sink writes carries it: DICOM in its own attributes (sinks_dicom), PNG in
tEXt chunks, video files in a ``<name>.provenance.json`` sidecar (OpenCV's VideoWriter
cannot write container metadata, and no ffmpeg binary is assumed on a cart), the
shared-memory ring in its header. With de-identification the source's name is left out
(file names of exports often carry the patient's name).
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import __version__

SIDECAR_SUFFIX = ".provenance.json"
FORMAT = "ganrt-provenance/1"


@dataclass(frozen=True)
class Provenance:
    model_sha: str  # the bundle's identity: its fp32 artifact's sha256, first 12 hex
    task: str = ""
    artifact: str = ""  # file name of the artifact that ran
    artifact_sha256: str = ""
    precision: str = ""
    backend: str = ""
    profile: str = ""
    source: str | None = None  # the input's name (None when de-identifying)
    runtime: str = f"ganrt {__version__}"
    created_utc: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))

    @classmethod
    def for_run(cls, manifest: Any, enhancer: Any, profile: Any = None, artifact: Any = None,
                source: str | None = None) -> Provenance:
        """From what ``ganrt run`` has in hand: the manifest, the Enhancer (backend, precision,
        artifact name), the device profile and the selected artifact (for its full sha256)."""
        return cls(model_sha=getattr(manifest, "model_id", ""), task=getattr(manifest, "task", ""),
                   artifact=getattr(enhancer, "artifact", "") or getattr(getattr(artifact, "path", None), "name", ""),
                   artifact_sha256=getattr(artifact, "sha256", ""), precision=getattr(enhancer, "precision", ""),
                   backend=getattr(enhancer, "backend", ""), profile=getattr(profile, "name", "") or "",
                   source=Path(source).name if source else None)

    def deidentified(self) -> Provenance:
        return replace(self, source=None)

    @property
    def model_short(self) -> str:
        return self.model_sha[:12]

    def summary(self) -> str:
        """One line for descriptions: model, artifact, backend, profile, runtime."""
        parts = [f"model sha256 {self.model_short}"]
        if self.artifact:
            parts.append(f"artifact {self.artifact}" + (f" ({self.precision})" if self.precision else ""))
        if self.backend:
            parts.append(f"backend {self.backend}")
        if self.profile:
            parts.append(f"profile {self.profile}")
        parts.append(self.runtime)
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    def text_fields(self) -> dict[str, str]:
        """Flat key -> text pairs (PNG tEXt keywords: Latin-1, 1-79 characters)."""
        d = {"Software": self.runtime, "ganrt:model_sha": self.model_sha, "ganrt:task": self.task,
             "ganrt:artifact": self.artifact, "ganrt:artifact_sha256": self.artifact_sha256,
             "ganrt:precision": self.precision, "ganrt:backend": self.backend, "ganrt:profile": self.profile,
             "ganrt:created_utc": self.created_utc, "Description": f"AI-enhanced by {self.summary()}"}
        if self.source:
            d["Source"] = self.source
        return {k: v for k, v in d.items() if v}


def sidecar_path(path: str | Path) -> Path:
    p = Path(path)
    return p.with_name(p.name + SIDECAR_SUFFIX)


def write_sidecar(path: str | Path, provenance: Provenance, **extra: Any) -> Path:
    """``<path>.provenance.json`` next to an output file (written atomically)."""
    from .outpaths import write_atomic

    body = {**provenance.to_dict(), "file": Path(path).name, **extra}
    return write_atomic(sidecar_path(path), json.dumps(body, indent=2) + "\n", "provenance sidecar")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_with_text(png: bytes, fields: dict[str, str]) -> bytes:
    """``png`` with tEXt chunks added after IHDR (cv2.imwrite cannot write text chunks; this needs
    no Pillow). Values are stored Latin-1; characters outside it become '?'."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    ihdr_end = 8 + 8 + struct.unpack(">I", png[8:12])[0] + 4
    chunks = b"".join(_png_chunk(b"tEXt", k[:79].encode("latin-1", "replace") + b"\0" + v.encode("latin-1", "replace"))
                      for k, v in fields.items())
    return png[:ihdr_end] + chunks + png[ihdr_end:]


def png_text(png: bytes) -> dict[str, str]:
    """The tEXt chunks of a PNG (for tests and readers)."""
    out, pos = {}, 8
    while pos + 8 <= len(png):
        n = struct.unpack(">I", png[pos:pos + 4])[0]
        kind = png[pos + 4:pos + 8]
        if kind == b"tEXt":
            k, _, v = png[pos + 8:pos + 8 + n].partition(b"\0")
            out[k.decode("latin-1")] = v.decode("latin-1")
        if kind == b"IEND":
            break
        pos += 12 + n
    return out
