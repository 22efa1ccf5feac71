"""`python -m effdet_deploy`. Run by a Python that lacks our dependencies (the system python3 inside the clone,
not .venv/bin/python), the first missing package is named in one line instead of an import traceback."""
import sys

OURS = ("effdet", "export", "runtime", "calibration", "effdet_deploy")

try:
    from effdet_deploy.cli import main

    code = main()
except ModuleNotFoundError as e:
    if (e.name or "").split(".")[0] in OURS:
        raise
    sys.exit(f"effdet-deploy: {sys.executable} has no '{e.name}' (a dependency of efficientdet-deploy); run "
             ".venv/bin/python -m effdet_deploy, or install the package into this Python (docs/install.md)")
raise SystemExit(code)
