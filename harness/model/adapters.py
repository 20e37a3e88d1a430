"""What the agent needs to read a recipe's detections: the adapter's name
and options (pure data; the decoding itself lives in the agent)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.model.recipe import Recipe


@dataclass(frozen=True)
class AdapterSpec:
    name: str  # ssd-postprocess | boxes-scores | yolo | yolo-end2end | none
    options: dict[str, Any] = field(default_factory=dict)
    # A host file the options refer to (anchors), uploaded next to the model.
    anchors: Path | None = None

    @property
    def reads_detections(self) -> bool:
        return self.name != "none"

    def request(self, remote_anchors: str | None = None) -> dict[str, Any]:
        """The agent request's `adapter` and `adapter_options`."""
        options = dict(self.options)
        if self.anchors is not None:
            options["anchors"] = remote_anchors or str(self.anchors)
        return {"adapter": self.name, "adapter_options": options}


def adapter_spec(recipe: Recipe) -> AdapterSpec:
    if recipe.adapter in ("yolo", "yolo-end2end"):
        return yolo_adapter_spec(recipe)
    if recipe.adapter != "boxes-scores":
        return AdapterSpec(recipe.adapter)
    pp = recipe.postprocess
    options = {key: pp[key] for key in ("max_detections", "nms_score_threshold", "nms_iou_threshold") if key in pp}
    # The harness's own export applies the sigmoid; a .tflite source is read as the recipe says.
    options["scores"] = pp.get("scores", "sigmoid") if recipe.is_tflite else "sigmoid"
    anchors = None
    if pp.get("anchors"):
        anchors = Path(pp["anchors"])
        options["scales"] = pp["scales"]
    return AdapterSpec("boxes-scores", options, anchors)


def yolo_adapter_spec(recipe: Recipe) -> AdapterSpec:
    """The recipe's thresholds, and the input size that pixel boxes are
    normalised by."""
    options = dict(recipe.postprocess, input_size=[recipe.input.height, recipe.input.width])
    return AdapterSpec(recipe.adapter, options)
