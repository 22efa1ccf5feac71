"""compare --layers on shapes_d0's default INT8 file (shared, cached per session: tests/quantize_helpers.py): the
table, layers.json, the plot; --save-outputs / --load-outputs (same numbers, other images refused with one line);
--suggest-exclude writes an exclude file that quantize --exclude @FILE accepts, and bad exclude files are refused."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from quantize_helpers import shapes_files

pytestmark = [pytest.mark.slow, pytest.mark.integration]   # 5-6 min: the integration tier
ROOT = Path(__file__).resolve().parents[1]


def cli(*args):
    return subprocess.run([sys.executable, "-m", "effdet_deploy", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return shapes_files(tmp_path_factory.mktemp("layer_cli"))


@pytest.fixture(scope="module")
def int8_run(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8_layers")
    proc = cli("compare", "--reference", files["fp32"], "--target", files["int8"], "--layers", "--max-images", 2,
               "--output", out / "cmp", "--save-outputs", out / "ref.zip", "--suggest-exclude", out / "exclude.json")
    return proc, out


def test_int8_table_json_plot(int8_run):
    proc, out = int8_run
    assert proc.returncode in (0, 1, 3), proc.stderr
    assert "largest error growth" in proc.stdout and "first divergence:" in proc.stdout
    data = json.loads((out / "cmp" / "layers.json").read_text())
    assert {"first_divergence", "tensors", "largest_growth", "limits"} <= set(data)
    assert data["precision"] == "int8" and data["compared"] == len(data["tensors"]) > 500
    assert len(data["largest_growth"]) == 10
    row = data["tensors"][100]
    assert {"tensor", "node", "group", "max_abs", "mean_rel", "cosine", "snr_db", "growth_db"} <= set(row)
    assert 0 < min(r["snr_db"] for r in data["tensors"]) < 60          # INT8 error is there, and measured
    assert (out / "cmp" / "layers.png").read_bytes()[:4] == b"\x89PNG"


def test_saved_reference_gives_the_same_numbers(int8_run, files, tmp_path):
    _, out = int8_run
    proc = cli("compare", "--load-outputs", out / "ref.zip", "--target", files["int8"], "--layers", "--max-images", 2,
               "--output", tmp_path)
    assert proc.returncode in (0, 1, 3), proc.stderr
    live = json.loads((out / "cmp" / "layers.json").read_text())["tensors"]
    loaded = json.loads((tmp_path / "layers.json").read_text())["tensors"]
    assert [r["snr_db"] for r in loaded] == [r["snr_db"] for r in live]
    raw_live = json.loads((out / "cmp" / "compare.json").read_text())["targets"][0]["raw"]
    raw_loaded = json.loads((tmp_path / "compare.json").read_text())["targets"][0]["raw"]
    assert raw_loaded == raw_live


def test_saved_reference_refuses_other_images(int8_run, files, tmp_path):
    _, out = int8_run
    proc = cli("compare", "--load-outputs", out / "ref.zip", "--target", files["int8"], "--max-images", 3,
               "--output", tmp_path / "x")
    assert proc.returncode == 2 and "saved for other images" in proc.stderr and len(proc.stderr.splitlines()) == 1
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    proc = cli("compare", "--load-outputs", tmp_path / "junk.zip", "--target", files["int8"], "--output", tmp_path / "y")
    assert proc.returncode == 2 and "junk.zip: not a file written by compare --save-outputs" in proc.stderr


def test_suggested_exclude_file(int8_run, files):
    proc, out = int8_run
    data = json.loads((out / "exclude.json").read_text())
    assert data["format"] == "effdet-deploy-exclude" and data["version"] == 1
    measured = data["measured"]
    assert measured["after_db"] >= measured["before_db"]
    assert set(json.loads(_meta(files["int8"])["excluded_nodes"])) <= set(data["nodes"])   # the file's own kept
    assert bool(data["groups"]) == (measured["after_db"] > measured["before_db"])
    assert "suggest-exclude:" in proc.stdout


def test_quantize_refuses_bad_exclude_files(files, tmp_path):
    base = ("quantize", "--onnx", files["fp32"], "--output", tmp_path / "x.onnx", "--precision", "int8",
            "--calib-dir", files["calib"])
    proc = cli(*base, "--exclude", f"@{tmp_path / 'missing.json'}")
    assert proc.returncode == 2 and "missing.json: exclude file not found" in proc.stderr
    (tmp_path / "other.json").write_text(json.dumps({"format": "something else"}))
    proc = cli(*base, "--exclude", f"@{tmp_path / 'other.json'}")
    assert proc.returncode == 2 and "other.json: not an exclude file" in proc.stderr
    (tmp_path / "unknown.json").write_text(json.dumps({"format": "effdet-deploy-exclude", "version": 1,
                                                       "nodes": ["/no/such/Conv"]}))
    proc = cli(*base, "--exclude", f"@{tmp_path / 'unknown.json'}")
    assert proc.returncode == 2 and "/no/such/Conv" in proc.stderr
    assert not (tmp_path / "x.onnx").exists()


def _meta(path):
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
