"""System shared memory between the triton runner and a server on the same host.

Two regions (input, output), created with tritonclient.utils.shared_memory and registered
with the server. They grow when a larger batch or frame arrives (re-created, re-registered);
``reset`` drops them after an outage, so the next call registers new ones. CUDA shared memory (a GPU server on the
same host) is described in docs/triton.md.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from ...lazy import lazy_import

log = logging.getLogger(__name__)


def _shm():
    return lazy_import("tritonclient.utils.shared_memory", extra="ganrt[triton]", what="tritonclient")


class _Region:
    def __init__(self, client: Callable[[], Any], name: str, size: int) -> None:
        self.client, self.name, self.size = client, name, size
        self.key = f"/{name}"
        self.handle = _shm().create_shared_memory_region(name, self.key, size)
        self.register()

    def register(self) -> None:
        self.client().register_system_shared_memory(self.name, self.key, self.size)

    def close(self, unregister: bool = True) -> None:
        if unregister:
            try:
                self.client().unregister_system_shared_memory(self.name)
            except Exception as exc:  # noqa: BLE001 - the server may be gone; the local region still goes
                log.debug("unregister %s: %s", self.name, exc)
        _shm().destroy_shared_memory_region(self.handle)


class SystemRegions:
    """``client``: returns the calling thread's tritonclient client."""

    def __init__(self, client: Callable[[], Any], prefix: str) -> None:
        self.client, self.prefix = client, f"{prefix}_{os.getpid()}"
        self._in: _Region | None = None
        self._out: _Region | None = None
        self._dtype = np.dtype(np.float32)
        self._generation = 0

    def _ensure(self, which: str, size: int) -> _Region:
        region = getattr(self, which)
        if region is None or region.size < size:
            if region is not None:
                region.close()
            region = _Region(self.client, f"{self.prefix}{which}{self._generation}", size)
            setattr(self, which, region)
        return region

    def bind(self, x: np.ndarray, inp, req_out, out_bytes: int) -> None:
        """Copy ``x`` into the input region and point the request at both regions."""
        rin = self._ensure("_in", x.nbytes)
        rout = self._ensure("_out", out_bytes)
        _shm().set_shared_memory_region(rin.handle, [x])
        inp.set_shared_memory(rin.name, x.nbytes)
        req_out.set_shared_memory(rout.name, out_bytes)
        self._dtype = x.dtype

    def output(self, shape: tuple[int, ...]) -> np.ndarray:
        """The output region's contents, copied (the next call overwrites the region)."""
        view = _shm().get_contents_as_numpy(self._out.handle, self._dtype, list(shape))
        return np.array(view, copy=True)

    def reset(self) -> None:
        """Drop both regions; the next ``bind`` creates new ones under new names."""
        self.close()
        self._generation += 1

    def close(self) -> None:
        for region in (self._in, self._out):
            if region is not None:
                region.close()
        self._in = self._out = None
