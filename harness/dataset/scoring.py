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
    by_image: dict[int, list[dict[str, Any]]] = {}
    for found in results:
        by_image.setdefault(found["image_id"], []).append(found)
    evaluation = ChunkedCocoEval(annotations_json, image_ids)
    ordered = evaluation.image_ids
    for start in range(0, len(ordered), chunk_images):
        chunk = ordered[start : start + chunk_images]
        evaluation.add(chunk, [r for image_id in chunk for r in by_image.get(image_id, ())])
    return evaluation.scores()


class ChunkedCocoEval:
    """One COCOeval over a set of images, fed a chunk of images and their
    results at a time: an image's evalImgs entries (per category and area
    range) depend on its own boxes only, so each chunk is evaluated alone and
    only what accumulate() reads is kept, packed into a few arrays per chunk
    (_PackedEntries); accumulate() then reads them in COCOeval's own order
    (category, area range, image id). pycocotools' per-detection dicts and
    IoU tables cost one chunk's worth, not the eval set's."""

    def __init__(self, annotations_json: Path, image_ids: Sequence[int]) -> None:
        from pycocotools.coco import COCO

        with _STDOUT_SWAP, contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            self.truth = COCO(str(annotations_json))
        self.image_ids = sorted(set(image_ids))
        self.category_ids = sorted(self.truth.getCatIds())
        self.any_results = False
        self._packed: list[list[_PackedEntries]] = []  # [group = category x area range][chunk]
        self._where: dict[int, tuple[int, int]] = {}  # image id -> (chunk, position in it)

    def add(self, image_ids: Sequence[int], results: list[dict[str, Any]]) -> None:
        """Evaluate these images with their results (COCO results format;
        the list is not changed)."""
        from pycocotools.cocoeval import COCOeval

        chunk = sorted(set(image_ids))
        if not chunk:
            return
        self.any_results = self.any_results or bool(results)
        with _STDOUT_SWAP, contextlib.redirect_stdout(io.StringIO()):
            # Copies: loadRes adds fields (a segmentation per box) to what it is given.
            found = [dict(r) for r in results]
            evaluator = COCOeval(self.truth, self.truth.loadRes(found) if found else _no_detections(self.truth), iouType="bbox")
            evaluator.params.imgIds = chunk
            evaluator.evaluate()
        groups = len(evaluator.evalImgs) // len(chunk)
        self._packed = self._packed or [[] for _ in range(groups)]
        areas = len(evaluator.params.areaRng)
        for group in range(groups):
            # Groups run area range fastest; a category's area ranges share its dets' scores.
            shared = self._packed[group - group % areas][-1].scores if group % areas else None
            self._packed[group].append(_PackedEntries(evaluator.evalImgs[group * len(chunk) : (group + 1) * len(chunk)], shared))
        number = len(self._packed[0]) - 1
        self._where.update({image_id: (number, k) for k, image_id in enumerate(chunk)})

    def scores(self) -> CocoScores:
        """The scores of every image added; the ground truth is let go first
        (accumulate() does not read it, and is the scoring's peak)."""
        self.truth = None
        if not self.any_results:
            return CocoScores(0.0, 0.0, 0.0)
        from pycocotools.cocoeval import COCOeval

        # The redirect swaps the process-wide sys.stdout, so device workers
        # scoring at the same time must take turns (or one restores the other's sink).
        with _STDOUT_SWAP, contextlib.redirect_stdout(io.StringIO()):
            evaluator = COCOeval(iouType="bbox")
            evaluator.params.imgIds = self.image_ids
            evaluator.params.catIds = self.category_ids
            evaluator.evalImgs = _EvalImgs(self._packed, [self._where[i] for i in self.image_ids])
            evaluator._paramsEval = copy.deepcopy(evaluator.params)
            evaluator.accumulate()
            evaluator.summarize()
        # stats are -1 where no ground truth exists at all; report 0 there.
        stats = [max(0.0, float(v)) for v in evaluator.stats[:3]]
        return CocoScores(*stats)


