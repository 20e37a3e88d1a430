"""COCO cases a person can check by hand: one image with two boxes (a cat and
a dog), and detections written as the device reports them."""

from __future__ import annotations

import json
from pathlib import Path

from harness.dataset.coco import load_coco


def write_two_box_dataset(folder: Path):
    images = folder / "images"
    images.mkdir()
    (images / "a.png").write_bytes(b"png")
    ann = folder / "instances.json"
    ann.write_text(
        json.dumps(
            {
                "images": [{"id": 7, "file_name": "a.png", "width": 200, "height": 100}],
                "annotations": [
                    {"id": 1, "image_id": 7, "category_id": 3, "bbox": [20, 10, 40, 30], "area": 1200, "iscrowd": 0},
                    {"id": 2, "image_id": 7, "category_id": 5, "bbox": [100, 50, 60, 40], "area": 2400, "iscrowd": 0},
                ],
                "categories": [{"id": 3, "name": "cat"}, {"id": 5, "name": "dog"}],
            }
        )
    )
    return load_coco(ann, images)


def det(boxes_px, classes, scores, w=200, h=100):
    """Pixel xywh boxes to the device's normalised ymin, xmin, ymax, xmax."""
    return {
        "boxes": [[y / h, x / w, (y + bh) / h, (x + bw) / w] for x, y, bw, bh in boxes_px],
        "classes": classes,
        "scores": scores,
    }
