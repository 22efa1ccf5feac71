"""What `infer` reads and where it writes: the images under --input (never our own output folder), one
picture per image at a name no other image can take, and COCO image/category ids (as `eval`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from runtime.coco_eval import category_mapping, load_annotations
from runtime.errors import DeployError
from runtime.image_io import list_images


def input_images(source: str | Path, output: Path) -> tuple[Path, list[Path]]:
    """(root, image files): the images of a file or folder, minus anything inside `output` (a previous run's
    pictures must not be read back when the output folder lies inside the input folder)."""
    source, out = Path(source), output.resolve()
    try:
        listed = list_images(source)
    except DeployError as e:            # a folder is read as images; its videos go in one at a time
        videos = _videos_in(source)
        if videos:
            raise DeployError(f"{e}; it holds {len(videos)} video file(s): give one as --input, e.g. "
                              f"--input {videos[0]}") from None
        raise
    files = [f for f in listed if not f.resolve().is_relative_to(out)]
    if not files:
        raise DeployError(f"{source}: no images found outside the output folder {output}")
    return (source.parent if source.is_file() else source), files


def _videos_in(folder: Path) -> list[Path]:
    from effdet_deploy.video_source import VIDEO_SUFFIXES

    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)


def relative_name(root: Path, path: Path) -> str:
    """The image's path below the input root, '/'-separated (its COCO file name without --annotations)."""
    return path.relative_to(root).as_posix()


def picture_path(output: Path, name: str) -> Path:
    """The drawing of image `name` (relative path): the same relative path with '.png' appended, so
    a.jpg and a.png -> a.jpg.png and a.png.png, and sub/a.jpg -> sub/a.jpg.png: never two on one file."""
    return output / f"{name}.png"


def coco_ids(annotations: Path | None, names: list[str], num_classes: int, class_map: str
             ) -> tuple[dict[str, Any], list[int]]:
    """(image id per relative name, category id per model class). With a COCO annotation file: its image
    ids (matched by file_name, else by base name when that is unique) and the class map `eval` uses;
    without: the relative file name as image id and category c + 1 (1-based, as COCO's ids and the
    shapes set's; both class maps agree on that when there is no dataset to sort)."""
    if annotations is None:
        return {n: n for n in names}, category_mapping({"categories": []}, num_classes, "id")
    coco = load_annotations(annotations)
    by_name = {str(im["file_name"]): im["id"] for im in coco["images"]}
    base: dict[str, list[Any]] = {}
    for file_name, image_id in by_name.items():
        base.setdefault(Path(file_name).name, []).append(image_id)
    ids: dict[str, Any] = {}
    for n in names:
        candidates = [by_name[n]] if n in by_name else base.get(Path(n).name, [])
        if len(candidates) != 1:
            raise DeployError(f"{annotations}: no unique image entry for {n} "
                              f"({'not listed' if not candidates else 'several entries share its base name'})")
        ids[n] = candidates[0]
    return ids, category_mapping(coco, num_classes, class_map)
