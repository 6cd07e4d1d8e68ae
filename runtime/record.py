"""Per-frame record: every input frame exactly once, with its outcome, reason and latency.

Rows are appended to ``<path>.partial`` as they happen and flushed at once (a crash or a
kill still leaves a record up to the last frame); the final file is rewritten sorted by frame
index at ``close``. A write that fails (disk full) stops the writing, never the run: ``close``
then keeps the rows already on disk as the record and ``write_error`` says what happened.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from .outpaths import check_output, make_dir, open_exclusive
from .frames import Frame, FrameResult, Outcome, Reason

log = logging.getLogger(__name__)

FIELDS = ("index", "t_capture_ns", "outcome", "reason", "late", "wait_ms", "pre_ms", "infer_ms", "post_ms",
          "sink_ms", "guard_ms", "capture_to_output_ms", "change_score", "fidelity_db", "flicker_in", "flicker_out",
          "model_sha", "backend", "precision", "artifact")
STAGES = ("wait_ms", "pre_ms", "infer_ms", "post_ms", "sink_ms", "guard_ms")
QUALITY = ("change_score", "fidelity_db", "flicker_in", "flicker_out")  # see FrameResult


@dataclass(frozen=True, slots=True)
class Row:
    index: int
    t_capture_ns: int
    outcome: Outcome
    reason: Reason
    late: bool
    wait_ms: float
    pre_ms: float
    infer_ms: float
    post_ms: float
    sink_ms: float
    capture_to_output_ms: float
    guard_ms: float = math.nan
    change_score: float = math.nan
    fidelity_db: float = math.nan
    flicker_in: float = math.nan
    flicker_out: float = math.nan


def _num(v: float) -> float | None:
    return None if v is None or math.isnan(v) else round(v, 4)  # JSON has no NaN


class Record:
    def __init__(self, path: str | Path | None = None, *, fmt: str = "jsonl", model_sha: str = "",
                 backend: str = "", precision: str = "", artifact: str = "") -> None:
        if fmt not in ("jsonl", "csv"):
            raise ValueError(f"record format must be jsonl or csv (got {fmt!r})")
        self.path = Path(path) if path is not None else None
        self.fmt = fmt
        self.static = {"model_sha": model_sha, "backend": backend, "precision": precision, "artifact": artifact}
        self._rows: dict[int, Row] = {}
        self._lock = threading.Lock()  # dropped frames arrive from the capture thread
        self._partial = None
        self._closed = False
        self.write_error: str | None = None  # the first failed write (the record on disk stops there)
        if self.path is not None:
            make_dir(self.path.parent)
            check_output(self.path, "record")
            self._partial = open_exclusive(self._partial_path, "w", newline="")
            if fmt == "csv":
                self._guarded(lambda: csv.writer(self._partial).writerow(FIELDS))

    @classmethod
    def for_enhancer(cls, enhancer, path: str | Path | None = None, fmt: str = "jsonl") -> "Record":
        return cls(path, fmt=fmt, model_sha=enhancer.model_sha, backend=enhancer.backend,
                   precision=enhancer.precision, artifact=enhancer.artifact)

    @property
    def _partial_path(self) -> Path:
        assert self.path is not None
        return self.path.with_name(self.path.name + ".partial")

    def add(self, frame: Frame, result: FrameResult) -> None:
        c2o = (result.t_output_ns - frame.t_capture_ns) / 1e6 if result.t_output_ns is not None else math.nan
        row = Row(frame.index, frame.t_capture_ns, result.outcome, result.reason, result.late, result.wait_ms,
                  result.pre_ms, result.infer_ms, result.post_ms, result.sink_ms, c2o, result.guard_ms,
                  result.change_score, result.fidelity_db, result.flicker_in, result.flicker_out)
        self._add(row)

    def add_dropped(self, frame: Frame, reason: Reason = Reason.OVERTAKEN) -> None:
        self.add(frame, FrameResult(frame.index, Outcome.DROPPED, reason))

    def _add(self, row: Row) -> None:
        with self._lock:
            if row.index in self._rows:  # a pipeline bug, not a user error: fail loudly
                raise ValueError(f"frame {row.index} recorded twice")
            self._rows[row.index] = row
            if self._partial is not None and self.write_error is None:
                self._guarded(lambda: self._write_rows(self._partial, [row], header=False))

    def _guarded(self, write: Callable[[], object]) -> None:
        """``write`` then flush (a killed run loses no finished row); the first failure ends the writing."""
        try:
            write()
            self._partial.flush()
        except OSError as exc:
            self.write_error = f"{self._partial_path}: {exc.strerror or exc}"
            log.error("record: cannot write %s; no further rows are written, the run goes on", self.write_error)

    def _as_dict(self, row: Row) -> dict[str, Any]:
        return {
            "index": row.index, "t_capture_ns": row.t_capture_ns, "outcome": row.outcome.value,
            "reason": row.reason.value, "late": row.late,
            **{k: _num(getattr(row, k)) for k in (*STAGES, "capture_to_output_ms", *QUALITY)},
            **self.static,
        }

    def _write_rows(self, fh, rows: Iterable[Row], header: bool) -> None:
        if self.fmt == "jsonl":
            for r in rows:
                fh.write(json.dumps(self._as_dict(r)) + "\n")
        else:
            w = csv.DictWriter(fh, FIELDS)
            if header:
                w.writeheader()
            for r in rows:
                w.writerow({k: ("" if v is None else v) for k, v in self._as_dict(r).items()})

    @property
    def rows(self) -> list[Row]:
        with self._lock:
            return [self._rows[i] for i in sorted(self._rows)]

    def dicts(self) -> list[dict[str, Any]]:
        return [self._as_dict(r) for r in self.rows]

    def __len__(self) -> int:
        return len(self._rows)

    def __bool__(self) -> bool:  # an empty record is still a record (``record or default`` must not replace it)
        return True

    def missing(self) -> list[int]:
        """Indices between the first and last recorded that are absent (should be none)."""
        with self._lock:
            if not self._rows:
                return []
            lo, hi = min(self._rows), max(self._rows)
            return [i for i in range(lo, hi + 1) if i not in self._rows]

    def close(self) -> None:
        """Write the final, index-sorted file atomically. Idempotent; rows stay readable."""
        if self._closed:
            return
        self._closed = True
        gaps = self.missing()
        if gaps:
            log.error("record has %d missing frame indices (first: %d)", len(gaps), gaps[0])
        if self.path is None:
            return
        try:
            self._partial.close()
        except OSError as exc:  # the last buffered bytes did not fit
            self.write_error = self.write_error or f"{self._partial_path}: {exc.strerror or exc}"
        if self.write_error is None:
            tmp = self.path.with_name(self.path.name + ".tmp")
            try:
                with open_exclusive(tmp, "w", newline="") as fh:
                    if self.fmt == "csv":
                        csv.writer(fh).writerow(FIELDS)
                    self._write_rows(fh, self.rows, header=False)
                os.replace(tmp, self.path)
                self._partial_path.unlink(missing_ok=True)
                return
            except OSError as exc:
                self.write_error = f"{tmp}: {exc.strerror or exc}"
                tmp.unlink(missing_ok=True)
        os.replace(self._partial_path, self.path)  # every row that reached the disk, in arrival order
        log.error("record %s kept as written before the failure (%s)", self.path, self.write_error)

    def __enter__(self) -> "Record":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
