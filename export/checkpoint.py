"""Safe checkpoints: written atomically, loaded without unpickling arbitrary code."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ganrt.runtime.errors import ModelError


def atomic_torch_save(obj: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_state(path: Path) -> dict[str, Any]:
    """Training state (models, optimisers, step); tensors and plain containers only."""
    if not path.exists():
        raise ModelError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 truncated zip, wrong file, pickled code ...
        raise ModelError(f"checkpoint {path} is corrupt or not a ganrt checkpoint ({exc.__class__.__name__})") from None


def save_weights(module: torch.nn.Module, path: Path, meta: dict[str, str] | None = None) -> str:
    """Weights only, as safetensors; returns the file's sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    save_file(state, str(tmp), metadata=meta or {})
    os.replace(tmp, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_weights(module: torch.nn.Module, path: Path) -> None:
    if not path.exists():
        raise ModelError(f"weights not found: {path}")
    try:
        state = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 safetensors/torch raise their own types for a corrupt file
        raise ModelError(f"weights {path} are corrupt ({exc.__class__.__name__}: {exc})") from None
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ModelError(f"weights {path} do not fit the architecture ({first})") from None
