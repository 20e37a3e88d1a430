"""Deterministic synthetic COCO-format detection dataset (numpy + Pillow only).

Three classes of filled shapes (COCO category ids 1, 2, 3): ``rectangle``,
``ellipse``, ``triangle`` on 256 x 192 RGB images. The data is built to be
hard enough that quantization error is visible in mAP: object sizes from about
10 px to 90 px, free aspect ratios, rotated triangles, partial overlaps (each
object keeps at least half of its pixels visible; the annotation is always the
full, un-occluded box), unlabeled clutter (lines, small blobs, unfilled arcs),
a random background gradient per image, Gaussian pixel noise and some
low-contrast objects.

Layout written under ``OUT``::

    OUT/<split>/000000.png, 000001.png, ...
    OUT/annotations/instances_<split>.json

``file_name`` in the JSON is relative to the split folder (``OUT/<split>/``),
so ``images_dir / image["file_name"]`` opens the image. Image and annotation
ids start at 1 (pycocotools treats id 0 as "unmatched" in places).

Determinism: image ``i`` of split ``s`` draws from a generator seeded with
``SeedSequence([seed, hash(s), i])``; a split therefore does not depend on the
size of any other split, and reruns write byte-identical PNGs and JSON (for a
given Pillow/zlib build). The JSON's ``info`` block doubles as the stamp that
lets :func:`generate_split` skip work when the split already exists.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, TextIO

import numpy as np
from PIL import Image, ImageDraw

CLASS_NAMES: tuple[str, ...] = ("rectangle", "ellipse", "triangle")
IMAGE_WIDTH_PX = 256
IMAGE_HEIGHT_PX = 192
DEFAULT_SEED = 20261128

GENERATOR_NAME = "harness.dataset.synth"
# Bump whenever the drawn content changes, so stale caches are regenerated.
GENERATOR_VERSION = "1.0"

_MIN_OBJECT_PX = 10.0
_MAX_OBJECT_PX = 90.0
_MAX_OBJECTS_PER_IMAGE = 6
_MIN_VISIBLE_FRACTION = 0.5
_PLACEMENT_ATTEMPTS = 30
_IMAGE_NAME_RE = re.compile(r"^\d{6}\.png$")
_X_COORDS = np.arange(IMAGE_WIDTH_PX, dtype=np.float32)
_Y_COORDS = np.arange(IMAGE_HEIGHT_PX, dtype=np.float32)


@dataclass(frozen=True)
class SplitPaths:
    images_dir: Path
    annotations_json: Path


@dataclass(frozen=True)
class _Shape:
    category_id: int  # 1-based COCO category id
    mask: np.ndarray  # bool [H, W], the full (un-occluded) shape
    bbox_xywh: tuple[float, float, float, float]
    colour_rgb: tuple[int, int, int]


def _split_entropy(split: str) -> int:
    # Python's hash() is salted per process, so derive a stable integer instead.
    return int.from_bytes(hashlib.sha256(split.encode("utf-8")).digest()[:8], "little")


def _image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, _split_entropy(split), index]))


@functools.lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    """Unit Gaussian noise twice the image size; each image takes a window at a random offset.

    Drawing 147k fresh normals per image was the slowest step of generation;
    windows of a fixed bank (fixed seed, so still deterministic) are as good
    as fresh noise for a detector and cost a slice.
    """
    bank_rng = np.random.default_rng(np.random.SeedSequence([DEFAULT_SEED, 0x6E6F697365]))
    return bank_rng.standard_normal(size=(2 * IMAGE_HEIGHT_PX, 2 * IMAGE_WIDTH_PX, 3), dtype=np.float32)


def _background(rng: np.random.Generator) -> np.ndarray:
    """A linear gradient between two random colours at a random angle, float [H, W, 3]."""
    colour_a = rng.uniform(0.0, 255.0, size=3)
    # The second colour stays near the first most of the time so that the
    # background is not a trivially separable "sky": contrast comes from objects.
    colour_b = np.clip(colour_a + rng.normal(0.0, 60.0, size=3), 0.0, 255.0)
    angle_rad = rng.uniform(0.0, 2.0 * math.pi)
    # The projection x*cos + y*sin is separable, so its range comes from 1-D extremes.
    along_x = _X_COORDS * np.float32(math.cos(angle_rad))
    along_y = _Y_COORDS * np.float32(math.sin(angle_rad))
    lo = float(along_x.min() + along_y.min())
    hi = float(along_x.max() + along_y.max())
    t = ((along_y[:, None] + along_x[None, :] - lo) / max(hi - lo, 1e-6))[..., None]
    return colour_a.astype(np.float32) + t * (colour_b - colour_a).astype(np.float32)


def _object_colour(rng: np.random.Generator, local_bg_rgb: np.ndarray) -> tuple[int, int, int]:
    if rng.uniform() < 0.25:
        # Low contrast: a colour at a modest distance from the local background.
        direction = rng.normal(size=3)
        direction /= max(float(np.linalg.norm(direction)), 1e-6)
        distance = rng.uniform(35.0, 60.0)
        colour = np.clip(local_bg_rgb + direction * distance, 0.0, 255.0)
        # Clipping can eat the contrast near the gamut edge: fall back to a flip.
        if np.linalg.norm(colour - local_bg_rgb) < 30.0:
            colour = np.clip(local_bg_rgb - direction * distance, 0.0, 255.0)
    else:
        colour = rng.uniform(0.0, 255.0, size=3)
        if np.linalg.norm(colour - local_bg_rgb) < 60.0:
            colour = 255.0 - local_bg_rgb
    return int(colour[0]), int(colour[1]), int(colour[2])


def _triangle_vertices(rng: np.random.Generator, width_px: float, height_px: float) -> np.ndarray:
    """Three vertices of a non-degenerate triangle, rotated, centred at 0; float [3, 2] (x, y)."""
    while True:
        # Random vertices on a unit box, rejected when an angle is too sharp
        # (slivers are not recognisable as triangles at 10 px).
        pts = rng.uniform(-0.5, 0.5, size=(3, 2))
        edges = [pts[(k + 1) % 3] - pts[k] for k in range(3)]
        lengths = [float(np.linalg.norm(e)) for e in edges]
        if min(lengths) < 0.35:
            continue
        angles = []
        for k in range(3):
            a, b = -edges[k - 1], edges[k]
            cos = float(np.dot(a, b)) / (lengths[k - 1] * lengths[k])
            angles.append(math.degrees(math.acos(max(-1.0, min(1.0, cos)))))
        if min(angles) >= 25.0:
            break
    theta = rng.uniform(0.0, 2.0 * math.pi)
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    pts = pts @ rot.T
    # Rescale so the rotated triangle spans the requested box.
    span = pts.max(axis=0) - pts.min(axis=0)
    pts = (pts - (pts.max(axis=0) + pts.min(axis=0)) / 2.0) / span * np.array([width_px, height_px])
    return pts


def _draw_mask(category_id: int, rng: np.random.Generator) -> Image.Image | None:
    """Draws one shape's full mask at a random place; None when it would not fit."""
    size_px = math.exp(rng.uniform(math.log(_MIN_OBJECT_PX), math.log(_MAX_OBJECT_PX)))
    aspect = math.exp(rng.uniform(math.log(0.45), math.log(2.2)))  # width / height
    # size_px is the longer side, so every object lands in the 10-90 px range.
    if aspect >= 1.0:
        width_px, height_px = size_px, max(size_px / aspect, _MIN_OBJECT_PX * 0.8)
    else:
        width_px, height_px = max(size_px * aspect, _MIN_OBJECT_PX * 0.8), size_px
    if width_px >= IMAGE_WIDTH_PX - 2 or height_px >= IMAGE_HEIGHT_PX - 2:
        return None
    cx = rng.uniform(width_px / 2 + 1, IMAGE_WIDTH_PX - width_px / 2 - 1)
    cy = rng.uniform(height_px / 2 + 1, IMAGE_HEIGHT_PX - height_px / 2 - 1)
    canvas = Image.new("L", (IMAGE_WIDTH_PX, IMAGE_HEIGHT_PX), 0)
    draw = ImageDraw.Draw(canvas)
    box = (cx - width_px / 2, cy - height_px / 2, cx + width_px / 2, cy + height_px / 2)
    if category_id == 1:
        draw.rectangle(box, fill=255)
    elif category_id == 2:
        draw.ellipse(box, fill=255)
    else:
        vertices = _triangle_vertices(rng, width_px, height_px) + np.array([cx, cy])
        draw.polygon([(float(x), float(y)) for x, y in vertices], fill=255)
    return canvas if canvas.getbbox() is not None else None


