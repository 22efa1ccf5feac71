"""Ctrl-C in a command (issue 25): exit 130 with one line on stderr, no traceback, nothing half-written."""
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sigint_default() -> None:
    """Child processes get SIGINT's default action: a shell without job control (make under `&`, some CI runners)
    starts them with SIGINT ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_after(line_prefix: str, argv: list[str], cwd: Path) -> tuple[int, str]:
    """Run `effdet-deploy argv`, send SIGINT once a stdout line starts with `line_prefix`; (exit code, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "effdet_deploy", *argv], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            preexec_fn=sigint_default)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(line_prefix):
                proc.send_signal(signal.SIGINT)
                break
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    return proc.returncode, err


def test_export_interrupted_mid_trace(tmp_path):
    code, err = interrupt_after("[2/5]", ["export", "--model", "shapes_d0", "--output", "d0.onnx",
                                         "--image-size", "128"], tmp_path)
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 130 and "Traceback" not in err
    assert lines[-1] == "effdet-deploy export: interrupted"
    assert not list(tmp_path.iterdir())                   # no ONNX file, no temporary file


NATIVE_INIT = r"""
import importlib.machinery, importlib.util, os, signal, sys, time
import importlib._bootstrap_external as bootstrap
from runtime.interrupts import defer_sigint_in_native_module_init

if sys.argv[1] == "deferred":
    defer_sigint_in_native_module_init()
native = importlib.machinery.ExtensionFileLoader
name = next(n for n in ("_bz2", "_lzma", "_csv", "_json", "_decimal") if n not in sys.modules
            and isinstance(getattr(importlib.util.find_spec(n), "loader", None), native))
real = bootstrap._imp


class NativeInit:
    '''A C++ module's init that runs Python while SIGINT arrives (nanobind building onnx's enums).'''
    def __getattr__(self, attribute):
        return getattr(real, attribute)

    def exec_dynamic(self, module):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(50):
            time.sleep(0.002)          # Python runs the SIGINT handler here, between bytecodes
        print("init finished", flush=True)
        return real.exec_dynamic(module)


bootstrap._imp = NativeInit()
try:
    importlib.import_module(name)
except KeyboardInterrupt:
    bootstrap._imp = real
    print("KeyboardInterrupt", flush=True)
"""


def native_init_interrupted(mode: str) -> str:
    return subprocess.run([sys.executable, "-c", NATIVE_INIT, mode], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, preexec_fn=sigint_default).stdout


def test_sigint_in_native_module_init_is_raised_after_it():
    """CI's lint case: a KeyboardInterrupt inside onnx's nanobind init aborted in C++. The command line wraps
    every extension module's init, so the init finishes and the KeyboardInterrupt comes after it, in Python."""
    assert native_init_interrupted("plain").splitlines() == ["KeyboardInterrupt"]      # raised inside: what aborted
    assert native_init_interrupted("deferred").splitlines() == ["init finished", "KeyboardInterrupt"]


def test_command_line_wraps_native_module_init():
    out = subprocess.run([sys.executable, "-c", "import sys; sys.argv = ['effdet-deploy']; import effdet_deploy.cli, "
                          "importlib.machinery as m; print(getattr(m.ExtensionFileLoader, '_sigint_deferred', False))"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    assert out.strip() == "True"


ONE_HANDLER = r"""
import os, signal, sys
sys.argv = ["effdet-deploy", "info", "d0"]
from effdet_deploy import cli
from effdet_deploy.commands import info

def run(args):
    print("during", signal.getsignal(signal.SIGINT) is cli.on_sigint, cli.WORKING)
    if os.environ["MODE"] == "late":
        return 0
    os.kill(os.getpid(), signal.SIGINT)
    return 0

info.run = run
mode = os.environ["MODE"]
code = cli.main(["info", "d0"])
print("after", code, signal.getsignal(signal.SIGINT) is cli.on_sigint, cli.WORKING, flush=True)
if mode == "late":
    os.kill(os.getpid(), signal.SIGINT)     # after the work: stop_at_once's line, exit 130, nothing else runs
    print("not reached")
"""


def one_handler(mode: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", ONE_HANDLER], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "MODE": mode}, preexec_fn=sigint_default)


def test_one_sigint_handler_for_the_whole_run():
    """The command line never swaps SIGINT handlers (a Ctrl-C that landed while main swapped them right after the
    work escaped as a traceback): one handler raises KeyboardInterrupt during the work and exits at once outside."""
    work = one_handler("work")
    assert work.stdout.split("\n")[:2] == ["during True True", "after 130 True False"], work.stdout + work.stderr
    assert work.stderr.strip() == "effdet-deploy info: interrupted"
    late = one_handler("late")
    assert late.returncode == 130 and late.stdout.splitlines() == ["during True True", "after 0 True False"]
    assert late.stderr.strip() == "effdet-deploy info: interrupted" and "Traceback" not in late.stderr
