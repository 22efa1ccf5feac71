"""What the command line tells a new user: defaults in --help, --version, eval's n/a and where it writes,
and the batch bench really ran."""
import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from effdet.synthetic import write_dataset
from effdet_deploy.benchmarking import batch_note
from effdet_deploy.cli import DefaultsFormatter, build_parser, no_default
from optional_deps import needs_installed_package, needs_pycocotools

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "effdet_deploy", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


@needs_installed_package
def test_version_from_package_metadata():
    out = cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"effdet-deploy {version('efficientdet-deploy')}"


def test_help_shows_every_default(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")                  # no line wrapping inside a default
    parser = build_parser()
    subparsers = next(a for a in parser._actions if hasattr(a, "choices") and isinstance(a.choices, dict)).choices
    missing = [f"{name} {action.option_strings[0]}" for name, sub in subparsers.items() for action in sub._actions
               if not no_default(action) and "default" not in DefaultsFormatter(name)._get_help_string(action)]
    assert not missing, missing
    infer_help = subparsers["infer"].format_help()
    assert "(default: 0.3)" in infer_help and "(default: infer-output)" in infer_help
    assert "(default: 20)" in subparsers["bench"].format_help()


@needs_pycocotools
def test_eval_says_na_and_where_it_writes(tmp_path):
    """Only medium objects in the dataset: pycocotools says -1 for APs and APl, which eval prints as n/a."""
    annotations = write_dataset(tmp_path / "val", 6, seed=5, progress=False)
    coco = json.loads(annotations.read_text())
    coco["annotations"] = [a for a in coco["annotations"] if 32 ** 2 < a["area"] <= 96 ** 2]
    assert coco["annotations"]
    annotations.write_text(json.dumps(coco))
    out = cli("eval", "--model", "shapes_d0", "--images", tmp_path / "val" / "images", "--annotations", annotations,
              cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "APs n/a" in out.stdout and "APl n/a" in out.stdout
    metrics = json.loads(out.stdout.strip().splitlines()[-1])
    assert metrics["APs"] is None and metrics["APl"] is None and metrics["APm"] > 0
    written = tmp_path / "eval-output" / "shapes_d0.results.json"
    assert f"wrote {Path('eval-output') / 'shapes_d0.results.json'}" in out.stdout and written.is_file()
    assert sorted(p.name for p in (tmp_path / "val").iterdir()) == ["annotations.json", "images"]


def test_batch_note():
    assert batch_note(16, (1, 4)) == "batch 16 run as 4 calls of up to 4 (the file's max batch is 4)"
    assert batch_note(2, (4, 4)).startswith("batch 2 padded to 4 per call")
    assert batch_note(4, (1, 8)) == ""


@pytest.mark.slow
def test_bench_says_when_it_chunks(tmp_path):
    export = cli("export", "--model", "shapes_d0", "--output", tmp_path / "dyn.onnx", "--dynamic-batch", "1,2,4")
    assert export.returncode == 0, export.stderr
    out = cli("bench", "--model", tmp_path / "dyn.onnx", "--batch", 6, "--warmup", 0, "--iterations", 1,
              "--json", tmp_path / "b" / "bench.json")
    assert out.returncode == 0, out.stderr
    assert "batch 6 run as 2 calls of up to 4 (the file's max batch is 4)" in out.stdout
    assert "calls of up to 4" in json.loads((tmp_path / "b" / "bench.json").read_text())["backend"]


def test_a_closed_stdout_pipe_is_no_traceback():
    """`effdet-deploy info d0 --json | head -1`: the reader leaves first; exit 1, nothing on stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "effdet_deploy", "info", "d0", "--json"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()                      # before the child has written anything: its writes fail
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1 and err == "", err


def test_lint_is_a_command_with_the_files_version_as_default(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    parser = build_parser()
    assert "lint" in parser.format_help()
    subparsers = next(a for a in parser._actions if hasattr(a, "choices") and isinstance(a.choices, dict)).choices
    lint_help = subparsers["lint"].format_help()
    assert "FILE" in lint_help and "(default: the file's min_tensorrt metadata, else 8.6)" in lint_help
