"""COCO detection accuracy of one (device, variant): mAP, mAP50, mAP75.

Detections arrive from the device in the SSD post-process convention
(normalised ymin, xmin, ymax, xmax of the model input; 0-based class
index); they are mapped back to the original image's pixels (through the
letterbox when the input was letterboxed) and the dataset's category ids, saved
in COCO results format, and scored with pycocotools.
"""

from __future__ import annotations

import contextlib
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
        (accumulation does not read it, and is the scoring's peak)."""
        self.truth = None
        if not self.any_results:
            return CocoScores(0.0, 0.0, 0.0)
        from pycocotools.cocoeval import COCOeval

        evaluator = COCOeval(iouType="bbox")
        evaluator.params.imgIds = self.image_ids
        evaluator.params.catIds = self.category_ids
        evaluator.eval = self.accumulate(evaluator.params)
        # The redirect swaps the process-wide sys.stdout, so device workers
        # scoring at the same time must take turns (or one restores the other's sink).
        with _STDOUT_SWAP, contextlib.redirect_stdout(io.StringIO()):
            evaluator.summarize()
        # stats are -1 where no ground truth exists at all; report 0 there.
        stats = [max(0.0, float(v)) for v in evaluator.stats[:3]]
        return CocoScores(*stats)

    def accumulate(self, params: Any) -> dict[str, Any]:
        """COCOeval.accumulate()'s `eval` (precision, recall, scores), the same
        floats, from the packed entries: per category, area range and maxDet
        the detections are sorted once and each IoU threshold is a pass over
        arrays of the detections (pycocotools builds [thresholds x detections]
        float arrays at once: the scoring's peak, growing with the eval set)."""
        import numpy as np

        thresholds, recall_points = len(params.iouThrs), len(params.recThrs)
        areas, max_dets = len(params.areaRng), list(params.maxDets)
        shape = (thresholds, recall_points, len(params.catIds), areas, len(max_dets))
        precision, scores = -np.ones(shape), -np.ones(shape)  # -1 where a category is absent
        recall = -np.ones((thresholds, len(params.catIds), areas, len(max_dets)))
        where = [self._where[i] for i in self.image_ids]
        for group, chunks in enumerate(self._packed):
            category, area = divmod(group, areas)
            detections = _GroupDetections(chunks, where, thresholds)
            if not detections.any_entry or detections.not_ignored_truths == 0:
                continue  # pycocotools' `len(E) == 0` and `npig == 0`: left at -1
            for m, max_det in enumerate(max_dets):
                pick = detections.pick(max_det)
                picked_scores = detections.scores[pick]
                order = np.argsort(-picked_scores, kind="mergesort")  # pycocotools' (Matlab's) tie order
                sorted_scores, pick = picked_scores[order], pick[order]
                for t in range(thresholds):
                    row = _ThresholdCurve(detections.matched[t, pick], detections.ignored[t, pick],
                                          detections.not_ignored_truths, params.recThrs, sorted_scores)
                    recall[t, category, area, m] = row.recall
                    precision[t, :, category, area, m], scores[t, :, category, area, m] = row.precision, row.scores
        return {"params": params, "counts": list(shape), "precision": precision, "recall": recall, "scores": scores}


class _GroupDetections:
    """One category and area range over every image (in image id order):
    its detections' scores, matched and ignored bits ([thresholds x
    detections] bool, unpacked once for the group), each image's span of
    them, and the count of its ground truths not ignored."""

    def __init__(self, chunks: list["_PackedEntries"], where: list[tuple[int, int]], thresholds: int) -> None:
        import numpy as np

        offsets = np.cumsum([0] + [int(c.dt_at[-1]) for c in chunks])
        filled = [c for c in chunks if c.dt_at[-1]]
        self.scores = np.concatenate([c.scores for c in chunks]) if chunks else np.zeros(0)
        self.matched = np.concatenate([c.bits(c.matched) for c in filled], axis=1) if filled else np.zeros((thresholds, 0), bool)
        self.ignored = np.concatenate([c.bits(c.ignored) for c in filled], axis=1) if filled else np.zeros((thresholds, 0), bool)
        starts, counts, truths = [], [], 0
        for number, k in where:
            chunk = chunks[number]
            if not chunk.present[k]:
                continue
            j = chunk.entry_of[k]
            starts.append(offsets[number] + chunk.dt_at[j])
            counts.append(chunk.dt_at[j + 1] - chunk.dt_at[j])
            g0, g1 = chunk.gt_at[j], chunk.gt_at[j + 1]
            truths += int(g1 - g0) - int(np.count_nonzero(chunk.gt_ignored[g0:g1]))
        self.any_entry = bool(starts)
        self.not_ignored_truths = truths
        self.starts, self.counts = np.array(starts, np.int64), np.array(counts, np.int64)

    def pick(self, max_det: int) -> Any:
        """Indices of each image's first `max_det` detections, image after image."""
        import numpy as np

        counts = np.minimum(self.counts, max_det)
        before = np.cumsum(counts) - counts
        return np.repeat(self.starts - before, counts) + np.arange(int(counts.sum()), dtype=np.int64)


class _ThresholdCurve:
    """One IoU threshold's recall, interpolated precision and scores at the
    recall points, with COCOeval.accumulate()'s arithmetic and dtypes
    (cumulative counts as float64, np.spacing(1), side='left')."""

    def __init__(self, matched: Any, ignored: Any, truths: int, recall_points: Any, sorted_scores: Any) -> None:
        import numpy as np

        counted = ~ignored
        tp = np.cumsum(matched & counted).astype(float)
        fp = np.cumsum(~matched & counted).astype(float)
        found = len(tp)
        rc = tp / truths
        pr = tp / (fp + tp + np.spacing(1))
        self.recall = rc[-1] if found else 0
        # The precision envelope: each point the best precision at any higher recall.
        pr = np.maximum.accumulate(pr[::-1])[::-1] if found else pr
        at = np.searchsorted(rc, recall_points, side="left")
        reached = at < found  # pycocotools stops at the first point past the last detection
        self.precision, self.scores = np.zeros(len(recall_points)), np.zeros(len(recall_points))
        self.precision[reached] = pr[at[reached]]
        self.scores[reached] = sorted_scores[at[reached]]


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

    def bits(self, packed: Any) -> Any:
        """A packed bit array back as [thresholds x the chunk's detections] bool."""
        import numpy as np

        return np.unpackbits(packed, axis=1, count=int(self.dt_at[-1])).astype(bool)


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
