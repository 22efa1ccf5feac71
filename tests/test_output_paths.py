"""An output never replaces an input, and outputs have the kind (file / folder / .onnx) their command writes:
checked on the parsed command line before the command runs (effdet_deploy/output_paths.py)."""
import subprocess
import sys
from pathlib import Path

import pytest

from effdet_deploy.cli import build_parser
from effdet_deploy.output_paths import check_output_paths
from runtime.errors import DeployError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def tree(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("m.onnx", "c.pth", "a.json", "images/1.png", "report.txt"):
        Path(name).parent.mkdir(exist_ok=True)
        Path(name).write_bytes(b"input")
    Path("folder").mkdir()
    return tmp_path


def check(*argv):
    args = build_parser().parse_args(list(argv))
    check_output_paths(args.command, args)


REFUSED = [
    (("bench", "--model", "m.onnx", "--json", "m.onnx"), "m.onnx: --json is the --model input"),
    (("eval", "--model", "m.onnx", "--images", "images", "--annotations", "a.json", "--output", "a.json"),
     "a.json: --output is the --annotations input"),
    (("eval", "--model", "m.onnx", "--images", "images", "--annotations", "a.json", "--output", "m.onnx"),
     "--output is the --model input"),
    (("export", "--model", "d0", "--checkpoint", "c.pth", "--output", "c.pth"), "c.pth: --output is the --checkpoint"),
    (("export", "--model", "d0", "--output", "d0.txt"), "d0.txt: --output must end in .onnx"),
    (("quantize", "--onnx", "m.onnx", "--output", "images/1.png", "--precision", "int8", "--calib-dir", "images"),
     "would overwrite a file inside the --calib-dir folder"),
    (("quantize", "--onnx", "m.onnx", "--output", "folder", "--precision", "fp16"), "folder: --output is a folder"),
    (("quantize", "--onnx", "m.onnx", "--output", "q", "--precision", "fp16"), "q: --output must end in .onnx"),
    (("bench", "--model", "m.onnx", "--json", "folder"), "folder: --json is a folder"),
    (("compare", "--reference", "shapes_d0", "--target", "m.onnx", "--output", "m.onnx"), "m.onnx: --output is a file"),
    (("compare", "--reference", "shapes_d0", "--target", "m.onnx", "--output", "report.txt"), "is a file"),
    (("triton", "--model", "m.onnx", "--output", "report.txt"), "report.txt: --output is a file; give a folder"),
    (("synth", "--output", "report.txt"), "report.txt: --output is a file"),
]


@pytest.mark.parametrize("argv,message", REFUSED, ids=[" ".join(a[:1] + a[-2:]) for a, _ in REFUSED])
def test_outputs_that_would_replace_inputs_or_have_the_wrong_kind_are_refused(tree, argv, message):
    with pytest.raises(DeployError, match=message):
        check(*argv)


def test_ordinary_outputs_pass(tree):
    check("bench", "--model", "m.onnx", "--json", "stats.json")
    check("export", "--model", "d0", "--checkpoint", "c.pth", "--output", "d0.onnx")
    check("eval", "--model", "m.onnx", "--images", "images", "--annotations", "a.json", "--output", "images/r.json")
    check("infer", "--model", "m.onnx", "--input", "images", "--output", "images/out")   # infer skips its output
    check("infer", "--model", "m.onnx", "--input", "images", "--output", "images")       # pictures beside them
    check("compare", "--reference", "shapes_d0", "--target", "m.onnx", "--output", "folder")


def test_refused_before_the_command_runs_and_the_input_is_kept(tree):
    r = subprocess.run([sys.executable, "-m", "effdet_deploy", "bench", "--model", str(tree / "m.onnx"), "--json",
                        str(tree / "m.onnx")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--json is the --model input" in r.stderr, r.stderr
    assert (tree / "m.onnx").read_bytes() == b"input"
