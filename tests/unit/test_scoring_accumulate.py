"""ChunkedCocoEval's own accumulate (one IoU threshold at a time over the
packed entries) gives pycocotools' COCOeval.accumulate() floats exactly:
random eval sets with crowd boxes, empty images, tied scores, more than 100
detections on an image, a category with no ground truth and one with no
detections, scored in chunks of several sizes."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from harness.dataset.scoring import ChunkedCocoEval


def _eval_set(folder: Path, seed: int) -> tuple[Path, list[dict], list[int]]:
    """COCO ground truth (categories 1-5: 4 never annotated) and results
    (category 5 never detected) over 60 images, ids out of order."""
    rng = np.random.default_rng(seed)
    ids = [int(i) for i in rng.permutation(np.arange(1, 61)) * 7]
    images = [{"id": i, "file_name": f"{i}.png", "width": 640, "height": 480} for i in ids]
    truth, results = [], []
    for n, image in enumerate(images):
        if n % 9 == 4:
            continue  # an empty image: no ground truth, no detections
        for _ in range(int(rng.integers(0, 7))):
            x, y = (float(v) for v in rng.uniform(0, 400, 2))
            w, h = (float(v) for v in rng.uniform(4, 200, 2))  # small, medium and large areas
            category = int(rng.choice([1, 2, 3, 5]))
            truth.append({"id": len(truth) + 1, "image_id": image["id"], "category_id": category,
                          "bbox": [x, y, w, h], "area": w * h, "iscrowd": int(rng.uniform() < 0.08)})
            if rng.uniform() < 0.85 and category != 5:
                jitter = rng.normal(0, 6, 4)
                results.append({"image_id": image["id"], "category_id": category if rng.uniform() < 0.8 else 4,
                                "bbox": [round(float(v), 3) for v in (x + jitter[0], y + jitter[1], max(1.0, w + jitter[2]), max(1.0, h + jitter[3]))],
                                "score": round(float(rng.uniform(0.05, 1)), 2)})  # two decimals: ties
        for _ in range(130 if n == 5 else int(rng.integers(0, 12))):
            x, y = (float(v) for v in rng.uniform(0, 500, 2))
            results.append({"image_id": image["id"], "category_id": int(rng.integers(1, 5)),
                            "bbox": [round(x, 3), round(y, 3), round(float(rng.uniform(2, 140)), 3), round(float(rng.uniform(2, 140)), 3)],
                            "score": round(float(rng.uniform(0.01, 1)), 2)})
    categories = [{"id": c, "name": f"c{c}"} for c in range(1, 6)]
    path = folder / f"instances-{seed}.json"
    path.write_text(json.dumps({"images": images, "annotations": truth, "categories": categories}))
    return path, results, ids


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_the_own_accumulate_equals_cocoeval_exactly(seed, tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    annotations, results, ids = _eval_set(tmp_path, seed)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(annotations))
        plain = COCOeval(gt, gt.loadRes([dict(r) for r in results]), iouType="bbox")
        plain.params.imgIds = sorted(ids)
        plain.evaluate()
        plain.accumulate()
        plain.summarize()
    assert plain.stats[0] > 0.02 and (plain.eval["precision"][:, :, 3] == -1).all()  # numbers that can differ; no truth of 4
    by_image: dict[int, list[dict]] = {}
    for r in results:
        by_image.setdefault(r["image_id"], []).append(r)
    for chunk_images in (1, 13, 100):
        evaluation = ChunkedCocoEval(annotations, ids)
        ordered = evaluation.image_ids
        for start in range(0, len(ordered), chunk_images):
            chunk = ordered[start : start + chunk_images]
            evaluation.add(chunk, [r for i in chunk for r in by_image.get(i, ())])
        own = evaluation.accumulate(plain.params)
        assert own["counts"] == plain.eval["counts"]
        for name in ("precision", "recall", "scores"):
            assert own[name].dtype == plain.eval[name].dtype and np.array_equal(own[name], plain.eval[name]), (name, chunk_images)
        scores = evaluation.scores()
        assert (scores.map, scores.map50, scores.map75) == tuple(max(0.0, float(v)) for v in plain.stats[:3])
        summarized = COCOeval(iouType="bbox")
        summarized.params.imgIds, summarized.params.catIds = sorted(ids), evaluation.category_ids
        summarized.eval = own
        with contextlib.redirect_stdout(io.StringIO()):
            summarized.summarize()
        assert np.array_equal(summarized.stats, plain.stats)  # all twelve
