"""The one exception type of the toolkit: bad input a user can fix, reported as one clear line."""
from __future__ import annotations

from pathlib import Path


class DeployError(Exception):
    """A user-facing error: the message names the file or value and the problem.

    The CLI prints it as one line on stderr and exits with code 2.
    """


def require_file(path: Path, kind: str = "a file") -> None:
    """DeployError unless `path` is a file: a folder given where a file belongs is named as one."""
    if not path.is_file():
        raise DeployError(f"{path}: {f'is a folder, not {kind}' if path.is_dir() else 'file not found'}")
