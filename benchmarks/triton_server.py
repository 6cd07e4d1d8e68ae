"""A real Triton Inference Server on this machine, for the tests and the CPU benchmark: the
tritonserver program of the nvidia-pytriton wheel (Triton 2.51, Python backend only), in its own
cached virtual environment, with a stand-in ``onnxruntime`` Python-based backend beside it
(``triton_backend/onnxruntime/model.py``), so a repository `ganrt export triton` wrote loads unchanged.

The environment lives in ``<repo>/.venv-triton`` (git-ignored; pytriton pins numpy<2, which the
project must not): created when missing, reused afterwards. The server listens on free ports of
127.0.0.1 only and is stopped by its process id.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("GANRT_TRITON_VENV", ROOT / ".venv-triton"))
PYTRITON = "nvidia-pytriton==0.7.0"
STAMP = ".ganrt-triton-ready"
HERE = Path(__file__).resolve().parent
READY_TIMEOUT_S = 60.0


class Unavailable(Exception):
    """The server cannot be installed or started here (tests skip with this reason)."""


def _pins() -> list[str]:
    # the server's onnxruntime is the client's: outputs must be bit-identical. numpy<2: the wheel's
    # Python backend stub was built against numpy 1.
    return [f"onnxruntime=={metadata.version('onnxruntime')}", "numpy<2"]


def _site(venv: Path) -> Path:
    return venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"


def ensure_venv(venv: Path = VENV) -> Path:
    """The server's environment, created once (the stamp records what was installed)."""
    want = " ".join([PYTRITON, *_pins()])
    stamp = venv / STAMP
    if stamp.exists() and stamp.read_text().strip() == want:
        return venv
    py = venv / "bin" / "python"
    try:
        if not py.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
        pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        # only the wheel's server, libraries and Python backend: not its Python API's dependencies
        subprocess.run([*pip, "--no-deps", PYTRITON], check=True, capture_output=True, text=True, timeout=900)
        subprocess.run([*pip, *_pins()], check=True, capture_output=True, text=True, timeout=900)
    except subprocess.CalledProcessError as exc:
        raise Unavailable(f"cannot install {want} into {venv}: {(exc.stderr or '').strip()[-300:]}") from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"cannot create {venv}: {exc}") from None
    stamp.write_text(want + "\n")
    return venv


def prepare_backends(venv: Path, dest: Path) -> Path:
    """``dest/python`` (the Python backend and its stub for this Python) and ``dest/onnxruntime``
    (the stand-in backend's model.py: a Python-based backend serving platform onnxruntime_onnx)."""
    dist = _site(venv) / "pytriton" / "tritonserver"
    stub = dist / "python_backend_stubs" / f"{sys.version_info[0]}.{sys.version_info[1]}" / "triton_python_backend_stub"
    if not stub.exists():
        raise Unavailable(f"nvidia-pytriton has no Python backend stub for Python {sys.version_info[:2]}")
    shutil.copytree(dist / "backends" / "python", dest / "python", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(stub, dest / "python" / "triton_python_backend_stub")
    (dest / "onnxruntime").mkdir(parents=True, exist_ok=True)
    shutil.copy2(HERE / "triton_backend" / "onnxruntime" / "model.py", dest / "onnxruntime" / "model.py")
    return dest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class TritonServer:
    repo: Path
    backends: Path
    venv: Path = VENV
    grpc_port: int = 0
    http_port: int = 0
    log_path: Path | None = None
    ort_threads: int = 1  # intra-op threads of each model instance's onnxruntime session
    ort_spin: bool = True  # its intra-op threads busy-wait (onnxruntime's default)
    proc: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.grpc_port = self.grpc_port or free_port()
        self.http_port = self.http_port or free_port()

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        libs = [sysconfig.get_config_var("LIBDIR") or "", str(_site(self.venv) / "nvidia_pytriton.libs")]
        env["LD_LIBRARY_PATH"] = ":".join([*libs, env.get("LD_LIBRARY_PATH", "")]).rstrip(":")
        env["PATH"] = f"{self.venv / 'bin'}:{env.get('PATH', '')}"  # the stub's Python is the venv's
        env.pop("PYTHONPATH", None)
        env["GANRT_TRITON_ORT_THREADS"] = str(self.ort_threads)
        env["GANRT_TRITON_ORT_SPIN"] = "1" if self.ort_spin else "0"
        return env

    def start(self) -> TritonServer:
        exe = _site(self.venv) / "pytriton" / "tritonserver" / "bin" / "tritonserver"
        cmd = [str(exe), f"--model-repository={self.repo}", f"--backend-directory={self.backends}",
               "--grpc-address=127.0.0.1", f"--grpc-port={self.grpc_port}",
               "--http-address=127.0.0.1", f"--http-port={self.http_port}", "--allow-metrics=false",
               "--log-verbose=0", "--exit-on-error=true", "--strict-readiness=true", "--exit-timeout-secs=2"]
        log = open(self.log_path or os.devnull, "ab")
        self.proc = subprocess.Popen(cmd, env=self._env(), stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Unavailable(f"tritonserver exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise Unavailable(f"tritonserver not ready in {READY_TIMEOUT_S:.0f} s: {self.log_tail()}")

    def log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-6:])

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop by process id (SIGKILL: the server dies as if it crashed)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, sig)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
