"""`harness inspect --write-recipe`: a model.yaml for a model file, from
its layout and the adapter that fits, that `harness run --model` runs as
it is (latency; add a dataset for mAP)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from harness.model.feed import model_input
from harness.model.fit import AdapterChoice
from harness.model.layout import ModelLayout, TensorInfo


def _flow(values: list) -> str:
    return yaml.safe_dump(values, default_flow_style=True, width=1000).strip()


def _input_lines(tensor: TensorInfo, choice: AdapterChoice, source: Path) -> list[str]:
    """The input preparation harness/model/feed.py decides for this file (a
    bare `harness run --model X.tflite --dataset ...` uses the same)."""
    spec = model_input(tensor, choice.name, source=source)
    lines = ["input:", f"  height: {spec.height}", f"  width: {spec.width}", f"  channels: {spec.channels}"]
    if tensor.dtype in ("uint8", "int8"):
        quant = f"scale {tensor.scale:g}, zero point {tensor.zero_point}" if tensor.quantised else "no quantisation"
        pixel = "0..255 pixels" if tensor.dtype == "uint8" else "pixels - 128"
        lines.append(f"  # {tensor.dtype} input ({quant}): the model takes raw {pixel}")
    else:
        lines.append(f"  # {tensor.dtype} input: its normalisation is not in the file; "
                     f"(pixel - {spec.mean[0]:g}) / {spec.std[0]:g}, the {choice.name} exports' convention")
    lines += [f"  mean: {_flow(list(spec.mean))}", f"  std: {_flow(list(spec.std))}"]
    if spec.resize != "bilinear":
        lines.append(f"  resize: {spec.resize}")
    return lines


def _class_count(layout: ModelLayout, choice: AdapterChoice) -> int:
    """The matcher's class count (a YOLO head's), else the op's num_classes,
    else the class axis of a [1, N, C] output, else 1."""
    if "classes" in choice.options:
        return int(choice.options["classes"])
    if choice.name == "yolo-end2end":
        return 1  # rows of x1, y1, x2, y2, score, class: the head does not say how many classes
    if "num_classes" in layout.postprocess_options:
        return int(layout.postprocess_options["num_classes"])
    class_axes = [t.shape[2] for t in layout.outputs if len(t.shape) == 3 and t.shape[2] not in (4, -1)]
    return class_axes[0] if len(class_axes) == 1 else 1


def _keras_ssd_lines(layout: ModelLayout) -> list[str]:
    """The post-process op the harness builds: the SSD settings it needs, at
    the TF OD API's usual values; the anchors are the model's own."""
    logits = any(t.name == "class_logits" for t in layout.outputs)
    return [
        "postprocess:",
        "  anchors: anchors.npy   # the anchors the model was trained with: [N, 4] ycenter, xcenter, h, w",
        "  max_detections: 100",
        "  max_classes_per_detection: 1",
        "  detections_per_class: 100",
        "  use_regular_nms: false",
        "  nms_score_threshold: 0.05",
        "  nms_iou_threshold: 0.5",
        "  scales: {y: 10.0, x: 10.0, h: 5.0, w: 5.0}",
        f"  scores: {'logits' if logits else 'sigmoid'}",
    ]


def _label_lines(layout: ModelLayout, choice: AdapterChoice) -> list[str]:
    if layout.labels:
        return ["# the label file packed in the model", f"labels: {_flow(list(layout.labels))}"]
    count = _class_count(layout, choice)
    placeholders = [f"class_{i}" for i in range(count)]
    return [
        "# placeholders: one name per class index, in the model's order (num_classes from the model)",
        f"labels: {_flow(placeholders)}",
    ]


def recipe_text(layout: ModelLayout, choice: AdapterChoice, recipe_path: Path) -> str:
    """The recipe, with `source` relative to the recipe's folder."""
    source = os.path.relpath(Path(layout.path).resolve(), Path(recipe_path).resolve().parent)
    lines = [
        f"# Written by `harness inspect {layout.path.name} --write-recipe`.",
        f"name: {layout.path.stem if layout.path.suffix else layout.path.name}",
        f"source: {source}",
        *_input_lines(layout.inputs[0], choice, layout.path),
        *_label_lines(layout, choice),
        f"# {choice.reason}",
        f"adapter: {choice.name}",
    ]
    if layout.kind != "tflite" and choice.name == "ssd-postprocess":
        lines += _keras_ssd_lines(layout)
    elif choice.postprocess:
        lines += ["# read from the model's layout", f"postprocess: {yaml.safe_dump(choice.postprocess, default_flow_style=True).strip()}"]
    lines += [
        "# for mAP, add a dataset, e.g.",
        "# dataset: {eval: {annotations: annotations/instances_val.json, images: val}}",
        "variants: [fp32]" if layout.kind == "tflite" else "variants: [fp32, int8]",
    ]
    return "\n".join(lines) + "\n"
