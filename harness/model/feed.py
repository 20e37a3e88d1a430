"""How a model given as a .tflite is fed: the one place that decides.

A quantised input (Model Maker's EfficientDet-Lite, TF1 quantised SSDs,
TF OD API uint8 exports, Ultralytics' int8 files) takes raw pixels: its
input quantisation, scale 1 / zero point 0 or a normalising one such as
1/128 and 127, is the model's own normalisation. A uint8 input gets the
pixel itself, never a recipe's mean/std on top; an int8 input the pixel
less 128. A float input's normalisation is not in the file: YOLO
adapters get Ultralytics' letterboxed [0, 1], every other adapter the TF
Object Detection API's [-1, 1].
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from harness.dataset.preprocess import InputQuant, InputSpec
from harness.errors import InputError
from harness.model.layout import TensorInfo
from harness.model.recipe import Recipe

RAW_PIXELS = InputQuant("uint8", 1.0, 0)
YOLO_ADAPTERS = ("yolo", "yolo-end2end")
# (mean, std, resize) of a float input, by adapter family.
FLOAT_TFOD = (127.5, 127.5, "bilinear")
FLOAT_YOLO = (0.0, 255.0, "letterbox")  # Ultralytics' LetterBox, then / 255


def raw_pixels(spec: InputSpec, quant: InputQuant) -> tuple[InputSpec, InputQuant]:
    """The spec and quantisation that put raw pixels into a quantised input:
    uint8 gets the pixel (quantisation 1/0), int8 the pixel - 128 (the
    float domain is the model's own real values: quantising them with its
    scale and zero point gives the pixel back, shifted)."""
    channels = spec.channels
    if quant.dtype == "uint8":
        return replace(spec, mean=(0.0,) * channels, std=(1.0,) * channels), RAW_PIXELS
    mean = float(quant.zero_point + 128)
    return replace(spec, mean=(mean,) * channels, std=(1.0 / float(quant.scale or 1.0),) * channels), quant


def eval_feed(recipe: Recipe, quant: InputQuant) -> tuple[InputSpec, InputQuant]:
    """(input spec, quantisation) to prepare one variant's eval batch with."""
    if not (recipe.is_tflite and quant.dtype == "uint8"):
        return recipe.input, quant
    return raw_pixels(recipe.input, quant)


def model_input(tensor: TensorInfo, adapter: str, *, source: str | Path) -> InputSpec:
    """The input preparation of a .tflite read without a recipe (`harness
    run --model X.tflite --dataset ...` and `harness inspect --write-recipe`)."""
    height, width, channels = fixed_nhwc(tensor, source=source)
    mean, std, resize = FLOAT_YOLO if adapter in YOLO_ADAPTERS else FLOAT_TFOD
    spec = InputSpec(height, width, channels, mean=(mean,) * channels, std=(std,) * channels, resize=resize)
    if tensor.dtype in ("uint8", "int8"):
        return raw_pixels(spec, InputQuant(tensor.dtype, tensor.scale, tensor.zero_point))[0]
    return spec


def fixed_nhwc(tensor: TensorInfo, *, source: str | Path) -> tuple[int, int, int]:
    """(height, width, channels) of a fixed [1, H, W, C] image input; exit 2
    for an NCHW or size-less input, which the harness cannot feed."""
    shape = list(tensor.shape)
    if len(shape) != 4:
        raise InputError(f"input {tensor.describe()} is not an image [1, height, width, channels]",
                         source=source, hint="export the model with one fixed NHWC image input")
    check_fixed_size(tensor, source=source)
    if shape[1] in (1, 3) and shape[3] not in (1, 3):
        raise InputError(
            f"input {tensor.describe()} is NCHW (channels first); the harness feeds NHWC images",
            source=source, hint="export with NHWC input (Ultralytics `format=tflite` writes NHWC through onnx2tf; "
            "for a litert-torch file, convert with its NHWC input option)",
        )
    return shape[1], shape[2], shape[3]


def check_fixed_size(tensor: TensorInfo, *, source: str | Path) -> None:
    """Exit 2 for an input with a size decided at run time (-1 past the
    batch axis of its shape signature): the device allocates the model at
    the placeholder size stored in the file (1 for each such axis), so no
    image fits it and a latency of it means nothing."""
    signature = list(tensor.signature_shape or tensor.shape)
    if all(v >= 1 for v in signature[1:]):
        return
    raise InputError(
        f"input {tensor.name!r} has no fixed size: its shape signature is {signature} (-1 = decided at run time), "
        f"and the device would allocate it as {list(tensor.shape)}",
        source=source, hint="export with a fixed input size (e.g. Ultralytics `imgsz=640`, a TF concrete function "
        "with TensorSpec([1, 320, 320, 3]))",
    )
