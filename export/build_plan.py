"""What a build will do, decided before TensorRT is imported (so it is tested here without TensorRT): the
settings (trtexec's flags), what the ONNX file says (input, Q/DQ, plugins), the optimization profile and the
calibration shape, and the precision mode and builder flags per TensorRT version (runtime/trt_compat.py).
export/engine_build.py carries the plan out.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from runtime.errors import DeployError
from runtime.model_info import DYNAMIC_BATCH, batch_profile
from runtime.qdq_twin import FP32_QDQ_FORM
from runtime.trt_compat import (PIN_FP32, STRONG_TYPING_FROM, has_legacy_precision_flags, precision_builder_flags,
                                strong_typing_available, version_tuple, wants_strong_typing)

if TYPE_CHECKING:
    import onnx

Shapes = dict[str, tuple[int, ...]]
Profile = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]   # (min, opt, max)


@dataclass(frozen=True)
class BuildSettings:
    onnx: Path
    engine: Path
    min_shapes: Shapes = field(default_factory=dict)   # trtexec --minShapes images:1x3x512x512
    opt_shapes: Shapes = field(default_factory=dict)
    max_shapes: Shapes = field(default_factory=dict)
    workspace_mib: int | None = None
    timing_cache: Path | None = None
    optimization_level: int | None = None              # 0-5, TensorRT's default 3
    dla_core: int | None = None                        # with GPU fallback
    version_compatible: bool = False
    fp16: bool = False                                 # legacy (weakly typed) precision flags
    int8: bool = False
    calib_cache: Path | None = None
    calib_dir: Path | None = None                      # legacy INT8: calibrate on these images, write the cache
    calib_images: int = 500
    calib_batch: int | None = None                     # None: the input's batch (static, or the profile's OPT)
    calib_method: str = "entropy"                      # entropy | minmax
    strongly_typed: bool | None = None                 # None: from the file's precision and TensorRT version
    detailed_profiling: bool = False                   # trtexec --profilingVerbosity=detailed: layer precisions
    mark_outputs: tuple[str, ...] = ()                 # tensors made engine outputs (export/layer_marks.py)
    best: bool = False                                 # trtexec --best: resolved by export/trtexec_flags.resolve_best


def parse_shapes(text: str | None) -> Shapes:
    """trtexec syntax 'images:1x3x512x512[,other:...]' -> {'images': (1, 3, 512, 512)}."""
    shapes: Shapes = {}
    for item in filter(None, (text or "").split(",")):
        name, sep, dims = item.rpartition(":")
        try:
            shapes[name.strip("'\"")] = tuple(int(d) for d in dims.split("x"))
        except ValueError:
            raise DeployError(f"shape '{item}' is not NAME:AxBxC (trtexec syntax)") from None
        if not sep or not name or any(d <= 0 for d in shapes[name.strip("'\"")]):
            raise DeployError(f"shape '{item}' is not NAME:AxBxC with positive sizes")
    return shapes


@dataclass(frozen=True)
class OnnxInput:
    """What the build reads from the ONNX file before TensorRT sees it."""
    name: str
    dims: tuple[int, ...]          # -1 for dynamic dimensions
    meta: dict[str, str]           # metadata_props
    has_qdq: bool                  # QuantizeLinear/DequantizeLinear present (onnx-tensorrt imports them as Q/DQ layers)
    plugins: tuple[str, ...] = ()  # TensorRT plugin ops in the graph (EfficientNMS_TRT)
    dtype: str = "float32"         # the input's element type as numpy names it (uint8 for --input-dtype uint8)


# Ops whose output type is their own rule, not a computation precision: never pinned (engine_build).
OWN_TYPE_OPS = frozenset({"Cast", "QuantizeLinear", "DequantizeLinear", "Constant", "Shape", "Identity"})


def fp32_node_count(proto: onnx.ModelProto, tail_only: bool = False) -> int | None:
    """How many nodes compute in FP32 by the file's own types (ONNX type inference, so it is run only for the
    weakly typed FP16/INT8 builds that pin those layers: engine_build._pin_fp32_layers): nodes with at least one
    floating-point input or output and all of those float32, OWN_TYPE_OPS aside; integer and bool tensors do
    not count (TopK's indices, NonMaxSuppression's output, comparisons). In an FP16/INT8 file: the FP32_OPS
    islands, the heads' reshapes and the whole tail (its TopKs, NMS and threshold comparisons included).
    tail_only: only nodes of the tail (conv_free_nodes). None when ONNX cannot type the graph (foreign ops):
    the build then cannot know what to pin, and refuses (check_pinnable)."""
    from onnx import TensorProto, shape_inference

    try:
        graph = shape_inference.infer_shapes(proto).graph
    except Exception:             # a graph ONNX cannot type: nothing to compare TensorRT's types with
        return None
    floats = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE}
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.value_info, *graph.output, *graph.input]}
    types.update({t.name: t.data_type for t in graph.initializer})
    nodes = list(graph.node)
    tail = conv_free_nodes([(n.op_type == "Conv", list(n.input), list(n.output)) for n in nodes]) if tail_only else None
    count = 0
    for i, node in enumerate(nodes):
        kinds = [types[t] for t in [*node.input, *node.output] if types.get(t) in floats]
        count += ((tail is None or i in tail) and node.op_type not in OWN_TYPE_OPS and bool(kinds)
                  and all(k == TensorProto.FLOAT for k in kinds))
    return count


def conv_free_nodes(nodes: Sequence[tuple[bool, Sequence[str], Sequence[str]]]) -> set[int]:
    """Indices of the nodes from which no convolution can be reached (producer -> consumer), convolutions aside:
    the post-processing tail, by calibration/graph_split.py's rule. One rule for ONNX nodes and for TensorRT's
    layers (engine_build), so both sides pin the same part. nodes: (is a convolution, input names, output
    names), in topological order (ONNX requires it; the parser adds layers node by node)."""
    consumers: dict[str, list[int]] = {}
    for i, (_, inputs, _) in enumerate(nodes):
        for name in inputs:
            consumers.setdefault(name, []).append(i)
    reaches: dict[int, bool] = {}
    for i in reversed(range(len(nodes))):
        reaches[i] = any(nodes[j][0] or reaches.get(j, False) for out in nodes[i][2] for j in consumers.get(out, []))
    return {i for i in range(len(nodes)) if not reaches[i] and not nodes[i][0]}


QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})


def onnx_input(path: Path) -> OnnxInput:
    """The first input's name and dims, metadata_props and whether the graph is Q/DQ, without its weights."""
    from onnx import helper

    from export.onnx_io import metadata_of, read_onnx

    proto = read_onnx(path, weights=False)
    graph_input = proto.graph.input[0]
    dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in graph_input.type.tensor_type.shape.dim)
    has_qdq = any(node.op_type in QDQ_OPS for node in proto.graph.node)
    plugins = tuple(sorted({node.op_type for node in proto.graph.node if node.op_type.endswith("_TRT")}))
    elem = graph_input.type.tensor_type.elem_type
    dtype = str(helper.tensor_dtype_to_np_dtype(elem)) if elem else "undefined"
    return OnnxInput(graph_input.name, dims, metadata_of(proto), has_qdq, plugins, dtype)


