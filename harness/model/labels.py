"""A recipe's `labels:` (the model's class names, by class index) and how
they meet a dataset's categories.

`labels:` is a list of names, a label file (one name per line, the Model
Maker / TF Lite convention) or a built-in set: `coco80` (the 80 COCO names
in order, what Ultralytics and EfficientDet-Lite's 80-class heads emit) or
`coco91` (class i is COCO category id i + 1, the TF Object Detection API's
90-slot space with the 10 unused ids as placeholders). With no labels, class
i is the dataset's i-th category in id order.

Label files: TF Lite's SSD example labelmap.txt starts with `???` (the
background slot; its Android code adds a label offset of 1 to the
post-process op's 0-based classes) and marks the unused COCO ids with `???`.
So a leading background entry is dropped (class 0 is the next line) and the
other placeholders keep their slot but match no category.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.config import Fields
from harness.dataset.coco import CocoDataset
from harness.dataset.coco_names import COCO80, COCO_CATEGORIES
from harness.errors import InputError

if TYPE_CHECKING:
    from harness.model.recipe import Recipe

PLACEHOLDER = "???"
# Names a label file uses for a slot that is no class.
_PLACEHOLDERS = {"???", "", "n/a", "__background__", "background"}

COCO91 = tuple(name or PLACEHOLDER for _, name in COCO_CATEGORIES)
BUILTIN = {"coco80": COCO80, "coco91": COCO91}


@dataclass(frozen=True)
class Labels:
    names: tuple[str, ...]  # by class index; PLACEHOLDER for a slot with no class
    source: str = ""  # "" (none given), "list", "coco80", "coco91" or the label file's path
    builtin: bool = False


def is_placeholder(name: str) -> bool:
    return name.strip().lower() in _PLACEHOLDERS


def parse_labels(top: Fields, folder: Path) -> Labels:
    """The recipe's `labels:` value, whichever form it takes."""
    value = top.data.get("labels")
    if value is None:
        return Labels(())
    if isinstance(value, list):
        names = top.str_list("labels")
        return Labels(tuple(PLACEHOLDER if is_placeholder(n) else n for n in names), "list")
    if not isinstance(value, str):
        raise InputError(
            f"expected a list of names, a label file or a built-in set, got {value!r}",
            source=top.source, place="labels",
            hint="labels: [cat, dog], labels: labels.txt (one name per line) or labels: coco80",
        )
    if value in BUILTIN:
        return Labels(BUILTIN[value], value, builtin=True)
    return read_label_file(folder / value, recipe=top.source)


def read_label_file(path: Path, *, recipe: Path | str | None = None) -> Labels:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(
            f"label file {path} not found", source=recipe, place="labels",
            hint=f"fix the path (relative to the recipe), or use a built-in set: {', '.join(BUILTIN)}",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the label file: {exc}", source=path, hint="save it as UTF-8 text, one name per line") from None
    while lines and not lines[-1].strip():
        lines.pop()
    names = [PLACEHOLDER if is_placeholder(line) else line.strip() for line in lines]
    if names and names[0] == PLACEHOLDER:
        names = names[1:]  # the background slot: the post-process op's class 0 is the next line
    if not any(n != PLACEHOLDER for n in names):
        raise InputError("the label file names no class", source=path, hint="write one class name per line, in class-index order")
    return Labels(tuple(names), str(path))


@dataclass(frozen=True)
class ClassMap:
    """The model's class index -> the dataset's category id (-1: no category)."""

    category_ids: tuple[int, ...]
    # How the map was made, for the report ("" when the recipe named the labels).
    note: str = ""


def _key(name: str) -> str:
    return " ".join(name.casefold().replace("_", " ").replace("-", " ").split())


def class_map(labels: Labels, dataset: CocoDataset, *, source: Path | str) -> ClassMap:
    """Match the labels to the dataset's categories by name (exact, else
    ignoring case, '_' and '-'); a mismatch is exit 2 listing both sides."""
    if not labels.names:
        ids = tuple(dataset.categories)
        order = ", ".join(f"{i} {dataset.categories[c]}" for i, c in enumerate(ids[:6]))
        more = ", ..." if len(ids) > 6 else ""
        return ClassMap(ids, f"no labels given: class i is the dataset's i-th category in id order ({order}{more})")
    by_key = {_key(name): cid for cid, name in dataset.categories.items()}
    ids = tuple(-1 if n == PLACEHOLDER else by_key.get(_key(n), -1) for n in labels.names)
    unknown = [n for n, cid in zip(labels.names, ids) if cid < 0 and n != PLACEHOLDER]
    matched = set(ids)
    unlabelled = [dataset.categories[c] for c in sorted(dataset.annotated_categories or dataset.categories) if c not in matched]
    if labels.builtin:
        unknown = []  # a COCO model scored on part of COCO's categories
    if unknown or unlabelled:
        raise InputError(_mismatch(unknown, unlabelled, dataset), source=source, place="labels", hint=_hint(labels))
    return ClassMap(ids, f"labels from {labels.source}" if labels.source not in ("", "list") else "")


def _mismatch(unknown: list[str], unlabelled: list[str], dataset: CocoDataset) -> str:
    parts = []
    if unknown:
        parts.append(f"labels {unknown} are not categories of {dataset.annotations_json}")
    if unlabelled:
        parts.append(f"categories {unlabelled} of {dataset.annotations_json} match no label")
    return "; ".join(parts) + f" (labels are matched to category names: {', '.join(dataset.categories.values())})"


def _hint(labels: Labels) -> str:
    where = {"list": "the recipe's labels", "": "the labels"}.get(labels.source, labels.source)
    return f"make {where} name the dataset's categories (one per class index, '???' for a slot with no class), or drop labels: to take the dataset's category order"


def recipe_class_map(recipe: "Recipe", dataset: CocoDataset) -> ClassMap:
    """The map a run scores a recipe's detections with."""
    labels = Labels(recipe.labels, recipe.labels_source, builtin=recipe.labels_source in BUILTIN)
    return class_map(labels, dataset, source=recipe.path)
