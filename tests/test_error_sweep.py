"""Issue 25's error sweep, fast tier: for every command, its argument range errors, files of the wrong kind and
output-path mistakes give the exit code of DESIGN's table (2), exactly one stderr line naming the flag or file,
no traceback anywhere, and nothing written. One fresh interpreter runs the whole table through the command line's
own entry point (effdet_deploy.cli.main; a process per case cost ~1.5 s each), each case in an empty working
folder, and reports whether torch was imported by then: every case of TORCH_FREE is answered before torch loads
(issue 25: 5-11 s before the line), so it runs first. AFTER_TORCH holds what needs a checkpoint opened."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

DRIVER = """
import io, json, logging, os, sys
logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.__stdout__)
from effdet_deploy.cli import main
cases, base = json.loads(sys.argv[1]), sys.argv[2]
results = []
for index, argv in enumerate(cases):
    cwd = os.path.join(base, str(index))
    os.makedirs(cwd)
    os.chdir(cwd)
    err, out = io.StringIO(), io.StringIO()
    sys.stderr, sys.stdout = err, out
    try:
        code = main(argv)
    except SystemExit as e:                          # argparse's usage errors
        code = e.code if isinstance(e.code, int) else 1
    except BaseException as e:                       # what the command line would have shown as a traceback
        code, err = -1, io.StringIO(err.getvalue() + f"Traceback: {type(e).__name__}: {e}")
    finally:
        sys.stderr, sys.stdout = sys.__stderr__, sys.__stdout__
    results.append({"code": code, "err": err.getvalue(), "out": out.getvalue(), "torch": "torch" in sys.modules,
                    "left": sorted(os.listdir(cwd))})