def check_version_compatible(s: BuildSettings, inp: OnnxInput) -> None:
    """--version-compatible with a plugin op is refused: a version-compatible plan can only carry plugin libraries
    built for it (entry points getCreators/setLoggerFinder: TensorRT plugin/vc/vfcCommon.cpp, v8.6-v11.1), and the
    only such library TensorRT ships, nvinfer_vc_plugin, holds ROIAlign alone (plugin/CMakeLists.txt
    add_vc_plugin_source; onnx-tensorrt reports it for ROIAlign only). EfficientNMS_TRT lives in libnvinfer_plugin."""
    if s.version_compatible and inp.plugins:
        raise DeployError(f"{s.onnx}: --version-compatible engines cannot carry the {', '.join(inp.plugins)} plugin "
                          "(not in TensorRT's version-compatible plugin library); export with --nms onnx")


def profile_shapes(s: BuildSettings, name: str, dims: tuple[int, ...], meta: dict[str, str]
                   ) -> Profile | None:
    """(min, opt, max) for a dynamic input: the flags, else the file's dynamic-batch metadata; None if static."""
    if -1 not in dims:
        given = {v[name] for v in (s.min_shapes, s.opt_shapes, s.max_shapes) if name in v}
        if given - {dims}:
            raise DeployError(f"{s.onnx}: input '{name}' is static {dims}; shapes {sorted(given)} do not apply "
                              "(drop --shapes/--minShapes/--optShapes/--maxShapes)")
        return None
    if name in s.min_shapes or name in s.opt_shapes or name in s.max_shapes:
        missing = [k for k, v in (("--minShapes", s.min_shapes), ("--optShapes", s.opt_shapes),
                                  ("--maxShapes", s.max_shapes)) if name not in v]
        if missing:
            raise DeployError(f"{s.onnx}: give {', '.join(missing)} for '{name}' as well")
        return check_profile(s.onnx, name, dims, (s.min_shapes[name], s.opt_shapes[name], s.max_shapes[name]))
    batch = meta.get("batch", "")
    if not batch.startswith(DYNAMIC_BATCH) or dims.count(-1) != 1 or dims[0] != -1:
        raise DeployError(f"{s.onnx}: input '{name}' {dims} is dynamic; give --minShapes/--optShapes/--maxShapes")
    lo, opt, hi = batch_profile(batch)
    rest = dims[1:]
    return (lo, *rest), (opt, *rest), (hi, *rest)


