"""`compare --save-outputs FILE` / `--load-outputs FILE`: a reference's outputs kept for a later comparison, e.g.
an engine on a Jetson against a reference run on a workstation (as Polygraphy's --save-outputs/--load-outputs).

Format (FORMAT, VERSION): one uncompressed ZIP64 file, written member by member (one image's tensors in memory at a
time) into a temporary file that is renamed over FILE at the end (nothing half-written):
- manifest.json: format, version, what the reference was (model, input size, classes, file), the images (names and
  a SHA-256 of their pixels), the compared tensors (with --layers) and a fingerprint of the reference graph;
- det/<i>.npz: detections of image i (boxes xyxy original pixels, scores, classes);
- raw/<i>.npz: decoded boxes [N,4] and sigmoid scores [N,C] of every anchor (where the reference has them);
- layers/<i>/<k>.npy: tensor k of the manifest's list for image i (with --layers).
A file from another model or another image set is refused with one line (DeployError, exit 2).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from runtime.errors import DeployError
from runtime.model_info import ModelInfo
from runtime.result import Detections

FORMAT, VERSION = "effdet-deploy-outputs", 1


def images_digest(images: Sequence[np.ndarray]) -> str:
    """SHA-256 over every image's shape and pixels, in order."""
    h = hashlib.sha256()
    for image in images:
        h.update(repr(image.shape).encode())
        h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


def info_json(info: ModelInfo) -> dict[str, Any]:
    return asdict(info)


def info_from_json(data: dict[str, Any]) -> ModelInfo:
    tuples = ("image_size", "mean", "std", "class_names", "batch")
    return ModelInfo(**{k: tuple(v) if k in tuples else v for k, v in data.items()})


class OutputsWriter:
    """Writes the file member by member; `close()` renames it into place, `abort()` leaves nothing."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self.zip = zipfile.ZipFile(self.tmp, "w", zipfile.ZIP_STORED, allowZip64=True)

    def array(self, member: str, array: np.ndarray) -> None:
        with self.zip.open(member, "w", force_zip64=True) as f:
            np.save(f, np.ascontiguousarray(array), allow_pickle=False)

    def arrays(self, member: str, **arrays: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        self.zip.writestr(member, buffer.getvalue())

    def detections(self, index: int, det: Detections) -> None:
        self.arrays(f"det/{index}.npz", boxes=det.boxes, scores=det.scores, classes=det.classes)

    def raw(self, index: int, boxes: np.ndarray, scores: np.ndarray) -> None:
        self.arrays(f"raw/{index}.npz", boxes=boxes, scores=scores)

    def layers(self, index: int, tensors: Sequence[str], outputs: dict[str, np.ndarray]) -> None:
        for k, name in enumerate(tensors):
            if name in outputs:
                self.array(f"layers/{index}/{k}.npy", outputs[name])

    def close(self, manifest: dict[str, Any]) -> Path:
        self.zip.writestr("manifest.json", json.dumps({"format": FORMAT, "version": VERSION, **manifest}, indent=1))
        self.zip.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        self.zip.close()
        self.tmp.unlink(missing_ok=True)


@dataclass
class SavedOutputs:
    """A file written by OutputsWriter, checked against the images it is used with."""

    path: Path
    manifest: dict[str, Any]
    zip: zipfile.ZipFile

    @property
    def info(self) -> ModelInfo:
        return info_from_json(self.manifest["info"])

    @property
    def tensors(self) -> list[str]:
        return list(self.manifest.get("tensors") or [])

    def detections(self) -> list[Detections]:
        out = []
        for i in range(len(self.manifest["images"])):
            with np.load(io.BytesIO(self.zip.read(f"det/{i}.npz"))) as d:
                out.append(Detections(d["boxes"], d["scores"], d["classes"]))
        return out

    def has_raw(self) -> bool:
        return bool(self.manifest.get("raw"))

    def raw(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i in range(len(self.manifest["images"])):
            with np.load(io.BytesIO(self.zip.read(f"raw/{i}.npz"))) as d:
                yield d["boxes"], d["scores"]

    def layers(self) -> Iterator[dict[str, np.ndarray]]:
        members = set(self.zip.namelist())
        for i in range(len(self.manifest["images"])):
            yield {name: np.load(io.BytesIO(self.zip.read(m)), allow_pickle=False)
                   for k, name in enumerate(self.tensors) if (m := f"layers/{i}/{k}.npy") in members}


def load_outputs(path: Path, names: Sequence[str], images: Sequence[np.ndarray], layers: bool) -> SavedOutputs:
    """The saved file, refused (one line) when it is not ours, of another version, or of other images."""
    try:
        archive = zipfile.ZipFile(path)
        manifest = json.loads(archive.read("manifest.json"))
    except (OSError, zipfile.BadZipFile, KeyError, ValueError):
        raise DeployError(f"{path}: not a file written by compare --save-outputs") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise DeployError(f"{path}: format {manifest.get('format')} version {manifest.get('version')}; this "
                          f"effdet-deploy reads {FORMAT} version {VERSION} (save the reference again)")
    if manifest.get("images_sha256") != images_digest(images) or list(manifest.get("images", [])) != list(names):
        raise DeployError(f"{path}: saved for other images ({len(manifest.get('images', []))} image(s): "
                          f"{', '.join(manifest.get('images', [])[:2])}...); give the same --images/--max-images")
    if layers and not manifest.get("tensors"):
        raise DeployError(f"{path}: has no per-layer outputs (save it with --layers --save-outputs)")
    return SavedOutputs(Path(path), manifest, archive)


def check_same_model(saved: SavedOutputs, target: ModelInfo, target_name: str) -> None:
    """A target of another model (name, input size or classes) cannot be compared with the saved reference."""
    ref = saved.info
    if (ref.model, ref.image_size, ref.num_classes) != (target.model, target.image_size, target.num_classes):
        raise DeployError(f"{saved.path}: saved from {ref.model} at {ref.image_size[0]}x{ref.image_size[1]} with "
                          f"{ref.num_classes} classes; {target_name} is {target.model} at "
                          f"{target.image_size[0]}x{target.image_size[1]} with {target.num_classes}")
