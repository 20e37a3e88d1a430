"""What a model file holds, read without TensorFlow: its inputs and outputs
(names, shapes, dtypes, quantisation), its signatures and their output
keys, and its operators (a histogram, the custom ones, and the output
tensors of the SSD post-process op).

A .tflite is read with the LiteRT interpreter (ai-edge-litert, or
tflite-runtime). A Keras or SavedModel source is read by TensorFlow in
harness/convert/source_layout.py, into the same :class:`ModelLayout` (with
no operators: those exist only after conversion).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import InputError

POSTPROCESS_OP = "TFLite_Detection_PostProcess"
# The op's outputs, in the op's own order (tensorflow/lite/kernels/detection_postprocess.cc).
POSTPROCESS_OUTPUTS = ("boxes", "classes", "scores", "num_detections")


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy name: float32, uint8, int8, ...
    scale: float = 0.0  # real = scale * (q - zero_point); 0 when not quantised
    zero_point: int = 0
    index: int = -1  # the interpreter's tensor index (-1 outside a .tflite)
    # The file's shape_signature, -1 where a dimension is decided at run time;
    # () when it has none (then `shape` is fixed).
    signature_shape: tuple[int, ...] = ()

    @property
    def quantised(self) -> bool:
        return self.scale > 0.0

    def describe(self) -> str:
        """`name [1, 100, 4] float32`, one line of an error or a table."""
        return f"{self.name} {list(self.shape)} {self.dtype}"


@dataclass(frozen=True)
class ModelLayout:
    path: Path
    kind: str  # tflite | saved-model | keras
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    # signature key -> {output key -> tensor name}
    signatures: dict[str, dict[str, str]] = field(default_factory=dict)
    ops: dict[str, int] = field(default_factory=dict)  # op name -> count
    custom_ops: tuple[str, ...] = ()
    # The post-process op's output tensor names in the op's order, one tuple per op.
    postprocess_outputs: tuple[tuple[str, ...], ...] = ()
    # The first post-process op's own settings (num_classes, max_detections, thresholds, scales).
    postprocess_options: dict[str, Any] = field(default_factory=dict)
    # Labels packed into the file (TFLite metadata's associated label file), if any.
    labels: tuple[str, ...] = ()

    def output(self, name: str) -> TensorInfo | None:
        return next((t for t in self.outputs if t.name == name), None)

    def has_op(self, op_name: str) -> bool:
        return op_name in self.ops


def _is_custom(op_name: str) -> bool:
    """Builtin ops are named in capitals (CONV_2D); custom and Flex ops keep their own code."""
    return op_name != op_name.upper()


def _tensor(detail: dict[str, Any]) -> TensorInfo:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return TensorInfo(
        name=str(detail["name"]),
        shape=tuple(int(v) for v in detail["shape"]),
        dtype=np.dtype(detail["dtype"]).name,
        scale=float(scale),
        zero_point=int(zero_point),
        index=int(detail["index"]),
        signature_shape=tuple(int(v) for v in detail.get("shape_signature", ())),
    )


def _signatures(interpreter: Any) -> dict[str, dict[str, str]]:
    try:
        keys = list(interpreter.get_signature_list())
    except Exception:  # noqa: BLE001 - an old runtime, or a model with no signatures
        return {}
    out: dict[str, dict[str, str]] = {}
    for key in keys:
        try:
            details = interpreter.get_signature_runner(key).get_output_details()
        except Exception:  # noqa: BLE001 - a signature the runtime cannot open is not one we can use
            continue
        out[key] = {name: str(d["name"]) for name, d in sorted(details.items())}
    return out


def _ops(interpreter: Any) -> tuple[dict[str, int], tuple[tuple[str, ...], ...]]:
    names = {int(d["index"]): str(d["name"]) for d in interpreter.get_tensor_details()}
    histogram: dict[str, int] = {}
    postprocess: list[tuple[str, ...]] = []
    for op in interpreter._get_ops_details():  # noqa: SLF001 - the only op listing the runtimes offer
        histogram[op["op_name"]] = histogram.get(op["op_name"], 0) + 1
        if op["op_name"] == POSTPROCESS_OP:
            postprocess.append(tuple(names.get(int(i), "") for i in op["outputs"]))
    return dict(sorted(histogram.items())), tuple(postprocess)


def _postprocess_options(content: bytes) -> dict[str, Any]:
    """The op's custom options (a FlexBuffer map), read from the flatbuffer;
    {} when the schema module is not installed (tflite-runtime only)."""
    try:
        from ai_edge_litert import schema_py_generated as schema
        from flatbuffers import flexbuffers
    except ImportError:
        return {}
    model = schema.Model.GetRootAs(content, 0)
    codes = [model.OperatorCodes(i).CustomCode() for i in range(model.OperatorCodesLength())]
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            if codes[op.OpcodeIndex()] == POSTPROCESS_OP.encode() and not op.CustomOptionsIsNone():
                options = flexbuffers.Loads(op.CustomOptionsAsNumpy().tobytes())
                return dict(options) if isinstance(options, dict) else {}
    return {}


def _packed_labels(path: Path) -> tuple[str, ...]:
    """TFLite metadata (Model Maker, the metadata writers) packs associated
    files as a zip after the flatbuffer; a label file is one name a line."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.lower().endswith(".txt")]
            if not names:
                return ()
            text = archive.read(sorted(names, key=lambda n: "label" not in n.lower())[0]).decode("utf-8", "replace")
    except (OSError, zipfile.BadZipFile):
        return ()
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def read_tflite_layout(path: Path) -> ModelLayout:
    from harness.edgetpu.runtime import host_interpreter

    path = Path(path)
    if not path.is_file():
        raise InputError("model file not found", source=path, hint="check the path")
    interpreter = host_interpreter(path)
    ops, postprocess = _ops(interpreter)
    return ModelLayout(
        path=path,
        kind="tflite",
        inputs=tuple(_tensor(d) for d in interpreter.get_input_details()),
        outputs=tuple(_tensor(d) for d in interpreter.get_output_details()),
        signatures=_signatures(interpreter),
        ops=ops,
        custom_ops=tuple(name for name in ops if _is_custom(name)),
        postprocess_outputs=postprocess,
        postprocess_options=_postprocess_options(path.read_bytes()) if postprocess else {},
        labels=_packed_labels(path),
    )
