"""Whole-model sensitivity for selective-int8: where the int8 model's error
enters, measured end to end, and which nodes must stay float together.

Why not the QuantizationDebugger's layer-wise numbers alone: the debugger
feeds each layer's float copy the *quantised* inputs, so a layer is blamed
only for the error it makes itself. An op that merely moves values
(CONCATENATION, RESHAPE, TRANSPOSE) then shows ~0 error even when the scale
it shares with its neighbours is the whole problem: in a YOLO-style output
that concatenates boxes in pixels (0..160) with scores (0..1), the
converter's same-scale rule gives every score tensor the boxes' scale
(0.627 per step) and the debugger ranks those nodes last.

What is measured here instead (cheap: two interpreter passes per image on
a few calibration images, no extra conversion):

1. Run the float model and the fully-int8 model on the same images, every
   intermediate tensor kept (``experimental_preserve_all_tensors``), and
   compare each int8 tensor, dequantised, with the float tensor of the same
   name. The error is ``rmse / std`` of the float tensor (an inverse
   signal-to-noise ratio: 0 is exact, 1 is an error as large as the
   tensor's own spread). Dividing by the spread, not the range, keeps a
   score tensor whose values sit mostly near 0 from looking accurate when
   its few high scores are rounded to 0 or 0.627.
2. A node's *added* error is its output's error minus the largest error of
   its inputs: the error accumulated upstream is not the node's fault, the
   jump is. A requantisation to a coarse shared scale shows as a jump at the
   first op that carries the coarse scale (each level's score RESHAPE here).
3. Keeping a node float only helps if what consumes it does not quantise it
   back to the same coarse scale. So each candidate brings its *followers*:
   the consumers, transitively, that the converter constrains to the
   node's scale (same-scale op types, or a clamp whose output kept the
   very same scale and zero point in the int8 model), down to the graph
   output.
   For a score reshape that is the score concatenation, the boxes+scores
   concatenation and the output transpose: the group the search tries as
   one step.

Ablation (one conversion and one evaluation per node) would measure the
same thing more directly but costs minutes per model on two cores; the
search in selective.py still scores each candidate group by the mAP it
gives, and keeps a group only when it helps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

# Op types the TFLite converter gives one scale for inputs and output
# (the MLIR quantizer's same-scale trait): keeping a producer float while
# one of these stays int8 re-imposes the shared scale at once.
SAME_SCALE_OPS = frozenset({
    "CONCATENATION", "RESHAPE", "TRANSPOSE", "SQUEEZE", "EXPAND_DIMS", "PACK", "UNPACK", "SLICE",
    "STRIDED_SLICE", "GATHER", "GATHER_ND", "SPLIT", "SPLIT_V", "PAD", "PADV2", "MAX_POOL_2D",
    "MAXIMUM", "MINIMUM", "DEPTH_TO_SPACE", "SPACE_TO_DEPTH", "RESIZE_NEAREST_NEIGHBOR",
    "BATCH_TO_SPACE_ND", "SPACE_TO_BATCH_ND", "TILE", "BROADCAST_TO", "REVERSE_V2",
})
# Clamps the converter folds into their producer's range when it can: one
# that kept its producer's exact scale and zero point carries it on.
_CLAMP_OPS = frozenset({"RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1"})
# Ops that only convert types: nothing to keep float there.
_TYPE_OPS = frozenset({"QUANTIZE", "DEQUANTIZE"})
# Calibration images the two passes run (each keeps every tensor in memory
# for one image at a time).
IMAGES = 16


@dataclass(frozen=True)
class Node:
    """One op of the float model, named by its first output tensor (the name
    QuantizationDebugOptions(denylisted_nodes=...) takes)."""

    name: str
    op_name: str
    inputs: tuple[str, ...]  # the activation tensors it reads (no weights)


@dataclass(frozen=True)
class NodeError:
    node: str
    op_name: str
    error: float  # rmse / std of the dequantised int8 tensor against the float one
    added: float  # error minus the largest error of the node's inputs
    followers: tuple[str, ...] = field(default=())

    @property
    def layer(self) -> str:
        """A short, readable name: the Keras layer of the op's first fused name."""
        parts = [p for p in self.node.split(";")[0].split("/") if p]
        return parts[-2] if len(parts) >= 2 else self.node

    @property
    def group(self) -> tuple[str, ...]:
        """The nodes kept float together when this one is."""
        return (self.node, *self.followers)


@dataclass
class _Moments:
    """Running sums for one tensor over the images: rmse and std without
    keeping every image's tensor."""

    n: int = 0
    sum_f: float = 0.0
    sum_f2: float = 0.0
    sum_d2: float = 0.0

    def add(self, reference: np.ndarray, candidate: np.ndarray) -> None:
        f = reference.astype(np.float64).ravel()
        d = candidate.astype(np.float64).ravel() - f
        self.n += f.size
        self.sum_f += float(f.sum())
        self.sum_f2 += float(np.dot(f, f))
        self.sum_d2 += float(np.dot(d, d))

    def inverse_snr(self) -> float | None:
        if self.n == 0:
            return None
        mean = self.sum_f / self.n
        std = math.sqrt(max(self.sum_f2 / self.n - mean * mean, 0.0))
        value = math.sqrt(self.sum_d2 / self.n) / std if std > 0 else None
        return value if value is not None and math.isfinite(value) else None


# -- pure ranking --------------------------------------------------------------