def _mask_bbox(mask: np.ndarray) -> tuple[float, float, float, float]:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    # Pixel-edge convention: a box covering columns 3..5 is x=3, w=3.
    x0, x1 = float(cols[0]), float(cols[-1] + 1)
    y0, y1 = float(rows[0]), float(rows[-1] + 1)
    return x0, y0, x1 - x0, y1 - y0


def _draw_clutter(draw: ImageDraw.ImageDraw, rng: np.random.Generator, count: int) -> None:
    """Unlabeled distractors that share colours and edges with the real classes."""
    for _ in range(count):
        colour = tuple(int(c) for c in rng.uniform(0.0, 255.0, size=3))
        kind = rng.integers(0, 3)
        x0, y0 = rng.uniform(0, IMAGE_WIDTH_PX), rng.uniform(0, IMAGE_HEIGHT_PX)
        if kind == 0:  # straight line segment
            length_px = rng.uniform(15.0, 80.0)
            angle = rng.uniform(0.0, 2.0 * math.pi)
            end = (x0 + length_px * math.cos(angle), y0 + length_px * math.sin(angle))
            draw.line([(x0, y0), end], fill=colour, width=int(rng.integers(1, 4)))
        elif kind == 1:  # small blob, below the 10 px minimum object size
            r_px = rng.uniform(1.5, 3.5)
            draw.ellipse((x0 - r_px, y0 - r_px, x0 + r_px, y0 + r_px), fill=colour)
        else:  # unfilled arc: curved edges like an ellipse, but not a filled shape
            r_px = rng.uniform(8.0, 40.0)
            start = rng.uniform(0.0, 360.0)
            draw.arc(
                (x0 - r_px, y0 - r_px, x0 + r_px, y0 + r_px),
                start=start,
                end=start + rng.uniform(60.0, 270.0),
                fill=colour,
                width=int(rng.integers(1, 4)),
            )