class _PackedEntries:
    """One chunk's evalImgs entries of one category and area range, as what
    accumulate() reads of them (dtScores; dtMatches as matched-or-not and
    dtIgnore, both bit-packed; gtIgnore), concatenated over the chunk's
    images: a few arrays instead of a dict, a list and three arrays per
    image. `scores` may be another area range's (they are the same dets)."""

    def __init__(self, entries: Sequence[dict[str, Any] | None], scores: Any = None) -> None:
        import numpy as np

        kept = [e for e in entries if e is not None]
        self.present = np.array([e is not None for e in entries], bool)
        self.dt_at = np.cumsum([0] + [len(e["dtScores"]) for e in kept])
        self.gt_at = np.cumsum([0] + [len(e["gtIgnore"]) for e in kept])
        self.entry_of = np.cumsum(self.present) - 1  # position among the kept entries
        self.thresholds = kept[0]["dtMatches"].shape[0] if kept else 0
        self.scores = scores if scores is not None else (
            np.concatenate([np.asarray(e["dtScores"], np.float64) for e in kept]) if kept else np.zeros(0))
        self.matched = self._bits([e["dtMatches"] != 0 for e in kept])
        self.ignored = self._bits([np.asarray(e["dtIgnore"], bool) for e in kept])
        self.gt_ignored = np.concatenate([np.asarray(e["gtIgnore"], bool) for e in kept]) if kept else np.zeros(0, bool)

    def _bits(self, parts: list[Any]) -> Any:
        import numpy as np

        joined = np.concatenate(parts, axis=1) if parts else np.zeros((self.thresholds, 0), bool)
        return np.packbits(joined, axis=1)

    def _unbits(self, packed: Any, d0: int, d1: int) -> Any:
        import numpy as np

        first = d0 // 8
        bits = np.unpackbits(packed[:, first : (d1 + 7) // 8], axis=1).astype(bool)
        return bits[:, d0 - first * 8 : d1 - first * 8]

    def entry(self, k: int) -> dict[str, Any] | None:
        if not self.present[k]:
            return None
        j = self.entry_of[k]
        d0, d1, g0, g1 = int(self.dt_at[j]), int(self.dt_at[j + 1]), self.gt_at[j], self.gt_at[j + 1]
        return {"dtScores": self.scores[d0:d1], "dtMatches": self._unbits(self.matched, d0, d1),
                "dtIgnore": self._unbits(self.ignored, d0, d1), "gtIgnore": self.gt_ignored[g0:g1]}


class _EvalImgs:
    """COCOeval.evalImgs as accumulate() indexes it (category-major, then
    area range, then image in imgIds order), made from the packed chunks
    when read."""

    def __init__(self, packed: list[list[_PackedEntries]], where: list[tuple[int, int]]) -> None:
        self.packed, self.where = packed, where

    def __len__(self) -> int:
        return len(self.packed) * len(self.where)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        group, image = divmod(index, len(self.where))
        chunk, k = self.where[image]
        return self.packed[group][chunk].entry(k)


def _no_detections(truth: Any) -> Any:
    from pycocotools.coco import COCO

    empty = COCO()
    empty.dataset = {"images": truth.dataset["images"], "categories": truth.dataset["categories"], "annotations": []}
    empty.createIndex()
    return empty


def save_results(path: Path, results: list[dict[str, Any]]) -> None:
    with ResultsWriter(path) as out:
        out.write(results)


class ResultsWriter:
    """A COCO results JSON list written a chunk of results at a time, the
    same bytes as json.dumps(all results); in place only once complete."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tmp = path.with_name(path.name + ".tmp")
        self._handle: Any = None
        self._first = True

    def __enter__(self) -> "ResultsWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self._tmp, "w", encoding="utf-8")
        self._handle.write("[")
        return self

    def write(self, results: list[dict[str, Any]]) -> None:
        for result in results:
            self._handle.write(("" if self._first else ", ") + json.dumps(result))
            self._first = False

    def __exit__(self, kind: Any, *_: Any) -> None:
        self._handle.write("]")
        self._handle.close()
        if kind is None:
            self._tmp.replace(self.path)
        else:
            self._tmp.unlink(missing_ok=True)
