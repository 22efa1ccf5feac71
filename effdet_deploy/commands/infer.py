"""`infer`: images -> one PNG per image with boxes drawn + one COCO-results JSON (detections.json) for all;
a video file, camera or stream URL -> an annotated video + one JSON line per frame (effdet_deploy/video_*.py).
With --server HOST:PORT the detections come from a Triton server (`serve`); the files written are the same.
--classes keeps only some classes (by index or name) in every output.

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
from runtime.coco_eval import to_coco_results
from runtime.errors import DeployError
from runtime.log import logger
from runtime.progress import progress_bar
from runtime.thresholds import DEFAULT_SCORE_THRESHOLD


def add_arguments(p: argparse.ArgumentParser) -> None:
    from effdet_deploy.tool_images import _positive_int, add_checkpoint_flags, add_threads_flag
    from runtime.coco_eval import CLASS_MAPS

    p.add_argument("--model", default=None, help=".onnx, .engine/.plan, a checkpoint (.pth) or shapes_d0")
    p.add_argument("--server", default=None, metavar="HOST:PORT",
                   help="instead of --model: a Triton server from `serve` (HTTP, or gRPC as grpc://HOST:PORT)")
    p.add_argument("--model-name", default=None, help="with --server: the served model (default: its only one)")
    p.add_argument("--input", required=True,
                   help="an image, a folder of images (searched recursively), a video file (.mp4, .mkv, .avi, "
                        ".mov, .webm, ...), a camera number (0 = /dev/video0) or a stream URL (rtsp://, http://, ...)")
    p.add_argument("--output", default="infer-output",
                   help="folder for <image path>.png pictures (input folder layout mirrored) and detections.json; "
                        "for a video source <name>.mp4 (annotated) and <name>.jsonl (one line per frame)")
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
    p.add_argument("--classes", default=None, metavar="LIST",
                   help="keep only these classes: indices or names separated by commas, e.g. 0,2 or circle,square")
    p.add_argument("--batch", type=_positive_int, default=None, metavar="N",
                   help="video: frames per detect() call (default: a static file's batch, else 8 within its maximum)")
    p.add_argument("--max-frames", type=_positive_int, default=None, metavar="N",
                   help="video: stop after N frames (a camera or stream runs until Ctrl-C otherwise)")
    p.add_argument("--no-video", action="store_true",
                   help="video: write only the JSON lines, no annotated video")
    p.add_argument("--annotations", type=Path, default=None,
                   help="COCO file: take image ids and category ids from it (as eval); default: file names, class+1")
    p.add_argument("--class-map", choices=CLASS_MAPS, default="auto", help="with --annotations: as in eval")


def run(args: argparse.Namespace) -> int:
    from effdet_deploy.class_filter import split_classes
    from effdet_deploy.video_source import video_spec

    classes = split_classes(args.classes) if args.classes is not None else None
    spec = video_spec(args.input)
    if spec is not None:
        return _run_video(args, spec, classes)
    given = [f for f, on in (("--batch", args.batch), ("--max-frames", args.max_frames), ("--no-video", args.no_video))
             if on]
    if given:
        raise DeployError(f"{' / '.join(given)}: for video inputs (a video file, camera or stream URL); "
                          f"{args.input} is read as images")
    return _run_images(args, classes)


def _run_images(args: argparse.Namespace, classes: list[str] | None) -> int:
    from effdet_deploy.infer_outputs import coco_ids, input_images, relative_name

    out = Path(args.output)            # a file there is refused before run (effdet_deploy/output_paths.py)
    root, files = input_images(args.input, out)
    if args.annotations is not None:
        from runtime.coco_annotations import load_annotations

        load_annotations(args.annotations)           # a bad file fails before the model loads
    elif args.class_map != "auto":
        raise DeployError("--class-map applies to --annotations (the ids of the COCO results); give both")
    names = [relative_name(root, f) for f in files]
    results: list[dict[str, Any]] = []
    skipped: list[str] = []
    written: list[Path] = []
    # one guard from the first picture to detections.json: a Ctrl-C while the detector closes (between the loop
    # and the write) left the pictures without the file that lists them
    with _removed_on_interrupt(written, out):
        with _detector(args, classes) as det:
            image_ids, categories = coco_ids(args.annotations, names, det.info.num_classes, args.class_map)
            backend = _describe(args, det)
            with progress_bar("infer", len(files), unit="image") as bar:
                for i, (path, name) in enumerate(zip(files, names), start=1):
                    found = _one_image(args, det, path, name, out, written, f"[{i}/{len(files)}]")
                    if found is None:
                        skipped.append(name)
                    else:
                        results.extend(to_coco_results(image_ids[name], found, categories))
                    bar.update()
        if len(skipped) == len(files):
            raise DeployError(f"{args.input}: none of the {len(files)} images could be read (first: {skipped[0]})")
        target = write_atomic(out / "detections.json", json.dumps(results, indent=1))
    print(f"wrote {len(files) - len(skipped)} pictures and {target} (COCO results; {backend})"
          + (f"; skipped {len(skipped)} unreadable: {', '.join(skipped[:3])}{' ...' if len(skipped) > 3 else ''}"
             if skipped else ""))
    return 0


def _one_image(args: argparse.Namespace, det: Any, path: Path, name: str, out: Path, written: list[Path],
               counter: str) -> Any:
    """Detect on one image file and draw its picture; None (and a line) if the file cannot be read."""
    from effdet_deploy.infer_outputs import picture_path
    from runtime.image_io import read_image

    try:
        image = read_image(path)
    except DeployError as e:
        logger.info(f"{counter} skipped: {e}")
        return None
    found = det.detect(path if args.server else image)   # a server gets the file's own bytes
    written.append(_write_picture(picture_path(out, name), image, found, det.info.class_names))
    labels = ", ".join(sorted({det.info.class_name(int(c)) for c in found.classes}))
    logger.info(f"{counter} {name}: {len(found)} detections{' (' + labels + ')' if labels else ''}")
    return found


def _run_video(args: argparse.Namespace, spec: Any, classes: list[str] | None) -> int:
    """A video file, camera or stream URL -> <stem>.mp4 + <stem>.jsonl in --output (effdet_deploy/video_*.py)."""
    from effdet_deploy.video_infer import batch_size, infer_video
    from effdet_deploy.video_sink import VideoOutputs
    from effdet_deploy.video_source import VideoSource

    if args.annotations is not None or args.class_map != "auto":
        raise DeployError("--annotations / --class-map: for images (COCO results); a video source writes JSON lines")
    out = Path(args.output)
    if spec.kind == "video" and (out / f"{spec.stem}.mp4").resolve() == Path(spec.target).resolve():
        raise DeployError(f"{spec.target}: the annotated video would overwrite it; give another --output folder")
    with VideoSource(spec, args.threads) as source, _detector(args, classes) as det:
        batch = batch_size(args.batch, det.info)
        fps = f"{float(source.fps):.4g} fps" if source.fps else "no frame rate"
        count = "live" if spec.live else f"{source.total} frames" if source.total else "frame count unknown"
        print(f"{spec.label}: {source.width}x{source.height}, {fps}, {count}; batches of {batch}; "
              f"{_describe(args, det)}", flush=True)
        outputs = VideoOutputs(out, spec.stem, source.fps, not args.no_video, args.threads)
        run = infer_video(source, det, outputs, batch, args.max_frames)
    print(f"wrote {' and '.join(str(p) for p in run.written)}: {run.frames} frames, {run.detections} detections, "
          f"{run.fps:.1f} frames/s" + (f"; {run.stopped}" if run.stopped else ""))
    return 0


def _describe(args: argparse.Namespace, det: Any) -> str:
    """The backend line of the summary (the server's URL for --server), plus the class filter."""
    from effdet_deploy.class_filter import ClassFilter

    text = det.url if args.server else det.backend.describe()
    return f"{text}; {det.describe()}" if isinstance(det, ClassFilter) else text


def _detector(args: argparse.Namespace, classes: list[str] | None = None) -> Any:
    """The local Detector (--model), or a RemoteDetector (--server) filtering as the Detector would; with
    --classes wrapped in a ClassFilter, which applies --max-det after the class filter."""
    from effdet_deploy.class_filter import ClassFilter
    from effdet_deploy.tool_images import backend_options

    if (args.model is None) == (args.server is None):
        raise DeployError("give --model (run here) or --server HOST:PORT (a Triton server), one of the two")
    max_det = args.max_det if classes is None else None
    if args.server is None:
        from runtime.detector import Detector

        if args.model_name is not None:
            raise DeployError("--model-name applies to --server")
        inner: Any = Detector(args.model, backend=args.backend, device=args.device,
                              score_threshold=args.score_threshold, iou_threshold=args.iou,
                              max_detections=max_det, **backend_options(args))
    else:
        if args.backend or args.device or getattr(args, "threads", None):
            raise DeployError("--backend / --device / --threads set up a local run; the server runs its own")
        from effdet_deploy.remote_filters import FilteredRemote

        inner = FilteredRemote(args.server, args.model_name, args.score_threshold, args.iou, max_det)
    return inner if classes is None else ClassFilter(inner, classes, args.max_det)


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
