"""A seeded sample of a dataset's images (`eval: {size: 500, seed: 0}`).

Images are ranked by a hash of the seed and the image's file name, and the
first `size` kept, in the dataset's own order. So the same seed picks the
same images on every machine and Python version, a COCO and a YOLO copy of
the same images give the same sample, and a larger sample contains a
smaller one.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from harness.dataset.coco import CocoDataset, CocoImage


def _rank(seed: int, image: CocoImage) -> str:
    return hashlib.sha256(f"{seed}:{image.path.name}".encode()).hexdigest()


def sample(dataset: CocoDataset, size: int | None, seed: int = 0) -> CocoDataset:
    """`size` images of the dataset (all of them when size is None or larger)."""
    if size is None or size >= len(dataset.images):
        return dataset
    keep = {img.id for img in sorted(dataset.images, key=lambda img: _rank(seed, img))[:size]}
    images = tuple(img for img in dataset.images if img.id in keep)
    return replace(dataset, name=f"{dataset.name}-{size}of{len(dataset.images)}-seed{seed}", images=images)
