"""`harness run --model FILE [--dataset DIR|data.yaml] [--split S]`: the
recipe a run makes when there is no recipe, or a recipe's eval dataset
replaced by --dataset.

Without --dataset a .tflite is measured benchmark-only (random inputs, no
mAP). With it, the adapter and the input preparation come from the model
file (`choose_adapter`, the seam `harness inspect`'s automatic choice
plugs into), labels from the dataset's category order, and the eval set
is the dataset's split (`val` unless --split says otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.dataset.locate import is_yaml
from harness.dataset.preprocess import InputSpec
from harness.errors import InputError
from harness.model.recipe import DatasetRef, Recipe, bare_tflite_recipe, load_recipe

DEFAULT_SPLIT = "val"
# A bare run's calibration set (for variants the quantizer makes from a
# float .tflite): this many images of the eval split, sampled with seed 0.
CALIBRATION_IMAGES = 128


@dataclass(frozen=True)
class AdapterChoice:
    """What a model file needs to be read without a recipe."""

    adapter: str
    input: InputSpec
    postprocess: dict[str, Any] = field(default_factory=dict)
    reason: str = ""


def plan_recipe(model: Path, dataset: Path | None = None, split: str | None = None) -> Recipe:
    """The recipe `harness run --model ... [--dataset ...]` measures."""
    model = Path(model)
    if split is not None and dataset is None:
        raise InputError("--split names a split of --dataset", source="--split", hint="add --dataset DIR|data.yaml, or drop --split")
    if dataset is None:
        return bare_tflite_recipe(model) if model.suffix == ".tflite" else load_recipe(model)
    ref = dataset_ref(Path(dataset), split or DEFAULT_SPLIT)
    if model.suffix != ".tflite":
        return replace(load_recipe(model), eval=ref)
    base = bare_tflite_recipe(model)
    choice = choose_adapter(model)
    return replace(
        base, input=choice.input, adapter=choice.adapter, postprocess=choice.postprocess, eval=ref,
        calibration=replace(ref, split="calib", size=CALIBRATION_IMAGES, seed=0),
        description=choice.reason,
    )


def dataset_ref(dataset: Path, split: str) -> DatasetRef:
    from harness.model.dataset_refs import location_ref

    if is_yaml(dataset) and not dataset.is_file():
        raise InputError("dataset YAML not found", source=dataset, hint="check the path given to --dataset")
    return location_ref(dataset, split, "val", source="--dataset")


def choose_adapter(model: Path) -> AdapterChoice:
    """The adapter a .tflite needs (harness/model/fit.py: the same choice
    `harness inspect` shows and a recipe without `adapter:` gets) and its
    input preparation: a float input is fed [-1, 1] (the TF Object
    Detection API's and the demo's range), a uint8/int8 input raw pixels."""
    from harness.model.fit import choose_adapter as fitting_adapter
    from harness.model.layout import read_tflite_layout

    layout = read_tflite_layout(model)
    choice = fitting_adapter(layout, source=model)
    shape = list(layout.inputs[0].shape) if len(layout.inputs) == 1 else []
    if len(shape) != 4 or min(shape[1:]) < 1:
        raise InputError(f"input shape {shape or [t.shape for t in layout.inputs]} is not [1, height, width, channels]",
                         source=model, hint="export the model with one fixed NHWC input")
    tensor = layout.inputs[0]
    return AdapterChoice(choice.name, _input_spec(shape, tensor.dtype, tensor.scale, tensor.zero_point), reason=choice.reason)


def _input_spec(shape: list[int], dtype: str, scale: float, zero_point: int) -> InputSpec:
    _, height, width, channels = shape
    if dtype in ("uint8", "int8"):
        # Raw pixels: the float domain is the model's own real values, so
        # quantising with its scale and zero point gives the pixel back.
        offset = 128 if dtype == "int8" else 0
        return InputSpec(height, width, channels, mean=(float(zero_point + offset),) * channels,
                         std=(1.0 / float(scale or 1.0),) * channels)
    return InputSpec(height, width, channels, mean=(127.5,) * channels, std=(127.5,) * channels)
