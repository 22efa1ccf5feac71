"""Developer and user scripts (run as files: python tools/NAME.py); a package so mypy names them tools.*."""