def rank(
    nodes: Sequence[Node],
    errors: Mapping[str, float],
    scales: Mapping[str, tuple[float, int]],
) -> list[NodeError]:
    """Nodes by the error they add, largest first, each with its followers.

    `errors`: each tensor's error (missing: not compared, counted as 0 when
    an input); `scales`: the int8 model's (scale, zero point) by tensor name."""
    consumers: dict[str, list[Node]] = {}
    for node in nodes:
        for tensor in node.inputs:
            consumers.setdefault(tensor, []).append(node)
    ranked = []
    for node in nodes:
        # Not quantised in the int8 model (a post-process op, the float
        # output): already float, nothing to rank; still an input's error.
        if node.op_name in _TYPE_OPS or node.name not in errors or node.name not in scales:
            continue
        upstream = max((errors.get(t, 0.0) for t in node.inputs), default=0.0)
        error = errors[node.name]
        ranked.append(NodeError(node.name, node.op_name, round(error, 6), round(error - upstream, 6),
                                followers_of(node.name, consumers, scales)))
    ranked.sort(key=lambda r: (-r.added, -r.error, r.node))
    return ranked


def followers_of(name: str, consumers: Mapping[str, Sequence[Node]], scales: Mapping[str, tuple[float, int]]) -> tuple[str, ...]:
    """Consumers, transitively, that would quantise `name` back to its scale."""
    own = scales.get(name)
    found: list[str] = []
    todo = [name]
    while todo:
        tensor = todo.pop(0)
        for consumer in consumers.get(tensor, ()):
            if consumer.name in found or consumer.op_name in _TYPE_OPS:
                continue
            carries = consumer.op_name in _CLAMP_OPS and own is not None and scales.get(consumer.name) == own
            if consumer.op_name in SAME_SCALE_OPS or carries:
                found.append(consumer.name)
                todo.append(consumer.name)
    return tuple(found)


def candidate_groups(ranked: Sequence[NodeError], limit: int) -> list[tuple[str, ...]]:
    """The groups the search tries, most harmful first: only nodes that add
    error, and no group already covered by an earlier one."""
    groups: list[tuple[str, ...]] = []
    covered: set[str] = set()
    for row in ranked:
        if row.added <= 0 or len(groups) >= limit:
            break
        if set(row.group) <= covered:
            continue
        groups.append(row.group)
        covered.update(row.group)
    return groups


# -- measuring -------------------------------------------------------------------


def _interpreter(content: bytes) -> Any:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # No default delegate: XNNPACK would take the graph over and its
    # intermediate tensors would not be kept.
    interpreter = Interpreter(
        model_content=content,
        experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interpreter.allocate_tensors()
    return interpreter


def graph_of(interpreter: Any) -> list[Node]:
    """The float model's ops as Nodes."""
    details = interpreter.get_tensor_details()
    names = {d["index"]: d["name"] for d in details}
    ops = interpreter._get_ops_details()  # noqa: SLF001 - the only op listing the runtimes offer
    produced = {i for op in ops for i in op["outputs"]}
    activations = produced | {d["index"] for d in interpreter.get_input_details()}
    nodes = [
        Node(names[op["outputs"][0]], op["op_name"], tuple(names[i] for i in op["inputs"] if i in activations))
        for op in ops
        if len(op["outputs"])
    ]
    return nodes


def _feed(interpreter: Any, image: np.ndarray) -> None:
    detail = interpreter.get_input_details()[0]
    scale, zero_point = detail["quantization"]
    value = image[None].astype(np.float32)
    if np.dtype(detail["dtype"]) != np.float32 and scale:
        info = np.iinfo(detail["dtype"])
        value = np.clip(np.round(value / scale + zero_point), info.min, info.max)
    interpreter.set_tensor(detail["index"], value.astype(detail["dtype"]))
    interpreter.invoke()


def _dequantised(interpreter: Any, detail: dict[str, Any]) -> np.ndarray:
    value = interpreter.get_tensor(detail["index"])
    scale, zero_point = detail["quantization"]
    return (value.astype(np.float32) - zero_point) * scale if scale else value.astype(np.float32)


def measure(float_model: bytes, quantised: bytes, images: np.ndarray) -> tuple[list[Node], dict[str, float], dict[str, tuple[float, int]]]:
    """The float graph, each tensor's error and the int8 model's scales.
    `images`: the float model's input batch."""
    reference, candidate = _interpreter(float_model), _interpreter(quantised)
    nodes = graph_of(reference)
    wanted = {n.name for n in nodes}
    ref_details = {d["name"]: d for d in reference.get_tensor_details() if d["name"] in wanted}
    cand_details = {d["name"]: d for d in candidate.get_tensor_details() if d["name"] in ref_details}
    moments = {name: _Moments() for name in cand_details}
    for image in images[:IMAGES]:
        _feed(reference, image)
        _feed(candidate, image)
        for name, detail in cand_details.items():
            f = _dequantised(reference, ref_details[name])
            q = _dequantised(candidate, detail)
            # Shapes can differ (a reshape the converter moved) and values be
            # garbage (the rows a post-process op leaves unwritten): not comparable.
            if f.shape == q.shape and np.isfinite(f).all() and np.isfinite(q).all():
                moments[name].add(f, q)
    errors = {name: e for name, m in moments.items() if (e := m.inverse_snr()) is not None}
    scales = {name: (float(d["quantization"][0]), int(d["quantization"][1])) for name, d in cand_details.items() if d["quantization"][0]}
    return nodes, errors, scales


def whole_model_sensitivity(float_model: bytes, quantised: bytes, images: np.ndarray) -> list[NodeError]:
    """Every node of the float model by the error it adds in the int8 one."""
    return rank(*measure(float_model, quantised, images))
