"""Ultralytics YOLO datasets (`data.yaml`, images/, labels/*.txt) read
natively and converted to a COCO instances JSON in the cache, so scoring
is the same pycocotools path as every COCO dataset.

Read as Ultralytics' own loader does (ultralytics/data/utils.py
check_det_dataset, img2label_paths, verify_image_label; data/base.py
get_img_files): `path` is the dataset root, a split (`train`, `val` or its
old name `validation`, `test`) is a folder searched recursively, a .txt
list of image paths ("./x" relative to the list's folder) or a list of
either; an image's label file is its path with the last `/images/` turned
into `/labels/` and the suffix into `.txt` (none: an image with no
objects); a label line is `class x_center y_center width height`,
normalised to the image, with 1% tolerance; a longer line is a polygon
(its bounding box is used); exact duplicate lines are dropped. Unlike
Ultralytics, a relative `path` is read from the data.yaml's folder (not
the working directory) and a bad line refuses the dataset instead of
silently skipping the image.

Ids are deterministic: an image's id is its file stem when every stem is a
number (COCO's own files), else its 1-based place in path order;
annotation ids count from 1 in that order; category i is id i + 1, or
COCO's own id when the names are COCO's 80.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config import load_yaml_mapping
from harness.dataset.coco_names import COCO80, COCO_CATEGORIES
from harness.dataset.images import image_size
from harness.errors import InputError

# Ultralytics' IMG_FORMATS less the ones Pillow cannot open (dng, heic, pfm).
IMAGE_SUFFIXES = frozenset({"bmp", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp"})
SPLITS = ("train", "val", "test")
_TOLERANCE = 0.01  # Ultralytics accepts coordinates in [-0.01, 1.01]
CONVERT_VERSION = 1


@dataclass(frozen=True)
class YoloSplit:
    yaml_path: Path
    split: str
    names: tuple[str, ...]
    images: tuple[Path, ...]  # sorted, absolute


def _names(data: dict[str, Any], path: Path) -> tuple[str, ...]:
    names = data.get("names")
    if isinstance(names, dict) and all(isinstance(k, int) for k in names):
        if sorted(names) != list(range(len(names))):
            raise InputError("names: class ids must be 0, 1, 2, ... without gaps", source=path, place="names",
                             hint="number the classes from 0")
        names = [names[i] for i in range(len(names))]
    if names is None and isinstance(data.get("nc"), int):
        names = [f"class_{i}" for i in range(data["nc"])]  # Ultralytics' names for an nc-only file
    if not isinstance(names, list) or not names or not all(isinstance(n, (str, int)) for n in names):
        raise InputError("names must be a list of class names or a mapping {0: name, ...}", source=path, place="names",
                         hint="names: [person, car] (class 0, 1, ...)")
    if isinstance(data.get("nc"), int) and data["nc"] != len(names):
        raise InputError(f"nc is {data['nc']} but names has {len(names)} entries", source=path, place="nc",
                         hint="make nc the number of names, or drop nc")
    return tuple(str(n) for n in names)


def read_split(path: Path, split: str) -> YoloSplit:
    """A data.yaml's split: its class names and image files, every path checked."""
    path = Path(path)
    data = load_yaml_mapping(path, what="dataset YAML")
    if split == "val" and "val" not in data and "validation" in data:
        split_key = "validation"
    else:
        split_key = split
    names = _names(data, path)
    value = data.get(split_key)
    if not value:
        present = [k for k in (*SPLITS, "validation") if data.get(k)]
        raise InputError(f"no {split!r} split", source=path, place=split_key,
                         hint=f"choose one of its splits with --split ({', '.join(present) or 'none listed'}), or add {split}: images/{split}")
    root = Path(data.get("path") or ".")
    root = root if root.is_absolute() else (path.parent / root)
    entries = value if isinstance(value, list) else [value]
    images: list[Path] = []
    for entry in entries:
        if not isinstance(entry, str):
            raise InputError(f"expected a folder or a list file, got {entry!r}", source=path, place=split_key,
                             hint=f"{split_key}: images/{split}")
        images += _split_images(root / entry, path, split_key)
    images = sorted(set(images))
    if not images:
        raise InputError(f"the {split_key} split has no images ({', '.join(sorted(IMAGE_SUFFIXES))})", source=path,
                         place=split_key, hint="point it at the folder (or list file) holding the split's images")
    return YoloSplit(path, split, names, tuple(images))


def _split_images(target: Path, yaml_path: Path, key: str) -> list[Path]:
    target = Path(os.path.normpath(target))
    if target.is_dir():
        return [p for p in target.rglob("*.*") if p.suffix[1:].lower() in IMAGE_SUFFIXES and p.is_file()]
    if target.is_file() and target.suffix[1:].lower() in IMAGE_SUFFIXES:
        return [target]
    if target.is_file():
        lines = [line.strip() for line in target.read_text(encoding="utf-8").splitlines() if line.strip()]
        found = [Path(os.path.normpath(target.parent / line)) for line in lines]
        missing = [p for p in found if not p.is_file()]
        if missing:
            raise InputError(f"{len(missing)} image(s) listed in {target} not found, first: {missing[0]}",
                             source=yaml_path, place=key, hint="list paths relative to the list file's folder (./images/...)")
        return [p for p in found if p.suffix[1:].lower() in IMAGE_SUFFIXES]
    raise InputError(f"split folder {target} not found", source=yaml_path, place=key,
                     hint="fix the split's path (relative to the dataset's `path:`, itself relative to the data.yaml), or choose another split with --split")


