"""The per-operator profile (issue 20): the agent's reading of the runtime's
profiler events, the record's copy of it, and the report's views."""

from __future__ import annotations

import dataclasses
import json

import pytest

from rich.console import Console

from harness.report.markdown import render_markdown
from harness.report.terminal import render_terminal
from harness.report.write import render
from harness.results.op_profile import OpProfile, by_type, op_family, versus_fp32
from harness.results.record import EdgeTpuReport, Record
from tests.store_records import make_record

START = "LiteRT::Run[buffer registration]"
CONV = "Convolution (NHWC, F32) IGEMM"
FC = "Fully Connected (NC, F32) GEMM"


def events_of_runs(runs: list[list[tuple[str, int, int, int]]]) -> list[tuple]:
    """(tag, event_type, elapsed µs, metadata1, metadata2) as the agent reads
    them from ProfiledEventData: per run the start event, LiteRT's `Invoke`,
    the operators, and the telemetry `Invoke` whose "elapsed" is a status code."""
    out = [("Invoke", 1, 999, 0, 0)]  # before any run (a warm-up leftover): not a run's
    for ops in runs:
        out.append((START, 1, 20, 0, 0))
        out.append(("Invoke", 1, sum(op[2] for op in ops), 0, 0))
        out += [(tag, kind, elapsed, meta1, 0) for tag, kind, elapsed, meta1 in ops]
        out.append(("Invoke", 32, 4294967296, 0, 0))
    return out


RUNS = [
    [(CONV, 8, 100, 0), (FC, 8, 50, 1), ("TFLite_Detection_PostProcess", 2, 10, 41)],
    [(CONV, 8, 300, 0), (FC, 8, 50, 1), ("TFLite_Detection_PostProcess", 2, 30, 41)],
    [(CONV, 8, 200, 0), (FC, 8, 60, 1), ("TFLite_Detection_PostProcess", 2, 20, 41)],
]


def test_events_become_one_entry_per_operator_with_its_time_in_each_run(agent):
    reply = agent.summarise_op_events(events_of_runs(RUNS), {(0, 41): "StatefulPartitionedCall:0", (0, 0): "conv_out", (1, 41): "another subgraph's"})
    assert reply["status"] == "ok" and reply["runs"] == 3
    conv, fc, post = reply["ops"]  # run order
    assert (conv["op_type"], conv["backend"], conv["runs_us"], conv["times_called"]) == (CONV, "XNNPACK", [100, 300, 200], 3)
    # XNNPACK's index is its own, not a TFLite node: no node, no tensor name.
    assert conv["node"] is None and conv["delegate_index"] == 0 and conv["tensor"] is None
    assert (post["backend"], post["node"], post["tensor"], post["runs_us"]) == ("CPU kernels", 41, "StatefulPartitionedCall:0", [10, 30, 20])
    assert fc["runs_us"] == [50, 50, 60]


def test_the_host_computes_per_operator_statistics_over_every_round(agent):
    first = agent.summarise_op_events(events_of_runs(RUNS[:2]), {(0, 41): "out"})
    second = agent.summarise_op_events(events_of_runs(RUNS[2:] + [[(CONV, 8, 400, 0)]]), {(0, 41): "out"})
    profile = OpProfile.from_replies([{**first, "wall_us": {"p50": 400.0}}, {**second, "wall_us": {"p50": 300.0}}])
    assert profile is not None and profile.ok and profile.runs == 4
    # Per-run sums 160, 380, 280, 400 (the last run had only the convolution).
    assert (profile.per_run_sum_p50_us, profile.per_run_sum_mean_us, profile.wall_p50_us) == (330.0, 305.0, 350.0)
    conv, fc, post = profile.ops
    assert (conv.mean_us, conv.p50_us, conv.times_called) == (250.0, 250.0, 4)
    assert (fc.mean_us, fc.p50_us, fc.times_called) == (40.0, 50.0, 3)  # 0 in the run that did not call it
    assert (post.node, post.tensor) == (41, "out")
    assert sum(op.share or 0 for op in profile.ops) == pytest.approx(1.0, abs=1e-4)


