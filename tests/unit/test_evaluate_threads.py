"""Device workers score in parallel threads: the stdout redirect around
pycocotools must not leave sys.stdout pointing at a dead buffer."""

import sys
import threading

import pytest

from harness.dataset.scoring import coco_scores, to_coco_results
from tests.coco_cases import det


def test_parallel_scoring_keeps_stdout(two_box_dataset):
    before = sys.stdout
    found = to_coco_results(two_box_dataset, [det([(20, 10, 40, 30)], [0], [0.9])], (3, 5))
    scores: list[float] = []

    def score() -> None:
        for _ in range(10):
            scores.append(coco_scores(two_box_dataset.annotations_json, found, [7]).map)

    threads = [threading.Thread(target=score) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sys.stdout is before
    assert scores == pytest.approx([0.5] * 80)
