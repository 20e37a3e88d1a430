"""Op-by-op Edge TPU compatibility pre-check, for when no compiler is here.

Coral's documented requirements (coral.ai/docs/edgetpu/models-intro):
tensors are 8-bit quantized (int8/uint8; int32 only for constant biases and
shapes), tensor sizes are fixed at compile time (no dynamic dimensions),
tensors have at most 3 dimensions larger than 1 (the innermost three), and
the operator is in the supported list below. The compiler maps one Edge TPU
subgraph from the start of the graph: an op that breaks a rule, and every
op that depends on one, runs on the CPU. This reproduces that
rule from the model itself; it is a prediction, the compiler has the last
word (it also refuses ops for reasons it does not document).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.results.record import EdgeTpuReport

# The operations table of coral.ai/docs/edgetpu/models-intro ("Supported
# operations", compiler 16), as TFLite builtin operator names.
SUPPORTED_OPS = frozenset({
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "EXPAND_DIMS", "FULLY_CONNECTED",
    "L2_NORMALIZATION", "LOGISTIC", "UNIDIRECTIONAL_SEQUENCE_LSTM", "MAXIMUM", "MAX_POOL_2D", "MEAN", "MINIMUM",
    "MUL", "PACK", "PAD", "PRELU", "QUANTIZE", "REDUCE_MAX", "REDUCE_MIN", "RELU", "RELU6", "RELU_N1_TO_1",
    "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RSQRT", "SLICE", "SOFTMAX", "SPACE_TO_DEPTH",
    "SPLIT", "SQUEEZE", "STRIDED_SLICE", "SUB", "SUM", "SQUARED_DIFFERENCE", "TANH", "TRANSPOSE", "TRANSPOSE_CONV",
})
EIGHT_BIT = ("int8", "uint8")
UNSUPPORTED = "not in Coral's supported operations"
AFTER_FIRST = "depends on an op on the CPU: the compiler maps one Edge TPU subgraph, from the graph's start"


def op_issue(op: dict[str, Any], tensors: dict[int, dict[str, Any]], produced: set[int]) -> str | None:
    """Why one op cannot run on the Edge TPU, or None."""
    name = op["op_name"]
    if name not in SUPPORTED_OPS:
        return UNSUPPORTED
    # Activations are the tensors some op produces plus the graph inputs;
    # constants (weights, int32 biases, shape vectors) are checked by the compiler.
    for index in [*op["inputs"], *op["outputs"]]:
        if index < 0 or index not in tensors:
            continue
        tensor = tensors[index]
        is_activation = index in produced or index in op["outputs"] or tensor.get("graph_input", False)
        if not is_activation:
            continue
        dtype = np.dtype(tensor["dtype"]).name
        if dtype not in EIGHT_BIT:
            return f"tensor {tensor['name']!r} is {dtype}, not 8-bit quantized"
        signature = [int(v) for v in tensor.get("shape_signature", tensor["shape"])]
        if any(v < 0 for v in signature):
            return f"tensor {tensor['name']!r} has a dynamic shape {signature}"
        if len(signature) > 3 and any(v > 1 for v in signature[:-3]):
            return f"tensor {tensor['name']!r} has rank {len(signature)} with outer dimensions > 1 (up to 3 innermost mapped)"
    return None


def precheck_ops(ops: list[dict[str, Any]], tensors: dict[int, dict[str, Any]]) -> EdgeTpuReport:
    """Pure rule application over op and tensor details (the runtime's
    `_get_ops_details()` / `get_tensor_details()` shape), in execution order.
    An op runs on the CPU when it breaks a rule or consumes a tensor that a
    CPU op produced: what stays on the Edge TPU is the one subgraph from the
    graph's start that the compiler maps."""
    produced = {i for op in ops for i in op["outputs"]}
    cpu_tensors: dict[int, str] = {}  # tensor index -> the CPU op it comes from
    cpu: dict[tuple[str, str], int] = {}
    on_tpu = 0
    for op in ops:
        issue = op_issue(op, tensors, produced)
        upstream = next((cpu_tensors[i] for i in op["inputs"] if i in cpu_tensors), None)
        if issue is None and upstream is None:
            on_tpu += 1
            continue
        # An op fed by the CPU would be split off anyway; say so unless the
        # op itself is unsupported (the more useful fact).
        reason = issue if issue == UNSUPPORTED or upstream is None else f"{AFTER_FIRST} (input from {upstream})"
        for index in op["outputs"]:
            cpu_tensors[index] = f"#{op['index']} {op['op_name']}"
        key = (op["op_name"], reason)
        cpu[key] = cpu.get(key, 0) + 1
    cpu_ops = tuple((name, count, reason) for (name, reason), count in cpu.items())
    return EdgeTpuReport(source="precheck", ops_on_tpu=on_tpu, ops_on_cpu=sum(cpu.values()), cpu_ops=cpu_ops)


def precheck_model(path: Path) -> EdgeTpuReport:
    """Read a .tflite's ops and tensors with the host's TFLite runtime."""
    from harness.edgetpu.runtime import host_interpreter

    interpreter = host_interpreter(path)
    tensors = {int(t["index"]): dict(t) for t in interpreter.get_tensor_details()}
    for detail in interpreter.get_input_details():
        tensors.setdefault(int(detail["index"]), dict(detail))["graph_input"] = True
    ops = [
        {"index": int(op["index"]), "op_name": str(op["op_name"]),
         "inputs": [int(i) for i in op["inputs"]], "outputs": [int(i) for i in op["outputs"]]}
        for op in interpreter._get_ops_details()  # noqa: SLF001 - the runtime's only op listing
    ]
    return precheck_ops(ops, tensors)
