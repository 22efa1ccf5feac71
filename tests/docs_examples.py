"""The shell and Python examples of README.md and docs/*.md, read from the Markdown and run as a reader would,
so the docs stay true (issue 25). Used by tests/test_docs_examples.py.

Every fenced block tagged bash, sh, shell, console or python is an example; other blocks (text, json, ...) are
not. A page's examples run in order as one reader's shell session, starting in a fresh folder (also $HOME) with
this repository's .venv/bin first on PATH: each shell block runs under `bash -euo pipefail` and hands its working
folder and exported variables to the next (so `cd` and `. env/bin/activate` carry over, and later blocks use
earlier blocks' files); Python blocks run with .venv/bin/python in that folder. A `console` block runs its
`$ ` lines (a trailing backslash continues a line); its other lines are output. A block passes when it exits 0.

A directive in an HTML comment on the line before a fence (blank lines between allowed; several joined by `;`),
or on a page's first line for all of its blocks, changes how it runs:

    <!-- docs-test: exit N -->             the block must exit with N (an example of an error)
    <!-- docs-test: requires WHAT ... -->  tensorrt | gpu | jetson | docker: run only where present, else skipped
    <!-- docs-test: integration -->        slow: run only in the integration tier (make test-integration, which
                                           runs the whole page); the fast tier leaves it out, so later blocks
                                           must not need its files
    <!-- docs-test: repository-url -->     `<URL of this repository>` stands for this repository (file:// URL)
    <!-- docs-test: venv -->               make targets (`make demo`, `make test`): not run, because .ci/run runs
                                           make test and make test-integration itself; the repository's .venv is
                                           linked into the current folder instead, as those targets would make it
    <!-- docs-test: output -->             output, not commands: not run
    <!-- docs-test: skip REASON -->        not run, for REASON (e.g. an hours-long measurement)

Every block that is not run (requires, venv, skip) is still syntax-checked: `bash -n`, Python's compile().
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
SHELL = {"bash", "sh", "shell", "console"}
LANGS = SHELL | {"python"}
REQUIREMENTS = ("tensorrt", "gpu", "jetson", "docker")
KINDS = ("exit", "requires", "integration", "repository-url", "venv", "output", "skip")
# bash's own variables and the runner's are not carried from block to block
UNKEPT = "SHELLOPTS|BASHOPTS|PWD|OLDPWD|SHLVL|_|DOCS_TEST_[A-Z]*"
PLACEHOLDER = "<URL of this repository>"
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`]*)$")
DIRECTIVE = re.compile(r"^\s*<!--\s*docs-test:(?P<body>.*?)-->\s*$")


@dataclass
class Block:
    page: Path
    line: int                                  # 1-based line of the opening fence
    lang: str
    code: str
    directives: dict[str, list[str]] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def runs(self) -> bool:
        """Run here, in some tier (requirements aside)."""
        return not {"output", "skip", "venv"} & self.directives.keys()

    @property
    def expected_exit(self) -> int:
        return int(self.directives["exit"][0]) if "exit" in self.directives else 0

    def script(self) -> str:
        """What runs: console blocks keep their `$ ` lines; the repository URL placeholder is filled in."""
        code = self.code
        if self.lang == "console":
            code = re.sub(r"\\\n", "", code)
            code = "\n".join(line[2:] for line in code.splitlines() if line.startswith("$ ")) + "\n"
        if "repository-url" in self.directives:
            code = code.replace(PLACEHOLDER, ROOT.as_uri())
        return code


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def parse_directives(text: str, where: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        kind, *args = part.split()
        if kind not in KINDS:
            raise ValueError(f"{where}: unknown docs-test directive {kind!r} (known: {', '.join(KINDS)})")
        if kind == "requires" and (not args or set(args) - set(REQUIREMENTS)):
            raise ValueError(f"{where}: requires takes some of {', '.join(REQUIREMENTS)}, got {args}")
        if kind == "exit" and not (len(args) == 1 and args[0].isdigit()):
            raise ValueError(f"{where}: exit takes one number, got {args}")
        found[kind] = args
    return found


def blocks(page: Path) -> list[Block]:
    """The page's example blocks (tagged with a language in LANGS), with their directives."""
    lines = page.read_text(encoding="utf-8").splitlines()
    first = DIRECTIVE.match(lines[0]) if lines else None
    page_wide = parse_directives(first["body"], f"{page.name}:1") if first else {}
    found, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = len(m["indent"]), m["fence"], (m["info"].split() or [""])[0].lower()
        end = next((j for j in range(i + 1, len(lines))
                    if re.fullmatch(rf"[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*", lines[j])), len(lines))
        if lang in LANGS:
            before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            d = DIRECTIVE.match(before)
            directives = {**page_wide, **(parse_directives(d["body"], f"{page.name}:{i}") if d else {})}
            code = "".join(_dedent(line, indent) + "\n" for line in lines[i + 1:end])
            found.append(Block(page, i + 1, lang, code, directives))
        i = end + 1
    return found


