"""Artifacts are written atomically: a failed write leaves the old file intact and no temporary behind."""
import pytest

from runtime.atomic import write_atomic


def test_write_replaces_and_failure_keeps_the_old_file(tmp_path):
    target = tmp_path / "report.json"
    assert write_atomic(target, "first") == target and target.read_text() == "first"
    write_atomic(target, b"second")
    assert target.read_bytes() == b"second"
    with pytest.raises(TypeError):
        write_atomic(target, 12345)                       # not bytes or str: fails while writing
    assert target.read_bytes() == b"second" and [p.name for p in tmp_path.iterdir()] == ["report.json"]
