"""`infer`: images -> one PNG per image with boxes drawn + one COCO-results JSON (detections.json) for all.
With --server HOST:PORT the detections come from a Triton server (`serve`); the files written are the same.

Unreadable images are skipped and counted; the output folder is created only when something is written.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path
from typing import Any, Iterator

from runtime.atomic import write_atomic
from runtime.thresholds import DEFAULT_SCORE_THRESHOLD


def add_arguments(p: argparse.ArgumentParser) -> None:
    from effdet_deploy.tool_images import add_checkpoint_flags, add_threads_flag
    from runtime.coco_eval import CLASS_MAPS

    p.add_argument("--model", default=None, help=".onnx, .engine/.plan, a checkpoint (.pth) or shapes_d0")
    p.add_argument("--server", default=None, metavar="HOST:PORT",
                   help="instead of --model: a Triton server from `serve` (HTTP, or gRPC as grpc://HOST:PORT)")
    p.add_argument("--model-name", default=None, help="with --server: the served model (default: its only one)")
    p.add_argument("--input", required=True, help="an image or a folder of images (searched recursively)")
    p.add_argument("--output", default="infer-output",
                   help="folder for <image path>.png pictures (input folder layout mirrored) and detections.json")
    p.add_argument("--backend", default=None, choices=("onnxruntime", "tensorrt", "torch"),
                   help="default: from the file suffix")
    p.add_argument("--device", default=None, help="cpu, cuda, tensorrt (ORT providers) or cuda:N")
    add_checkpoint_flags(p)
    add_threads_flag(p)
    p.add_argument("--score-threshold", type=float, default=DEFAULT_SCORE_THRESHOLD,
                   help="keep detections scoring at least this (the file's own NMS threshold is the floor)")
    p.add_argument("--iou", "--iou-threshold", dest="iou", type=float, default=None,
                   help="stricter class-aware NMS at this IoU on what the file keeps (default: the file's)")
    p.add_argument("--max-det", "--max-detections", dest="max_det", type=int, default=None,
                   help="at most this many detections per image (default: the file's)")
    p.add_argument("--annotations", type=Path, default=None,
                   help="COCO file: take image ids and category ids from it (as eval); default: file names, class+1")
    p.add_argument("--class-map", choices=CLASS_MAPS, default="auto", help="with --annotations: as in eval")


def run(args: argparse.Namespace) -> int:
    from effdet_deploy.infer_outputs import coco_ids, input_images, picture_path, relative_name
    from runtime.coco_eval import to_coco_results
    from runtime.errors import DeployError
    from runtime.image_io import read_image

    out = Path(args.output)            # a file there is refused before run (effdet_deploy/output_paths.py)
    root, files = input_images(args.input, out)
    if args.annotations is not None:
        from runtime.coco_annotations import load_annotations

        load_annotations(args.annotations)           # a bad file fails before the model loads
    elif args.class_map != "auto":
        raise DeployError("--class-map applies to --annotations (the ids of the COCO results); give both")
    names = [relative_name(root, f) for f in files]
    results, skipped, written = [], [], []
    with _detector(args) as det, _removed_on_interrupt(written, out):
        image_ids, categories = coco_ids(args.annotations, names, det.info.num_classes, args.class_map)
        backend = det.url if args.server else det.backend.describe()
        for i, (path, name) in enumerate(zip(files, names), start=1):
            try:
                image = read_image(path)
            except DeployError as e:
                skipped.append(name)
                print(f"[{i}/{len(files)}] skipped: {e}")
                continue
            found = det.detect(path if args.server else image)   # a server gets the file's own bytes
            written.append(_write_picture(picture_path(out, name), image, found, det.info.class_names))
            results.extend(to_coco_results(image_ids[name], found, categories))
            labels = ", ".join(sorted({det.info.class_name(int(c)) for c in found.classes}))
            print(f"[{i}/{len(files)}] {name}: {len(found)} detections{' (' + labels + ')' if labels else ''}")
    if len(skipped) == len(files):
        raise DeployError(f"{args.input}: none of the {len(files)} images could be read (first: {skipped[0]})")
    with _removed_on_interrupt(written, out):
        target = write_atomic(out / "detections.json", json.dumps(results, indent=1))
    print(f"wrote {len(files) - len(skipped)} pictures and {target} (COCO results; {backend})"
          + (f"; skipped {len(skipped)} unreadable: {', '.join(skipped[:3])}{' ...' if len(skipped) > 3 else ''}"
             if skipped else ""))
    return 0


def _detector(args: argparse.Namespace) -> Any:
    """The local Detector (--model), or a RemoteDetector (--server) filtering as the Detector would."""
    from effdet_deploy.tool_images import backend_options
    from runtime.errors import DeployError

    if (args.model is None) == (args.server is None):
        raise DeployError("give --model (run here) or --server HOST:PORT (a Triton server), one of the two")
    if args.server is None:
        from runtime.detector import Detector

        if args.model_name is not None:
            raise DeployError("--model-name applies to --server")
        return Detector(args.model, backend=args.backend, device=args.device, score_threshold=args.score_threshold,
                        iou_threshold=args.iou, max_detections=args.max_det, **backend_options(args))
    if args.backend or args.device or getattr(args, "threads", None):
        raise DeployError("--backend / --device / --threads set up a local run; the server runs its own")
    from effdet_deploy.remote_filters import FilteredRemote

    return FilteredRemote(args.server, args.model_name, args.score_threshold, args.iou, args.max_det)


@contextlib.contextmanager
def _removed_on_interrupt(pictures: list[Path], out: Path) -> Iterator[None]:
    """Ctrl-C (or any failure) before detections.json is written: this run's pictures (and the folders they
    made) go again, so no picture is left without the detections.json that lists it."""
    try:
        yield
    except BaseException:
        for picture in pictures:
            picture.unlink(missing_ok=True)
            for folder in picture.parents:
                if folder == out or not folder.is_relative_to(out) or any(folder.iterdir()):
                    break
                folder.rmdir()
        raise


def _write_picture(target: Path, image: object, found: object, names: tuple[str, ...]) -> Path:
    from runtime.draw import draw_detections

    png = io.BytesIO()
    draw_detections(image, found, names).save(png, format="PNG")  # type: ignore[arg-type]
    target.parent.mkdir(parents=True, exist_ok=True)             # created on the first write only
    return write_atomic(target, png.getvalue())
