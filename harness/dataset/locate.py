"""Where a dataset argument points: a COCO root in the COCO 2017 layout
(annotations/instances_<split>.json beside a <split>/ image folder, or
images/<split>/ as Ultralytics' COCO download lays it out), or an
Ultralytics data.yaml."""

from __future__ import annotations

from pathlib import Path

from harness.errors import InputError

YAML_SUFFIXES = (".yaml", ".yml")


def split_names(split: str) -> list[str]:
    """`val` is also `val2017` (COCO 2017's name), and the other way round."""
    if split.endswith("2017"):
        return [split, split[: -len("2017")]]
    return [split, f"{split}2017"]


def coco_root(root: Path, split: str, *, source: str = "--dataset") -> tuple[Path, Path]:
    """(annotations JSON, image folder) of a split of a COCO root."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"dataset folder {root} not found", source=source, hint="give a COCO root folder or a data.yaml")
    looked: list[str] = []
    for name in split_names(split):
        annotations = root / "annotations" / f"instances_{name}.json"
        for images in (root / name, root / "images" / name):
            if annotations.is_file() and images.is_dir():
                return annotations, images
        looked.append(f"annotations/instances_{name}.json + {name}/")
    yamls = sorted(p.name for p in root.glob("*.y*ml"))
    hint = (f"for a YOLO dataset pass its data.yaml ({', '.join(yamls)})" if yamls else
            f"lay it out as COCO 2017 does ({' or '.join(looked)}), or choose another split with --split")
    raise InputError(f"no {split!r} split in the COCO folder {root} (looked for {'; '.join(looked)})", source=source, hint=hint)


def is_yaml(path: Path) -> bool:
    return Path(path).suffix.lower() in YAML_SUFFIXES
