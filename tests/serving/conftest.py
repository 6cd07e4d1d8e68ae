"""Fixtures for the tests against a real Triton server (ganrt.benchmarks.triton_server)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "runtime"))  # fakes.py

from ganrt.benchmarks.triton_server import TritonServer, Unavailable, ensure_venv, prepare_backends
from ganrt.export.triton_repo import RepoConfig, write_repository
from ganrt.runtime.model.manifest import Manifest, Precision, bundled_model_dir

MAX_BATCH = 4  # the test repository's max_batch_size
QUEUE_DELAY_US = 50_000  # long enough that requests sent together are merged, even on a loaded machine


@pytest.fixture(scope="session")
def max_batch() -> int:
    return MAX_BATCH


@pytest.fixture(scope="session")
def manifest() -> Manifest:
    return Manifest.load(bundled_model_dir("us-enhance"))


@pytest.fixture(scope="session")
def triton_venv() -> Path:
    pytest.importorskip("tritonclient.grpc", reason="tritonclient is not installed (ganrt[triton])")
    try:
        return ensure_venv()
    except Unavailable as exc:
        pytest.skip(f"no Triton server here: {exc}")


@pytest.fixture(scope="session")
def triton_backends(triton_venv, tmp_path_factory) -> Path:
    try:
        return prepare_backends(triton_venv, tmp_path_factory.mktemp("triton-backends"))
    except Unavailable as exc:
        pytest.skip(f"no Triton server here: {exc}")


@pytest.fixture(scope="session")
def triton_repo(manifest, tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("triton-repo")
    write_repository(manifest, repo, RepoConfig(precisions=(Precision.FP32, Precision.INT8_CPU), max_batch=MAX_BATCH,
                                                queue_delay_us=QUEUE_DELAY_US))
    slow = repo / "us-enhance-fp32-slow"  # the same model on a server that answers after 400 ms
    shutil.copytree(repo / "us-enhance-fp32", slow)
    text = (slow / "config.pbtxt").read_text().replace('name: "us-enhance-fp32"', 'name: "us-enhance-fp32-slow"')
    (slow / "config.pbtxt").write_text(text + 'parameters { key: "delay_ms" value: { string_value: "400" } }\n')
    return repo


def _start(repo: Path, backends: Path, venv: Path, log: Path) -> TritonServer:
    try:
        return TritonServer(repo, backends, venv, log_path=log).start()
    except Unavailable as exc:
        pytest.skip(f"tritonserver does not start here: {exc}")


@pytest.fixture(scope="session")
def triton_server(triton_repo, triton_backends, triton_venv, tmp_path_factory):
    server = _start(triton_repo, triton_backends, triton_venv, tmp_path_factory.mktemp("triton-log") / "server.log")
    yield server
    server.stop()


@pytest.fixture()
def own_server(triton_repo, triton_backends, triton_venv, tmp_path):
    """A server of the test's own (it may kill it)."""
    server = _start(triton_repo, triton_backends, triton_venv, tmp_path / "server.log")
    yield server
    server.stop()
