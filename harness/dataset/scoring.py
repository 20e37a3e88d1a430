"""COCO detection accuracy of one (device, variant): mAP, mAP50, mAP75.

Detections arrive from the device in the SSD post-process convention
(normalised ymin, xmin, ymax, xmax; 0-based class index); they are mapped
back to the original image's pixels and the dataset's category ids, saved
in COCO results format, and scored with pycocotools.
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from harness.dataset.coco import CocoDataset


_STDOUT_SWAP = threading.Lock()


@dataclass(frozen=True)
class CocoScores:
    map: float
    map50: float
    map75: float


def to_coco_results(
    dataset: CocoDataset, detections: Sequence[dict[str, Any]], category_ids: Sequence[int]
) -> list[dict[str, Any]]:
    if len(detections) != len(dataset.images):
        raise ValueError(f"{len(detections)} detection sets for {len(dataset.images)} images")
    results: list[dict[str, Any]] = []
    for image, found in zip(dataset.images, detections):
        for box, cls, score in zip(found["boxes"], found["classes"], found["scores"]):
            if not 0 <= cls < len(category_ids) or category_ids[cls] < 0:
                continue  # a class the dataset does not know (or a '???' slot) cannot match anything
            ymin, xmin, ymax, xmax = (min(1.0, max(0.0, float(v))) for v in box)
            x, y = xmin * image.width, ymin * image.height
            w, h = (xmax - xmin) * image.width, (ymax - ymin) * image.height
            if w <= 0 or h <= 0:
                continue
            results.append(
                {
                    "image_id": image.id,
                    "category_id": category_ids[cls],
                    "bbox": [round(x, 3), round(y, 3), round(w, 3), round(h, 3)],
                    "score": round(float(score), 6),
                }
            )
    return results


def coco_scores(annotations_json: Path, results: list[dict[str, Any]], image_ids: Sequence[int]) -> CocoScores:
    """Standard COCO bbox evaluation (101-point interpolated AP, maxDets 100)."""
    if not results:
        return CocoScores(0.0, 0.0, 0.0)
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    # pycocotools prints progress to stdout; keep our stdout clean. The
    # redirect swaps the process-wide sys.stdout, so device workers scoring
    # at the same time must take turns (or one restores the other's sink).
    with _STDOUT_SWAP, contextlib.redirect_stdout(io.StringIO()):
        truth = COCO(str(annotations_json))
        found = truth.loadRes(results)
        evaluator = COCOeval(truth, found, iouType="bbox")
        evaluator.params.imgIds = list(image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    # stats are -1 where no ground truth exists at all; report 0 there.
    stats = [max(0.0, float(v)) for v in evaluator.stats[:3]]
    return CocoScores(*stats)


def save_results(path: Path, results: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results), encoding="utf-8")
    tmp.replace(path)
