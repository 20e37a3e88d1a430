"""What the eval inputs are made of for a model given as a .tflite.

A uint8-input .tflite (Model Maker's EfficientDet-Lite, TF1 quantised SSDs,
TF OD API uint8 exports) takes raw 0..255 pixels: its input quantisation,
scale 1 / zero point 0 or a normalising one such as 1/128 and 127, is the
model's own normalisation, so it is never applied on top of a recipe's
mean/std. Every other input is fed as the recipe says.
"""

from __future__ import annotations

from dataclasses import replace

from harness.dataset.preprocess import InputQuant, InputSpec
from harness.model.recipe import Recipe

RAW_PIXELS = InputQuant("uint8", 1.0, 0)


def eval_feed(recipe: Recipe, quant: InputQuant) -> tuple[InputSpec, InputQuant]:
    """(input spec, quantisation) to prepare one variant's eval batch with."""
    if not (recipe.is_tflite and quant.dtype == "uint8"):
        return recipe.input, quant
    channels = recipe.input.channels
    return replace(recipe.input, mean=(0.0,) * channels, std=(1.0,) * channels), RAW_PIXELS
