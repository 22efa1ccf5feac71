"""Opening an ONNX file in ONNX Runtime: providers, threads, the plugin stand-in, metadata."""
from __future__ import annotations

from pathlib import Path

from runtime.errors import DeployError


def create_session(path: str | Path, providers: list[str] | None = None, threads: int | None = None):  # type: ignore[no-untyped-def]
    """An InferenceSession for `path` (CPU unless providers given); EfficientNMS_TRT runs via the reference."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise DeployError("ONNX files need onnxruntime (pip install onnxruntime-gpu)") from None
    from runtime.ort_plugins import custom_ops_library

    path = Path(path)
    if not path.is_file():
        raise DeployError(f"{path}: file not found")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.register_custom_ops_library(custom_ops_library())
    try:
        return ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise DeployError(f"{path}: ONNX Runtime cannot load it ({str(e).splitlines()[0][:200]})") from None


def metadata(session) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The file's metadata_props."""
    return dict(session.get_modelmeta().custom_metadata_map)
