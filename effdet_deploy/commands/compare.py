"""`compare`: targets (any precision/backend) against a reference at two levels - raw network outputs
(every anchor, before NMS) and detections - with a PASS / FAIL (exit 1) / INCONCLUSIVE (exit 3) verdict per
target, JSON, and a side-by-side picture of the worst image per target.

Unreadable images of --images are skipped and counted; none readable is INCONCLUSIVE (nothing compared). Targets
are named by the shortest path suffix that tells them apart (a/m.onnx, b/m.onnx), and so are their pictures; a
file given twice is compared once. Every number is printed beside the limit it was judged by."""
from __future__ import annotations

import argparse
import json
import math
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from runtime.atomic import write_atomic
from runtime.errors import DeployError, require_file

if TYPE_CHECKING:
    from runtime.parity import ParityResult

EXIT_CODES = {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 3}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from effdet_deploy.tool_images import add_checkpoint_flags, add_threads_flag

    p.add_argument("--reference", help="checkpoint (.pth), shipped name (shapes_d0) or FP32 .onnx "
                   "(or --load-outputs)")
    p.add_argument("--target", action="append", required=True, help="ONNX or engine; repeat for several")
    p.add_argument("--images", default=None, help="folder of images (default: built-in shapes scenes)")
    p.add_argument("--max-images", type=int, default=16)
    add_checkpoint_flags(p)
    p.add_argument("--atol", type=float, default=None,
                   help="max absolute score error (scores 0-1), at every level: raw outputs (every anchor and "
                        "class, before NMS) and matched detections (default: per precision, runtime/parity.py; box "
                        "limits stay in pixels)")
    p.add_argument("--rtol", type=float, default=None,
                   help="max mean relative score error (|d| / |ref|) at the raw and detection levels, and with "
                        "--layers the max mean relative error (sum |d| / sum |ref|) of each tensor (default: per "
                        "precision for detections, unchecked elsewhere)")
    add_threads_flag(p)
    p.add_argument("--output", default="compare-output", help="folder for compare.json and worst-image PNGs")
    p.add_argument("--layers", action="store_true",
                   help="also compare every intermediate tensor with the FP32 reference: first divergence, "
                        "error growth, layers.json and layers.png")
    p.add_argument("--all-layers", action="store_true", help="with --layers: print every tensor, not only those "
                   "over tolerance")
    p.add_argument("--save-outputs", type=Path, help="keep the reference's outputs (raw, detections, with --layers "
                   "every tensor) in FILE for later --load-outputs")
    p.add_argument("--load-outputs", type=Path, help="compare against a reference saved with --save-outputs "
                   "(same images) instead of running --reference")
    p.add_argument("--suggest-exclude", type=Path, help="with --layers and an INT8 target: bisect the smallest set "
                   "of node groups to keep out of INT8 and write it to FILE (quantize --exclude @FILE)")
    p.add_argument("--suggest-target", type=float, default=None, help="--suggest-exclude: the worst SNR (dB) of the "
                   "network outputs to reach (default: the target's median layer SNR + 3 dB)")


def verdict_of(verdicts: list[str]) -> str:
    """FAIL if any target failed, else INCONCLUSIVE if any was, else PASS."""
    return next((v for v in ("FAIL", "INCONCLUSIVE") if v in verdicts), "PASS")


