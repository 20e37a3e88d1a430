"""COCO evaluation against cases a person can check by hand."""

import pytest

from harness.dataset.scoring import coco_scores, to_coco_results
from tests.coco_cases import det


def test_boxes_map_back_to_pixels_and_category_ids(two_box_dataset):
    results = to_coco_results(two_box_dataset, [det([(20, 10, 40, 30)], [0], [0.9])], (3, 5))
    assert results == [{"image_id": 7, "category_id": 3, "bbox": [20.0, 10.0, 40.0, 30.0], "score": 0.9}]


def test_perfect_detections_score_one(two_box_dataset):
    found = [det([(20, 10, 40, 30), (100, 50, 60, 40)], [0, 1], [0.9, 0.8])]
    scores = coco_scores(two_box_dataset.annotations_json, to_coco_results(two_box_dataset, found, (3, 5)), [7])
    assert scores.map == pytest.approx(1.0)
    assert scores.map50 == pytest.approx(1.0)
    assert scores.map75 == pytest.approx(1.0)


def test_one_of_two_classes_found_scores_one_half(two_box_dataset):
    # cat found perfectly (AP 1), dog missed (AP 0): mean over classes = 0.5.
    found = [det([(20, 10, 40, 30)], [0], [0.9])]
    scores = coco_scores(two_box_dataset.annotations_json, to_coco_results(two_box_dataset, found, (3, 5)), [7])
    assert scores.map == pytest.approx(0.5)


def test_wrong_class_scores_zero(two_box_dataset):
    found = [det([(20, 10, 40, 30)], [1], [0.9])]
    scores = coco_scores(two_box_dataset.annotations_json, to_coco_results(two_box_dataset, found, (3, 5)), [7])
    assert scores.map == 0.0


def test_iou_between_thresholds_counts_for_map50_only(two_box_dataset):
    # Shift the cat box by 10 px of 40: IoU = 30*30 / (2*1200 - 900) = 0.6.
    found = [det([(30, 10, 40, 30), (100, 50, 60, 40)], [0, 1], [0.9, 0.8])]
    scores = coco_scores(two_box_dataset.annotations_json, to_coco_results(two_box_dataset, found, (3, 5)), [7])
    assert scores.map50 == pytest.approx(1.0)
    assert scores.map75 == pytest.approx(0.5)
    # cat: AP 1 at IoU thresholds .50, .55 and .60 (a match needs IoU >= t),
    # 3 of 10; dog: 1 at all ten.
    assert scores.map == pytest.approx((0.3 + 1.0) / 2)


def test_no_detections_score_zero(two_box_dataset):
    assert coco_scores(two_box_dataset.annotations_json, [], [7]).map == 0.0


def test_unknown_class_indices_are_dropped(two_box_dataset):
    assert to_coco_results(two_box_dataset, [det([(20, 10, 40, 30)], [9], [0.9])], (3, 5)) == []
