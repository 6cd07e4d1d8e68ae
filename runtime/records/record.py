"""Per-frame record: every input frame exactly once, with its outcome, reason and latency.

Rows are appended to ``<path>.partial`` in frame-index order as they happen and flushed at
once (a crash or a kill still leaves a record up to the last frame); ``close`` moves it into
place. A write that fails (disk full) stops the writing, never the run: the record keeps the
rows already on disk and ``write_error`` says what happened.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..frames import Frame, FrameResult, Outcome, Reason, Tier
from ..sinks.outpaths import check_output, make_dir, open_exclusive
from .record_stats import RecordStats

log = logging.getLogger(__name__)

FIELDS = ("index", "t_capture_ns", "outcome", "reason", "tier", "late", "wait_ms", "pre_ms", "infer_ms", "post_ms",
          "sink_ms", "guard_ms", "capture_to_output_ms", "change_score", "fidelity_db", "flicker_in", "flicker_out",
          "enhanced_fraction", "tone_worst_p95", "model_sha", "backend", "precision", "artifact")
STAGES = ("wait_ms", "pre_ms", "infer_ms", "post_ms", "sink_ms", "guard_ms")
QUALITY = ("change_score", "fidelity_db", "flicker_in", "flicker_out", "enhanced_fraction", "tone_worst_p95")  # see FrameResult


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
    enhanced_fraction: float = math.nan
    tone_worst_p95: float = math.nan
    tier: Tier = Tier.NONE


def _num(v: float) -> float | None:
    return None if v is None or math.isnan(v) else round(v, 4)  # JSON has no NaN


class Record:
    """The run's rows. With a ``path`` they stream to disk in index order (a small window puts
    rows that arrive out of order -- dropped frames from the capture thread -- back in order)
    and only ``stats`` stays in memory: a day of live video runs at flat memory. Without a
    path (tests, benchmarks) the rows are kept in memory."""

    def __init__(self, path: str | Path | None = None, *, fmt: str = "jsonl", model_sha: str = "",
                 backend: str = "", precision: str = "", artifact: str = "") -> None:
        if fmt not in ("jsonl", "csv"):
            raise ValueError(f"record format must be jsonl or csv (got {fmt!r})")
        self.path = Path(path) if path is not None else None
        self.fmt = fmt
        self.static = {"model_sha": model_sha, "backend": backend, "precision": precision, "artifact": artifact}
        self.stats = RecordStats(STAGES)
        self._rows: dict[int, Row] | None = {} if self.path is None else None
        self._pending: dict[int, Row] = {}  # arrived ahead of a lower index still to come
        self._next = 0  # lowest index not yet written
        self._gaps: set[int] = set()  # indices passed over when the window overflowed (should stay empty)
        self._count = 0
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
    def for_enhancer(cls, enhancer, path: str | Path | None = None, fmt: str = "jsonl") -> Record:
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
                  result.change_score, result.fidelity_db, result.flicker_in, result.flicker_out,
                  result.enhanced_fraction, result.tone_worst_p95, result.tier)
        self._add(row)

    def add_dropped(self, frame: Frame, reason: Reason = Reason.OVERTAKEN) -> None:
        self.add(frame, FrameResult(frame.index, Outcome.DROPPED, reason))

    def _add(self, row: Row) -> None:
        with self._lock:
            i = row.index
            if self._rows is not None:
                twice = i in self._rows
            else:
                twice = i in self._pending or (i < self._next and i not in self._gaps)
            if twice:  # a pipeline bug, not a user error: fail loudly
                raise ValueError(f"frame {i} recorded twice")
            self.stats.add(row)
            self._count += 1
            if self._rows is not None:
                self._rows[i] = row
            elif i in self._gaps:  # late after all: written out of order rather than lost
                self._gaps.discard(i)
                self._write(row)
            else:
                self._pending[i] = row
                self._drain(REORDER_WINDOW)

    def _drain(self, window: int) -> None:
        """Write pending rows in index order; past ``window`` waiting rows, skip the hole."""
        while self._pending:
            if self._next not in self._pending:
                if len(self._pending) <= window:
                    return
                low = min(self._pending)
                self._gaps.update(range(self._next, low))
                self._next = low
            self._write(self._pending.pop(self._next))
            self._next += 1

    def _write(self, row: Row) -> None:
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
            "reason": row.reason.value, "tier": row.tier.value, "late": row.late,
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
        """Every row, index-sorted: from memory, or read back from the file (after ``close``)."""
        with self._lock:
            if self._rows is not None:
                return [self._rows[i] for i in sorted(self._rows)]
            pending = list(self._pending.values())
        on_disk = read_rows(self.path if self._closed else self._partial_path, self.fmt) if self.path else []
        return sorted(on_disk + pending, key=lambda r: r.index)

    def dicts(self) -> list[dict[str, Any]]:
        return [self._as_dict(r) for r in self.rows]

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:  # an empty record is still a record (``record or default`` must not replace it)
        return True

    def missing(self) -> list[int]:
        """Indices between the first and last recorded that are absent (should be none)."""
        with self._lock:
            if self._rows is None:
                return sorted(self._gaps)
            if not self._rows:
                return []
            lo, hi = min(self._rows), max(self._rows)
            return [i for i in range(lo, hi + 1) if i not in self._rows]

    def close(self) -> None:
        """Write what is pending and move the file into place. Idempotent; rows stay readable."""
        if self._closed:
            return
        with self._lock:
            self._drain(0)
        gaps = self.missing()
        if gaps:
            log.error("record has %d missing frame indices (first: %d)", len(gaps), gaps[0])
        self._closed = True
        if self.path is None:
            return
        try:
            self._partial.close()
        except OSError as exc:  # the last buffered bytes did not fit
            self.write_error = self.write_error or f"{self._partial_path}: {exc.strerror or exc}"
        os.replace(self._partial_path, self.path)
        if self.write_error:
            log.error("record %s keeps the rows written before the failure (%s)", self.path, self.write_error)

    def __enter__(self) -> Record:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


REORDER_WINDOW = 256  # rows that may wait for a lower index (a live queue is a few frames deep)


def _parse(d: dict[str, Any]) -> Row:
    def num(k: str) -> float:
        v = d.get(k)
        return math.nan if v in (None, "") else float(v)

    late = d["late"]
    return Row(int(d["index"]), int(d["t_capture_ns"]), Outcome(d["outcome"]), Reason(d["reason"] or ""),
               late if isinstance(late, bool) else late == "True", num("wait_ms"), num("pre_ms"), num("infer_ms"),
               num("post_ms"), num("sink_ms"), num("capture_to_output_ms"),
               **{k: num(k) for k in ("guard_ms", *QUALITY)}, tier=Tier(d.get("tier") or ""))


def read_rows(path: Path, fmt: str = "jsonl") -> list[Row]:
    """The rows of a record file (for tests and tools; a run never reads its record back)."""
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        if fmt == "csv":
            return [_parse(d) for d in csv.DictReader(fh)]
        return [_parse(json.loads(line)) for line in fh if line.strip()]
