"""Opening an ONNX file in ONNX Runtime: providers, threads, the plugin stand-in, metadata, and the FP16 Q/DQ
twin (runtime/qdq_twin.py) for the INT8 file of TensorRT >= 10.0 on ONNX Runtime versions that need it.

Only a file that contains TensorRT's EfficientNMS_TRT node needs the CPU stand-in (onnxruntime-extensions),
so an edge install of the base package + onnxruntime-gpu opens every other file. ONNX Runtime's own
messages (e.g. the red provider errors when CUDA libraries are absent) are silenced unless the package
logger is at DEBUG (`-v`); a provider that did not start is one warning line instead.
"""
from __future__ import annotations

import logging
import mmap
from pathlib import Path
from typing import Any, Dict, Tuple, Union

from runtime.errors import DeployError
from runtime.log import logger
from runtime.qdq_twin import file_needs_twin, twin_bytes
from runtime.trt_compat import version_tuple

Provider = Union[str, Tuple[str, Dict[str, Any]]]   # a name, or (name, provider options) as InferenceSession takes
PLUGIN_OP = b"EfficientNMS_TRT"
PLUGIN_EXTRA = "onnxruntime-extensions"     # our [ort-nms] extra
ORT_ERRORS_ONLY, ORT_FATAL_ONLY = 3, 4     # onnxruntime logger severities
# ONNX Runtime before 1.25 on the CPU provider: QuickGeluFusion turns each swish (x * sigmoid(x)) into one
# QuickGelu node that its NCHWc layout pass cannot keep in the blocked layout, so every swish costs a reorder
# out of and back into NCHWc. Without the fusion Sigmoid and Mul stay NCHWc. Measured on EfficientDet D0 512,
# 2 threads, the same file both ways: 1.20.2, 1.23.2 and 1.24.4 run 12-20% faster without it; 1.25.1 to
# 1.31.1 run 6-20% slower without it (their fusion is the faster path), so only versions before 1.25 get it
# switched off. The CUDA and TensorRT providers keep their fusions: the CPU layout pass is not theirs.
SLOW_QUICKGELU_BEFORE = (1, 25)
CPU_ONLY_DISABLED_OPTIMIZERS = ["QuickGeluFusion"]


def cpu_disabled_optimizers(ort_version: str) -> list[str]:
    """The ONNX Runtime graph optimizers to switch off for a CPU-only session of this ONNX Runtime version."""
    return CPU_ONLY_DISABLED_OPTIMIZERS if version_tuple(ort_version) < SLOW_QUICKGELU_BEFORE else []


def create_session(source: str | Path | bytes, providers: list[Provider] | None = None, threads: int | None = None,
                   source_name: str | None = None, memory_arena: bool = True) -> Any:
    """An InferenceSession for a file path or serialized model (CPU unless providers given).

    source_name: how to name an in-memory model in errors. EfficientNMS_TRT runs via the numpy reference.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise DeployError("ONNX files need onnxruntime (pip install onnxruntime-gpu)") from None
    name = source_name or str(source if not isinstance(source, bytes) else "<in-memory model>")
    if not isinstance(source, bytes) and not Path(source).is_file():
        raise DeployError(f"{source}: file not found")
    ort.set_default_logger_severity(ORT_ERRORS_ONLY if logger.isEnabledFor(logging.DEBUG) else ORT_FATAL_ONLY)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.enable_cpu_mem_arena = memory_arena
    if has_plugin_node(source):
        options.register_custom_ops_library(_plugin_library(name))
    wanted = providers or ["CPUExecutionProvider"]
    disabled = cpu_disabled_optimizers(ort.__version__) if wanted == ["CPUExecutionProvider"] else []
    def open_session(payload: str | bytes) -> Any:
        try:
            return ort.InferenceSession(payload, options, providers=wanted, disabled_optimizers=disabled)
        except Exception as e:  # onnxruntime raises its own exception types
            raise DeployError(f"{name}: ONNX Runtime cannot load it ({str(e).splitlines()[0][:200]})") from None

    session = open_session(source if isinstance(source, bytes) else str(source))
    if file_needs_twin(metadata(session), ort.__version__):
        serialized = source if isinstance(source, bytes) else Path(source).read_bytes()
        session = open_session(twin_bytes(serialized))
        logger.debug("%s: FP16 QuantizeLinear runs through its FP32 twin on ONNX Runtime %s (runtime/qdq_twin.py)",
                     name, ort.__version__)
    missing = [p for p in (w if isinstance(w, str) else w[0] for w in wanted) if p not in session.get_providers()]
    if missing:
        logger.warning("%s: ONNX Runtime could not start %s (its CUDA/cuDNN/TensorRT libraries are missing?); "
                       "running on %s (-v shows ONNX Runtime's messages)", name, ", ".join(missing),
                       ", ".join(session.get_providers()))
    return session


def has_plugin_node(source: str | Path | bytes) -> bool:
    """Whether the model contains an EfficientNMS_TRT node (its op type appears in the serialized file)."""
    if isinstance(source, bytes):
        return PLUGIN_OP in source
    with open(source, "rb") as f:
        if Path(source).stat().st_size == 0:
            return False
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            return m.find(PLUGIN_OP) >= 0


def _plugin_library(name: str) -> str:
    from runtime.ort_plugins import custom_ops_library

    try:
        return custom_ops_library()
    except DeployError:
        raise DeployError(f"{name}: contains TensorRT's EfficientNMS_TRT node; ONNX Runtime runs it through a CPU "
                          f"stand-in that needs onnxruntime-extensions: pip install {PLUGIN_EXTRA} (our [ort-nms] extra) "
                          "(or export with --nms onnx for a file that runs anywhere)") from None


def metadata(session: Any) -> dict[str, str]:
    """The file's metadata_props."""
    return dict(session.get_modelmeta().custom_metadata_map)