print("RESULTS " + json.dumps(results))
"""

EXPORT = ["export", "--model", "shapes_d0", "--output", "x.onnx"]
FP16 = ["quantize", "--onnx", "{onnx}", "--output", "q.onnx", "--precision", "fp16"]
INT8 = ["quantize", "--onnx", "{onnx}", "--output", "q.onnx", "--precision", "int8", "--calib-dir", "{images}"]
BUILD = ["build", "--onnx", "{onnx}"]
INFER = ["infer", "--model", "{onnx}", "--input", "{images}", "--output", "pics"]
COMPARE = ["compare", "--reference", "shapes_d0", "--target", "{onnx}", "--output", "cmp"]
BENCH = ["bench", "--model", "{onnx}"]
EVAL = ["eval", "--model", "{onnx}", "--images", "{images}", "--annotations", "{coco}", "--output", "r.json"]
TRITON = ["triton", "--model", "{onnx}", "--output", "repo"]
SERVE = ["serve", "{onnx}", "--dry-run", "--repository", "repo"]
TRAIN = ["train", "--output", "t", "--steps", "2"]
SYNTH = ["synth", "--output", "data", "--images", "2"]
PIPELINE = ["pipeline", "--output", "run"]

# (command line, a fragment the one stderr line must hold: the flag or file and the problem)
TORCH_FREE = [
    (EXPORT + ["--image-size", "1,2,3"], "--image-size: image size '1,2,3' is not a number or H,W pair"),
    (EXPORT + ["--image-size", "9000"], "--image-size 9000x9000: at most 4096 per side"),
    (EXPORT + ["--opset", "12"], "--opset must be 13..20, got 12"),
    (EXPORT + ["--batch", "0"], "--batch and --max-detections must be >= 1"),
    (EXPORT + ["--dynamic-batch", "4,2,1"], "--dynamic-batch must be MIN<=OPT<=MAX"),
    (EXPORT + ["--dynamic-batch", "a,b,c"], "--dynamic-batch must be MIN,OPT,MAX integers, got 'a,b,c'"),
    (EXPORT + ["--dynamic-batch", "1,2,4", "--batch", "2"], "argument --batch: not allowed with argument"),
    (EXPORT + ["--score-threshold", "nan"], "score threshold (--score-threshold, score_threshold) must be in [0, 1], got nan"),
    (EXPORT + ["--nms", "none", "--pre-nms-top-k", "-5"], "--pre-nms-top-k must be >= 1, got -5"),
    (EXPORT + ["--nms", "bogus"], "argument --nms: invalid choice: 'bogus'"),
    (EXPORT + ["--input-dtype", "uint8", "--no-preprocess"], "--input-dtype uint8 needs the preprocessing"),
    (EXPORT + ["--checkpoint", "nosuch.pth"], "nosuch.pth: --checkpoint not found"),
    (EXPORT + ["--checkpoint", "{empty}"], "empty: --checkpoint is a folder, not a checkpoint file"),
    (["export", "--model", "d0", "--output", "{afile}/x.onnx"], "afile, which is a file, not a folder"),
    (["export", "--model", "d0", "--output", "x.txt"], "x.txt: --output must end in .onnx"),
    (FP16 + ["--seed", "3"], "--seed: INT8 calibration flags, not used by --precision fp16"),
    (INT8 + ["--seed", "-1"], "--seed must be at least 0, got -1"),                      # was a ValueError traceback
    (INT8 + ["--calib-images", "0"], "--calib-images must be at least 1, got 0"),
    (INT8 + ["--calib-batch", "0"], "--calib-batch must be at least 1, got 0"),
    (INT8 + ["--exclude", "auto", "--target", "0"], "--target must be a relative error > 0, got 0.0"),
    (INT8 + ["--exclude", "auto", "--target", "nan"], "--target must be a finite number, got nan"),
    (INT8 + ["--target", "0.1"], "--target is the accepted error of --exclude auto; unused with --exclude default"),
    (INT8 + ["--trt-version", "abc"], "--trt-version must look like 8.6 or 10.3, got 'abc'"),
    (INT8 + ["--trt-version", "9.0"], "--trt-version 9.0: INT8 files are made for TensorRT 8.6 or 10.0+"),
    (INT8 + ["--exclude", "@nosuch.json"], "nosuch.json: exclude file not found"),
    (INT8 + ["--exclude", "@{png}"], "img.png: not an exclude file"),
    (INT8[:-2], "--precision int8 needs --calib-dir"),
    (INT8[:-1] + ["nosuch"], "nosuch: no such file or folder"),
    (INT8[:-1] + ["{empty}"], "empty: no images found"),
    (["quantize", "--onnx", "{png}", "--output", "q.onnx", "--precision", "fp16"], "img.png: not a readable ONNX file"),
    (["quantize", "--onnx", "{truncated}", "--output", "q.onnx", "--precision", "fp16"],
     "truncated.onnx: not a readable ONNX file"),
    (["quantize", "--onnx", "{fp16}", "--output", "q.onnx", "--precision", "fp16"], "fp16.onnx: is already fp16"),
    (["quantize", "--onnx", "{onnx}", "--output", "{afile}/q.onnx", "--precision", "fp16"], "which is a file"),
    (BUILD + ["--workspace", "0"], "--workspace must be at least 1, got 0"),             # was dropped silently
    (BUILD + ["--workspace", "-1"], "--workspace must be at least 1, got -1"),
    (BUILD + ["--dla-core", "-1"], "--dla-core must be at least 0, got -1"),
    (BUILD + ["--calib-images", "0"], "--calib-images must be at least 1, got 0"),
    (BUILD + ["--calib-batch", "0"], "--calib-batch must be at least 1, got 0"),
    (BUILD + ["--memPoolSize", "workspace:0"], "--memPoolSize 'workspace:0': the workspace must be at least 1 MiB"),
    (BUILD + ["--memPoolSize", "workspace:xyz"], "--memPoolSize 'workspace:xyz': size must be a number"),
    (BUILD + ["--shapes", "images:abc"], "shape 'images:abc' is not NAME:AxBxC"),
    (BUILD + ["--builder-optimization-level", "9"], "argument --builder-optimization-level"),
    (BUILD + ["--engine", "{onnx}"], "--engine is the --onnx input; it would be overwritten"),
    (["build"], "give --onnx FILE (build an engine) or --loadEngine ENGINE"),
    (["build", "--onnx", "{png}"], "img.png: not a readable ONNX file"),
    (["build", "--onnx", "{truncated}"], "truncated.onnx: not a readable ONNX file"),
    (["build", "--loadEngine", "nosuch.engine"], "nosuch.engine: --loadEngine: no such engine file"),
    (INFER + ["--image-size", "0"], "--image-size: image size '0' must be two positive integers"),
    (INFER + ["--arch", "nosuch"], "--arch: unknown model 'nosuch'"),
    (INFER + ["--score-threshold", "2"], "score threshold (--score-threshold, score_threshold) must be in [0, 1], got 2.0"),
    (INFER + ["--threads", "0"], "argument --threads: must be at least 1, got 0"),
    (INFER + ["--annotations", "{badjson}"], "bad.json: not a readable JSON file"),
    (INFER + ["--annotations", "{notcoco}"], "notcoco.json: not COCO format"),
    (["infer", "--model", "{onnx}", "--input", "nosuch"], "nosuch: no such file or folder"),
    (["infer", "--model", "{onnx}", "--input", "{empty}"], "empty: no images found"),
    (["infer", "--model", "nosuch", "--input", "{images}"], "nosuch: no such file, and no model of that name"),
    (["infer", "--model", "{png}", "--input", "{images}"], "img.png: cannot tell the backend from the name"),
    (["infer", "--model", "{text_onnx}", "--input", "{images}"], "text.onnx: ONNX Runtime cannot load it"),
    (["infer", "--model", "{onnx}", "--input", "{images}", "--output", "{afile}"], "--output is a file; give a folder"),
    (["infer", "--server", "notaport", "--input", "{images}"], "notaport: give the server as HOST:PORT"),
    (COMPARE + ["--image-size", "abc"], "--image-size: image size 'abc' is not a number or H,W pair"),
    (COMPARE + ["--arch", "nosuch"], "--arch: unknown model 'nosuch'"),
    (COMPARE + ["--images", "nosuch"], "nosuch: no such file or folder"),
    (COMPARE + ["--suggest-exclude", "x.json"], "--suggest-exclude needs --layers"),
    (COMPARE + ["--layers", "--suggest-exclude", "x.json", "--suggest-target", "nan"],
     "--suggest-target must be a finite number, got nan"),
    (["compare", "--load-outputs", "{png}", "--target", "{onnx}"],
     "img.png: not a file written by compare --save-outputs"),
    (COMPARE + ["--save-outputs", "nodir/x.npz"], "nodir/x.npz: --save-outputs folder does not exist"),
    (COMPARE, "m.onnx: not an efficientdet-deploy export"),                  # was 10-20 s of the reference's work
    (["compare", "--reference", "shapes_d0", "--target", "{truncated}"], "truncated.onnx: not a readable ONNX file"),
    (["compare", "--reference", "shapes_d0", "--target", "{png}"], "img.png: --target takes .onnx or .engine/.plan"),
    (BENCH + ["--duration", "inf"], "--duration must be a finite number, got inf"),        # ran forever
    (BENCH + ["--duration", "nan"], "--duration must be a finite number, got nan"),        # was accepted
    (BENCH + ["--warmup", "-1"], "--warmup and --duration >= 0"),
    (BENCH + ["--batch", "0"], "--batch and --iterations must be >= 1"),
    (BENCH + ["--device", "xyz"], "device 'xyz' is not one of cpu, cuda, tensorrt"),
    (["bench", "--model", "{text_onnx}"], "text.onnx: ONNX Runtime cannot load it"),
    (["bench", "--model", "shapes_d0", "--image-size", "0"], "--image-size: image size '0'"),
    (EVAL + ["--batch", "0"], "--batch must be >= 1, got 0"),
    (EVAL + ["--image-size", "9000"], "--image-size 9000x9000: at most 4096 per side"),
    (["eval", "--model", "{onnx}", "--images", "{images}", "--annotations", "{png}"], "img.png: not a readable JSON"),
    (["eval", "--model", "{onnx}", "--images", "{images}", "--annotations", "{notcoco}"], "not COCO format"),
    (["eval", "--model", "{onnx}", "--images", "nosuch", "--annotations", "{coco}"],
     "nosuch: --images folder not found"),
    (["eval", "--model", "{onnx}", "--images", "{images}", "--annotations", "{coco}", "--output", "{afile}/r.json"],
     "which is a file, not a folder"),
    (TRITON + ["--max-batch-size", "-2"], "--max-batch-size must be >= 0 (0: no batching), got -2"),
    (TRITON + ["--instances", "0"], "--instances must be at least 1, got 0"),
    (TRITON + ["--name", "a/b"], "--name 'a/b' must be one folder name"),
    (["triton", "--model", "{png}", "--output", "repo"], "img.png: Triton repositories take .onnx or .engine/.plan"),
    (["triton", "--model", "{text_onnx}", "--output", "repo"], "text.onnx: not a readable ONNX file"),
    (["triton", "--model", "{onnx}", "--output", "{afile}"], "afile: --output is a file; give a folder"),
    (SERVE + ["--http-port", "0"], "--http-port 0: a port is 1..65535"),
    (SERVE + ["--instances", "0"], "--instances must be >= 1"),
    (SERVE + ["--max-request-mb", "nan"], "--max-request-mb must be a finite number, got nan"),   # was a traceback
    (SERVE + ["--max-queue-delay-us", "-1"], "--max-queue-delay-us must be >= 0, got -1"),
    (["serve", "{onnx}", "--dry-run", "--repository", "{afile}"], "afile: --repository is a file"),  # was a traceback
    (["serve", "{png}", "--dry-run"], "img.png: serve takes .onnx or .engine/.plan files"),
    (["serve", "nosuch", "--dry-run"], "nosuch: not a file, and no model of that name ships weights"),
    (["info", "{truncated}"], "truncated.onnx: not a readable ONNX file"),
    (["info", "{png}"], "img.png: not a model file this tool knows"),
    (["info", "d0", "--image-size", "0"], "--image-size: image size '0' must be two positive integers"),
    (["lint", "{png}"], "img.png: not a readable ONNX file"),
    (["lint", "{onnx}", "--trt-version", "abc"], "--trt-version: TensorRT version 'abc' is not MAJOR.MINOR"),
    (SYNTH + ["--image-size", "8"], "--image-size must be 32 to 2048, got 8"),
    (["synth", "--output", "{afile}"], "afile: --output is a file; give a folder"),
    (TRAIN + ["--ema-decay", "2"], "--ema-decay must be in [0, 1), got 2.0"),               # was 2-3 s of torch
    (TRAIN + ["--image-size", "0"], "--image-size must be 32 to 2048, got 0"),
    (TRAIN + ["--model", "nosuch"], "unknown model 'nosuch'"),
    (TRAIN + ["--warmup-steps", "-1"], "--warmup-steps must be at least 0, got -1"),
    (["train", "--output", "{afile}"], "afile: --output is a file; give a folder"),
    (["demo", "--model", "nosuch", "--output", "run"], "unknown model 'nosuch'"),
    (["demo", "--eval-images", "0", "--output", "run"], "--eval-images must be at least 1, got 0"),
    (PIPELINE[:2] + ["{afile}"], "afile: --output is a file; give a folder"),
    (PIPELINE + ["--model", "nosuch"], "unknown model 'nosuch'"),
    (PIPELINE + ["--image-size", "0"], "--image-size must be at least 1, got 0"),
    (PIPELINE + ["--calib-images", "0"], "--calib-images must be at least 1, got 0"),
    (PIPELINE + ["--checkpoint", "nosuch.pth"], "nosuch.pth: checkpoint not found"),
    (PIPELINE + ["--calib-dir", "nosuch"], "nosuch: no such file or folder"),
    (PIPELINE + ["--images", "{images}"], "--images and --annotations go together"),
    (PIPELINE + ["--images", "{images}", "--annotations", "{notcoco}"], "notcoco.json: not COCO format"),
]
AFTER_TORCH = [
    (EXPORT + ["--checkpoint", "{text_pth}"], "text.pth: not a readable PyTorch checkpoint"),
    (EXPORT + ["--checkpoint", "{png}"], "img.png: not a readable PyTorch checkpoint"),
    (EXPORT + ["--checkpoint", "{random_pth}"], "random.pth: not an EfficientDet state_dict"),
    (["infer", "--model", "{random_pth}", "--input", "{images}"], "random.pth: say which architecture this checkpoint"),
    (["train", "--output", "t", "--resume", "{png}"], "--resume"),
    (PIPELINE + ["--checkpoint", "{random_pth}"], "random.pth: not an EfficientDet state_dict"),   # left INCOMPLETE
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str]:
    """Small input files of every wrong kind (made here, none needs a model): a PNG, text named .onnx, a cut ONNX
    file, an FP16-labelled ONNX, text and random state-dict .pth files, bad and non-COCO JSON, an empty folder."""
    import numpy as np
    import onnx
    import torch
    from onnx import TensorProto, helper
    from PIL import Image

    folder = tmp_path_factory.mktemp("wrong-kinds")
    (folder / "images").mkdir()
    (folder / "empty").mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / "img.png")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / "images" / "a.png")
    graph = helper.make_graph([helper.make_node("Relu", ["images"], ["y"])], "g",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 32, 32])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, folder / "m.onnx")
    data = (folder / "m.onnx").read_bytes()
    (folder / "truncated.onnx").write_bytes(data[: len(data) // 2])
    helper.set_model_props(model, {"precision": "fp16"})
    onnx.save(model, folder / "fp16.onnx")
    (folder / "text.onnx").write_text("not ONNX")
    (folder / "text.pth").write_text("not a checkpoint")
    torch.save({"a": torch.zeros(3)}, folder / "random.pth")
    (folder / "bad.json").write_text("{not json")
    (folder / "notcoco.json").write_text('{"foo": 1}')
    (folder / "coco.json").write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png", "width": 32,
                                                              "height": 32}], "annotations": [], "categories": []}))
    (folder / "afile").write_text("a file, not a folder")
    names = {"png": "img.png", "onnx": "m.onnx", "truncated": "truncated.onnx", "fp16": "fp16.onnx",
             "text_onnx": "text.onnx", "text_pth": "text.pth", "random_pth": "random.pth", "badjson": "bad.json",
             "notcoco": "notcoco.json", "coco": "coco.json", "afile": "afile", "images": "images", "empty": "empty"}
    return {key: str(folder / name) for key, name in names.items()}


def listing(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def results(inputs, tmp_path_factory) -> list[dict]:
    """Every case of both tables, in order, in one fresh interpreter; its own stderr must stay empty."""
    cases = [[arg.format(**inputs) for arg in argv] for argv, _ in TORCH_FREE + AFTER_TORCH]
    folder = Path(inputs["png"]).parent
    before = listing(folder)
    run = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(cases), str(tmp_path_factory.mktemp("runs"))],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and run.stderr == "", run.stderr[-3000:]    # no stray line outside the cases
    assert listing(folder) == before                                        # no input touched, nothing beside them
    return json.loads(run.stdout.split("RESULTS ", 1)[1])


@pytest.mark.parametrize("index", range(len(TORCH_FREE) + len(AFTER_TORCH)),
                         ids=[" ".join(argv[:1] + argv[-2:]) for argv, _ in TORCH_FREE + AFTER_TORCH])
def test_one_line_exit_2_nothing_written(results, index):
    argv, fragment = (TORCH_FREE + AFTER_TORCH)[index]
    r = results[index]
    lines = r["err"].strip().splitlines()
    assert r["code"] == 2 and len(lines) == 1, r
    assert lines[0].startswith(f"effdet-deploy {argv[0]}: error: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in r["err"] + r["out"] and "wrote" not in r["out"]
    assert r["left"] == []                                                  # no output, no folder, no probe file
    if index < len(TORCH_FREE):
        assert not r["torch"], "torch was imported before this argument error was answered"


def bad_images(folder: Path) -> list[str]:
    """The six kinds of image file a run must skip and count: empty, cut PNG, cut JPEG, text named .jpg, over
    PIL's 178 MP limit, a dangling link. Beside them an image of 144 MP by its header (PIL warns above 89 MP:
    that warning must not reach stderr) and odd but readable ones (16-bit, CMYK, 1x1, 4000x1). Returns the bad."""
    import io

    import numpy as np
    from PIL import Image

    from test_issue25_inputs import bomb_png

    folder.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), np.uint8))
    png, jpg = io.BytesIO(), io.BytesIO()
    picture.save(png, "PNG")
    picture.save(jpg, "JPEG")
    (folder / "empty.png").write_bytes(b"")
    (folder / "cut.png").write_bytes(png.getvalue()[: len(png.getvalue()) // 2])
    (folder / "cut.jpg").write_bytes(jpg.getvalue()[: len(jpg.getvalue()) // 2])
    (folder / "text.jpg").write_text("not an image")
    (folder / "bomb.png").write_bytes(bomb_png())
    (folder / "dangling.png").symlink_to(folder / "gone.png")
    (folder / "big.png").write_bytes(bomb_png(12000, 12000))        # 144 MP header, no pixel data: cut too
    picture.save(folder / "good.png")
    Image.fromarray(np.full((40, 40), 60000, np.uint16)).save(folder / "deep.png")
    Image.new("CMYK", (40, 40)).save(folder / "cmyk.jpg")
    Image.new("RGB", (1, 1)).save(folder / "dot.png")
    Image.new("RGB", (4000, 1)).save(folder / "line.png")
    return ["big.png", "bomb.png", "cut.jpg", "cut.png", "dangling.png", "empty.png", "text.jpg"]


def test_every_bad_image_is_one_line_and_listed(tmp_path):
    import warnings

    from runtime.errors import DeployError
    from runtime.image_io import list_images, read_image

    bad = bad_images(tmp_path)
    assert sorted(p.name for p in list_images(tmp_path)) == sorted(bad + ["good.png", "deep.png", "cmyk.jpg",
                                                                          "dot.png", "line.png"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name in bad:
            with pytest.raises(DeployError) as e:
                read_image(tmp_path / name)
            assert str(e.value).startswith(f"{tmp_path / name}: ") and "\n" not in str(e.value)
        for name in ("good.png", "deep.png", "cmyk.jpg", "dot.png", "line.png"):
            image = read_image(tmp_path / name)
            assert image.ndim == 3 and image.shape[2] == 3 and image.dtype.name == "uint8"
    assert caught == []                                  # PIL's DecompressionBombWarning stays off stderr


@pytest.mark.integration
def test_infer_eval_compare_skip_and_count_bad_images(tmp_path):
    """End to end: the runs finish (exit 0), count the 7 unreadable files, write their outputs, and print nothing
    on stderr."""
    from export.onnx_export import export_onnx
    from export.settings import ExportSettings

    onnx = export_onnx(ExportSettings(model="shapes_d0", output=tmp_path / "m.onnx", image_size=(128, 128),
                                      nms="onnx"))
    bad = bad_images(tmp_path / "images")
    names = sorted(p.name for p in (tmp_path / "images").iterdir())
    (tmp_path / "coco.json").write_text(json.dumps({
        "images": [{"id": i + 1, "file_name": n, "width": 40, "height": 40} for i, n in enumerate(names)],
        "annotations": [{"id": 1, "image_id": names.index("good.png") + 1, "category_id": 1, "bbox": [4, 4, 20, 20],
                         "area": 400, "iscrowd": 0}],
        "categories": [{"id": k + 1, "name": f"c{k}"} for k in range(6)]}))
    runs = {"infer": ["--model", onnx, "--input", tmp_path / "images", "--output", tmp_path / "pics"],
            "eval": ["--model", onnx, "--images", tmp_path / "images", "--annotations", tmp_path / "coco.json",
                     "--output", tmp_path / "r.json"],
            "compare": ["--reference", onnx, "--target", onnx, "--images", tmp_path / "images", "--output",
                        tmp_path / "cmp"]}
    for command, flags in runs.items():
        run = subprocess.run([sys.executable, "-m", "effdet_deploy", command, *map(str, flags)], cwd=tmp_path,
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0 and run.stderr == "", (command, run.stderr[-2000:])
        assert f"{len(bad)} unreadable" in run.stdout, (command, run.stdout[-2000:])
    assert (tmp_path / "pics" / "detections.json").is_file() and len(list((tmp_path / "pics").glob("*.png"))) == 5
    assert (tmp_path / "r.json").is_file() and (tmp_path / "cmp" / "compare.json").is_file()
