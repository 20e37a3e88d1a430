"""Host-side preprocessing: resize, normalise, quantise with the model's own
input parameters, and write the batch the agent feeds to the model.

Batches are cached by content, so fp32, fp16 and dynamic-int8 (same float
input) share one file, and the device cache never receives it twice.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from harness.dataset.coco import CocoDataset

PREPROCESS_VERSION = 2


@dataclass(frozen=True)
class InputSpec:
    height: int
    width: int
    channels: int = 3
    mean: tuple[float, ...] = (127.5, 127.5, 127.5)
    std: tuple[float, ...] = (127.5, 127.5, 127.5)
    resize: str = "bilinear"  # bilinear | nearest (plain stretch) | letterbox (Ultralytics')


@dataclass(frozen=True)
class InputQuant:
    """How the model wants its input: float32, or int8/uint8 with
    real = scale * (q - zero_point)."""

    dtype: str
    scale: float = 0.0
    zero_point: int = 0


def _taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights for half-pixel-centre sampling."""
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    src = np.clip(src, 0.0, n_in - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, (src - lo).astype(np.float32)


def resize(image: np.ndarray, out_h: int, out_w: int, mode: str = "bilinear") -> np.ndarray:
    """HxWxC image -> float32 out_h x out_w x C, half-pixel centres, no
    antialiasing: what tf.image.resize and cv2.INTER_LINEAR do, and what
    detectors are trained with. (PIL's resize filters when it shrinks, which
    would feed the model images it never saw in training.)"""
    pixels = np.asarray(image, dtype=np.float32)
    h, w = pixels.shape[:2]
    if mode == "nearest":
        rows = np.minimum(np.floor((np.arange(out_h) + 0.5) * (h / out_h)).astype(np.int64), h - 1)
        cols = np.minimum(np.floor((np.arange(out_w) + 0.5) * (w / out_w)).astype(np.int64), w - 1)
        return pixels[rows][:, cols]
    lo, hi, f = _taps(h, out_h)
    pixels = pixels[lo] * (1.0 - f)[:, None, None] + pixels[hi] * f[:, None, None]
    lo, hi, f = _taps(w, out_w)
    return pixels[:, lo] * (1.0 - f)[None, :, None] + pixels[:, hi] * f[None, :, None]


def load_image(path: Path, spec: InputSpec) -> np.ndarray:
    """float32 HxWxC pixel values (0..255), resized to the model's input by
    plain stretch, or letterboxed when the spec says so."""
    from harness.dataset.images import read_pixels

    array = read_pixels(path, spec.channels)
    if spec.resize == "letterbox":
        from harness.dataset.letterbox import letterbox_image

        return letterbox_image(array, spec.height, spec.width)
    return resize(array, spec.height, spec.width, spec.resize)


def normalise(pixels: np.ndarray, spec: InputSpec) -> np.ndarray:
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    return (np.asarray(pixels, dtype=np.float32) - mean) / std


def quantise(images_f32: np.ndarray, quant: InputQuant) -> np.ndarray:
    if quant.dtype == "float32":
        return images_f32.astype(np.float32)
    if quant.dtype not in ("int8", "uint8"):
        raise ValueError(f"unsupported input dtype {quant.dtype}")
    if quant.scale <= 0:
        raise ValueError("quantised input needs a positive scale")
    info = np.iinfo(quant.dtype)
    q = np.round(images_f32 / quant.scale) + quant.zero_point
    return np.clip(q, info.min, info.max).astype(quant.dtype)


def prepare_batch(paths: Sequence[Path], spec: InputSpec, quant: InputQuant) -> np.ndarray:
    raw = np.stack([load_image(p, spec) for p in paths])
    return quantise(normalise(raw, spec), quant)


def prepared_inputs(dataset: CocoDataset, spec: InputSpec, quant: InputQuant, cache_dir: Path) -> Path:
    """The dataset's images as one .npy batch for the agent, cached by key."""
    key_material = json.dumps(
        {
            "v": PREPROCESS_VERSION,
            "annotations": dataset.annotations_sha256,
            "images": [str(img.path) for img in dataset.images],
            "spec": asdict(spec),
            "quant": asdict(quant),
        },
        sort_keys=True,
    )
    key = hashlib.sha256(key_material.encode()).hexdigest()[:24]
    target = Path(cache_dir) / "inputs" / f"{dataset.name}-{quant.dtype}-{key}.npy"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    batch = prepare_batch([img.path for img in dataset.images], spec, quant)
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "wb") as handle:
        np.save(handle, batch)
    tmp.replace(target)
    return target