def _render_image(rng: np.random.Generator) -> tuple[np.ndarray, list[_Shape]]:
    """One image (uint8 [H, W, 3]) and its objects, each at least half visible."""
    layer = Image.fromarray(np.clip(_background(rng), 0, 255).astype(np.uint8))
    _draw_clutter(ImageDraw.Draw(layer), rng, int(rng.integers(2, 9)))
    pixels = np.array(layer)  # writable uint8 copy

    n_objects = int(rng.integers(1, _MAX_OBJECTS_PER_IMAGE + 1))
    shapes: list[_Shape] = []
    # owner[y, x] = index of the top-most shape at that pixel, -1 for none.
    owner = np.full((IMAGE_HEIGHT_PX, IMAGE_WIDTH_PX), -1, dtype=np.int32)
    for _ in range(n_objects):
        category_id = int(rng.integers(1, len(CLASS_NAMES) + 1))
        for _attempt in range(_PLACEMENT_ATTEMPTS):
            mask_image = _draw_mask(category_id, rng)
            if mask_image is None:
                continue
            mask = np.asarray(mask_image) > 127
            trial_owner = owner.copy()
            trial_owner[mask] = len(shapes)
            # The new shape is on top, so only the older ones can lose pixels.
            if all(
                np.count_nonzero(trial_owner == k) >= _MIN_VISIBLE_FRACTION * np.count_nonzero(s.mask)
                for k, s in enumerate(shapes)
            ):
                break
        else:
            continue
        local_bg = pixels[mask].mean(axis=0)
        colour = _object_colour(rng, local_bg)
        pixels[mask] = colour
        owner = trial_owner
        shapes.append(_Shape(category_id, mask, _mask_bbox(mask), colour))

    # A few thin lines over the objects, so edges are not always clean.
    layer = Image.fromarray(pixels)
    _draw_clutter(ImageDraw.Draw(layer), rng, int(rng.integers(0, 3)))
    pixels = np.asarray(layer).astype(np.float32)

    noise_sigma = rng.uniform(2.0, 10.0)
    dy = int(rng.integers(0, IMAGE_HEIGHT_PX))
    dx = int(rng.integers(0, IMAGE_WIDTH_PX))
    noise = _noise_bank()[dy : dy + IMAGE_HEIGHT_PX, dx : dx + IMAGE_WIDTH_PX]
    pixels += np.float32(noise_sigma) * noise
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8), shapes


@dataclass(frozen=True)
class RenderedImage:
    """One generated image in memory: what :func:`generate_split` writes, without the PNG."""

    pixels: np.ndarray  # uint8 [IMAGE_HEIGHT_PX, IMAGE_WIDTH_PX, 3], RGB
    boxes_xywh_px: np.ndarray  # float32 [K, 4], COCO (x, y, w, h) in pixels
    category_ids: np.ndarray  # int32 [K], COCO category ids (1-based)


def render_image(split: str, index: int, seed: int = DEFAULT_SEED) -> RenderedImage:
    """Image ``index`` of ``split``, identical to the one :func:`generate_split` writes.

    Training code uses it to stream thousands of images without PNG round trips.
    """
    pixels, shapes = _render_image(_image_rng(seed, split, index))
    boxes = np.asarray([shape.bbox_xywh for shape in shapes], dtype=np.float32).reshape(-1, 4)
    category_ids = np.asarray([shape.category_id for shape in shapes], dtype=np.int32)
    return RenderedImage(pixels, boxes, category_ids)


