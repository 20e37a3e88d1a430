"""`harness run --model FILE [--dataset DIR|data.yaml] [--split S]`: the
recipe a run makes when there is no recipe, or a recipe's eval dataset
replaced by --dataset.

A bare .tflite is measured as the file it is: variant fp32 only, with or
without --dataset (the quantizer's variants need a calibration set other
than the eval split: a recipe with `dataset: {calibration: ...}`).
Without --dataset it is benchmark-only (random inputs, no mAP). With it,
the adapter and its postprocess keys come from the model's layout
(harness/model/fit.py, the choice `harness inspect` shows and writes),
the input preparation from harness/model/feed.py, labels from the
dataset's category order, and the eval set is the dataset's split (`val`
unless --split says otherwise).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from harness.dataset.locate import is_yaml
from harness.errors import InputError
from harness.model.recipe import DatasetRef, Recipe, bare_tflite_recipe, fitted_postprocess, load_recipe

DEFAULT_SPLIT = "val"


def plan_recipe(model: Path, dataset: Path | None = None, split: str | None = None) -> Recipe:
    """The recipe `harness run --model ... [--dataset ...]` measures."""
    model = Path(model)
    if split is not None and dataset is None:
        raise InputError("--split names a split of --dataset", source="--split", hint="add --dataset DIR|data.yaml, or drop --split")
    if model.suffix != ".tflite":
        recipe = load_recipe(model)
        return recipe if dataset is None else replace(recipe, eval=dataset_ref(Path(dataset), split or DEFAULT_SPLIT))
    base = bare_tflite_recipe(model)
    if dataset is None:
        check_feedable(model)
        return base
    ref = dataset_ref(Path(dataset), split or DEFAULT_SPLIT)
    return fitted_recipe(base, ref)


def fitted_recipe(base: Recipe, ref: DatasetRef) -> Recipe:
    """A bare .tflite's recipe for mAP on `ref`: adapter, postprocess keys
    and input preparation from the model file."""
    from harness.model.feed import model_input
    from harness.model.fit import choose_adapter
    from harness.model.layout import read_tflite_layout

    layout = read_tflite_layout(base.source)
    choice = choose_adapter(layout, source=base.source)
    if len(layout.inputs) != 1:
        raise InputError(f"{len(layout.inputs)} inputs ({', '.join(t.describe() for t in layout.inputs)}); the harness feeds one image",
                         source=base.source, hint="export the model with one fixed NHWC image input")
    return replace(
        base, input=model_input(layout.inputs[0], choice.name, source=base.source), adapter=choice.name,
        postprocess=fitted_postprocess(choice.name, choice.postprocess, source=base.source), eval=ref,
        description=choice.reason, extra={"adapter_choice": choice},
    )


def check_feedable(model: Path) -> None:
    """Refuse, before any upload, a .tflite whose input the device cannot
    allocate at a fixed size (benchmark-only runs feed random inputs of it)."""
    from harness.model.feed import check_fixed_size
    from harness.model.layout import read_tflite_layout

    try:
        layout = read_tflite_layout(model)
    except InputError:
        return  # unreadable: the run's own model check says so, in its words (converter.py)
    for tensor in layout.inputs:
        check_fixed_size(tensor, source=model)


def dataset_ref(dataset: Path, split: str) -> DatasetRef:
    from harness.model.dataset_refs import location_ref

    if is_yaml(dataset) and not dataset.is_file():
        raise InputError("dataset YAML not found", source=dataset, hint="check the path given to --dataset")
    return location_ref(dataset, split, "val", source="--dataset")
