"""Reading an image file as uint8 pixels in the mode the model wants.

Datasets hold grayscale, palette, RGBA, CMYK and 16-bit images beside RGB.
Each becomes RGB (or L for a one-channel model) the way OpenCV's
imread(IMREAD_COLOR) reads it, which is what Ultralytics trains and
validates with: alpha dropped (not composited), 16-bit samples scaled to
8 bits (>> 8) rather than clipped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.errors import InputError

_SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


def _to_mode(img, mode: str):  # noqa: ANN001, ANN202 - PIL.Image in, PIL.Image out (PIL loads lazily)
    from PIL import Image

    if img.mode in _SIXTEEN_BIT:
        wide = np.asarray(img, dtype=np.uint32)
        img = Image.fromarray((np.clip(wide, 0, 65535) >> 8).astype(np.uint8), mode="L")
    elif img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")  # a palette with a transparent index converts through RGBA
    return img.convert(mode) if img.mode != mode else img


def read_pixels(path: Path, channels: int = 3) -> np.ndarray:
    """uint8 H x W x C (C = 3 RGB, or 1 gray)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            array = np.asarray(_to_mode(img, "RGB" if channels == 3 else "L"), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read image: {exc}", source=path, hint="replace or remove the image") from None
    return array[:, :, None] if array.ndim == 2 else array


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding the pixels."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read image: {exc}", source=path, hint="replace or remove the image") from None