def _info_block(split: str, n_images: int, seed: int) -> dict[str, Any]:
    return {
        "description": "Edge Harness synthetic shapes detection dataset",
        "generator": GENERATOR_NAME,
        "version": GENERATOR_VERSION,
        "seed": int(seed),
        "split": split,
        "n_images": int(n_images),
        "width": IMAGE_WIDTH_PX,
        "height": IMAGE_HEIGHT_PX,
    }


def _split_is_current(paths: SplitPaths, info: dict[str, Any]) -> bool:
    if not paths.annotations_json.is_file():
        return False
    try:
        existing = json.loads(paths.annotations_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if existing.get("info") != info:
        return False
    # The JSON is written last, but images may have been deleted since.
    return all((paths.images_dir / image["file_name"]).is_file() for image in existing.get("images", []))


def generate_split(out_dir: Path, split: str, n_images: int, seed: int = DEFAULT_SEED) -> SplitPaths:
    """Writes one split (PNGs + COCO JSON); a no-op when it already exists with these parameters."""
    if n_images < 0:
        raise ValueError(f"n_images must be >= 0, got {n_images}")
    if not split or "/" in split or split.startswith("."):
        raise ValueError(f"invalid split name {split!r}")
    out_dir = Path(out_dir)
    paths = SplitPaths(out_dir / split, out_dir / "annotations" / f"instances_{split}.json")
    info = _info_block(split, n_images, seed)
    if _split_is_current(paths, info):
        return paths

    paths.images_dir.mkdir(parents=True, exist_ok=True)
    paths.annotations_json.parent.mkdir(parents=True, exist_ok=True)
    # Remove a previous, different generation first so no stale image survives.
    paths.annotations_json.unlink(missing_ok=True)
    for old in paths.images_dir.iterdir():
        if _IMAGE_NAME_RE.match(old.name):
            old.unlink()

    # Written last and atomically: its presence (with a matching info) is the stamp.
    tmp = paths.annotations_json.with_suffix(f".json.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as out:
        _write_split(out, paths.images_dir, split, n_images, seed, info)
    tmp.replace(paths.annotations_json)
    return paths


def _write_split(out: TextIO, images_dir: Path, split: str, n_images: int, seed: int, info: dict[str, Any]) -> None:
    """The PNGs, and the COCO JSON streamed as they are drawn: the bytes of
    json.dumps(document, indent=1), without holding every annotation (or the
    whole text) at once."""
    categories = [{"id": k + 1, "name": name, "supercategory": "shape"} for k, name in enumerate(CLASS_NAMES)]
    images = ({"id": i + 1, "file_name": f"{i:06d}.png", "width": IMAGE_WIDTH_PX, "height": IMAGE_HEIGHT_PX} for i in range(n_images))
    out.write('{\n "info": ' + _nested(info, 1) + ',\n "images": ')
    _write_list(out, images)
    out.write(',\n "annotations": ')
    _write_list(out, _drawn_annotations(images_dir, split, n_images, seed))
    out.write(',\n "categories": ')
    _write_list(out, iter(categories))
    out.write("\n}")


def _drawn_annotations(images_dir: Path, split: str, n_images: int, seed: int) -> Iterator[dict[str, Any]]:
    annotation_id = 0
    for index in range(n_images):
        rendered = render_image(split, index, seed)
        Image.fromarray(rendered.pixels).save(
            # Level 0: noisy pixels barely compress, and zlib would triple the time.
            images_dir / f"{index:06d}.png",
            format="PNG",
            compress_level=0,
        )
        for box, category_id in zip(rendered.boxes_xywh_px.tolist(), rendered.category_ids.tolist()):
            x, y, w, h = box
            annotation_id += 1
            # Box area, as detection-only COCO files use: there is no segmentation.
            yield {"id": annotation_id, "image_id": index + 1, "category_id": category_id, "bbox": [x, y, w, h],
                   "area": w * h, "iscrowd": 0}


def _nested(value: Any, level: int) -> str:
    """json.dumps(value, indent=1) as it reads `level` deep in a document."""
    return json.dumps(value, indent=1).replace("\n", "\n" + " " * level)


def _write_list(out: TextIO, items: Iterator[dict[str, Any]]) -> None:
    """A list one level deep in the document, as json.dumps(indent=1) writes it."""
    first = True
    for item in items:
        out.write(("[\n  " if first else ",\n  ") + _nested(item, 2))
        first = False
    out.write("[]" if first else "\n ]")


def generate_dataset(out_dir: Path, sizes: Mapping[str, int], seed: int = DEFAULT_SEED) -> dict[str, SplitPaths]:
    """Generates every split in ``sizes`` (e.g. ``{"calib": 128, "val": 200}``)."""
    return {split: generate_split(out_dir, split, n, seed) for split, n in sizes.items()}
