"""What a served detector does between Triton's tensors and the Detector: encoded bytes in (capped before any
pixel is decoded), padded detection tensors out. Shared by the python-backend models (runtime/triton_models/)
and the clients (runtime/remote.py), so both sides agree on names, dtypes and limits. numpy + Pillow only.
"""
from __future__ import annotations

import io
import json
from typing import Any, Sequence

import numpy as np

from runtime.errors import DeployError
from runtime.model_info import NMS_OUTPUTS, ModelInfo
from runtime.result import Detections

INPUT = "IMAGE"                          # UINT8 [-1]: one encoded JPEG/PNG/... file per batch row
MAX_BYTES = 64 * 1024 * 1024             # an encoded upload above this is refused unread
MAX_PIXELS = 50_000_000                  # width x height above this is refused before decoding (8K is 33 MP)
OUTPUT_DTYPES = {"num_detections": np.int32, "detection_boxes": np.float32, "detection_scores": np.float32,
                 "detection_classes": np.int32}


def decode_image(data: np.ndarray | bytes, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Encoded image bytes -> HxWx3 uint8 RGB, as runtime.image_io.read_image reads a file (EXIF applied).
    DeployError for empty, oversized (bytes or pixels, checked from the header) or undecodable input."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    from runtime.image_io import pil_to_rgb

    raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    if not raw:
        raise DeployError("empty payload: send the encoded image file's bytes")
    if len(raw) > max_bytes:
        raise DeployError(f"payload of {len(raw)} bytes exceeds the limit of {max_bytes} bytes")
    try:
        with Image.open(io.BytesIO(raw)) as im:
            if im.width * im.height > max_pixels:
                raise DeployError(f"image of {im.width}x{im.height} = {im.width * im.height / 1e6:.0f} MP exceeds "
                                  f"the limit of {max_pixels / 1e6:.0f} MP")
            im.load()
            return pil_to_rgb(ImageOps.exif_transpose(im))
    except Image.DecompressionBombError as e:                # Pillow's own guard fires before ours, from 179 MP
        raise DeployError(f"image exceeds the limit of {max_pixels / 1e6:.0f} MP ({str(e).split(',')[0]})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DeployError(f"not a readable image ({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})") \
            from None


def encode_png(image: np.ndarray) -> bytes:
    """HxWx3 uint8 RGB -> PNG bytes (lossless, so the server decodes exactly this array)."""
    from PIL import Image

    from runtime.letterbox import check_image

    out = io.BytesIO()
    Image.fromarray(check_image(image)).save(out, format="PNG", compress_level=1)
    return out.getvalue()


def pack(found: Sequence[Detections], k: int) -> dict[str, np.ndarray]:
    """Detections per image -> the four NMS tensors, batch first, padded with zeros to k rows."""
    out = {name: np.zeros((len(found),) + shape, OUTPUT_DTYPES[name])
           for name, shape in zip(NMS_OUTPUTS, ((1,), (k, 4), (k,), (k,)))}
    for i, det in enumerate(found):
        n = min(len(det), k)
        out["num_detections"][i, 0] = n
        out["detection_boxes"][i, :n] = det.boxes[:n]
        out["detection_scores"][i, :n] = det.scores[:n]
        out["detection_classes"][i, :n] = det.classes[:n]
    return out


def unpack(outputs: dict[str, np.ndarray]) -> list[Detections]:
    """The four NMS tensors (batch first) -> Detections per image (boxes as the server computed them)."""
    num, boxes, scores, classes = (np.asarray(outputs[k]) for k in NMS_OUTPUTS)
    return [Detections.from_padded(int(num[i, 0]), boxes[i], scores[i], classes[i]) for i in range(len(num))]


def config_parameters(config: dict[str, Any]) -> dict[str, str]:
    """A model config's `parameters` (Triton's JSON form: {key: {"string_value": v}}) as plain strings."""
    return {k: str(v.get("string_value", "")) for k, v in (config.get("parameters") or {}).items()}


def info_from_parameters(params: dict[str, str], source: str) -> ModelInfo:
    """The served file's ModelInfo from the config parameter `metadata` (its metadata_props as JSON)."""
    if "metadata" not in params:
        raise DeployError(f"{source}: not an efficientdet-deploy served detector (no 'metadata' parameter)")
    return ModelInfo.from_metadata(json.loads(params["metadata"]), source)
