"""Which category each model class's detections land on, matched to the
ground truth by box alone (IoU >= 0.5, class ignored, best score first,
each object matched once). A permuted or off-by-one label map (the TF
Object Detection API's background offset, two labels swapped) shows as
class i landing mostly on a category other than the one its label names,
while its boxes are right; mAP alone only drops."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from harness.dataset.coco import CocoDataset, CocoImage
from harness.results.record import ClassLanding

MATCH_IOU = 0.5
# A class needs this many box-matched detections before its landing means anything.
MIN_MATCHED = 10


def _truth(annotations_json: Path, dataset: CocoDataset, annotations: Sequence[dict[str, Any]] | None = None) -> dict[int, tuple[np.ndarray, list[int]]]:
    """image id -> (normalised x1 y1 x2 y2 boxes, category ids), from the
    file's annotations (or the same, already loaded)."""
    sizes = {img.id: (img.width, img.height) for img in dataset.images}
    boxes: dict[int, list[list[float]]] = defaultdict(list)
    cats: dict[int, list[int]] = defaultdict(list)
    if annotations is None:
        annotations = json.loads(Path(annotations_json).read_text(encoding="utf-8"))["annotations"]
    for ann in annotations:
        if ann["image_id"] not in sizes or ann.get("iscrowd"):
            continue
        w, h = sizes[ann["image_id"]]
        x, y, bw, bh = ann["bbox"]
        boxes[ann["image_id"]].append([x / w, y / h, (x + bw) / w, (y + bh) / h])
        cats[ann["image_id"]].append(ann["category_id"])
    return {i: (np.asarray(boxes[i], np.float64).reshape(-1, 4), cats[i]) for i in boxes}


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    x1, y1 = np.maximum(box[0], others[:, 0]), np.maximum(box[1], others[:, 1])
    x2, y2 = np.minimum(box[2], others[:, 2]), np.minimum(box[3], others[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1]) + (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(area - inter, 1e-12)


def _matches(found: dict[str, Any], truth: tuple[np.ndarray, list[int]]) -> list[tuple[int, int]]:
    """(model class, category id) of each detection matched to an object by box."""
    gt_boxes, gt_cats = truth
    taken = np.zeros(len(gt_cats), bool)
    order = np.argsort(-np.asarray(found["scores"], np.float64), kind="stable")
    out = []
    for k in order:
        if taken.all():
            break  # every object has its detection: the rest are duplicates or background
        ymin, xmin, ymax, xmax = (float(v) for v in found["boxes"][k])
        iou = np.where(taken, -1.0, _iou(np.array([xmin, ymin, xmax, ymax]), gt_boxes))
        best = int(np.argmax(iou)) if len(iou) else -1
        if best >= 0 and iou[best] >= MATCH_IOU:
            taken[best] = True
            out.append((int(found["classes"][k]), gt_cats[best]))
    return out


def class_landings(dataset: CocoDataset, detections: Sequence[dict[str, Any]], category_ids: Sequence[int]) -> tuple[ClassLanding, ...]:
    """Every class with enough box-matched detections, in class order."""
    counter = LandingCounter(dataset, category_ids)
    counter.add(dataset.images, detections)
    return counter.landings()


class LandingCounter:
    """class_landings() fed a chunk of images at a time (the counts add up;
    the ground truth is read once)."""

    def __init__(self, dataset: CocoDataset, category_ids: Sequence[int], annotations: Sequence[dict[str, Any]] | None = None) -> None:
        """`annotations`: the dataset file's, when the caller has them loaded already."""
        self.truth = _truth(dataset.annotations_json, dataset, annotations)
        self.names = dataset.categories
        self.category_ids = category_ids
        self.counts: dict[int, Counter] = defaultdict(Counter)

    def add(self, images: Sequence[CocoImage], detections: Sequence[dict[str, Any]]) -> None:
        """These images' detections (boxes normalised to the original image)."""
        for image, found in zip(images, detections):
            if image.id in self.truth and len(found.get("scores", ())):
                for cls, cat in _matches(found, self.truth[image.id]):
                    self.counts[cls][cat] += 1

    def landings(self) -> tuple[ClassLanding, ...]:
        out = []
        for cls in sorted(self.counts):
            total = sum(self.counts[cls].values())
            if total < MIN_MATCHED:
                continue
            cat, n = self.counts[cls].most_common(1)[0]
            expected = self.category_ids[cls] if 0 <= cls < len(self.category_ids) else -1
            out.append(ClassLanding(cls, self.names.get(expected, "???"), self.names.get(cat, str(cat)), round(n / total, 4), total))
        return tuple(out)
