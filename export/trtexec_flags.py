"""trtexec habits `build` accepts, with trtexec's meaning (samples/common/sampleOptions.cpp, read at v10.9.0 and
v11.0): --memPoolSize, --shapes and --best. Pure functions over flag text and BuildSettings, no TensorRT import,
so the policies are tested on any machine.
"""
from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

from runtime.errors import DeployError
from runtime.log import logger
from runtime.trt_compat import has_legacy_precision_flags, wants_strong_typing

if TYPE_CHECKING:
    from export.build_plan import BuildSettings, Shapes

# trtexec's unit letters (kUNIT_MULTIPLIERS: B, K, M, G; no suffix = M), plus the spelled-out binary units
UNITS = {"": 1 << 20, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10, "M": 1 << 20, "MB": 1 << 20,
         "MIB": 1 << 20, "G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30}
TRTEXEC_POOLS = ("workspace", "dlaSRAM", "dlaLocalDRAM", "dlaGlobalDRAM", "tacticSharedMem")


def parse_mem_pool_size(text: str) -> int:
    """trtexec --memPoolSize=workspace:N[B|K|M|G|MiB|GiB][,...] -> the workspace limit in MiB (what --workspace
    takes). Only the workspace pool exists here; trtexec's DLA and shared-memory pools are refused by name."""
    workspace: int | None = None
    for spec in filter(None, (part.strip() for part in text.split(","))):
        name, sep, size = spec.partition(":")
        if not sep:
            raise DeployError(f"--memPoolSize '{spec}' is not POOL:SIZE, e.g. workspace:1024 or workspace:2GiB")
        if name not in TRTEXEC_POOLS:
            raise DeployError(f"--memPoolSize: unknown memory pool '{name}' (trtexec's: {', '.join(TRTEXEC_POOLS)})")
        if name != "workspace":
            raise DeployError(f"--memPoolSize: the {name} pool is not set by effdet-deploy build; only workspace")
        match = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*([A-Za-z]*)", size.strip())
        if match is None or match.group(2).upper() not in UNITS:
            raise DeployError(f"--memPoolSize '{spec}': size must be a number with an optional unit "
                              "(B, K, M, G, KiB, MiB, GiB; no unit = MiB, as trtexec)")
        mib = float(match.group(1)) * UNITS[match.group(2).upper()] / (1 << 20)
        if mib < 1:
            raise DeployError(f"--memPoolSize '{spec}': the workspace must be at least 1 MiB")
        workspace = int(mib)
    if workspace is None:
        raise DeployError("--memPoolSize names no pool; e.g. --memPoolSize=workspace:1024")
    return workspace


def merge_inference_shapes(shapes: Shapes, min_shapes: Shapes, opt_shapes: Shapes, max_shapes: Shapes
                           ) -> tuple[Shapes, Shapes, Shapes]:
    """trtexec --shapes in a build: an input with no --minShapes/--optShapes/--maxShapes gets the profile
    min = opt = max = that shape ("assume min/opt/max all the same", AllOptions::parse); an input that has a
    profile keeps it, and the shape must lie inside it (it is the shape trtexec would then run)."""
    lo, opt, hi = dict(min_shapes), dict(opt_shapes), dict(max_shapes)
    for name, shape in shapes.items():
        if name not in lo and name not in opt and name not in hi:
            lo[name] = opt[name] = hi[name] = shape
            continue
        profile = [v.get(name) for v in (lo, opt, hi)]
        if None in profile:
            continue                     # half a profile: profile_shapes names the missing flag
        a, c = profile[0], profile[2]
        assert a is not None and c is not None
        if len(shape) != len(a) or not all(x <= y <= z for x, y, z in zip(a, shape, c)):
            raise DeployError(f"--shapes {name}:{'x'.join(map(str, shape))} lies outside the profile "
                              f"{'x'.join(map(str, a))} .. {'x'.join(map(str, c))} of --minShapes/--maxShapes")
    return lo, opt, hi


def resolve_best(s: BuildSettings, file_precision: str, trt_version: str, has_qdq: bool) -> BuildSettings:
    """trtexec --best = --fp16 --int8 (+ BF16 on Ampere, which this build does not set): weak-typing flags.
    Strongly typed builds take every layer's precision from the file, so there --best adds nothing (said once);
    with --strongly-typed given it is refused, as trtexec refuses --best --stronglyTyped (v10.x). INT8 is only
    enabled where it has real scales (Q/DQ in the file, or --calib-cache): trtexec would use placeholder scales,
    good for timing only, wrong detections."""
    if s.strongly_typed:
        raise DeployError("--best and --strongly-typed cannot both be set: --best enables the weak-typing precisions "
                          "FP16+INT8, a strongly typed build takes each layer's precision from the file (trtexec "
                          "refuses the pair too)")
    strong = s.strongly_typed is None and wants_strong_typing(trt_version, file_precision)
    if strong or not has_legacy_precision_flags(trt_version):
        logger.info(f"--best: this build is strongly typed ({file_precision.upper()} file, TensorRT {trt_version}): "
                    "every layer runs in the precision the file gives it, so --best adds no builder flag; for "
                    "INT8 use an INT8 Q/DQ file (effdet-deploy quantize --precision int8)")
        return replace(s, best=False)
    int8 = has_qdq or s.calib_cache is not None
    if not int8:
        logger.info("--best: FP16 enabled; INT8 not: the file has no Q/DQ and no --calib-cache gives scales "
                    "(trtexec --best would use placeholder scales: timing only, wrong detections)")
    return replace(s, best=False, fp16=True, int8=s.int8 or int8)
