"""`serve`: write the served repository (export/triton_served.py) and run tritonserver over it until Ctrl-C /
SIGTERM, which let in-flight requests finish (Triton's exit timeout), stop the server and leave no process.
A shipped model name (shapes_d0) is exported once (--nms onnx, batch 1..8) into the user's cache and reused."""
from __future__ import annotations

import shlex
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from export.triton import PLATFORMS
from export.triton_served import ServedRepository, ServeSettings, served_repository
from runtime.errors import DeployError
from runtime.log import logger

if TYPE_CHECKING:
    from effdet_deploy.triton_server import ServerInstall

NGC_IMAGE = "nvcr.io/nvidia/tritonserver:24.10-py3"    # Triton 2.51, as the nvidia-pytriton wheel's server
EXPORT_BATCH = (1, 4, 8)


@dataclass(frozen=True)
class ServerOptions:
    host: str = "127.0.0.1"
    http_port: int | None = None                        # None: a free port
    grpc_port: int | None = None
    metrics_port: int | None = None
    exit_timeout_s: int = 10


def cache_dir() -> Path:
    import os

    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "efficientdet-deploy" / "serve"


def model_file(model: str) -> Path:
    """A .onnx/.engine path as is; a shipped model name -> its cached serving export (made on first use)."""
    path = Path(model)
    if path.suffix in PLATFORMS or path.exists():
        return path
    from runtime.backends.torch_backend import has_shipped_weights

    if not has_shipped_weights(model):
        raise DeployError(f"{model}: not a file, and no model of that name ships weights (e.g. shapes_d0)")
    from effdet_deploy import __version__

    target = cache_dir() / f"{model}-{__version__}-b{EXPORT_BATCH[2]}.onnx"
    if not target.is_file():
        from effdet_deploy.console import third_party_to_log
        from export.onnx_export import export_onnx
        from export.settings import ExportSettings

        logger.info(f"exporting {model} for serving (once; cached as {target})")
        target.parent.mkdir(parents=True, exist_ok=True)
        with third_party_to_log(target.with_suffix(".log")):
            export_onnx(ExportSettings(model=model, output=target, nms="onnx", dynamic_batch=EXPORT_BATCH))
    return target


def docker_line(repo: ServedRepository, model: Path, options: ServerOptions) -> str:
    """The NGC container command for a GPU host: our runtime installed into the container's Python (numpy<2 for
    its 2.51 python backend stub) and tritonserver over the repository."""
    source = Path(__file__).resolve().parents[1]
    package = "/opt/efficientdet-deploy" if (source / "pyproject.toml").is_file() else "efficientdet-deploy"
    mount = f"-v {shlex.quote(str(source))}:/opt/efficientdet-deploy " if package.startswith("/") else ""
    if PLATFORMS[model.suffix][0] == "tensorrt_plan":
        from runtime.engine_sidecar import read_sidecar

        version = read_sidecar(model).get("tensorrt_version", "")
        backend = f"'tensorrt-cu12=={version}' 'cuda-python>=12.6.2,<13'"   # the engine's own TensorRT
    else:
        backend = "onnxruntime-gpu"
    install = f"pip install 'numpy<2' {package} {backend}"
    return (f"docker run --gpus=all --rm --shm-size=1g -p {options.http_port or 8000}:8000 "
            f"-p {options.grpc_port or 8001}:8001 -p {options.metrics_port or 8002}:8002 "
            f"-v {shlex.quote(str(repo.root.resolve()))}:/models {mount}{NGC_IMAGE} "
            f"bash -c \"{install} && tritonserver --model-repository=/models\"")


def loadable(repo: ServedRepository, install: ServerInstall, model: Path) -> tuple[list[str], str]:
    """The models this server can run (the detector always; native + ensemble where it has the backend)."""
    from effdet_deploy.triton_server import NATIVE_BACKENDS

    backend = NATIVE_BACKENDS[PLATFORMS[model.suffix][0]]
    if repo.native and repo.ensemble and install.has_backend(backend):
        return [repo.detector, repo.native, repo.ensemble], ""
    if repo.native:
        return [repo.detector], f"not loaded here: {repo.native}, {repo.ensemble} (no {backend} backend)"
    return [repo.detector], repo.note


def serve(settings: ServeSettings, options: ServerOptions, dry_run: bool = False) -> int:
    """Write the repository; with dry_run print it and the docker line, else run the server until a signal."""
    started = time.monotonic()
    repo = served_repository(settings)
    if dry_run:
        print(f"repository {repo.root}:")
        for f in sorted(p for p in repo.root.rglob("*") if p.is_file()):
            print(f"  {f.relative_to(repo.root)}")
        print(f"models: {', '.join(filter(None, [repo.detector, repo.native, repo.ensemble]))}"
              + (f" ({repo.note})" if repo.note else ""))
        print(f"GPU host: {docker_line(repo, settings.model, options)}")
        return 0
    from effdet_deploy.serve_run import run_server

    return run_server(repo, settings.model, options, started)


def temporary_repository() -> tuple[Path, Callable[[], None]]:
    """A repository folder removed when serve ends (the default without --repository)."""
    import shutil

    work = Path(tempfile.mkdtemp(prefix="effdet-serve-"))
    return work / "repository", lambda: shutil.rmtree(work, ignore_errors=True)
