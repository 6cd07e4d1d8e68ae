"""One small error hierarchy; the CLI maps each class to an exit code and one line."""

from __future__ import annotations


class GanrtError(Exception):
    """Base of every error a user can cause or fix."""

    exit_code = 1


class ConfigError(GanrtError):
    """A profile, option or argument is wrong."""

    exit_code = 2


class ModelError(GanrtError):
    """A bundle, manifest, checkpoint or artifact is missing, corrupt or does not fit."""

    exit_code = 3


class BackendUnavailable(GanrtError):
    """The requested backend cannot run here (library or device missing)."""

    exit_code = 4


class RemoteUnavailable(BackendUnavailable):
    """A remote inference server is down, unreachable or too slow (inside a stream: that frame goes raw)."""


class EngineMismatch(GanrtError):
    """A cached engine does not match this model, device or toolkit."""

    exit_code = 5


class SourceError(GanrtError):
    """A frame source cannot be opened or read."""

    exit_code = 6


class GateError(GanrtError):
    """An exported artifact failed its accuracy gate."""

    exit_code = 7


class OutputError(GanrtError):
    """An output cannot be written (read-only file system, no space left, permission)."""

    exit_code = 8


#: Exit status after SIGHUP, SIGINT (Ctrl-C), SIGTERM: the run finished its outputs first.
SIGNAL_EXIT = {"SIGHUP": 129, "SIGINT": 130, "SIGTERM": 143}

#: A bug, not a user mistake (BSD sysexits' EX_SOFTWARE): one line unless --debug.
INTERNAL_ERROR = 70

#: Documented exit codes (docs/cli.md, `ganrt --help`), in the order `--help` lists them.
EXIT_CODES: dict[str, int] = {
    "ok": 0,
    GanrtError.__name__: GanrtError.exit_code,
    ConfigError.__name__: ConfigError.exit_code,
    ModelError.__name__: ModelError.exit_code,
    BackendUnavailable.__name__: BackendUnavailable.exit_code,
    EngineMismatch.__name__: EngineMismatch.exit_code,
    SourceError.__name__: SourceError.exit_code,
    GateError.__name__: GateError.exit_code,
    OutputError.__name__: OutputError.exit_code,
    "hangup": 129,
    "interrupted": 130,
    "terminated": 143,
    "internal error": INTERNAL_ERROR,
}
