"""`build --loadEngine ENGINE` (trtexec's flag): inspect and verify an engine that exists, without building.

The sidecar (ENGINE.json) says what the engine needs and what it was built from; size and sha256 are checked
against it. Where TensorRT and a GPU exist the engine is deserialized too (the runtime's own checks: TensorRT
version, GPU, CUDA) and its inputs and outputs are listed. Exit codes (DESIGN section 4): 0 all verified, 1 the
file is not the one built (size or sha256 differ), 2 bad input (no engine, no or unreadable sidecar),
3 INCONCLUSIVE: the sidecar checks passed but TensorRT is not here to deserialize the engine.
"""
from __future__ import annotations

from pathlib import Path

from runtime.engine_sidecar import file_digest, read_sidecar
from runtime.errors import DeployError

EXIT_OK, EXIT_FAIL, EXIT_INCONCLUSIVE = 0, 1, 3


def sidecar_lines(engine: Path, sidecar: dict[str, object]) -> list[str]:
    """What the sidecar records, one fact a line."""
    meta = sidecar.get("onnx_metadata")
    meta = meta if isinstance(meta, dict) else {}
    facts = [("built with TensorRT", sidecar.get("tensorrt_version")), ("GPU", sidecar.get("gpu_name")),
             ("compute capability", sidecar.get("compute_capability")),
             ("version compatible", sidecar.get("version_compatible")), ("model", meta.get("model")),
             ("precision", meta.get("precision")), ("image size", meta.get("image_size")),
             ("input", " ".join(str(meta[k]) for k in ("input_format", "input_dtype") if k in meta) or None),
             ("NMS", meta.get("nms")), ("strongly typed", sidecar.get("strongly_typed")),
             ("builder flags", ", ".join(map(str, flags)) or "none" if isinstance(flags := sidecar.get("builder_flags"), list)
              else None), ("size", f"{sidecar.get('engine_bytes')} bytes")]
    return [f"{engine.name}: {name}: {value}" for name, value in facts if value is not None]


def inspect_engine(engine: Path) -> int:
    """Print what is known about `engine` and verify it as far as this machine can; the exit code."""
    if not engine.is_file():
        raise DeployError(f"{engine}: --loadEngine: no such engine file")
    sidecar = read_sidecar(engine)                        # missing / unreadable: one DeployError line
    print("\n".join(sidecar_lines(engine, sidecar)))
    size = engine.stat().st_size
    if size != sidecar["engine_bytes"]:
        print(f"FAIL: {engine} is {size} bytes, built as {sidecar['engine_bytes']}: truncated or replaced")
        return EXIT_FAIL
    recorded = sidecar.get("engine_sha256")
    if recorded is not None and file_digest(engine) != recorded:
        print(f"FAIL: {engine}: its sha256 differs from the one recorded at build time: replaced or corrupted")
        return EXIT_FAIL
    print(f"{engine.name}: size and sha256 match the sidecar" if recorded else f"{engine.name}: size matches the "
          "sidecar (it records no sha256)")
    from runtime.trt_compat import TRT_INSTALL, tensorrt_available

    if not tensorrt_available():
        print(f"INCONCLUSIVE: the sidecar checks passed; deserializing the engine and listing its bindings needs "
              f"TensorRT {sidecar['tensorrt_version']} and its GPU ({TRT_INSTALL})")
        return EXIT_INCONCLUSIVE
    from runtime.backends.tensorrt_backend import TensorRTBackend

    backend = TensorRTBackend(engine)                     # TensorRT/GPU/CUDA checks, then deserialization
    try:
        for name, mode, shape, dtype in backend.io_tensors():
            print(f"{engine.name}: {mode} {name}: {'x'.join(map(str, shape))} {dtype}")
    finally:
        backend.close()
    print(f"{engine.name}: deserialized by TensorRT {sidecar['tensorrt_version']}: OK")
    return EXIT_OK
