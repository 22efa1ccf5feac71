"""The docs stay true (issue 25): every shell and Python example of README.md and docs/*.md runs (one reader's
session per page, tests/docs_examples.py says how), the site builds with `mkdocs build --strict`, every relative
link resolves, and the README stays a landing page. Slow examples run in the integration tier."""
import re
import subprocess
import sys
import time

import pytest

from docs_examples import ROOT, Session, blocks, missing, pages, syntax_error

README_MAX_LINES = 250
LINK = re.compile(r"!?\[[^\]]*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _page_params():
    for page in pages():
        runnable = [b for b in blocks(page) if b.runs and not missing(b)]
        name = str(page.relative_to(ROOT))
        if any("integration" not in b.directives for b in runnable):
            yield pytest.param(page, "fast", id=f"{name}-fast")
        if any("integration" in b.directives for b in runnable):
            yield pytest.param(page, "integration", id=f"{name}-integration", marks=pytest.mark.integration)


@pytest.mark.parametrize("page, tier", list(_page_params()))
def test_page_examples_run(page, tier, tmp_path):
    """The page's blocks in order in one session; the fast tier leaves out the blocks marked integration."""
    session, ran = Session(tmp_path), []
    try:
        for block in blocks(page):
            if not (block.runs or "venv" in block.directives) or missing(block):
                continue
            if tier == "fast" and "integration" in block.directives:
                continue
            start = time.monotonic()
            done = session.run(block)
            ran.append(f"{block.where} {time.monotonic() - start:.1f}s")
            output = (done.stdout + done.stderr)[-4000:]
            assert done.returncode == block.expected_exit, (
                f"{block.where}: exit {done.returncode}, expected {block.expected_exit}\n--- block:\n"
                f"{block.script()}--- output (end):\n{output}")
            assert "Traceback (most recent call last)" not in output, f"{block.where}: a traceback\n{output}"
    finally:
        session.close()
    assert ran, f"{page.name}: no block ran in the {tier} tier"
    print("\n".join(ran))


def _block_params():
    for page in pages():
        for block in blocks(page):
            if "output" not in block.directives:
                yield pytest.param(block, id=block.where)


@pytest.mark.parametrize("block", list(_block_params()))
def test_every_example_parses(block):
    """Syntax of every example, including those not run here (each of those then says why, as a skip)."""
    error = syntax_error(block)
    assert error is None, f"{block.where}: {error}"
    why = (missing(block) or " ".join(block.directives.get("skip", []))
           or ("a make target, which .ci/run runs itself" if "venv" in block.directives else ""))
    if why:
        pytest.skip(f"syntax checked; not run here: {why}")


def test_mkdocs_build_strict(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-f",
                           str(ROOT / "mkdocs.yml"), "-d", str(tmp_path / "site")], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "index.html").is_file()


def test_relative_links_resolve():
    broken = []
    for page in pages():
        for m in LINK.finditer(page.read_text(encoding="utf-8")):
            target = m["target"].split("#")[0]
            if not target or re.match(r"[a-z][a-z0-9+.-]*:", target):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)}: {m['target']}")
    assert not broken, broken


def test_readme_is_a_landing_page():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines (at most {README_MAX_LINES})"
    linked = set(re.findall(r"\]\(docs/([\w-]+\.md)", "\n".join(lines)))
    pages_there = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert pages_there <= linked, f"docs pages the README does not link: {sorted(pages_there - linked)}"
