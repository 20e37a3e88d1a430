"""COCO-format detection datasets: load and validate, naming the place.

A dataset is a folder of images plus an ``instances_*.json`` annotation
file. Only what the harness uses is checked, but that strictly: a JSON that
is not COCO fails here, at load, not halfway through a fleet run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from harness.errors import InputError


@dataclass(frozen=True)
class CocoImage:
    id: int
    path: Path
    width: int
    height: int


@dataclass(frozen=True)
class CocoDataset:
    name: str
    annotations_json: Path
    images: tuple[CocoImage, ...]
    # category id -> name, in id order.
    categories: dict[int, str]
    annotations_sha256: str
    # The categories at least one annotation uses (a label check ignores the others).
    annotated_categories: frozenset[int] = frozenset()

    def category_ids_for(self, labels: tuple[str, ...], *, source: str | Path) -> tuple[int, ...]:
        """Map the model's class indices (label order) to this dataset's ids."""
        by_name = {name: cid for cid, name in self.categories.items()}
        missing = [label for label in labels if label not in by_name]
        if missing:
            raise InputError(
                f"labels {missing} are not categories of {self.annotations_json}"
                f" (categories: {', '.join(by_name)})",
                source=source,
                place="labels",
                hint="make the recipe's labels match the dataset's category names",
            )
        return tuple(by_name[label] for label in labels)


def _require(cond: bool, path: Path, place: str, message: str) -> None:
    if not cond:
        raise InputError(
            message,
            source=path,
            place=place,
            hint="the file must be COCO detection format: images[], annotations[], categories[]",
        )


def load_coco(annotations_json: Path, images_dir: Path, *, name: str | None = None) -> CocoDataset:
    path = Path(annotations_json)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError("annotation file not found", source=path, hint="check the dataset path") from None
    except OSError as exc:
        raise InputError(f"cannot read annotation file: {exc}", source=path) from None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"not JSON: {exc}", source=path, hint="point to a COCO instances_*.json file") from None
    _require(isinstance(data, dict), path, "top level", "expected a JSON object")
    for key in ("images", "annotations", "categories"):
        _require(isinstance(data.get(key), list), path, key, f"missing list {key!r}")

    categories: dict[int, str] = {}
    for i, cat in enumerate(data["categories"]):
        place = f"categories[{i}]"
        _require(isinstance(cat, dict), path, place, "expected an object")
        _require(isinstance(cat.get("id"), int), path, place + ".id", "expected an integer id")
        _require(isinstance(cat.get("name"), str), path, place + ".name", "expected a name")
        categories[cat["id"]] = cat["name"]
    _require(bool(categories), path, "categories", "no categories")

    images: list[CocoImage] = []
    seen_ids: set[int] = set()
    for i, img in enumerate(data["images"]):
        place = f"images[{i}]"
        _require(isinstance(img, dict), path, place, "expected an object")
        _require(isinstance(img.get("id"), int), path, place + ".id", "expected an integer id")
        _require(img["id"] not in seen_ids, path, place + ".id", f"duplicate image id {img['id']}")
        _require(isinstance(img.get("file_name"), str), path, place + ".file_name", "expected a file name")
        for dim in ("width", "height"):
            _require(
                isinstance(img.get(dim), int) and img[dim] > 0, path, f"{place}.{dim}", "expected a positive integer"
            )
        seen_ids.add(img["id"])
        images.append(CocoImage(img["id"], Path(images_dir) / img["file_name"], img["width"], img["height"]))
    _require(bool(images), path, "images", "no images")

    used: set[int] = set()
    for i, ann in enumerate(data["annotations"]):
        place = f"annotations[{i}]"
        _require(isinstance(ann, dict), path, place, "expected an object")
        # isinstance first: a list or a mapping here is unhashable (found by the fuzz suite).
        image_id, category_id = ann.get("image_id"), ann.get("category_id")
        _require(isinstance(image_id, int) and image_id in seen_ids, path, place + ".image_id", "refers to no image")
        _require(isinstance(category_id, int) and category_id in categories, path, place + ".category_id",
                 "refers to no category")
        bbox = ann.get("bbox")
        _require(
            isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox),
            path,
            place + ".bbox",
            "expected [x, y, width, height]",
        )
        used.add(category_id)

    missing = [img.path for img in images if not img.path.is_file()]
    if missing:
        raise InputError(
            f"{len(missing)} image file(s) missing, first: {missing[0]}",
            source=path,
            place="images[].file_name",
            hint=f"file names are read relative to {images_dir}",
        )
    return CocoDataset(
        name=name or path.stem,
        annotations_json=path,
        images=tuple(images),
        categories=dict(sorted(categories.items())),
        annotations_sha256=hashlib.sha256(raw).hexdigest(),
        annotated_categories=frozenset(used),
    )
