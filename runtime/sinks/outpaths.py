"""Every file the runtime writes goes through here: never onto an input, never through a planted link.

``protect(path)`` registers an input (a source file, an image folder, a DICOM file) for the
life of the process; ``check_output(path)`` is the one check every output path passes (sinks,
change map, record, report, provenance sidecars, DICOM temporaries): it refuses a path that
resolves (symlinks followed) to an input or into an input folder, or that is a hard link to an
input file (same device and inode). ``open_exclusive`` creates a temporary file that nothing
else may be standing in for (O_CREAT|O_EXCL|O_NOFOLLOW); the caller renames it into place.
"""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path
from typing import IO

from ..errors import ConfigError, OutputError

_lock = threading.Lock()
_dirs: set[Path] = set()  # input folders (resolved): nothing may be written inside them
_files: set[Path] = set()  # input files (resolved)
_inodes: set[tuple[int, int]] = set()  # (st_dev, st_ino) of every input file, hard links included


def protect(path: str | Path) -> None:
    """Register an input; a path that does not exist (a camera index, a pipeline) is ignored."""
    p = Path(path).expanduser()
    try:
        st = p.stat()
    except (OSError, ValueError):
        return
    resolved = p.resolve()
    with _lock:
        if p.is_dir():
            _dirs.add(resolved)
            with os.scandir(resolved) as it:
                for entry in it:
                    if entry.is_file():
                        s = entry.stat()
                        _inodes.add((s.st_dev, s.st_ino))
        else:
            _files.add(resolved)
            _inodes.add((st.st_dev, st.st_ino))


def clear() -> None:
    """Forget every registered input (tests; a new run in the same process)."""
    with _lock:
        _dirs.clear()
        _files.clear()
        _inodes.clear()


def _inside(p: Path, folder: Path) -> bool:
    return p == folder or folder in p.parents


def check_output(path: str | Path, what: str = "output") -> Path:
    """``path`` (user-expanded) if writing it cannot touch an input; else a ConfigError."""
    p = Path(path).expanduser()
    resolved = p.resolve()
    with _lock:
        hit = next((d for d in _dirs if _inside(resolved, d)), None) or (resolved if resolved in _files else None)
        if hit is None:
            try:
                st = p.stat()
                if (st.st_dev, st.st_ino) in _inodes:
                    hit = resolved
            except OSError:
                pass
    if hit is not None:
        raise ConfigError(f"{what} {p} would overwrite its input {hit}; choose another path")
    return p


def make_dir(path: str | Path, what: str = "output folder") -> Path:
    """``check_output`` + mkdir -p, an unwritable place as an OutputError."""
    p = check_output(path, what)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"{what} {p} exists and is not a folder") from None
    except OSError as exc:
        raise OutputError(f"cannot create {what} {p}: {exc.strerror or exc}") from None
    return p


def open_exclusive(path: str | Path, mode: str = "w", **kw) -> IO:
    """A new file at ``path`` opened for writing. Whatever stands there (a stale temporary from a
    killed run, a planted symlink) is unlinked first -- unlinking a link never touches its target --
    and the file is then created with O_EXCL|O_NOFOLLOW, so a link planted in between fails the
    open instead of redirecting the write."""
    p = check_output(path, "temporary file")
    try:
        if p.is_symlink() or p.is_file():
            p.unlink()
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0),
                     0o644)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ELOOP):
            raise OutputError(f"{p}: something was created in its place while opening it; refusing to write") from None
        raise OutputError(f"cannot write {p}: {exc.strerror or exc}") from None
    return os.fdopen(fd, mode, **kw)


def write_atomic(path: str | Path, data: str | bytes, what: str = "output") -> Path:
    """``data`` into ``path`` via an exclusive ``<path>.partial`` and a rename."""
    final = check_output(path, what)
    tmp = final.with_name(final.name + ".partial")
    binary = isinstance(data, bytes)
    try:
        with open_exclusive(tmp, "wb" if binary else "w") as fh:
            fh.write(data)
        os.replace(tmp, final)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {final}: {exc.strerror or exc}") from None
    return final
