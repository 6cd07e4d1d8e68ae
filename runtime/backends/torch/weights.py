"""The bundle's exported student weights (``manifest["weights"]``) as the torch runner reads them."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ...errors import BackendUnavailable, ModelError
from ...model.manifest import Artifact, Manifest, Precision
from .models import STUDENT_ARCH, StudentConfig

WEIGHTS_KEY = "weights"


@dataclass(frozen=True)
class WeightsSpec:
    """``manifest["weights"]``: the student's safetensors file, its sha256, arch and config."""

    artifact: Artifact
    arch: str
    config: StudentConfig

    @classmethod
    def from_manifest(cls, manifest: Manifest, precision: Precision = Precision.FP32) -> WeightsSpec:
        where = f"{manifest.root / 'manifest.json'}: {WEIGHTS_KEY}"
        raw = manifest.raw.get(WEIGHTS_KEY)
        if raw is None:
            raise ModelError(f"bundle {manifest.root} has no exported weights (manifest key {WEIGHTS_KEY!r}); "
                             f"the torch runner needs them (re-export with `ganrt export pipeline`)")
        if not isinstance(raw, dict):
            raise ModelError(f"{where} must be a table with file, sha256, arch, config")
        try:
            file, sha, arch, config = str(raw["file"]), str(raw["sha256"]), str(raw["arch"]), raw["config"]
        except KeyError as exc:
            raise ModelError(f"{where}: missing key {exc}") from None
        if arch != STUDENT_ARCH:
            raise ModelError(f"{where}: arch {arch!r} is not one the torch runner knows ({STUDENT_ARCH})")
        if os.path.isabs(file) or ".." in file.replace("\\", "/").split("/"):
            raise ModelError(f"{where}: file {file!r} must be a path inside the bundle")
        cfg = StudentConfig.from_dict(config, f"{where}.config")
        art = Artifact(key=WEIGHTS_KEY, path=manifest.root / file, precision=precision, sha256=sha,
                       notes=f"{arch} weights for the torch runner")
        return cls(art, arch, cfg)


def weights_artifact(manifest: Manifest, precision: Precision) -> Artifact:
    """The weights as an Artifact (for Selection); BackendUnavailable when the bundle has none."""
    if WEIGHTS_KEY not in manifest.raw:
        raise BackendUnavailable(f"bundle {manifest.root} has no exported weights (manifest key {WEIGHTS_KEY!r})")
    return WeightsSpec.from_manifest(manifest, precision).artifact