def check_profile(onnx: Path, name: str, dims: tuple[int, ...], shapes: Profile) -> Profile:
    """min <= opt <= max per dimension, each of the input's rank and equal to its static dimensions: TensorRT's
    IOptimizationProfile.set_shape raises a bare RuntimeError otherwise (pyCore.cpp PY_ASSERT_RUNTIME_ERROR,
    8.6.1-11.1)."""
    for label, shape in zip(("min", "opt", "max"), shapes):
        if len(shape) != len(dims) or any(d not in (-1, v) for d, v in zip(dims, shape)):
            raise DeployError(f"{onnx}: {label} shape {shape} does not fit input '{name}' {dims}")
    if not all(lo <= opt <= hi for lo, opt, hi in zip(*shapes)):
        raise DeployError(f"{onnx}: input '{name}' needs min <= opt <= max in every dimension, got "
                          f"{shapes[0]}, {shapes[1]}, {shapes[2]}")
    return shapes


def calibration_shape(s: BuildSettings, dims: tuple[int, ...],
                      shapes: Profile | None) -> tuple[int, ...]:
    """The input shape a legacy calibrator serves per batch: TensorRT reads the static shape, or the
    calibration profile's OPT shape (NvInfer.h setCalibrationProfile: "MIN and MAX values will be overwritten
    by kOPT"); --calib-batch picks another batch inside the profile, never one TensorRT would read differently."""
    if shapes is None:
        if s.calib_batch is not None and s.calib_batch != dims[0]:
            raise DeployError(f"{s.onnx}: --calib-batch {s.calib_batch}, but the input has a static batch of "
                              f"{dims[0]} and TensorRT calibrates with exactly that")
        return dims
    lo, opt, hi = shapes
    if s.calib_batch is None:
        return opt
    if not lo[0] <= s.calib_batch <= hi[0]:
        raise DeployError(f"{s.onnx}: --calib-batch {s.calib_batch} is outside the profile's batch {lo[0]}..{hi[0]}")
    return (s.calib_batch, *opt[1:])


def describe_precision(strong: bool, flags: list[str]) -> str:
    """How a build is typed, in words: 'strongly typed' or 'weakly typed FP16+INT8+...' ('... FP32': no flags)."""
    return "strongly typed" if strong else "weakly typed " + ("+".join(flags) or "FP32")