def label_path(image: Path) -> Path:
    """Ultralytics' img2label_paths: the last /images/ becomes /labels/, the suffix .txt."""
    text = str(image)
    head, sep, tail = text.rpartition(f"{os.sep}images{os.sep}")
    if sep:
        text = f"{head}{os.sep}labels{os.sep}{tail}"
    return Path(text).with_suffix(".txt")


def _bad_line(label: Path, number: int, message: str, hint: str) -> InputError:
    return InputError(message, source=label, place=f"line {number}", hint=hint)


_FORMAT_HINT = "a YOLO detection label line is `class x_center y_center width height`, normalised to 0..1"


def read_label_lines(label: Path, n_classes: int) -> list[tuple[int, float, float, float, float]]:
    """(class, x1, y1, x2, y2) normalised, clipped to the image, one per object."""
    if not label.is_file():
        return []  # Ultralytics: an image without a label file has no objects
    boxes: list[tuple[int, float, float, float, float]] = []
    seen: set[tuple[str, ...]] = set()
    for number, line in enumerate(label.read_text(encoding="utf-8").splitlines(), start=1):
        tokens = tuple(line.split())
        if not tokens or tokens in seen:
            continue
        seen.add(tokens)
        if len(tokens) != 5 and (len(tokens) < 7 or len(tokens) % 2 == 0):
            raise _bad_line(label, number, f"{len(tokens)} numbers, expected 5", _FORMAT_HINT)
        try:
            values = [float(t) for t in tokens]
        except ValueError:
            raise _bad_line(label, number, f"not numbers: {line.strip()!r}", _FORMAT_HINT) from None
        cls = values[0]
        if cls != int(cls) or not 0 <= cls < n_classes:
            raise _bad_line(label, number, f"class {tokens[0]} is not one of the data.yaml's {n_classes} classes (0..{n_classes - 1})",
                            "use the class's index in the data.yaml's names")
        coords = values[1:]
        if min(coords) < -_TOLERANCE or max(coords) > 1 + _TOLERANCE:
            raise _bad_line(label, number, f"box outside the image: {line.strip()!r}",
                            "YOLO coordinates are fractions of the image's width and height (0..1): divide pixel values by the image size")
        boxes.append((int(cls), *_corners(coords, label, number)))
    return boxes


def _corners(coords: list[float], label: Path, number: int) -> tuple[float, float, float, float]:
    if len(coords) == 4:
        cx, cy, w, h = coords
        x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    else:  # a polygon: its bounding box (Ultralytics' segments2boxes)
        xs, ys = coords[0::2], coords[1::2]
        x1, y1, x2, y2 = min(xs), min(ys), max(xs), max(ys)
    x1, y1, x2, y2 = (min(1.0, max(0.0, v)) for v in (x1, y1, x2, y2))
    if x2 <= x1 or y2 <= y1:
        raise _bad_line(label, number, "the box has no area inside the image", "give the box a positive width and height within the image")
    return x1, y1, x2, y2


def _category_ids(names: tuple[str, ...]) -> list[int]:
    if names == COCO80:
        return [cid for cid, name in COCO_CATEGORIES if name]
    return [i + 1 for i in range(len(names))]


def to_coco(split: YoloSplit) -> tuple[dict[str, Any], Path]:
    """The split as a COCO instances mapping, and the folder file names are relative to."""
    root = Path(os.path.commonpath([str(p.parent) for p in split.images]))
    stems = [p.stem for p in split.images]
    numeric = all(s.isdigit() for s in stems) and len(set(int(s) for s in stems)) == len(stems)
    category_ids = _category_ids(split.names)
    images, annotations = [], []
    for index, image in enumerate(split.images):
        image_id = int(image.stem) if numeric else index + 1
        width, height = image_size(image)
        images.append({"id": image_id, "file_name": image.relative_to(root).as_posix(), "width": width, "height": height})
        for cls, x1, y1, x2, y2 in read_label_lines(label_path(image), len(split.names)):
            w, h = (x2 - x1) * width, (y2 - y1) * height
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": category_ids[cls],
                "bbox": [round(x1 * width, 3), round(y1 * height, 3), round(w, 3), round(h, 3)],
                "area": round(w * h, 3), "iscrowd": 0,
            })
    categories = [{"id": cid, "name": name} for cid, name in zip(category_ids, split.names)]
    return {"images": images, "annotations": annotations, "categories": categories}, root


def _cache_key(split: YoloSplit) -> str:
    digest = hashlib.sha256(f"v{CONVERT_VERSION}:{split.split}:".encode())
    digest.update(split.yaml_path.read_bytes())
    for image in split.images:
        digest.update(str(image).encode())
        for path in (image, label_path(image)):
            stat = path.stat() if path.is_file() else None
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode() if stat else b"-")
    return digest.hexdigest()[:20]


def coco_files(yaml_path: Path, split: str, cache_dir: Path) -> tuple[Path, Path]:
    """(instances JSON in the cache, images root) for a data.yaml's split,
    converted once per content of the yaml, the images and the labels."""
    found = read_split(yaml_path, split)
    folder = Path(cache_dir) / "datasets" / f"yolo-{yaml_path.stem}-{_cache_key(found)}"
    target = folder / f"instances_{split}.json"
    root_file = folder / f"{split}.root"
    if target.is_file() and root_file.is_file():
        return target, Path(root_file.read_text(encoding="utf-8"))
    coco, root = to_coco(found)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(coco), encoding="utf-8")
    root_file.write_text(str(root), encoding="utf-8")
    tmp.replace(target)
    return target, root
