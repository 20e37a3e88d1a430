"""A recipe's `dataset.eval` / `dataset.calibration` entries (also spelt
`val` / `calib`): a COCO folder, a COCO root, or an Ultralytics data.yaml,
each optionally sampled to `size` images with `seed`.

    eval: data.yaml                       # its val split
    eval: coco/                           # a COCO root: annotations/instances_val2017.json + val2017/
    eval: {annotations: a.json, images: imgs/, size: 500, seed: 0}
    eval: {data: data.yaml, split: test}
    eval: {root: coco/, split: val2017}
"""

from __future__ import annotations

from pathlib import Path

from harness.config import Fields
from harness.dataset.locate import coco_root, is_yaml
from harness.errors import InputError
from harness.model.recipe import DatasetRef, _folder_ref

ENTRY_KEYS = ("annotations", "images", "root", "data", "split", "size", "seed")
# (key, its alias, the DatasetRef's role)
ENTRIES = (("calibration", "calib", "calib"), ("eval", "val", "val"))


def dataset_entries(ds: Fields, path: Path, folder: Path) -> tuple[DatasetRef | None, DatasetRef | None]:
    """(calibration, eval) of a non-synthetic `dataset:` mapping."""
    refs: list[DatasetRef | None] = []
    for key, alias, role in ENTRIES:
        if key in ds.data and alias in ds.data:
            raise InputError(f"both {key!r} and {alias!r} given", source=path, place=f"dataset.{alias}", hint=f"keep one of them ({alias} is {key})")
        refs.append(entry(ds, alias if alias in ds.data else key, role, path, folder))
    return refs[0], refs[1]


def entry(ds: Fields, key: str, role: str, path: Path, folder: Path) -> DatasetRef | None:
    value = ds.data.get(key)
    if value is None:
        return None
    where = f"{ds.place}.{key}" if ds.place else key
    if isinstance(value, str):
        return location_ref(folder / value, "val", role, source=f"{path}, {where}")
    sub = ds.sub(key)
    sub.reject_unknown(ENTRY_KEYS)
    size, seed = sub.int("size", None, minimum=1), sub.int("seed", 0, minimum=0)
    split = sub.str("split", "val")
    forms = [k for k in ("annotations", "root", "data") if k in sub.data]
    if len(forms) != 1:
        raise InputError(
            "name the dataset once: {annotations, images} (a COCO folder), root (a COCO 2017 root) or data (a data.yaml)",
            source=path, place=where, hint=f"e.g. {key}: {{data: data.yaml, split: val, size: 500}}",
        )
    if forms[0] == "annotations":
        ref = _folder_ref(Fields({k: sub.data[k] for k in ("annotations", "images") if k in sub.data}, source=path, place=where), role, path, folder)
    else:
        ref = location_ref(folder / sub.str(forms[0], required=True), split, role, source=f"{path}, {where}.{forms[0]}")
    return DatasetRef(ref.split, annotations=ref.annotations, images=ref.images, yolo=ref.yolo,
                      yolo_split=ref.yolo_split, size=size, seed=seed)


def location_ref(target: Path, split: str, role: str, *, source: str) -> DatasetRef:
    """A data.yaml (checked when it is read) or a COCO root (checked now)."""
    if is_yaml(target):
        if not target.is_file():
            raise InputError(f"dataset YAML {target} not found", source=source, hint="fix the path")
        return DatasetRef(role, yolo=target, yolo_split=split)
    annotations, images = coco_root(target, split, source=source)
    return DatasetRef(role, annotations=annotations, images=images)
