"""Lazy imports of optional heavy dependencies with a clear, actionable error."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import BackendUnavailable


def lazy_import(module: str, extra: str, what: str | None = None) -> ModuleType:
    """Import ``module`` or raise BackendUnavailable naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # also catches broken native libraries
        label = what or module
        raise BackendUnavailable(
            f"{label} is not available ({exc.__class__.__name__}: {exc}); install ganrt[{extra}]"
        ) from None
