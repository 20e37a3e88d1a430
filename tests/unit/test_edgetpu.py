"""The Edge TPU path without an Edge TPU: the compiler-log parser on logs in
the compiler's documented format (tests/fixtures/edgetpu, written from
coral.ai/docs/edgetpu/compiler), the op pre-check's rules, and compilation
through a stand-in compiler (named fake: the real one is not installable here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.convert.converter import Artifact
from harness.edgetpu.compiler import Unavailable, add_edgetpu, edgetpu_variant, needs_uint8
from harness.edgetpu.logparse import parse_compiler_log, parse_op_table
from harness.edgetpu.precheck import precheck_ops
from harness.errors import ConversionError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "edgetpu"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_partial_mapping_counts_and_cpu_ops_from_stdout_and_log():
    log = parse_compiler_log(fixture("ssd_partial.stdout.txt"), fixture("ssd_partial_edgetpu.log"))
    assert log.version == "16.0.384591198" and log.succeeded and log.error is None
    assert (log.total_ops, log.ops_on_tpu, log.ops_on_cpu, log.subgraphs) == (110, 107, 3, 1)
    assert [(r.op, r.count, r.status) for r in log.cpu_rows] == [
        ("DEQUANTIZE", 2, "Operation is working on an unsupported data type"),
        ("CUSTOM", 1, "Operation is working on an unsupported data type"),
    ]
    assert sum(r.count for r in log.ops) == 110


def test_all_mapped_has_no_cpu_lines():
    log = parse_compiler_log(fixture("all_mapped.stdout.txt"))
    assert log.succeeded and (log.total_ops, log.ops_on_tpu, log.ops_on_cpu) == (31, 31, 0)


def test_table_printed_with_s_when_summary_lacks_counts():
    log = parse_compiler_log(fixture("two_subgraphs.s.txt"))
    assert (log.ops_on_tpu, log.ops_on_cpu, log.total_ops) == (19, 8, 27)
    statuses = {r.status for r in log.cpu_rows}
    assert {"More than one subgraph is not supported", "Operation version not supported", "Operation not supported"} == statuses


def test_failed_compilation_reports_the_error():
    log = parse_compiler_log(fixture("float_model.stdout.txt"))
    assert not log.succeeded and log.error.startswith("ERROR: Attempting to use a delegate")


def test_op_table_ignores_text_around_it():
    assert parse_op_table("no table here\n") == ()
    rows = parse_op_table("Operator   Count   Status\n\nADD   3   Mapped to Edge TPU\nsomething else\nMUL 1 x\n")
    assert [(r.op, r.count) for r in rows] == [("ADD", 3)]


def _t(index, name, dtype="int8", shape=(1, 8, 8, 4), signature=None):
    return index, {"index": index, "name": name, "dtype": dtype, "shape": list(shape),
                   "shape_signature": list(signature or shape)}


def test_precheck_rules_and_one_subgraph_from_the_start():
    tensors = dict([
        _t(0, "input", "uint8"), _t(1, "q"), _t(2, "conv"), _t(3, "weights"), _t(4, "deq", "float32"),
        _t(5, "post", "float32"), _t(6, "side"),
    ])
    tensors[0]["graph_input"] = True
    ops = [
        {"index": 0, "op_name": "QUANTIZE", "inputs": [0], "outputs": [1]},
        {"index": 1, "op_name": "CONV_2D", "inputs": [1, 3, -1], "outputs": [2]},
        {"index": 2, "op_name": "DEQUANTIZE", "inputs": [2], "outputs": [4]},
        {"index": 3, "op_name": "ADD", "inputs": [4, 4], "outputs": [5]},      # downstream of the CPU op
        {"index": 4, "op_name": "RELU", "inputs": [2], "outputs": [6]},         # independent branch stays
    ]
    report = precheck_ops(ops, tensors)
    assert (report.ops_on_tpu, report.ops_on_cpu) == (3, 2)
    reasons = {op: reason for op, _, reason in report.cpu_ops}
    assert reasons["DEQUANTIZE"] == "not in Coral's supported operations"
    assert "depends on an op on the CPU" in reasons["ADD"] and "#2 DEQUANTIZE" in reasons["ADD"]


@pytest.mark.parametrize(
    ("tensor", "expected"),
    [
        (_t(1, "act", "float32")[1], "float32, not 8-bit quantized"),
        (_t(1, "act", signature=(1, -1, 8, 4))[1], "dynamic shape"),
        (_t(1, "act", shape=(2, 8, 8, 4))[1], "up to 3 innermost mapped"),
    ],
)
def test_precheck_tensor_rules(tensor, expected):
    tensors = {0: dict(_t(0, "in")[1], graph_input=True), 1: tensor}
    report = precheck_ops([{"index": 0, "op_name": "ADD", "inputs": [0, 0], "outputs": [1]}], tensors)
    assert report.ops_on_cpu == 1 and expected in report.cpu_ops[0][2]


def _uint8_artifact(tmp_path: Path) -> Artifact:
    folder = tmp_path / "demo-uint8"
    folder.mkdir()
    (folder / "model.tflite").write_bytes(b"TFL3 not a real model")
    manifest = {"sha256": "a" * 64, "size_bytes": 21, "variant": "uint8",
                "inputs": [{"dtype": "uint8", "quantization": {"scale": 0.5, "zero_point": 3}}]}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return Artifact("demo", "uint8", folder / "model.tflite", folder / "manifest.json", "a" * 64, 21, manifest, False)


FAKE_COMPILER = """#!/bin/sh
# fake_edgetpu_compiler: stands in for Coral's x86-64 edgetpu_compiler, which
# is not installable here. Writes the documented outputs; compiles nothing.
out=.; while [ $# -gt 1 ]; do case "$1" in -o) out="$2"; shift;; esac; shift; done
base=$(basename "$1" .tflite)
cp "$1" "$out/${base}_edgetpu.tflite"
cp FIXTURES/ssd_partial_edgetpu.log "$out/${base}_edgetpu.log"
cat FIXTURES/ssd_partial.stdout.txt
"""


def test_compiled_variant_keeps_the_parsed_log(tmp_path):
    fake = tmp_path / "fake_edgetpu_compiler"
    fake.write_text(FAKE_COMPILER.replace("FIXTURES", str(FIXTURES)))
    fake.chmod(0o755)
    compiled = edgetpu_variant(_uint8_artifact(tmp_path), compiler=str(fake))
    assert isinstance(compiled, Artifact) and compiled.variant == "edgetpu"
    assert compiled.path.read_bytes() == b"TFL3 not a real model"
    assert compiled.input_quant.dtype == "uint8"  # same inputs as the uint8 it came from
    report = compiled.manifest["edgetpu"]
    assert report["source"] == "compiler" and (report["ops_on_tpu"], report["ops_on_cpu"]) == (107, 3)
    assert Path(report["log"]).is_file()  # the operation log is kept with the variant
    again = edgetpu_variant(compiled_base(compiled), compiler="/nonexistent")
    assert isinstance(again, Artifact)  # cached: the compiler is not run twice


def compiled_base(compiled: Artifact) -> Artifact:
    folder = compiled.path.parent.parent
    manifest = json.loads((folder / "manifest.json").read_text())
    return Artifact("demo", "uint8", folder / "model.tflite", folder / "manifest.json", "a" * 64, 21, manifest, True)


def test_failed_compilation_is_a_conversion_error(tmp_path):
    fake = tmp_path / "fake_edgetpu_compiler"
    fake.write_text(f"#!/bin/sh\ncat {FIXTURES / 'float_model.stdout.txt'}\nexit 1\n")
    fake.chmod(0o755)
    result = edgetpu_variant(_uint8_artifact(tmp_path), compiler=str(fake))
    assert isinstance(result, ConversionError) and "Attempting to use a delegate" in result.message


def test_without_compiler_the_variant_is_unavailable_with_the_precheck(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no edgetpu_compiler anywhere
    monkeypatch.delenv("EDGETPU_COMPILER", raising=False)
    monkeypatch.setattr("harness.edgetpu.compiler.precheck_model", lambda path: "precheck-of-" + path.name)
    result = edgetpu_variant(_uint8_artifact(tmp_path))
    assert isinstance(result, Unavailable) and result.kind == "compiler-missing"
    assert "edgetpu_compiler is not installed" in result.message and result.edgetpu == "precheck-of-model.tflite"


def test_edgetpu_is_made_from_uint8():
    assert needs_uint8(["fp32", "edgetpu"]) == ("fp32", "uint8")
    assert needs_uint8(["uint8", "edgetpu"]) == ("uint8",)
    failed = ConversionError("uint8 broke")
    out = add_edgetpu(["fp32", "edgetpu"], {"fp32": failed, "uint8": failed})
    assert list(out) == ["fp32", "edgetpu"] and "uint8 variant, which failed" in out["edgetpu"].message
