"""Tiny inputs for the hostile-input suite and the checks every case makes through the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from bundles import make_bundle

CLI = [sys.executable, "-m", "ganrt.runtime.cli"]
TIMEOUT_S = 120


@dataclass
class Workspace:
    root: Path

    @property
    def video(self) -> Path:
        return self.root / "in.avi"

    @property
    def frames(self) -> Path:
        return self.root / "frames"

    @property
    def bundle(self) -> Path:
        return self.root / "bundle"

    @property
    def out(self) -> Path:
        return self.root / "o"

    def manifest(self) -> dict:
        return json.loads((self.bundle / "manifest.json").read_text())

    def write_manifest(self, raw: object) -> None:
        (self.bundle / "manifest.json").write_text(raw if isinstance(raw, str) else json.dumps(raw))

    def file(self, name: str, data: bytes | str) -> Path:
        p = self.root / name
        p.write_bytes(data if isinstance(data, bytes) else data.encode())
        return p


def make_workspace(root: Path) -> Workspace:
    """A 3-frame 32x24 video, a folder of the project's own ``frame_NNNNNN.png`` names, a tiny bundle."""
    ws = Workspace(root)
    vw = cv2.VideoWriter(str(ws.video), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (32, 24))
    for i in range(3):
        vw.write(np.full((24, 32, 3), 40 * i + 20, np.uint8))
    vw.release()
    ws.frames.mkdir()
    for i in range(3):
        cv2.imwrite(str(ws.frames / f"frame_{i:06d}.png"), np.full((24, 32), 50 * i + 10, np.uint8))
    make_bundle(ws.bundle)
    return ws


def digests(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (links not followed: a link is its target's name)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            out[str(p)] = "link:" + os.readlink(p)
        elif p.is_file():
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run_cli(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([*CLI, *argv], cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
