"""The running half of `serve`: start tritonserver over a written repository, print the URLs once
/v2/health/ready answers, and on SIGINT/SIGTERM let Triton drain, stop it and return 0. Signals are caught
from before the server starts, so no signal can leave a server behind."""
from __future__ import annotations

import contextlib
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from effdet_deploy.serve import ServerOptions, loadable
from export.triton_served import ServedRepository
from runtime.errors import DeployError
from runtime.log import logger

if TYPE_CHECKING:
    from effdet_deploy.triton_server import TritonServer


class Stop(threading.Event):
    """Set by SIGINT or SIGTERM; `signals` says which arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.signals: list[int] = []

    def note(self, signum: int, _frame: object) -> None:
        self.signals.append(signum)
        self.set()


@contextlib.contextmanager
def signals_set(stop: Stop) -> Iterator[Stop]:
    """SIGINT and SIGTERM set `stop` inside the block (restored after)."""
    previous = {s: signal.signal(s, stop.note) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def run_server(repo: ServedRepository, model: Path, options: ServerOptions, started: float | None = None) -> int:
    from effdet_deploy.triton_server import Ports, TritonServer, find_server

    started = time.monotonic() if started is None else started
    with tempfile.TemporaryDirectory(prefix="effdet-triton-") as work, signals_set(Stop()) as stop:
        install = find_server(Path(work))
        models, note = loadable(repo, install, model)
        ports = Ports.pick(options.http_port, options.grpc_port, options.metrics_port)
        log = repo.root.parent / f"{repo.root.name}.triton.log"
        server = TritonServer(install, repo.root, models, ports, log, options.host, options.exit_timeout_s)
        try:
            server.start()
            if server.wait_ready(stop=stop) is None:
                if signal.SIGINT in stop.signals:      # Ctrl-C while starting: an interrupt like any command's
                    raise KeyboardInterrupt            # (130, one line); once ready it is serve's normal stop
                logger.info("stopped before the server was ready")
                return 0
            _announce(server, models, note, time.monotonic() - started)
            while not stop.wait(0.2):
                if server.process is None or server.process.poll() is not None:
                    raise DeployError(f"tritonserver exited on its own: {server.log_tail()} (log: {log})")
            logger.info("stopping: in-flight requests finish first (up to %d s)", options.exit_timeout_s)
        finally:
            server.stop()
    logger.info("server stopped")
    return 0


def _announce(server: TritonServer, models: list[str], note: str, seconds: float) -> None:
    urls = server.urls()
    logger.info(f"serving {', '.join(models)} from {server.repository} (ready in {seconds:.1f} s)")
    logger.info(f"  HTTP     http://{urls['http']}  (POST /v2/models/{models[0]}/infer)")
    logger.info(f"  gRPC     {urls['grpc']}")
    logger.info(f"  metrics  {urls['metrics']}")
    if note:
        logger.info(f"  {note}")
    logger.info(f"  server log: {server.log}; Ctrl-C or SIGTERM stops it")
