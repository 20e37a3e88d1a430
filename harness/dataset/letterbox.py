"""Letterbox, as Ultralytics' LetterBox does it (ultralytics/data/augment.py,
and its inverse ultralytics/utils/ops.py scale_boxes): scale by
min(new / old) so the whole image fits, round the unpadded size, split the
padding in two with the -0.1/+0.1 rounding (the odd pixel goes to the
bottom/right), pad with grey 114. Its resampling is cv2.INTER_LINEAR, the
half-pixel bilinear that preprocess.resize already does.

Boxes come back from the device normalised to the model input; `to_image_px`
undoes the padding and the scale so COCO sees the original image's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PAD_VALUE = 114.0


@dataclass(frozen=True)
class Letterbox:
    """Where an original image sits inside the model input."""

    scale: float  # input px per original px
    top_px: int
    left_px: int
    content_h_px: int
    content_w_px: int
    input_h_px: int
    input_w_px: int


def letterbox_geometry(image_h_px: int, image_w_px: int, input_h_px: int, input_w_px: int) -> Letterbox:
    scale = min(input_h_px / image_h_px, input_w_px / image_w_px)
    content_w, content_h = int(round(image_w_px * scale)), int(round(image_h_px * scale))
    pad_w, pad_h = (input_w_px - content_w) / 2, (input_h_px - content_h) / 2
    return Letterbox(
        scale=scale,
        top_px=int(round(pad_h - 0.1)),
        left_px=int(round(pad_w - 0.1)),
        content_h_px=content_h,
        content_w_px=content_w,
        input_h_px=input_h_px,
        input_w_px=input_w_px,
    )


def letterbox_image(pixels: np.ndarray, input_h_px: int, input_w_px: int) -> np.ndarray:
    """HxWxC pixels -> float32 input_h x input_w x C, letterboxed."""
    from harness.dataset.preprocess import resize

    box = letterbox_geometry(pixels.shape[0], pixels.shape[1], input_h_px, input_w_px)
    out = np.full((input_h_px, input_w_px, pixels.shape[2]), PAD_VALUE, dtype=np.float32)
    content = resize(pixels, box.content_h_px, box.content_w_px)
    out[box.top_px : box.top_px + box.content_h_px, box.left_px : box.left_px + box.content_w_px] = content
    return out


def to_image_px(box_norm: tuple[float, float, float, float], geometry: Letterbox, image_h_px: int, image_w_px: int) -> tuple[float, float, float, float]:
    """(ymin, xmin, ymax, xmax) normalised to the letterboxed input ->
    (ymin, xmin, ymax, xmax) in the original image's pixels, clipped to it."""
    ymin, xmin, ymax, xmax = box_norm
    g = geometry

    def back(v: float, extent_px: int, pad_px: int, limit_px: int) -> float:
        return min(float(limit_px), max(0.0, (v * extent_px - pad_px) / g.scale))

    return (
        back(ymin, g.input_h_px, g.top_px, image_h_px),
        back(xmin, g.input_w_px, g.left_px, image_w_px),
        back(ymax, g.input_h_px, g.top_px, image_h_px),
        back(xmax, g.input_w_px, g.left_px, image_w_px),
    )


def to_letterboxed_norm(box_px: tuple[float, float, float, float], geometry: Letterbox) -> tuple[float, float, float, float]:
    """The forward mapping (original pixels -> normalised input), for training
    targets and round-trip checks."""
    ymin, xmin, ymax, xmax = box_px
    g = geometry
    return (
        (ymin * g.scale + g.top_px) / g.input_h_px,
        (xmin * g.scale + g.left_px) / g.input_w_px,
        (ymax * g.scale + g.top_px) / g.input_h_px,
        (xmax * g.scale + g.left_px) / g.input_w_px,
    )