def test_an_operator_called_twice_in_a_run_sums_within_the_run(agent):
    runs = [[(CONV, 8, 10, 0), (CONV, 8, 30, 0)], [(CONV, 8, 20, 0), (CONV, 8, 20, 0)]]
    (conv,) = agent.summarise_op_events(events_of_runs(runs), {})["ops"]
    assert conv["times_called"] == 4 and conv["runs_us"] == [40, 40]


def test_one_unavailable_round_makes_the_profile_unavailable():
    ok = {"status": "ok", "runs": 1, "ops": [{"op_type": CONV, "backend": "XNNPACK", "times_called": 1, "runs_us": [5]}]}
    profile = OpProfile.from_replies([ok, {"status": "unavailable", "reason": "why"}])
    assert profile == OpProfile(status="unavailable", reason="why")
    assert OpProfile.from_replies([]) is None  # not asked for


def test_no_operator_events_is_a_failure_of_the_profile(agent):
    with pytest.raises(agent.AgentFailure, match="no operator events"):
        agent.summarise_op_events([(START, 1, 20, 0, 0), ("Invoke", 1, 100, 0, 0)], {})


@pytest.mark.parametrize(
    ("name", "version", "delegate", "says"),
    [
        ("tflite-runtime", "2.14.0", None, "tflite-runtime 2.14.0 has no per-operator profiler API"),
        ("tensorflow", "2.21.0", None, "tensorflow 2.21.0 has no per-operator profiler API"),
        ("ai-edge-litert", "2.2.0", None, "ai-edge-litert 2.2.0: the profiler's C structs were checked for 2.3.0 only"),
        ("ai-edge-litert", "2.3.0", object(), "the edgetpu delegate cannot be attached"),
    ],
)
def test_runtimes_without_the_checked_route_are_unavailable_with_the_reason(agent, name, version, delegate, says):
    device = {"runtime_name": name, "runtime_version": version, "delegate": delegate,
              "delegate_spec": {"name": "edgetpu"} if delegate else None, "runtime": None}
    library, reason = agent.op_profile_route(device)
    assert library is None and says in reason


def test_a_profile_request_out_of_range_is_refused(agent):
    for runs in (-1, 10**6, True, 2.5):
        with pytest.raises(agent.AgentFailure, match="op_profile_runs must be"):
            agent.op_profile({"op_profile_runs": runs}, {}, None)
    with pytest.raises(agent.AgentFailure, match="comes with op_profile_min_seconds and op_profile_max_seconds"):
        agent.op_profile({"op_profile_runs": 5}, {}, None)  # the host sends its plan; the agent has no default
    assert agent.op_profile({}, {}, None) is None  # not asked for: no pass, no field


def reply(ops: list[tuple[str, str, float]]) -> dict:
    """An agent reply of 4 runs in which each operator took the same time."""
    return {"status": "ok", "runs": 4, "threads": 1, "wall_us": {"p50": sum(us for _, _, us in ops) + 50},
            "ops": [{"op_type": t, "backend": b, "times_called": 4, "node": None, "delegate_index": i, "tensor": None,
                     "runs_us": [int(us)] * 4} for i, (t, b, us) in enumerate(ops)]}


FP32 = reply([(CONV, "XNNPACK", 1200.0), (FC, "XNNPACK", 900.0), ("Convolution (NHWC, F32) DWConv", "XNNPACK", 300.0),
              ("Sigmoid (NC)", "XNNPACK", 3.0), ("TFLite_Detection_PostProcess", "CPU kernels", 100.0)])
INT8 = reply([("Convolution (NHWC, QC8) IGEMM", "XNNPACK", 330.0), ("Fully Connected (NC, QS8, QC8W) GEMM", "XNNPACK", 380.0),
              ("Convolution (NHWC, QC8) DWConv", "XNNPACK", 310.0), ("Invalid Unary Op", "XNNPACK", 1.0),
              ("TFLite_Detection_PostProcess", "CPU kernels", 100.0)])


