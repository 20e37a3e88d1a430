"""Which output adapter reads a model, when its recipe names none.

Each adapter has a matcher: a function of the model's layout that returns
an :class:`AdapterChoice` (the adapter, its options, and why it fits) or
None. :data:`MATCHERS` tries them in order, most specific first; when none
fits, :func:`choose_adapter` raises an InputError listing the model's
outputs and what each adapter expects, one line each.

Outputs are found by signature key, tensor name, shape or the post-process
op's own output tensors, never by position: TF2 conversions list the
post-process outputs scrambled (tensorflow#44481) and Model Maker's
EfficientDet-Lite lists score, location, count, classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness.errors import InputError
from harness.model.layout import POSTPROCESS_OP, POSTPROCESS_OUTPUTS, ModelLayout, TensorInfo


@dataclass(frozen=True)
class AdapterChoice:
    name: str
    options: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    # The recipe `postprocess:` keys this layout implies (a bare run's and
    # `inspect --write-recipe`'s); every other key keeps its default.
    postprocess: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Matcher:
    adapters: str  # the adapter name(s) this matcher can choose, for the error text
    expects: str  # one line: what the outputs must look like
    match: Callable[[ModelLayout], AdapterChoice | None]


def _ssd_outputs(layout: ModelLayout) -> tuple[dict[str, str], str] | None:
    """{boxes, classes, scores, num_detections: tensor name} and how they were found."""
    names = {t.name for t in layout.outputs}
    for key, outputs in layout.signatures.items():
        if all(k in outputs for k in POSTPROCESS_OUTPUTS):
            return {k: outputs[k] for k in POSTPROCESS_OUTPUTS}, f"by the keys of signature {key!r}"
    for op_outputs in layout.postprocess_outputs:
        if len(op_outputs) == 4 and all(name in names for name in op_outputs):
            return dict(zip(POSTPROCESS_OUTPUTS, op_outputs)), f"as the outputs of the {POSTPROCESS_OP} op"
    classic = [POSTPROCESS_OP + suffix for suffix in ("", ":1", ":2", ":3")]
    if all(name in names for name in classic):
        return dict(zip(POSTPROCESS_OUTPUTS, classic)), "by tensor name"
    return None


def match_ssd_postprocess(layout: ModelLayout) -> AdapterChoice | None:
    if not layout.has_op(POSTPROCESS_OP):
        return None
    found = _ssd_outputs(layout)
    if found is None:
        return None
    outputs, how = found
    mapping = ", ".join(f"{k} = {v}" for k, v in outputs.items())
    return AdapterChoice(
        "ssd-postprocess",
        {"outputs": outputs},
        f"the model contains {POSTPROCESS_OP}; its outputs found {how}: {mapping}",
    )


def match_keras_ssd(layout: ModelLayout) -> AdapterChoice | None:
    """A Keras/SavedModel SSD whose post-process op the harness builds itself."""
    if layout.kind == "tflite":
        return None
    names = {t.name for t in layout.outputs}
    if "box_encodings" not in names or not names & {"class_logits", "class_scores"}:
        return None
    return AdapterChoice(
        "ssd-postprocess",
        {},
        "outputs box_encodings and class_logits/class_scores: the harness builds the "
        f"{POSTPROCESS_OP} op at conversion, from the recipe's postprocess.anchors and scales",
    )


def _boxes_scores_pair(layout: ModelLayout) -> tuple[TensorInfo, TensorInfo, str] | None:
    """boxes [1, N, 4] and scores [1, N, C]: by signature key, name, or an unambiguous shape
    (the same search the agent makes)."""
    for key, outputs in layout.signatures.items():
        boxes, scores = layout.output(outputs.get("boxes", "")), layout.output(outputs.get("scores", ""))
        if boxes is not None and scores is not None:
            return boxes, scores, f"by the keys of signature {key!r}"
    by_box = [t for t in layout.outputs if "box" in t.name.lower()]
    by_score = [t for t in layout.outputs if any(w in t.name.lower() for w in ("score", "class", "logit"))]
    if len(by_box) == 1 and len(by_score) == 1 and by_box[0] != by_score[0]:
        return by_box[0], by_score[0], "by tensor name"
    shaped = [t for t in layout.outputs if len(t.shape) == 3 and t.shape[0] == 1]
    box_like = [t for t in shaped if t.shape[2] == 4]
    if len(box_like) == 1:
        partners = [t for t in shaped if t is not box_like[0] and t.shape[1] == box_like[0].shape[1] and t.shape[2] != 4]
        if len(partners) == 1:
            return box_like[0], partners[0], "by shape"
    return None


def match_boxes_scores(layout: ModelLayout) -> AdapterChoice | None:
    pair = _boxes_scores_pair(layout)
    if pair is None:
        return None
    boxes, scores, how = pair
    if boxes.shape[1] != scores.shape[1] or len(boxes.shape) != 3 or len(scores.shape) != 3:
        return None
    return AdapterChoice(
        "boxes-scores",
        {},
        f"raw boxes {boxes.describe()} and per-class scores {scores.describe()} found {how}; "
        "NMS runs on the device (boxes read as normalised corners unless postprocess.anchors is given)",
    )


def _match_yolo(layout: ModelLayout) -> AdapterChoice | None:
    from harness.model.yolo_layout import match_yolo  # it imports AdapterChoice from here

    return match_yolo(layout)


# Most specific first. A new adapter family plugs in with one line here.
MATCHERS: list[Matcher] = [
    Matcher(
        "ssd-postprocess",
        f"a {POSTPROCESS_OP} op whose 4 outputs (boxes, classes, scores, count) are model outputs",
        match_ssd_postprocess,
    ),
    Matcher(
        "ssd-postprocess (Keras/SavedModel)",
        "outputs named box_encodings [1, N, 4] and class_logits or class_scores [1, N, C]",
        match_keras_ssd,
    ),
    Matcher(
        "yolo, yolo-end2end",
        "one output [1, 4+nc, N] (v8/11) or [1, N, 5+nc] (v5) with N the anchor points of the input size, "
        "or [1, N, 6] rows after NMS (end-to-end)",
        _match_yolo,
    ),
    Matcher("boxes-scores", "two outputs: boxes [1, N, 4] and per-class scores [1, N, C]", match_boxes_scores),
]


def choose_adapter(layout: ModelLayout, *, source: str | Path | None = None, place: str | None = None) -> AdapterChoice:
    """The first matcher's choice; none fitting is exit 2, named at `source`
    (a recipe and its field), or at the model file."""
    for matcher in MATCHERS:
        choice = matcher.match(layout)
        if choice is not None:
            return choice
    raise no_adapter_fits(layout, source=source, place=place)


def no_adapter_fits(layout: ModelLayout, *, source: str | Path | None = None, place: str | None = None) -> InputError:
    outputs = "\n".join(f"    {t.describe()}" for t in layout.outputs) or "    (none)"
    expected = "\n".join(f"    {m.adapters}: {m.expects}" for m in MATCHERS)
    return InputError(
        f"no output adapter fits this model\n  its outputs:\n{outputs}\n  the adapters expect:\n{expected}",
        source=layout.path if source is None else source,
        place=place,
        hint="export the model with one of those output layouts, or name `adapter: none` in a recipe to measure latency only",
    )
