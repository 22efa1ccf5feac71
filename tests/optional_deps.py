"""What some tests need beyond the product's core: where it is absent (a device image, a bare checkout) they
skip with its name instead of failing on an import; .ci/run checks that CI has all of it, so there a skip is a
failure."""
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec

import pytest


def _installed(distribution: str) -> bool:
    try:
        version(distribution)
        return True
    except PackageNotFoundError:
        return False


def require_modelopt() -> None:
    """Skip (not fail) where the [int8] extra is absent; called where ModelOpt's files are first needed."""
    pytest.importorskip("modelopt.onnx.quantization", reason="nvidia-modelopt[onnx] (the [int8] extra) is not installed")


needs_pycocotools = pytest.mark.skipif(find_spec("pycocotools") is None,
                                       reason="pycocotools (the [tools] extra) is not installed")
needs_installed_package = pytest.mark.skipif(not _installed("efficientdet-deploy"),
                                             reason="efficientdet-deploy is not pip-installed: no package metadata")
