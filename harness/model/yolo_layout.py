"""Does a model's layout look like an Ultralytics YOLO export, and which?

Read from Ultralytics' sources: Detect heads (ultralytics/nn/modules/head.py)
put one anchor point per cell of the stride-8/16/32 grids (64 too for P6
models) and concatenate xywh with the class scores, so v8/11 give
[1, 4+nc, N] with N = sum((H/s) * (W/s)); YOLOv5 gives [1, 3N, 5+nc] (three
anchors per cell, objectness in column 4); end-to-end heads (v10, YOLO26,
`nms=True` exports) give [1, max_det, 6] = x1, y1, x2, y2, score, class
(max_det 300 by default). onnx2tf files take NHWC input, litert-torch ones
NCHW; both take RGB in [0, 1].

"""

from __future__ import annotations

from harness.model.fit import AdapterChoice
from harness.model.layout import ModelLayout, TensorInfo

STRIDE_SETS = ((8, 16, 32), (8, 16, 32, 64))
# A default end-to-end head keeps this many rows (Detect.max_det).
END2END_ROWS = 300
# A quantised head whose largest value is at most this holds normalised boxes
# (coordinates a little past 1 at the image edge, scores up to 1).
NORMALISED_RANGE = 2.0


def input_hw(tensor: TensorInfo) -> tuple[int, int, str] | None:
    """(height, width, NHWC|NCHW) of an image input, or None."""
    shape = tensor.shape
    if len(shape) != 4 or shape[0] != 1:
        return None
    if shape[3] in (1, 3):
        return shape[1], shape[2], "NHWC"
    if shape[1] in (1, 3):
        return shape[2], shape[3], "NCHW"
    return None


def anchor_points(height: int, width: int) -> set[int]:
    """Grid cells over every stride set a YOLO neck uses (ceil, as its
    convolutions pad)."""
    return {sum(-(-height // s) * -(-width // s) for s in strides) for strides in STRIDE_SETS}


def match_yolo(layout: ModelLayout) -> AdapterChoice | None:
    """The YOLO adapter that reads this layout, or None."""
    if len(layout.inputs) != 1 or input_hw(layout.inputs[0]) is None:
        return None
    height, width, order = input_hw(layout.inputs[0])  # type: ignore[misc]
    heads = [t for t in layout.outputs if len(t.shape) == 3 and t.shape[0] == 1]
    if len(heads) != 1:
        return None
    head = heads[0]
    _, rows, cols = head.shape
    points = anchor_points(height, width)
    base = {"input_size": [height, width], "input_layout": order}
    where = f"output {head.name!r} {list(head.shape)}"
    units = box_units(head, height, width)
    boxes = {"boxes": units} if units else {}
    if cols in points and rows >= 5:
        return AdapterChoice("yolo", {**base, "layout": "v8", "classes": rows - 4},
                             f"{where} is [1, 4+nc, N] with N = {cols} anchor points of a {height}x{width} input: a YOLOv8/11 head, {rows - 4} classes",
                             {"layout": "v8", **boxes})
    if rows in {3 * p for p in points} and cols >= 6:
        return AdapterChoice("yolo", {**base, "layout": "v5", "classes": cols - 5},
                             f"{where} is [1, 3N, 5+nc] with 3N = {rows} anchors of a {height}x{width} input: a YOLOv5 head with objectness, {cols - 5} classes",
                             {"layout": "v5", **boxes})
    if cols == 6:
        return AdapterChoice("yolo-end2end", base,
                             f"{where} is [1, N, 6] (x1, y1, x2, y2, score, class): an end-to-end head, already suppressed",
                             boxes)
    return None


def box_units(head: TensorInfo, height: int, width: int) -> str | None:
    """normalised | pixels when a quantised head's range tells (Ultralytics'
    int8 files divide the boxes by the input size so that boxes and scores
    share one scale: its largest value is then about 1), None for a float
    head (the agent then tells per image, `boxes: auto`)."""
    if not head.quantised or head.dtype not in ("int8", "uint8"):
        return None
    top = (255 if head.dtype == "uint8" else 127) - head.zero_point
    largest = top * head.scale
    if largest <= NORMALISED_RANGE:
        return "normalised"
    return "pixels" if largest >= min(height, width) / 2 else None
