"""Running a real `tritonserver` over a repository: the one on PATH (NGC container), else the `nvidia-pytriton`
wheel's (extra [serve], x86_64 Linux). The wheel's python backend stub runs this machine's system Python 3.x
without our environment, so EFFDET_DEPLOY_PYTHONPATH tells our model.py files which site folders to add.
Its 2.51 stub reads numpy arrays through a pybind11 built for numpy 1.x: with numpy 2.4 first on its path every
output tensor came back empty (HTTP 500 "output tensor shape does not match size of output") and a BYTES input
crashed the stub in deserialize_bytes_tensor ("unpack_from requires a buffer of at least 101058058 bytes ...
actual buffer size is 10": the array's buffer misread); with numpy 1.26 both work. So numpy<2 goes first (a
--target folder, see STUB_SITE) where the environment has numpy 2. The server runs in its own session: stop() ends all of it."""
from __future__ import annotations

import os
import signal
import site
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from runtime.errors import DeployError

STUB_SITE = Path(sys.prefix) / "triton-stub-site"     # pip install --target here 'numpy>=1.24,<2'
NATIVE_BACKENDS = {"onnxruntime_onnx": "onnxruntime", "tensorrt_plan": "tensorrt"}


@dataclass(frozen=True)
class ServerInstall:
    """A tritonserver binary, its backend folder (None: the binary's default) and extra environment."""

    binary: Path
    backends: Path | None
    env: dict[str, str] = field(default_factory=dict)

    def has_backend(self, name: str) -> bool:
        return ((self.backends or Path("/opt/tritonserver/backends")) / name).is_dir()


def _wheel_root() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("pytriton")
    return Path(spec.origin).parent / "tritonserver" if spec and spec.origin else None


def find_server(work: Path) -> ServerInstall:
    """tritonserver on PATH, else the wheel's with a python-backend folder prepared under `work`."""
    import shutil

    on_path = shutil.which("tritonserver")
    if on_path:
        return ServerInstall(Path(on_path), None, {"EFFDET_DEPLOY_PYTHONPATH": stub_python_path()})
    root = _wheel_root()
    tag = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "python_backend_stubs" / tag / "triton_python_backend_stub" if root else None
    if root is None or not (root / "bin" / "tritonserver").is_file():
        raise DeployError("no tritonserver: none on PATH and the nvidia-pytriton wheel is not installed "
                          "(x86_64 Linux: make installs it into .venv, see docs/serving.md), or run the NGC container "
                          "(serve --dry-run prints its docker line)")
    if stub is None or not stub.is_file():
        raise DeployError(f"the nvidia-pytriton wheel has no python backend stub for Python {tag}")
    backends = work / "backends"
    python = backends / "python"
    python.mkdir(parents=True, exist_ok=True)
    for source in (root / "backends" / "python" / "libtriton_python.so",
                   root / "backends" / "python" / "triton_python_backend_utils.py", stub):
        link = python / source.name
        if not link.exists():
            link.symlink_to(source)
    libs = root.parents[1] / "nvidia_pytriton.libs"
    path = os.pathsep.join(filter(None, [str(libs), os.environ.get("LD_LIBRARY_PATH", "")]))
    return ServerInstall(root / "bin" / "tritonserver", backends,
                         {"LD_LIBRARY_PATH": path, "EFFDET_DEPLOY_PYTHONPATH": stub_python_path()})


def stub_python_path() -> str:
    """Folders the stub's Python must see first: numpy<2 (when this environment has numpy 2), our site-packages
    (processed as site dirs, so editable installs work) and the source tree this package runs from."""
    import numpy

    folders = []
    if int(numpy.__version__.split(".")[0]) >= 2:
        if not (STUB_SITE / "numpy").is_dir():
            raise DeployError(f"Triton's python backend stub needs numpy<2 and this environment has numpy "
                              f"{numpy.__version__}: {sys.executable} -m pip install --target {STUB_SITE} "
                              "'numpy>=1.24,<2'")
        folders.append(str(STUB_SITE))
    folders += site.getsitepackages() + [str(Path(__file__).resolve().parents[1])]
    return os.pathsep.join(folders)


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports the OS says are free now (all bound at once, then released)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass(frozen=True)
class Ports:
    http: int
    grpc: int
    metrics: int

    @classmethod
    def pick(cls, http: int | None = None, grpc: int | None = None, metrics: int | None = None) -> "Ports":
        spare = iter(free_ports(3))
        return cls(*(p if p is not None else next(spare) for p in (http, grpc, metrics)))