def _dedent(line: str, indent: int) -> str:
    """A fence indented inside a list item: its lines lose that indentation."""
    return line[min(indent, len(line) - len(line.lstrip())):]


def missing(block: Block) -> str | None:
    """Why the block cannot run on this machine, or None."""
    have = {"tensorrt": _has_tensorrt, "gpu": _has_gpu, "jetson": lambda: Path("/etc/nv_tegra_release").exists(),
            "docker": _has_docker}
    absent = [r for r in block.directives.get("requires", []) if not have[r]()]
    return f"needs {', '.join(absent)}" if absent else None


def syntax_error(block: Block) -> str | None:
    if block.lang == "python":
        try:
            compile(block.script(), block.where, "exec")
        except SyntaxError as e:
            return str(e)
        return None
    done = subprocess.run(["bash", "-n"], input=block.script(), capture_output=True, text=True)
    return done.stderr.strip() or None if done.returncode else None


class Session:
    """One reader's shell, starting in TMP/work (also $HOME): its working folder and exported variables carry over
    from block to block through files in TMP/session."""

    def __init__(self, tmp: Path):
        self.folder, self.state = tmp / "work", tmp / "session"
        self.folder.mkdir()
        self.state.mkdir()
        env = {**os.environ, "HOME": str(self.folder), "PATH": f"{VENV / 'bin'}{os.pathsep}{os.environ['PATH']}"}
        env.pop("VIRTUAL_ENV", None)
        (self.state / "env").write_text("".join(f"export {k}={_quote(v)}\n" for k, v in env.items()
                                                if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k)
                                                and not re.fullmatch(UNKEPT + "|BASH_.*", k)))
        (self.state / "cwd").write_text(str(self.folder))
        self.groups: list[int] = []          # each block's process group: what it left running is ended in close()

    def run(self, block: Block, timeout: float = 900) -> subprocess.CompletedProcess:
        if "venv" in block.directives:
            (Path((self.state / "cwd").read_text().rstrip("\n")) / ".venv").symlink_to(VENV)
            return subprocess.CompletedProcess([], 0, "", "")
        prelude = f'. "{self.state}/env"; cd "$(cat "{self.state}/cwd")"\n'
        if block.lang == "python":
            body = 'exec "$DOCS_TEST_PYTHON" -c "$DOCS_TEST_CODE"\n'
        else:
            body = (f'_docs_test_keep() {{ pwd > "{self.state}/cwd"; export -p | grep -Ev '
                    f"'^declare -[a-zA-Z-]* ({UNKEPT})=' > \"{self.state}/env\"; }}\n"
                    f"trap _docs_test_keep EXIT\nset -euo pipefail\n{block.script()}")
        python = VENV / "bin" / "python"
        env = {"DOCS_TEST_CODE": block.script(), "DOCS_TEST_PYTHON": str(python if python.exists() else "python3"),
               "PATH": os.environ["PATH"], "HOME": str(self.folder)}
        with subprocess.Popen(["bash", "-c", prelude + body], cwd=self.folder, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True,
                              preexec_fn=_default_sigint) as proc:
            self.groups.append(proc.pid)
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, err = proc.communicate()
                err += f"\n(killed after {timeout:.0f} s)"
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def close(self) -> None:
        """End what the blocks left running (a server started with `&`), as closing the reader's shell would."""
        for group in self.groups:
            try:
                os.killpg(group, signal.SIGTERM)
            except ProcessLookupError:
                pass


def _default_sigint() -> None:
    """A reader's shell gives commands SIGINT's default action (a CI shell without job control may not)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def _runs(cmd: list[str]) -> bool:
    if shutil.which(cmd[0]) is None:
        return False
    return subprocess.run(cmd, capture_output=True, timeout=60).returncode == 0


@functools.cache
def _has_docker() -> bool:
    return _runs(["docker", "info"])


@functools.cache
def _has_gpu() -> bool:
    return _runs(["nvidia-smi", "-L"])


@functools.cache
def _has_tensorrt() -> bool:
    python = VENV / "bin" / "python"
    return _has_gpu() and subprocess.run([str(python), "-c", "import tensorrt"], capture_output=True).returncode == 0