def print_table(results: list[ParityResult], labels: list[str]) -> None:
    """One line per target and level (the numbers beside the limits they were judged by), then warnings and
    the verdict with its reasons. n/a: nothing compared (no detection on either side, no matched pair)."""
    width = max([6] + [len(label) for label in labels])
    print(f"{'target':{width}s} {'prec':5s} {'level':10s} {'result':12s} numbers (limit)")
    for r, label in zip(results, labels):
        a = r.agreement
        if r.raw is not None:
            print(f"{label:{width}s} {r.precision:5s} {'raw':10s} {'PASS' if r.raw else 'FAIL':12s} "
                  + "; ".join(c.text() for c in r.raw.checks) + f" [{r.raw.images} image(s), {r.raw.anchors} anchors]")
        else:
            print(f"{label:{width}s} {r.precision:5s} {'raw':10s} {'n/a':12s} {r.raw_note}")
        det = "FAIL" if r.failures else "INCONCLUSIVE" if r.inconclusive else "PASS"
        print(f"{label:{width}s} {r.precision:5s} {'detections':10s} {det:12s} matched {a.matched} (ref {a.reference}, "
              f"tgt {a.target}); " + "; ".join(c.text() for c in r.checks))
        for warning in r.warnings:
            print(f"  warning: {warning}")
        print(f"  => {r.verdict}" + (f": {'; '.join(r.reasons())}" if r.verdict != "PASS" else ""))


