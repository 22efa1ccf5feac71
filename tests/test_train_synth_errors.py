"""`train` and `synth` refuse bad flags before any work: one stderr line naming the flag or file, exit 2,
no training step, nothing written (no output folder left, an existing dataset byte-identical).
Each case runs the command line's own entry point, `effdet_deploy.cli.main`, in this process (a subprocess
per case cost ~1.5 s of interpreter and torch start-up each); three cases run the real `python -m
effdet_deploy` in a subprocess, to prove the exit code and the lone stderr line end to end (no warning or
traceback from a fresh interpreter's imports). None builds more than one model or runs a step."""
import hashlib
import io
import logging
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import torch

from effdet_deploy.cli import main
from runtime.log import logger

ROOT = Path(__file__).resolve().parents[1]


def cli(*args):
    """`effdet-deploy ARGS` in this process: exit code, stdout (with our log lines: progress goes there), stderr."""
    out, err, log = io.StringIO(), io.StringIO(), logging.StreamHandler()
    log.setStream(out)
    level = logger.level
    logger.addHandler(log)
    logger.setLevel(logging.INFO)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as e:                      # argparse's own errors exit
                code = e.code if isinstance(e.code, int) else 1
    finally:
        logger.removeHandler(log)
        logger.setLevel(level)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def cli_process(*args):
    """The real command line: `python -m effdet_deploy ARGS` in a fresh interpreter."""
    return subprocess.run([sys.executable, "-m", "effdet_deploy", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def one_line_error(out, command, *fragments):
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, out.stdout + out.stderr
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert lines[0].startswith(f"effdet-deploy {command}: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "wrote" not in out.stdout and "step " not in out.stdout, out.stdout


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ---- flags of both commands ---------------------------------------------------------------------------

SYNTH_FLAGS = [(["--image-size", "0"], "--image-size"), (["--image-size", "-5"], "--image-size"),
               (["--image-size", "100000"], "--image-size"), (["--seed", "-1"], "--seed"),
               (["--images", "0"], "--images")]
TRAIN_FLAGS = [
    (["--batch", "1"], "--batch must be at least 2, got 1"), (["--batch", "0"], "--batch"),
    (["--batch", "-1"], "--batch"), (["--lr", "-1"], "--lr"), (["--lr", "nan"], "--lr"),
    (["--threads", "-1"], "--threads"), (["--threads", "1000"], "--threads"),
    (["--threads", str((os.cpu_count() or 1) + 1)], "--threads"), (["--seed", "-1"], "--seed"),
    (["--log-every", "0"], "--log-every"), (["--checkpoint-every", "0"], "--checkpoint-every"),
    (["--steps", "0"], "--steps"), (["--steps", "-1"], "--steps"), (["--image-size", "0"], "--image-size"),
    (["--model", "nosuch"], "nosuch"),
]


@pytest.mark.parametrize("command, flags, fragment", [("synth", *case) for case in SYNTH_FLAGS] +
                         [("train", *case) for case in TRAIN_FLAGS])
def test_bad_flag(tmp_path, command, flags, fragment):
    """Checked before any work: no image rendered, no model built, no output folder left."""
    out = tmp_path / "out"
    extra = ["--images", "1"] if command == "synth" else ["--steps", "2"]
    one_line_error(cli(command, "--output", out, *extra, *flags), command, fragment)
    assert not out.exists()


def test_bad_flag_in_a_fresh_interpreter(tmp_path):
    out = tmp_path / "out"
    one_line_error(cli_process("train", "--output", out, "--steps", "2", "--batch", "1"), "train", "--batch")
    assert not out.exists()


def test_synth_refuses_an_existing_dataset(tmp_path):
    data = tmp_path / "data"
    assert cli("synth", "--output", data, "--images", "2", "--image-size", "64").returncode == 0
    before = snapshot(data)
    one_line_error(cli_process("synth", "--output", data, "--images", "1", "--image-size", "64"), "synth",
                   str(data), "not empty")                             # end to end: the real command line
    assert snapshot(data) == before


def test_synth_output_is_a_file(tmp_path):
    target = tmp_path / "data"
    target.write_bytes(b"keep me")
    one_line_error(cli("synth", "--output", target, "--images", "1"), "synth", str(target), "--output")
    assert target.read_bytes() == b"keep me"


# ---- output folders ---------------------------------------------------------------------------------

def test_train_output_is_a_file(tmp_path):
    target = tmp_path / "run"
    target.write_bytes(b"keep me")
    one_line_error(cli("train", "--output", target, "--steps", "2"), "train", str(target), "--output")
    assert target.read_bytes() == b"keep me"


def test_train_does_not_replace_an_earlier_run(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "last.pth").write_bytes(b"an earlier run")
    one_line_error(cli("train", "--output", out, "--steps", "2"), "train", "last.pth", "--resume")
    assert (out / "last.pth").read_bytes() == b"an earlier run"


# ---- train --resume ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def d0_state(tmp_path_factory):
    from effdet import create_model

    model = create_model("tf_efficientdet_d0", num_classes=6, image_size=128)
    return model.state_dict()


def resume_case(tmp_path, content, *flags, run=cli):
    ckpt = tmp_path / "ck.pth"
    if isinstance(content, bytes):
        ckpt.write_bytes(content)
    else:
        torch.save(content, ckpt)
    before = ckpt.read_bytes()
    out = tmp_path / "run"
    result = run("train", "--output", out, "--steps", "3", "--resume", ckpt, *flags)
    assert not out.exists() and ckpt.read_bytes() == before
    return result, str(ckpt)


def test_resume_missing_file(tmp_path):
    out = tmp_path / "run"
    one_line_error(cli("train", "--output", out, "--resume", tmp_path / "nosuch.pth"), "train", "nosuch.pth",
                   "--resume")
    assert not out.exists()


def test_resume_text_file(tmp_path):
    result, path = resume_case(tmp_path, b"hi", run=cli_process)    # end to end: torch.load's own failure
    one_line_error(result, "train", path)


def test_resume_a_list(tmp_path):
    result, path = resume_case(tmp_path, [1, 2, 3])
    one_line_error(result, "train", path)


def test_resume_plain_state_dict(tmp_path, d0_state):
    result, path = resume_case(tmp_path, d0_state)
    one_line_error(result, "train", path, "--resume", "state_dict")


def test_resume_without_ema_or_step(tmp_path, d0_state):
    result, path = resume_case(tmp_path, {"state_dict": d0_state, "step": 1})
    one_line_error(result, "train", path, "--resume", "state_dict_ema")
    result, path = resume_case(tmp_path, {"state_dict": d0_state, "state_dict_ema": d0_state})
    one_line_error(result, "train", path, "--resume", "step")


def test_resume_recorded_architecture_differs(tmp_path, d0_state):
    ckpt = {"state_dict": d0_state, "state_dict_ema": d0_state, "step": 1, "architecture": "tf_efficientdet_d0"}
    result, path = resume_case(tmp_path, ckpt, "--model", "tf_efficientdet_d1")
    one_line_error(result, "train", path, "--resume", "tf_efficientdet_d0", "tf_efficientdet_d1")


def test_resume_weights_of_another_architecture(tmp_path, d0_state):
    """No recorded architecture: the tensors themselves do not fit the model."""
    result, path = resume_case(tmp_path, {"state_dict": d0_state, "state_dict_ema": d0_state, "step": 1},
                               "--model", "tf_efficientdet_d1", "--image-size", "128")
    one_line_error(result, "train", path, "--resume", "tf_efficientdet_d1")


def test_resume_step_already_reached(tmp_path, d0_state):
    ckpt = {"state_dict": d0_state, "state_dict_ema": d0_state, "step": 3, "architecture": "tf_efficientdet_d0"}
    result, path = resume_case(tmp_path, ckpt)
    one_line_error(result, "train", path, "--steps")


def test_resume_optimizer_state_does_not_fit(tmp_path, d0_state):
    """Weights fit, the saved AdamW state does not (another group layout): refused before any step."""
    ckpt = {"state_dict": d0_state, "state_dict_ema": d0_state, "step": 1, "architecture": "tf_efficientdet_d0",
            "optimizer": {"state": {}, "param_groups": [{"params": [0, 1]}]}}
    result, path = resume_case(tmp_path, ckpt, "--image-size", "128")
    one_line_error(result, "train", path, "--resume", "optimizer state does not fit")
