"""Host-side preprocessing: resize, normalise, quantise with the model's own
input parameters.

The eval set a device receives is one uint8 .npy of resized pixels [N, H, W,
C] (resized or letterboxed, rounded to uint8, not normalised), shared by every
variant with the same input size and resize mode; the agent normalises and
quantises each image right before feeding it (the request's `feed`), so a new
eval set costs N*H*W*C bytes whatever the variants' input dtypes. It is
written a chunk of images at a time, so the controller's memory does not grow
with N, and cached by content, so the device cache never receives it twice.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from harness.dataset.coco import CocoDataset

PREPROCESS_VERSION = 3

# Images read, resized and written per step of the eval set's writer.
PIXEL_CHUNK_IMAGES = 64


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


def pixels_uint8(paths: Sequence[Path], spec: InputSpec) -> np.ndarray:
    """[N, H, W, C] uint8: the images resized (or letterboxed) and rounded,
    exactly the pixels a device receives."""
    out = np.empty((len(paths), spec.height, spec.width, spec.channels), dtype=np.uint8)
    for i, path in enumerate(paths):
        out[i] = np.clip(np.round(load_image(path, spec)), 0, 255)
    return out


def prepare_batch(paths: Sequence[Path], spec: InputSpec, quant: InputQuant) -> np.ndarray:
    """The model's input for these images, from the same uint8 pixels the
    devices are sent (so calibration and host-side scoring see what a device sees)."""
    return quantise(normalise(pixels_uint8(paths, spec), spec), quant)


@dataclass(frozen=True)
class EvalInputs:
    """A uint8 pixels .npy and how the agent turns each image into the
    model's input (the request's `feed`)."""

    path: Path
    feed: dict[str, Any]
    # The app-latency pass's decoded frames and how the agent makes them
    # the model's input (harness/dataset/app_frames.py); None: no pass.
    app: dict[str, Any] | None = None


def feed_request(spec: InputSpec, quant: InputQuant) -> dict[str, Any]:
    """The agent's `feed`: input = quantise((pixels - mean) / std), as
    `quantise(normalise(...))` does here."""
    return {
        "mean": [float(m) for m in spec.mean],
        "std": [float(s) for s in spec.std],
        "dtype": quant.dtype,
        "scale": float(quant.scale),
        "zero_point": int(quant.zero_point),
    }


def write_pixels(paths: Sequence[Path], spec: InputSpec, target: Path, chunk_images: int = PIXEL_CHUNK_IMAGES) -> None:
    """The images' uint8 pixels into a .npy, chunk by chunk: at most one
    chunk of decoded images is in memory at a time. Plain writes after the
    header, not a memmap: a memmap's written pages stay in this process's
    RSS (file-backed), which would grow by the whole set."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
              "shape": (len(paths), spec.height, spec.width, spec.channels)}
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
        for start in range(0, len(paths), chunk_images):
            handle.write(pixels_uint8(paths[start : start + chunk_images], spec).tobytes())
    tmp.replace(target)


def prepared_pixels(dataset: CocoDataset, spec: InputSpec, cache_dir: Path) -> Path:
    """The dataset's images as one uint8 .npy for the agent, cached by what
    the pixels depend on: the images, the input size and the resize mode."""
    key_material = json.dumps(
        {
            "v": PREPROCESS_VERSION,
            "annotations": dataset.annotations_sha256,
            "images": [str(img.path) for img in dataset.images],
            "size": [spec.height, spec.width, spec.channels],
            "resize": spec.resize,
        },
        sort_keys=True,
    )
    key = hashlib.sha256(key_material.encode()).hexdigest()[:24]
    target = Path(cache_dir) / "inputs" / f"{dataset.name}-pixels-{key}.npy"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        write_pixels([img.path for img in dataset.images], spec, target)
    return target


def prepared_inputs(dataset: CocoDataset, spec: InputSpec, quant: InputQuant, cache_dir: Path) -> EvalInputs:
    """One variant's eval inputs: the shared pixels file, its feed, and the
    app pass's frames."""
    from harness.dataset.app_frames import app_frames

    frames = app_frames(dataset, spec.channels, cache_dir)
    app = {"frames": frames, "resize": spec.resize, "size": [spec.height, spec.width]} if frames else None
    return EvalInputs(prepared_pixels(dataset, spec, cache_dir), feed_request(spec, quant), app)
