"""COCO detection accuracy of one (device, variant): mAP, mAP50, mAP75.

Detections arrive from the device in the SSD post-process convention
(normalised ymin, xmin, ymax, xmax of the model input; 0-based class
index); they are mapped back to the original image's pixels (through the
letterbox when the input was letterboxed) and the dataset's category ids, saved
in COCO results format, and scored with pycocotools.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from harness.dataset.coco import CocoDataset
from harness.dataset.letterbox import letterbox_geometry, to_image_px
from harness.dataset.preprocess import InputSpec


_STDOUT_SWAP = threading.Lock()


@dataclass(frozen=True)
class CocoScores:
    map: float
    map50: float
    map75: float


def to_coco_results(
    dataset: CocoDataset,
    detections: Sequence[dict[str, Any]],
    category_ids: Sequence[int],
    input_spec: InputSpec | None = None,
) -> list[dict[str, Any]]:
    """`input_spec` says how images became model inputs: a letterboxed
    input's boxes are mapped back through its padding and scale."""
    if len(detections) != len(dataset.images):
        raise ValueError(f"{len(detections)} detection sets for {len(dataset.images)} images")
    results: list[dict[str, Any]] = []
    for image, found in zip(dataset.images, detections):
        to_px = _image_px_mapping(image.height, image.width, input_spec)
        for box, cls, score in zip(found["boxes"], found["classes"], found["scores"]):
            if not 0 <= cls < len(category_ids) or category_ids[cls] < 0:
                continue  # a class the dataset does not know (or a '???' slot) cannot match anything
            ymin, xmin, ymax, xmax = to_px(box)
            x, y, w, h = xmin, ymin, xmax - xmin, ymax - ymin
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


def in_image_coordinates(
    dataset: CocoDataset, detections: Sequence[dict[str, Any]], input_spec: InputSpec | None
) -> list[dict[str, Any]]:
    """The detections with boxes as normalised (ymin, xmin, ymax, xmax) of
    the original image (a letterboxed input's padding and scale undone):
    what the label-map check compares with the ground truth."""
    if input_spec is None or input_spec.resize != "letterbox":
        return list(detections)
    out = []
    for image, found in zip(dataset.images, detections):
        to_px = _image_px_mapping(image.height, image.width, input_spec)
        size = (image.height, image.width, image.height, image.width)
        boxes = [[v / s for v, s in zip(to_px(box), size)] for box in found["boxes"]]
        out.append(dict(found, boxes=boxes))
    return out


def _image_px_mapping(image_h_px: int, image_w_px: int, spec: InputSpec | None) -> Callable[[Sequence[float]], tuple[float, ...]]:
    """Normalised (ymin, xmin, ymax, xmax) of the model input -> the same in
    the original image's pixels, clipped to it."""
    if spec is not None and spec.resize == "letterbox":
        geometry = letterbox_geometry(image_h_px, image_w_px, spec.height, spec.width)
        return lambda box: to_image_px(tuple(float(v) for v in box), geometry, image_h_px, image_w_px)  # type: ignore[arg-type]
    scale = (image_h_px, image_w_px, image_h_px, image_w_px)
    return lambda box: tuple(min(1.0, max(0.0, float(v))) * s for v, s in zip(box, scale))


# Images whose detections pycocotools indexes at a time: its per-detection
# dicts and IoU tables then cost one chunk's worth, not the eval set's.
SCORING_CHUNK_IMAGES = 100


def coco_scores(
    annotations_json: Path, results: list[dict[str, Any]], image_ids: Sequence[int],
    chunk_images: int = SCORING_CHUNK_IMAGES,
) -> CocoScores:
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
        evaluator = COCOeval(iouType="bbox")
        evaluator.params.imgIds = sorted(set(image_ids))
        evaluator.params.catIds = sorted(truth.getCatIds())
        evaluator.evalImgs = _chunked_eval_images(truth, results, evaluator.params.imgIds, chunk_images)
        evaluator._paramsEval = copy.deepcopy(evaluator.params)
        evaluator.accumulate()
        evaluator.summarize()
    # stats are -1 where no ground truth exists at all; report 0 there.
    stats = [max(0.0, float(v)) for v in evaluator.stats[:3]]
    return CocoScores(*stats)


def _chunked_eval_images(truth: Any, results: list[dict[str, Any]], image_ids: list[int], chunk_images: int) -> list[Any]:
    """COCOeval.evaluate()'s evalImgs (category-major, then area range, then
    image), made a chunk of images at a time: an image's entry depends on its
    own boxes only. Each entry keeps what accumulate() reads."""
    from pycocotools.cocoeval import COCOeval

    by_image: dict[int, list[dict[str, Any]]] = {}
    for found in results:
        by_image.setdefault(found["image_id"], []).append(found)
    parts: list[list[Any]] | None = None
    for start in range(0, len(image_ids), chunk_images):
        chunk = image_ids[start : start + chunk_images]
        # Copies: loadRes adds fields (a segmentation per box) to what it is given.
        found = [dict(r) for image_id in chunk for r in by_image.get(image_id, ())]
        evaluator = COCOeval(truth, truth.loadRes(found) if found else _no_detections(truth), iouType="bbox")
        evaluator.params.imgIds = chunk
        evaluator.evaluate()
        groups = len(evaluator.evalImgs) // len(chunk)
        parts = parts or [[] for _ in range(groups)]
        for group in range(groups):
            parts[group].extend(_compact(e) for e in evaluator.evalImgs[group * len(chunk) : (group + 1) * len(chunk)])
    return [entry for part in parts or [] for entry in part]


def _compact(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {"dtScores": entry["dtScores"], "dtMatches": entry["dtMatches"] != 0,
            "dtIgnore": entry["dtIgnore"], "gtIgnore": entry["gtIgnore"]}


def _no_detections(truth: Any) -> Any:
    from pycocotools.coco import COCO

    empty = COCO()
    empty.dataset = {"images": truth.dataset["images"], "categories": truth.dataset["categories"], "annotations": []}
    empty.createIndex()
    return empty


def save_results(path: Path, results: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results), encoding="utf-8")
    tmp.replace(path)