class TritonServer:
    """One tritonserver process over `repository`, loading `models` (explicit model control), its output in
    `log`. Use as a context manager, or start()/wait_ready()/stop(); stop() always leaves no process."""

    def __init__(self, install: ServerInstall, repository: Path, models: list[str], ports: Ports, log: Path,
                 host: str = "127.0.0.1", exit_timeout_s: int = 30) -> None:
        self.install, self.repository, self.models, self.ports = install, repository, models, ports
        self.log, self.host, self.exit_timeout_s = log, host, exit_timeout_s
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        cmd = [str(self.install.binary), f"--model-repository={self.repository}", "--model-control-mode=explicit",
               *(f"--load-model={m}" for m in self.models), f"--exit-timeout-secs={self.exit_timeout_s}",
               f"--http-address={self.host}", f"--http-port={self.ports.http}", f"--grpc-address={self.host}",
               f"--grpc-port={self.ports.grpc}", f"--metrics-address={self.host}",
               f"--metrics-port={self.ports.metrics}", "--allow-gpu-metrics=false"]
        return cmd + ([f"--backend-directory={self.install.backends}"] if self.install.backends else [])

    def start(self) -> "TritonServer":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True,
                                            env={**os.environ, **self.install.env})
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def local_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "") else ("[::1]" if self.host == "::" else self.host)

    def urls(self) -> dict[str, str]:
        h = self.local_host()
        return {"http": f"{h}:{self.ports.http}", "grpc": f"{h}:{self.ports.grpc}",
                "metrics": f"http://{h}:{self.ports.metrics}/metrics"}

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.urls()['http']}/v2/health/ready", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def wait_ready(self, timeout_s: float = 120.0, stop: threading.Event | None = None) -> float | None:
        """Seconds until /v2/health/ready answered 200 (None if `stop` was set first); DeployError (with the log's
        first error) if the server exits or the time runs out."""
        start = time.monotonic()
        while not self.ready():
            if stop is not None and stop.is_set():
                return None
            if self.process is None or self.process.poll() is not None:
                raise DeployError(f"tritonserver exited (code {self.process and self.process.returncode}) before "
                                  f"it was ready: {self.log_tail()} (log: {self.log})")
            if time.monotonic() - start > timeout_s:
                self.stop()
                raise DeployError(f"tritonserver not ready after {timeout_s:.0f} s: {self.log_tail()} (log: {self.log})")
            time.sleep(0.1)
        return time.monotonic() - start

    def log_tail(self) -> str:
        """The server's first error line, else its last line (what went wrong, in one line)."""
        lines = self.log.read_text(errors="replace").splitlines() if self.log.is_file() else []
        errors = [ln for ln in lines if ln.startswith("E") and "CudaDriverHelper" not in ln]
        return (errors or lines or ["(no output)"])[0 if errors else -1][:400]

    def stop(self, grace_s: float | None = None) -> int | None:
        """SIGTERM (Triton waits for in-flight requests up to exit_timeout_s), then SIGKILL to the whole session.
        Returns the server's exit code."""
        p = self.process
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(self.exit_timeout_s + 10 if grace_s is None else grace_s)
            except subprocess.TimeoutExpired:
                pass
        self._kill_group(p.pid)
        code = p.wait()
        return code

    def kill(self) -> None:
        """SIGKILL, no drain (what a crash looks like to clients)."""
        if self.process is not None:
            self._kill_group(self.process.pid)
            self.process.wait()

    @staticmethod
    def _kill_group(pgid: int) -> None:
        try:                        # the stubs run in the server's session: none may outlive it
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
