"""The `ganrt` command's registry and exit codes: every plug-in listed, bad options exit 2, 70 documented."""

from __future__ import annotations

import subprocess
import sys

import pytest
from bundles import make_bundle

from ganrt.runtime.cli import build_parser, main
from ganrt.runtime.cli.common import EPILOG
from ganrt.runtime.cli.registry import PLUGINS, commands
from ganrt.runtime.errors import EXIT_CODES, INTERNAL_ERROR, ConfigError


def _one_line_error(err: str, fragment: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("ganrt: error: ") and fragment in lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [
    ("bench",), ("bench", "pipeline"), ("bench", "baselines"), ("run", "--source", "in.avi", "--out", "{out}"),
    ("demo", "--out", "{out}"),
])
def test_unknown_precision_is_a_bad_option(tmp_path, capsys, argv):
    """Like an unknown --backend: exit 2, one line, before a source or an output is opened."""
    bundle = make_bundle(tmp_path / "bundle")
    out = tmp_path / "o"
    rc = main([a.format(out=out) for a in argv] + ["--model", str(bundle), "--precision", "foo"])
    err = capsys.readouterr().err
    assert rc == ConfigError.exit_code == 2
    _one_line_error(err, "unknown precision 'foo' (choose from fp32")
    assert not out.exists()


def test_unknown_precision_of_a_triton_repository_is_a_bad_option(tmp_path, capsys):
    bundle = make_bundle(tmp_path / "bundle")
    rc = main(["export", "triton", str(bundle), "--out", str(tmp_path / "repo"), "--precision", "foo"])
    assert rc == ConfigError.exit_code == 2
    _one_line_error(capsys.readouterr().err, "unknown precision 'foo' (choose from fp32")
    assert not (tmp_path / "repo").exists()


def test_internal_error_is_in_the_table_and_listed_once():
    assert EXIT_CODES["internal error"] == INTERNAL_ERROR == 70
    assert list(EXIT_CODES.values()).count(70) == 1
    assert EPILOG.count("70=") == 1 and "70=internal error" in EPILOG
    assert build_parser().format_help().count("70=internal error") == 1


def test_a_bug_in_a_handler_exits_70_in_one_line(monkeypatch, capsys):
    from ganrt.runtime.model import profiles

    def broken():
        raise RuntimeError("boom")

    monkeypatch.setattr(profiles, "shipped_profiles", broken)  # `ganrt profile list` imports it when it runs
    assert main(["profile", "list"]) == INTERNAL_ERROR
    err = capsys.readouterr().err
    assert err.strip() == "ganrt: internal error: RuntimeError: boom (rerun with --debug for details)"


def test_help_lists_every_registered_command_once():
    names = [c.name for c in commands()]
    assert names == ["demo", "run", "bench", "profile", "engine", "shm-read", "export"]
    assert len(PLUGINS) == len(set(PLUGINS))
    text = build_parser().format_help()
    rows = text.split("COMMAND\n", 1)[1].split("\noptions:", 1)[0].splitlines()
    listed = [ln.split()[0] for ln in rows if ln.startswith("    ") and not ln.startswith("     ")]  # not wrapped help
    assert listed == names


def test_parsing_run_imports_only_the_light_parts_of_the_plug_ins():
    code = ("import sys\nfrom ganrt.runtime.cli import build_parser\n"
            "a = build_parser().parse_args(['run', '--source', 'in.avi'])\n"
            "assert a.func.__name__ == 'run_stream'\n"
            "print(sorted(m for m in sys.modules if m.startswith(('ganrt.export', 'ganrt.benchmarks', 'cv2', "
            "'torch', 'onnxruntime', 'ganrt.runtime.serve.stream'))))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(["ganrt.benchmarks", "ganrt.benchmarks.cli", "ganrt.export", "ganrt.export.cli"])