def check_arguments(args: argparse.Namespace) -> None:
    """Counts, tolerances and the files named, before the banner and before any model is loaded."""
    if args.max_images < 1:
        raise DeployError(f"--max-images must be at least 1, got {args.max_images}")
    for flag, value in (("--atol", args.atol), ("--rtol", args.rtol)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise DeployError(f"{flag} must be a finite number >= 0, got {value}")
    if (args.reference is None) == (args.load_outputs is None):
        raise DeployError("give --reference or --load-outputs (one of them)")
    if args.save_outputs is not None and args.load_outputs is not None:
        raise DeployError("--save-outputs and --load-outputs together: the outputs are already saved")
    if args.suggest_exclude is not None and not args.layers:
        raise DeployError("--suggest-exclude needs --layers")
    for flag, path in (("--save-outputs", args.save_outputs), ("--suggest-exclude", args.suggest_exclude)):
        if path is not None and not path.resolve().parent.is_dir():
            raise DeployError(f"{path}: {flag} folder does not exist")
    reference = [args.reference] if args.reference and Path(args.reference).suffix else []   # not a model name
    for path in map(Path, list(args.target) + reference + ([args.load_outputs] if args.load_outputs else [])):
        require_file(path)


def check_target_kind(target: Path) -> None:
    """A target of the wrong kind (a picture, text, a cut ONNX file, an ONNX file we did not export) is found
    before the reference runs (it took 10-20 s of the reference's work before its one line)."""
    from runtime.detector import SUFFIXES

    suffix = target.suffix.lower()
    if SUFFIXES.get(suffix) == "tensorrt":
        return                            # engines: their sidecar and TensorRT are checked when they open
    if suffix != ".onnx":
        raise DeployError(f"{target}: --target takes .onnx or .engine/.plan files")
    from export.onnx_io import metadata_of, read_onnx
    from runtime.model_info import ModelInfo

    ModelInfo.from_metadata(metadata_of(read_onnx(target, weights=False)), str(target))


def run(args: argparse.Namespace) -> int:
    from effdet_deploy.interrupt_cleanup import new_files_removed_on_failure
    from effdet_deploy.reporting import compare_targets, distinct_labels, file_keys
    from runtime.parity import MIN_MATCHED, SCORE_FLOOR

    check_arguments(args)
    targets = unique_targets(args.target)
    names, images, skipped = compare_images(args.images, args.max_images)
    if args.load_outputs is None:              # a saved reference is quick to load: its own checks come first
        for target in targets:
            check_target_kind(Path(target))
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    if not images:
        return nothing_readable(args, skipped, out)
    labels, keys = distinct_labels(targets), file_keys(distinct_labels(targets))
    print(f"comparing {len(targets)} target(s) with {args.reference or args.load_outputs} on {len(images)} "
          f"image(s) ({'built-in shapes scenes' if args.images is None else args.images}"
          f"{f'; {len(skipped)} unreadable skipped' if skipped else ''}); detections at score >= {SCORE_FLOOR}, at "
          f"least {MIN_MATCHED} matched for a detection-level PASS" + threads_note(args.threads, targets))
    # one guard from the first model run to compare.json: this run's pictures and layer files go again if the file
    # that lists them is not written (Ctrl-C or a failure in between)
    with new_files_removed_on_failure(out):
        with reference_outputs(args, names, images) as (reference, writer):
            comparison = compare_targets(reference, targets, images, None, args.atol, args.rtol,
                                         builtin_images=args.images is None, threads=args.threads)
            verdicts = [r.verdict for r in comparison.results]
            print_table(comparison.results, labels)
            if args.layers:
                verdicts += run_layers(args, targets, keys, reference, images, writer, out)
        pictures = write_pictures(comparison, images, labels, keys, out)
        report = {"reference": args.reference or str(args.load_outputs), "images": names, "skipped_images": skipped,
                  "score_threshold": SCORE_FLOOR, "atol": args.atol, "rtol": args.rtol, "threads": args.threads,
                  "verdict": verdict_of(verdicts),
                  "targets": [{**r.to_json(), "label": label, "worst_picture": picture}
                              for r, label, picture in zip(comparison.results, labels, pictures)]}
        write_atomic(out / "compare.json", json.dumps(report, indent=2))
    print(f"{report['verdict']} on {len(images)} image(s){f' ({len(skipped)} unreadable skipped)' if skipped else ''}"
          f"; wrote {out / 'compare.json'} and worst-image pictures")
    return EXIT_CODES[str(report["verdict"])]


def unique_targets(targets: list[str]) -> list[str]:
    """The targets in order, each file once (the same file under two spellings too), with a note per repeat."""
    seen: dict[Path, str] = {}
    for target in targets:
        key = Path(target).resolve()
        if key in seen:
            print(f"note: --target {target} is {seen[key]} again; compared once")
        else:
            seen[key] = target
    return list(seen.values())


def compare_images(folder: str | None, limit: int) -> tuple[list[str], list[Any], list[str]]:
    """(names, images, skipped names): the built-in scenes, or the first `limit` readable images of `folder`."""
    from effdet_deploy.tool_images import readable_images, tool_images
    from runtime.image_io import list_images

    if folder is None:
        return (*tool_images(None, limit), [])
    return readable_images(list_images(folder), limit, Path(folder))


def nothing_readable(args: argparse.Namespace, skipped: list[str], out: Path) -> int:
    """No image could be read: INCONCLUSIVE (exit 3) with the reason, in compare.json too; no model is loaded."""
    reason = f"none of the {len(skipped)} image(s) in {args.images} could be read: nothing was compared"
    report = {"reference": args.reference or str(args.load_outputs), "images": [], "skipped_images": skipped,
              "verdict": "INCONCLUSIVE", "reason": reason, "targets": []}
    write_atomic(out / "compare.json", json.dumps(report, indent=2))
    print(f"INCONCLUSIVE: {reason}; wrote {out / 'compare.json'}")
    return EXIT_CODES["INCONCLUSIVE"]


def threads_note(threads: int | None, targets: list[str]) -> str:
    """'; N CPU threads' for the banner, naming engines (TensorRT: no CPU thread pool) it does not reach."""
    if not threads:
        return ""
    engines = [Path(t).name for t in targets if Path(t).suffix.lower() in (".engine", ".plan", ".trt")]
    return f"; --threads {threads} for ONNX Runtime / PyTorch" + (f" (not {', '.join(engines)}: TensorRT)"
                                                                     if engines else "")


def write_pictures(comparison: Any, images: list, labels: list[str], keys: list[str], out: Path) -> list[str]:
    """worst_<key>.png per target (reference and target side by side, atomically); returns the file names."""
    import io

    from effdet_deploy.reporting import worst_picture

    names = []
    for index, (r, label, key) in enumerate(zip(comparison.results, labels, keys)):
        buffer = io.BytesIO()
        worst_picture(comparison, index, images[r.worst_image], ("reference", label)).save(buffer, format="PNG")
        names.append(write_atomic(out / f"worst_{key}.png", buffer.getvalue()).name)
    return names


@contextmanager
def reference_outputs(args: argparse.Namespace, names: list[str], images: list) -> Iterator[tuple[Any, Any]]:
    """(the reference, a writer for --save-outputs or None); the saved file appears only when all went well."""
    from effdet_deploy.reporting import RawCache, Reference, live_reference
    from effdet_deploy.reporting import cpu_options
    from effdet_deploy.saved_outputs import OutputsWriter, check_same_model, load_outputs
    from effdet_deploy.tool_images import checkpoint_options

    if args.load_outputs is not None:
        saved = load_outputs(args.load_outputs, names, images, args.layers)
        for target in args.target:
            check_same_model(saved, _info_of(target), target)
        yield Reference(str(args.load_outputs), saved.detections(), saved.info,
                        RawCache("", None, images, saved=saved)), saved
        return
    reference = live_reference(args.reference, images, {**checkpoint_options(args),
                                                         **cpu_options(args.reference, args.threads)})
    if args.save_outputs is None:
        yield reference, None
        return
    writer = OutputsWriter(args.save_outputs)
    try:
        yield reference, writer
        writer.close(_manifest(args, names, images, reference, writer))
        print(f"saved the reference's outputs to {args.save_outputs}")
    except BaseException:
        writer.abort()
        raise


def _manifest(args: argparse.Namespace, names: list[str], images: list, reference: Any, writer: Any) -> dict:
    from effdet_deploy.saved_outputs import images_digest, info_json

    for index, det in enumerate(reference.detections):
        writer.detections(index, det)
    raw = reference.raw.info is not None and not reference.raw.note
    if raw:
        for index, (boxes, scores) in enumerate(reference.raw.outputs()):
            writer.raw(index, boxes, scores)
    tensors = getattr(writer, "layer_tensors", [])
    return {"reference": args.reference, "info": info_json(reference.info), "images": names,
            "images_sha256": images_digest(images), "raw": raw, "tensors": [t.name for t in tensors],
            "layer_tensors": [t.to_json() for t in tensors]}


def _info_of(path: str) -> Any:
    from runtime.detector import Detector

    with Detector(path) as det:
        return det.info


def run_layers(args: argparse.Namespace, targets: list[str], keys: list[str], reference: Any, images: list,
               writer: Any, out: Path) -> list[str]:
    """compare --layers for every target; INCONCLUSIVE where no tensor could be compared."""
    from effdet_deploy.layer_command import LayerReference, compare_layers, print_report, write_layer_outputs
    from effdet_deploy.saved_outputs import SavedOutputs

    if isinstance(writer, SavedOutputs):
        size = writer.info.image_size
        layer_ref, writer = LayerReference.saved(writer), None
    else:
        size = reference.info.image_size
        layer_ref = LayerReference.live(args.reference, images, checkpoint_options_of(args), reference.info,
                                        args.threads)
        if writer is not None:
            writer.layer_tensors = layer_ref.tensors
    reports, verdicts, report_keys = [], [], []
    for target, key in zip(targets, keys):
        report = compare_layers(layer_ref, target, images, writer if not reports else None,
                                args.threads if Path(target).suffix.lower() == ".onnx" else None, args.rtol, size)
        if report is None:              # another input size: nothing comparable, said in one line
            verdicts.append("INCONCLUSIVE")
            continue
        print_report(report, args.all_layers)
        reports.append(report)
        report_keys.append(key)
        if not report.compared:
            verdicts.append("INCONCLUSIVE")
            print(f"  => INCONCLUSIVE: no tensor of {target} matches one of the reference (an engine needs its "
                  "tensors marked as outputs at build time: export/layer_marks.py)")
    if not reports:
        return verdicts
    written = write_layer_outputs(reports, out, report_keys)
    print(f"wrote {', '.join(str(p) for p in written)}")
    if args.suggest_exclude is not None:
        from effdet_deploy.precision_debug import suggest_exclude

        suggest_exclude(args, layer_ref, reports[0], images)
    return verdicts


def checkpoint_options_of(args: argparse.Namespace) -> dict[str, Any]:
    from effdet_deploy.tool_images import checkpoint_options

    return checkpoint_options(args)