def with_profile(variant: str, profile: dict | None, p50_ms: float = 2.5) -> Record:
    return dataclasses.replace(make_record(variant=variant, p50_ms=p50_ms), op_profile=OpProfile.from_replies([profile] if profile else []))


def test_the_record_keeps_the_profile_through_json():
    record = with_profile("int8", INT8)
    again = Record.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again == record and again.op_profile is not None and again.op_profile.ops[0].backend == "XNNPACK"
    assert Record.from_dict(make_record().to_dict()).op_profile is None  # a record from before issue 20


def test_summary_by_type_and_variant_against_fp32():
    assert op_family("Fully Connected (NC, QS8, QC8W) GEMM") == "Fully Connected GEMM"
    fp32, int8 = OpProfile.from_replies([FP32]), OpProfile.from_replies([INT8])
    assert fp32 is not None and int8 is not None
    assert [t.op_type for t in by_type(fp32)][:2] == ["Convolution IGEMM", "Fully Connected GEMM"]
    rows = {r.op_type: r for r in versus_fp32(int8, fp32)}
    assert rows["Convolution IGEMM"].ratio == pytest.approx(330 / 1200, abs=1e-3)
    assert rows["TFLite_Detection_PostProcess"].ratio == 1.0
    assert rows["Sigmoid"].variant_us is None and rows["Invalid Unary Op"].fp32_us is None  # no pairing invented


def test_reports_show_both_views_and_say_unavailable_once():
    records = [with_profile("fp32", FP32), with_profile("int8", INT8, p50_ms=1.2),
               with_profile("fp16", {"status": "unavailable", "reason": "tflite-runtime 2.14.0 has no per-operator profiler API"}),
               with_profile("uint8", {"status": "unavailable", "reason": "tflite-runtime 2.14.0 has no per-operator profiler API"})]
    md = render_markdown(records, title="t")
    assert "Per-operator profile: demo on `local`" in md
    assert "int8 vs fp32 per op type" in md and "| Convolution IGEMM | 1,200 | 330 | 0.28× |" in md
    assert md.count("no per-operator profiler API") == 1
    assert "per-operator profile unavailable for fp16, uint8" in md
    assert "operators sum to 2.50 ms per run" in md
    html = render(records, "html", title="t")
    assert "Per-operator profile" in html and "int8 vs fp32 per op type" in html and html.count("no per-operator profiler API") == 1
    console = Console(record=True, width=200)
    render_terminal(records, console, title="t")
    terminal = console.export_text()
    assert "op type µs per run against fp32" in terminal and "330 (0.28×)" in terminal
    assert "int8: by op type Fully Connected GEMM" in terminal and terminal.count("no per-operator profiler API") == 1
    data = {r["model"]["variant"]: r for r in json.loads(render(records, "json", title="t"))}
    assert data["int8"]["op_profile_views"]["versus_fp32"][0]["op_type"] == "Convolution IGEMM"
    assert data["fp16"]["op_profile"] == {**data["fp16"]["op_profile"], "status": "unavailable"}
    assert "op_profile_views" not in data["fp16"]


def test_the_edge_tpu_compilers_op_mapping_sits_beside_the_profile():
    edgetpu = dataclasses.replace(
        with_profile("edgetpu", {"status": "unavailable", "reason": "the edgetpu delegate cannot be attached to the profiled pass"}),
        edgetpu=EdgeTpuReport("compiler", 60, 2, (("TFLite_Detection_PostProcess", 1, "custom op"),), "16.0"),
    )
    md = render_markdown([with_profile("fp32", FP32), edgetpu], title="t")
    block = md[md.index("Per-operator profile"):]
    assert "edgetpu: edgetpu_compiler 16.0: 60 of 62 ops on the Edge TPU, 2 on the CPU" in block
    assert "per-operator profile unavailable for edgetpu: the edgetpu delegate cannot be attached" in block


def test_a_run_without_profiles_has_no_profile_block():
    assert "Per-operator profile" not in render_markdown([make_record(), make_record(variant="int8")], title="t")
