"""`serve`: a Triton server over a model file: encoded images in, detections out (python backend over our
runtime), the native model and an ensemble beside it where this server has the backend. Loopback unless --host."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    from runtime.served import MAX_BYTES, MAX_PIXELS
    from runtime.thresholds import DEFAULT_SCORE_THRESHOLD

    p.add_argument("model", help=".onnx, .engine/.plan, or a shipped model name (shapes_d0: exported once, cached)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: every interface)")
    p.add_argument("--http-port", type=int, default=None, help="default: a free port")
    p.add_argument("--grpc-port", type=int, default=None, help="default: a free port")
    p.add_argument("--metrics-port", type=int, default=None, help="default: a free port")
    p.add_argument("--instances", type=int, default=1, help="model instances (each its own Detector)")
    p.add_argument("--max-batch-size", type=int, default=None, help="default: the file's maximum batch")
    p.add_argument("--max-queue-delay-us", type=int, default=2000,
                   help="how long Triton's dynamic batcher waits to fill a batch")
    p.add_argument("--kind", choices=("cpu", "gpu"), default=None,
                   help="instance kind (default: gpu for engines and with --dry-run, else cpu)")
    p.add_argument("--name", default=None, help="model name (default: the file name, dots as underscores)")
    p.add_argument("--score-threshold", type=float, default=DEFAULT_SCORE_THRESHOLD,
                   help="served detections score at least this (as infer / Detector)")
    p.add_argument("--max-request-mb", type=float, default=MAX_BYTES / 2**20, help="larger uploads are refused")
    p.add_argument("--max-image-mp", type=float, default=MAX_PIXELS / 1e6,
                   help="images with more megapixels are refused before decoding")
    p.add_argument("--exit-timeout", type=int, default=10,
                   help="seconds Triton waits for in-flight requests when stopping")
    p.add_argument("--repository", type=Path, default=None,
                   help="write the repository here and keep it (default: a temporary one; with --dry-run: "
                        "./triton-repository)")
    p.add_argument("--dry-run", action="store_true",
                   help="write the repository, print it and the docker line for a GPU host; start nothing")


def run(args: argparse.Namespace) -> int:
    from effdet_deploy.serve import ServerOptions, model_file, serve, temporary_repository
    from export.triton_served import ServeSettings
    from runtime.errors import DeployError
    from runtime.thresholds import check_filters

    check_filters(args.score_threshold, None, None)
    if args.instances < 1 or args.exit_timeout < 0:
        raise DeployError("--instances must be >= 1 and --exit-timeout >= 0")
    if args.max_request_mb <= 0 or args.max_image_mp <= 0:
        raise DeployError("--max-request-mb and --max-image-mp must be > 0")
    if args.max_queue_delay_us < 0:      # before the model file is read (export/triton_served.py checks it too)
        raise DeployError(f"--max-queue-delay-us must be >= 0, got {args.max_queue_delay_us}")
    for flag in ("http_port", "grpc_port", "metrics_port"):
        port = getattr(args, flag)
        if port is not None and not 1 <= port <= 65535:
            raise DeployError(f"--{flag.replace('_', '-')} {port}: a port is 1..65535")
    cleanup = None
    repository = args.repository or (Path("triton-repository") if args.dry_run else None)
    if repository is None:
        repository, cleanup = temporary_repository()
    try:
        model = model_file(args.model)
        name = args.name or (None if model == Path(args.model) else args.model)    # shapes_d0, not its cache file
        settings = ServeSettings(model=model, output=repository, name=name,
                                 max_batch_size=args.max_batch_size, max_queue_delay_us=args.max_queue_delay_us,
                                 instances=args.instances, kind=args.kind or ("gpu" if args.dry_run else None),
                                 score_threshold=args.score_threshold,
                                 max_bytes=int(args.max_request_mb * 2**20), max_pixels=int(args.max_image_mp * 1e6))
        options = ServerOptions(args.host, args.http_port, args.grpc_port, args.metrics_port, args.exit_timeout)
        return serve(settings, options, dry_run=args.dry_run)
    finally:
        if cleanup:
            cleanup()
