"""Reading the eval pass's detections file (the agent's `detections_to`)
a range of images at a time.

The file is a .npy of one row per detected box, in image order:
image index, box (normalised ymin, xmin, ymax, xmax), class, score. Images
with no detection have no row; how many images the pass covered comes with
the agent's reply. The rows are memory-mapped and only one chunk's rows are
turned into Python values at a time, so scoring a long eval set never holds
every image's detections at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol

import numpy as np

# The agent's DETECTIONS_FIELDS (devices/agent.py cannot import this module).
DETECTIONS_DTYPE = np.dtype([("image", "<i4"), ("box", "<f8", (4,)), ("class", "<i4"), ("score", "<f8")])

Detections = list[dict[str, Any]]  # per image: {"boxes", "classes", "scores"}, as the agent's JSON reply


@dataclass(frozen=True)
class DetectionsFile:
    path: Path
    n_images: int

    def chunks(self, chunk_images: int) -> Iterator[tuple[int, Detections]]:
        """(index of the chunk's first image, its images' detections), for
        every chunk of `chunk_images` images in order."""
        rows = self._rows()
        first_row = np.searchsorted(rows["image"], np.arange(0, self.n_images + 1), side="left")
        for start in range(0, self.n_images, chunk_images):
            stop = min(start + chunk_images, self.n_images)
            yield start, [self._image(rows, first_row[i], first_row[i + 1]) for i in range(start, stop)]
        del rows  # unmaps the file

    def _rows(self) -> np.ndarray:
        if self.path.stat().st_size <= 0:
            raise ValueError(f"{self.path}: empty detections file")
        rows = np.load(self.path, mmap_mode="r", allow_pickle=False)
        if rows.dtype != DETECTIONS_DTYPE or rows.ndim != 1:
            raise ValueError(f"{self.path}: detections of {rows.dtype} {rows.shape}, expected {DETECTIONS_DTYPE} rows")
        if len(rows) and (int(rows["image"][-1]) >= self.n_images or int(rows["image"][0]) < 0):
            raise ValueError(f"{self.path}: rows name images outside 0..{self.n_images - 1}")
        return rows

    @staticmethod
    def _image(rows: np.ndarray, lo: int, hi: int) -> dict[str, Any]:
        part = np.array(rows[lo:hi])  # a copy: the chunk's rows only
        return {"boxes": part["box"].tolist(), "classes": part["class"].tolist(), "scores": part["score"].tolist()}


@dataclass(frozen=True)
class DetectionList:
    """The same chunks from a reply's `detections` list (agents before 0.6.0)."""

    detections: Detections

    @property
    def n_images(self) -> int:
        return len(self.detections)

    def chunks(self, chunk_images: int) -> Iterator[tuple[int, Detections]]:
        for start in range(0, len(self.detections), chunk_images):
            yield start, self.detections[start : start + chunk_images]


class DetectionSource(Protocol):
    """Where an eval pass's detections are read from, a chunk of images at a time."""

    @property
    def n_images(self) -> int: ...

    def chunks(self, chunk_images: int) -> Iterator[tuple[int, Detections]]: ...