def build_precision(s: BuildSettings, file_precision: str, trt_version: str,
                    has_qdq: bool = False) -> tuple[bool, list[str]]:
    """(strongly typed?, builder flags to set) for this file on this TensorRT (flags: runtime/trt_compat.py)."""
    strong = s.strongly_typed if s.strongly_typed is not None else wants_strong_typing(trt_version, file_precision)
    if strong and not strong_typing_available(trt_version):
        raise DeployError(f"TensorRT {trt_version} has no strongly typed networks (10.0+); drop --strongly-typed")
    user = [f for f, on in (("FP16", s.fp16), ("INT8", s.int8)) if on]
    named = "/".join(f"--{f.lower()}" for f in user)
    if user and not has_legacy_precision_flags(trt_version):
        raise DeployError(f"TensorRT {trt_version} has no {named} builder flag{'s' * (len(user) > 1)} (removed in 11.0); "
                          "use an FP16 or INT8 ONNX (effdet-deploy quantize)")
    if strong and user:   # trtexec --stronglyTyped drops them with a warning (sampleOptions.cpp v10.0.0-v10.13.0)
        raise DeployError(f"{named} {'are weak-typing flags' if len(user) > 1 else 'is a weak-typing flag'}; this "
                          f"build is strongly typed (file precision {file_precision}, TensorRT {trt_version}): "
                          "precision comes from the file (effdet-deploy quantize); drop them")
    check_dla_qdq(s, has_qdq, trt_version)
    if s.int8 and has_qdq and (s.calib_cache is not None or s.calib_dir is not None):
        raise DeployError(f"{s.onnx} is already quantized (Q/DQ): TensorRT uses its scales and no calibrator; "
                          "drop --calib-cache/--calib-dir")
    if s.int8 and not has_qdq and s.calib_cache is None:
        raise DeployError("--int8 on a file without Q/DQ needs --calib-cache (with --calib-dir to create it), "
                          "or use an INT8 Q/DQ ONNX (effdet-deploy quantize)")
    if s.int8 and s.calib_dir is None and s.calib_cache is not None and not s.calib_cache.is_file():
        raise DeployError(f"{s.calib_cache}: no calibration cache yet; give --calib-dir to calibrate")
    if s.strongly_typed is False and not has_legacy_precision_flags(trt_version):
        raise DeployError(f"TensorRT {trt_version} builds strongly typed networks only (NvInfer.h v11.0); "
                          "drop --no-strongly-typed")
    if strong:
        if s.dla_core is not None and file_precision == "fp32":
            raise DeployError(f"--dla-core: DLA runs FP16 and INT8 layers only, and this strongly typed build of an "
                              f"FP32 file (TensorRT {trt_version}) would put every layer on the GPU; build from an "
                              "FP16 or INT8 file (effdet-deploy quantize)")
        return True, []
    needed = precision_builder_flags(trt_version, file_precision, has_qdq)
    flags: list[str] = [f for f in ("FP16", "INT8") if f in needed or f in user]
    if s.dla_core is not None:
        # trtexec setupNetworkAndConfig (sampleEngines.cpp v8.6.1-v10.13.0): with a DLA core it sets
        # kPREFER_PRECISION_CONSTRAINTS, and kFP16 unless INT8: DLA has no FP32, FP32 layers would fall back to the GPU
        flags += [] if "INT8" in flags or "FP16" in flags else ["FP16"]
    if PIN_FP32 in needed or s.dla_core is not None:
        flags.append(PIN_FP32)
    return False, flags


def check_dla_qdq(s: BuildSettings, has_qdq: bool, trt_version: str) -> None:
    """--dla-core with a Q/DQ file on 8.x is refused: TensorRT 8.x runs INT8 on DLA only with calibration
    (dynamic ranges), not explicit quantization (8.x developer guide, Working with DLA)."""
    if s.dla_core is not None and has_qdq and version_tuple(trt_version) < STRONG_TYPING_FROM:
        raise DeployError(f"{s.onnx}: --dla-core with a Q/DQ (explicitly quantized) file: TensorRT {trt_version} "
                          "runs no explicit quantization on DLA; drop --dla-core to build it for the GPU, or give "
                          "DLA the FP32 file with --int8 --calib-cache (legacy calibration)")


