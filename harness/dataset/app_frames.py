"""The frames the app-latency pass starts from: decoded uint8 images at
their own size, before any resize, as a camera or a decoder hands them to
an application. The agent resizes (or letterboxes), normalises and
quantises them itself, timing each stage (docs/measurement.md, "The app's
latency")."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from harness.dataset.coco import CocoDataset
from harness.dataset.images import read_pixels

# As many frames as the timed loop's input ring: fresh pixels every frame,
# few enough that the file stays small (16 x 256 x 192 x 3 = 2.4 MB).
APP_FRAMES = 16
APP_FRAMES_VERSION = 1


def app_frames(dataset: CocoDataset, channels: int, cache_dir: Path, count: int = APP_FRAMES) -> Path | None:
    """A uint8 .npy [N, H, W, C] of the first `count` eval images that share
    the first image's size (a stream's frames are all one size), cached by
    content; None for a dataset without images."""
    if not dataset.images:
        return None
    first = dataset.images[0]
    paths = [img.path for img in dataset.images if (img.width, img.height) == (first.width, first.height)][:count]
    key_material = json.dumps(
        {"v": APP_FRAMES_VERSION, "annotations": dataset.annotations_sha256, "images": [str(p) for p in paths], "channels": channels},
        sort_keys=True,
    )
    target = Path(cache_dir) / "inputs" / f"{dataset.name}-frames-{hashlib.sha256(key_material.encode()).hexdigest()[:24]}.npy"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        with open(tmp, "wb") as handle:
            np.save(handle, np.stack([read_pixels(p, channels) for p in paths]))
        tmp.replace(target)
    return target
