"""The eval pass's detections as a file (the agent's `detections_to`): what
the agent writes, the host reads back a chunk of images at a time, and
scoring chunk by chunk gives one COCOeval's numbers over everything."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from harness.agent.detections import DETECTIONS_DTYPE, DetectionList, DetectionsFile
from harness.dataset.coco import load_coco
from harness.dataset.labelcheck import LandingCounter, class_landings
from harness.dataset.scoring import ChunkedCocoEval, ResultsWriter, to_coco_results


def _found(rng: np.random.Generator, boxes: int) -> dict:
    ymin, xmin = rng.uniform(0, 0.6, (2, boxes))
    h, w = rng.uniform(0.05, 0.4, (2, boxes))
    return {
        "boxes": [[round(float(v), 6) for v in row] for row in np.stack([ymin, xmin, ymin + h, xmin + w], 1)],
        "classes": [int(c) for c in rng.integers(0, 3, boxes)],
        "scores": [round(float(s), 6) for s in rng.uniform(0.01, 1, boxes)],
    }


def _write(agent, path, detections) -> dict:
    writer = agent.DetectionsWriter(str(path), np)
    for found in detections:
        writer.append(found)
    return writer.close()


def test_the_agents_rows_are_the_hosts(agent):
    assert np.dtype(list(agent.DETECTIONS_FIELDS)) == DETECTIONS_DTYPE


def test_a_detections_file_round_trips_a_chunk_at_a_time(agent, tmp_path):
    rng = np.random.default_rng(5)
    detections = [_found(rng, int(n)) for n in rng.integers(0, 7, 23)]
    detections[0] = detections[-1] = {"boxes": [], "classes": [], "scores": []}  # images with nothing found
    reply = _write(agent, tmp_path / "deep" / "pair.npy", detections)
    assert reply == {"detections_file": str(tmp_path / "deep" / "pair.npy"), "detections_images": 23,
                     "detections_rows": sum(len(d["scores"]) for d in detections)}
    assert not (tmp_path / "deep" / "pair.npy.partial").exists()
    assert len(np.load(reply["detections_file"])) == reply["detections_rows"]  # a plain .npy for any reader
    for chunk_images in (1, 5, 100):
        chunks = list(DetectionsFile(tmp_path / "deep" / "pair.npy", 23).chunks(chunk_images))
        assert [start for start, _ in chunks] == list(range(0, 23, chunk_images))
        assert [found for _, part in chunks for found in part] == detections  # the same floats, exactly


def test_an_empty_eval_pass_writes_an_empty_file(agent, tmp_path):
    reply = _write(agent, tmp_path / "none.npy", [])
    assert reply["detections_images"] == 0 and list(DetectionsFile(tmp_path / "none.npy", 0).chunks(10)) == []


def test_a_file_of_other_rows_is_refused(tmp_path):
    np.save(tmp_path / "other.npy", np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="expected"):
        list(DetectionsFile(tmp_path / "other.npy", 3).chunks(10))


@pytest.fixture
def shapes(tmp_path):
    """40 images, ids out of order, three categories, a crowd box, and the
    detections a device might report (some images with none, one with more
    than COCO's 100 per image)."""
    rng = np.random.default_rng(11)
    ids = [int(i) for i in rng.permutation(np.arange(1, 41)) * 3]
    images = [{"id": i, "file_name": f"{i}.png", "width": 160, "height": 120} for i in ids]
    truth, detections = [], []
    for k, image in enumerate(images):
        boxes, classes = [], []
        for _ in range(int(rng.integers(0, 5))):
            x, y = (float(v) for v in rng.uniform(0, 100, 2))
            w, h = (float(v) for v in rng.uniform(4, 60, 2))
            truth.append({"id": len(truth) + 1, "image_id": image["id"], "category_id": int(rng.integers(1, 4)),
                          "bbox": [x, y, w, h], "area": w * h, "iscrowd": int(len(truth) == 7)})
            boxes.append([(y + rng.normal(0, 2)) / 120, (x + rng.normal(0, 2)) / 160, (y + h) / 120, (x + w) / 160])
            classes.append(truth[-1]["category_id"] - 1 if rng.uniform() < 0.8 else int(rng.integers(0, 3)))
        found = _found(rng, 120 if k == 3 else int(rng.integers(0, 8)))
        kept = min(len(boxes), len(found["boxes"]))
        found["boxes"][:kept] = [[round(float(v), 6) for v in b] for b in boxes[:kept]]
        found["classes"][:kept] = classes[:kept]
        detections.append(found)
    (tmp_path / "images").mkdir()
    for image in images:
        (tmp_path / "images" / image["file_name"]).write_bytes(b"png")
    categories = [{"id": c, "name": n} for c, n in ((1, "rectangle"), (2, "ellipse"), (3, "triangle"))]
    (tmp_path / "instances.json").write_text(json.dumps({"images": images, "annotations": truth, "categories": categories}))
    return load_coco(tmp_path / "instances.json", tmp_path / "images"), detections


def test_scoring_chunk_by_chunk_equals_one_cocoeval_over_everything(agent, shapes, tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dataset, detections = shapes
    category_ids = (1, 2, 3)
    everything = to_coco_results(dataset, detections, category_ids)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(dataset.annotations_json))
        plain = COCOeval(gt, gt.loadRes([dict(r) for r in everything]), iouType="bbox")
        plain.params.imgIds = sorted(img.id for img in dataset.images)
        plain.evaluate()
        plain.accumulate()
        plain.summarize()
    assert plain.stats[0] > 0.05  # boxes found, some matched: numbers that can differ
    _write(agent, tmp_path / "pair.npy", detections)
    for chunk_images in (1, 7, 100):
        evaluation = ChunkedCocoEval(dataset.annotations_json, [img.id for img in dataset.images])
        landings = LandingCounter(dataset, category_ids, evaluation.truth.dataset["annotations"])
        out_path = tmp_path / f"results-{chunk_images}.json"
        with ResultsWriter(out_path) as out:
            for start, found in DetectionsFile(tmp_path / "pair.npy", len(detections)).chunks(chunk_images):
                images = dataset.images[start : start + len(found)]
                results = to_coco_results(type(dataset)(**{**vars(dataset), "images": images}), found, category_ids)
                out.write(results)
                evaluation.add([img.id for img in images], results)
                landings.add(images, found)
        scores = evaluation.scores()
        assert (scores.map, scores.map50, scores.map75) == tuple(max(0.0, float(v)) for v in plain.stats[:3])
        assert out_path.read_text() == json.dumps(everything)  # the same file as one json.dumps
        assert landings.landings() == class_landings(dataset, detections, category_ids)


def test_a_reply_list_reads_in_the_same_chunks():
    listed = [{"boxes": [], "classes": [], "scores": []}] * 5
    assert DetectionList(listed).n_images == 5
    assert [(start, len(part)) for start, part in DetectionList(listed).chunks(2)] == [(0, 2), (2, 2), (4, 1)]