# The INT8 files' two forms, as `quantize --precision int8 --trt-version` writes them (metadata qdq_form): the
# TensorRT >= 10.0 form builds strongly typed, the 8.6 form (FP32 math) weakly typed --int8 --fp16 on 8.6.
QDQ_FORM_TRT86 = FP32_QDQ_FORM


def check_min_tensorrt(s: BuildSettings, meta: dict[str, str], trt_version: str) -> None:
    """A file whose metadata min_tensorrt is newer than this TensorRT is refused with the form to make instead
    (the TensorRT >= 10.0 INT8 form on 8.6 would fail in the parser at opset 19, or build without its types)."""
    needed = meta.get("min_tensorrt")
    if not needed or version_tuple(trt_version) >= version_tuple(needed):
        return
    here = ".".join(map(str, version_tuple(trt_version)))
    if meta.get("precision") == "int8":
        form = f" (qdq_form {meta['qdq_form']})" if "qdq_form" in meta else ""
        raise DeployError(f"{s.onnx}: this INT8 file is the form for TensorRT >= {needed}{form}; this is TensorRT "
                          f"{trt_version}: write its form with effdet-deploy quantize --precision int8 "
                          f"--trt-version {here}")
    raise DeployError(f"{s.onnx}: needs TensorRT >= {needed} (metadata min_tensorrt); this is TensorRT {trt_version}: "
                      f"re-export it for TensorRT {here} (effdet-deploy export --opset 17 parses on 8.6)")


def form_advice(meta: dict[str, str], trt_version: str, strong: bool) -> str | None:
    """One log line when a strongly typed build gets the TensorRT 8.6 INT8 form: it builds what the file says
    (INT8 convolutions, everything else FP32), slower than the 10.0 form, whose other layers are FP16."""
    if not strong or meta.get("qdq_form") != QDQ_FORM_TRT86:
        return None
    return (f"this is the TensorRT 8.6 INT8 form (qdq_form {QDQ_FORM_TRT86}): on TensorRT {trt_version} it builds "
            "strongly typed with INT8 convolutions and FP32 everywhere else; the TensorRT >= 10.0 form "
            "(effdet-deploy quantize --precision int8, the default --trt-version) runs the rest in FP16 and is faster")


def pins_tail_only(meta: dict[str, str]) -> bool:
    """Which layers a weakly typed build pins to FP32: in the 8.6 INT8 form (FP32 math, `trtexec --int8 --fp16`)
    the tail only, so the FP16 flag speeds up the body; in FP16-typed files every layer the file types FP32."""
    return meta.get("qdq_form") == QDQ_FORM_TRT86


def check_pinnable(s: BuildSettings, fp32_layers: int, layers: int, fp32_nodes: int | None, trt_version: str) -> None:
    """A weakly typed FP16/INT8 build lets TensorRT run any layer in FP16; the layers the file computes in FP32
    must be pinned. Refused (never built unpinned) when the file's FP32 nodes cannot be counted, or when
    TensorRT's FP32-typed layers do not fit them (pins_plausibly)."""
    if fp32_nodes is not None and pins_plausibly(fp32_layers, fp32_nodes):
        return
    found = "ONNX cannot type the file" if fp32_nodes is None else f"the file has {fp32_nodes} FP32 nodes"
    raise DeployError(f"{s.onnx}: a weakly typed build must pin the layers the file computes in FP32, but "
                      f"TensorRT {trt_version} types {fp32_layers} of {layers} layers FP32 and {found}; refused "
                      "rather than built with them free to run in FP16 (TensorRT >= 10.0 builds it strongly typed; "
                      "on this TensorRT build the FP32 file)")


def pins_plausibly(fp32_layers: int, fp32_nodes: int) -> bool:
    """Whether TensorRT's FP32-typed layer count fits the file's FP32 node count (a node imports as up to a few
    layers: Reshape/Transpose as shuffles, Resize with its shape math, TopK with a gather...); none at all
    while the file has FP32 nodes means TensorRT's types do not follow the file either."""
    return fp32_layers <= 3 * fp32_nodes + 20 and (fp32_layers > 0 or fp32_nodes == 0)
