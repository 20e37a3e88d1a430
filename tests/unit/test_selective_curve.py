"""Pure pieces of selective-int8's automatic search: the whole-model
ranking (where error enters, and which nodes share its scale), the search
over candidate groups, and the curve's plumbing into records and reports."""

from __future__ import annotations

import json
from dataclasses import replace
from html import escape

import pytest

from harness.convert import selective, sensitivity
from harness.convert.sensitivity import Node
from harness.fleet.profiles import MeasurementPlan
from harness.measure import curve
from harness.model.recipe import SelectiveOptions
from harness.results.record import DeviceInfo, ModelInfo, QuantizationInfo, Record

SHARED = (0.627, -128)  # the boxes' scale, which the output concatenation imposes
# A YOLO-style head in miniature: one level's scores requantised to the
# boxes' scale by the reshape after the sigmoid, then concatenated with the
# boxes and transposed to the output.
GRAPH = [
    Node("cls", "CONV_2D", ("features",)),
    Node("sigmoid", "LOGISTIC", ("cls",)),
    Node("scores", "RESHAPE", ("sigmoid",)),
    Node("ltrb", "CONV_2D", ("features",)),
    Node("clip", "RELU", ("ltrb",)),
    Node("boxes", "RESHAPE", ("clip",)),
    Node("head", "CONCATENATION", ("boxes", "scores")),
    Node("output", "TRANSPOSE", ("head",)),
]
ERRORS = {"cls": 0.02, "sigmoid": 0.03, "scores": 0.35, "ltrb": 0.01, "clip": 0.011, "boxes": 0.011, "head": 0.05, "output": 0.05}
SCALES = {"cls": (0.42, 10), "sigmoid": (1 / 256, -128), "scores": SHARED, "ltrb": (0.7, -128), "clip": SHARED,
          "boxes": SHARED, "head": SHARED, "output": SHARED}


def test_the_node_where_the_shared_scale_enters_ranks_first_with_what_carries_it():
    ranked = sensitivity.rank(GRAPH, ERRORS, SCALES)
    first = ranked[0]
    assert first.node == "scores" and first.added == pytest.approx(0.32)
    # The concatenation and the transpose would quantise the float scores
    # back to 0.627 per step: they are kept float with it.
    assert first.group == ("scores", "head", "output")
    by_node = {r.node: r for r in ranked}
    assert by_node["head"].added < 0 and by_node["output"].added == 0  # pass-through: no error of their own


def test_a_clamp_follows_only_when_it_kept_the_producer_scale():
    consumers = {"ltrb": [GRAPH[4]], "clip": [GRAPH[5]], "boxes": [GRAPH[6]], "head": [GRAPH[7]]}
    assert sensitivity.followers_of("ltrb", consumers, SCALES) == ()  # clip has another scale than ltrb
    scales = dict(SCALES, ltrb=SHARED)
    assert sensitivity.followers_of("ltrb", consumers, scales) == ("clip", "boxes", "head", "output")


def test_candidate_groups_skip_covered_groups_and_nodes_that_add_no_error():
    ranked = [
        sensitivity.NodeError("a", "RESHAPE", 0.4, 0.3, ("c", "d")),
        sensitivity.NodeError("c", "CONCATENATION", 0.2, 0.1, ("d",)),  # inside a's group already
        sensitivity.NodeError("b", "RESHAPE", 0.3, 0.2, ("c", "d")),
        sensitivity.NodeError("e", "CONV_2D", 0.1, 0.0),
    ]
    assert sensitivity.candidate_groups(ranked, limit=10) == [("a", "c", "d"), ("b", "c", "d")]
    assert sensitivity.candidate_groups(ranked, limit=1) == [("a", "c", "d")]


def _scorer(maps: dict[frozenset[str], float]):
    tried: list[tuple[str, ...]] = []

    def score(denylist: selective.Denylist) -> float:
        tried.append(denylist.nodes)
        return maps[frozenset(denylist.nodes)]

    return score, tried


def test_search_keeps_groups_that_help_drops_the_others_and_stops_within_the_drop():
    groups = [("box", "head", "out"), ("s4", "cat", "head", "out"), ("s3", "cat", "head", "out"), ("s5", "cat", "head", "out")]
    maps = {
        frozenset(): 0.11,
        frozenset({"box", "head", "out"}): 0.11,  # no gain: dropped
        frozenset({"s4", "cat", "head", "out"}): 0.12,
        frozenset({"s4", "cat", "head", "out", "s3"}): 0.205,  # within 0.01 of 0.21: stop
    }
    score, tried = _scorer(maps)
    result = selective.search_groups(groups, SelectiveOptions(max_map_drop=0.01, max_layers=8), 0.21, score)
    assert result.denylist.nodes == ("s4", "cat", "head", "out", "s3")
    assert [(s.layers, s.kept) for s in result.steps] == [(0, True), (3, False), (4, True), (5, True)]
    assert len(tried) == 4 and "within max_map_drop" in result.stop_reason


def test_search_never_tries_a_list_longer_than_max_layers():
    groups = [("a", "b", "c"), ("d",)]
    maps = {frozenset(): 0.1, frozenset({"d"}): 0.1}
    score, tried = _scorer(maps)
    result = selective.search_groups(groups, SelectiveOptions(max_map_drop=0.0, max_layers=2), 0.2, score)
    assert tried == [(), ("d",)] and result.denylist.size == 0
    assert "max_layers 2" in result.stop_reason


def test_the_curve_is_the_kept_path_with_sizes_and_files():
    steps = (selective.SearchStep(0, 0.11), selective.SearchStep(3, 0.11, ("x", "y", "z"), kept=False),
             selective.SearchStep(1, 0.18, ("s",)))
    models = {(): b"\0" * 10, ("x", "y", "z"): b"\0" * 12, ("s",): b"\0" * 11}
    points = selective.curve(selective.SearchResult(selective.Denylist(("s",)), steps, "done"), models)
    assert [(p["k"], p["map"], p["size_bytes"], p["file"]) for p in points] == [(0, 0.11, 10, "curve-k0.tflite"), (1, 0.18, 11, "curve-k1.tflite")]
    assert selective.curve_files(points, models) == {"curve-k0.tflite": models[()], "curve-k1.tflite": models[("s",)]}
    assert selective.curve(None, models) == []


def _record(device: str, sensitivity_report: str | None = None) -> Record:
    points = [{"k": 0, "layers": [], "map": 0.11, "size_bytes": 10, "file": "curve-k0.tflite", "latency_p50_ms": {}},
              {"k": 5, "layers": ["s"], "map": 0.18, "size_bytes": 11, "file": "curve-k5.tflite", "latency_p50_ms": {}}]
    quantization = QuantizationInfo(sensitivity_report=sensitivity_report, selection={"curve": points})
    return Record(run_id="r", device=DeviceInfo(device, "x86-cpu"), model=ModelInfo("m", "selective-int8"), status="ok",
                  quantization=quantization)


def test_each_device_adds_its_latency_and_the_runs_report_gathers_every_device(tmp_path):
    pi = curve.with_latencies(_record("pi"), {0: 4.0, 5: 4.5})
    x86 = curve.with_latencies(_record("x86"), {0: 1.0}, error="agent failed on k5")
    assert x86.quantization.selection["curve_error"] == "agent failed on k5"
    assert [p["latency_p50_ms"] for p in x86.quantization.selection["curve"]] == [{"x86": 1.0}, {}]
    report = tmp_path / "artifacts" / "m.sensitivity.json"
    report.parent.mkdir()
    report.write_text(json.dumps({"curve": [{"k": 0}, {"k": 5}]}))
    for record in (pi, x86):
        curve.merge_into_report(replace(record, quantization=replace(record.quantization, sensitivity_report=str(report))), tmp_path)
    assert [p["latency_p50_ms"] for p in json.loads(report.read_text())["curve"]] == [{"pi": 4.0, "x86": 1.0}, {"pi": 4.5}]
    round_trip = Record.from_dict(json.loads(json.dumps(pi.to_dict())))
    assert round_trip.quantization.selection["curve"][1]["latency_p50_ms"] == {"pi": 4.5}


def test_only_the_runs_copy_of_the_report_gains_latencies(tmp_path):
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    for folder in (run_dir / "artifacts", cache):
        folder.mkdir(parents=True)
        (folder / "m.sensitivity.json").write_text(json.dumps({"curve": [{"k": 0, "latency_p50_ms": {}}, {"k": 5, "latency_p50_ms": {}}]}))
    for folder in (run_dir / "artifacts", cache):
        record = curve.with_latencies(_record("pi", str(folder / "m.sensitivity.json")), {0: 4.0, 5: 4.5})
        curve.merge_into_report(record, run_dir)
    written = json.loads((run_dir / "artifacts" / "m.sensitivity.json").read_text())
    assert [p["latency_p50_ms"] for p in written["curve"]] == [{"pi": 4.0}, {"pi": 4.5}]
    assert json.loads((cache / "m.sensitivity.json").read_text())["curve"][0]["latency_p50_ms"] == {}


def test_the_curve_plan_is_one_short_round_of_the_devices_plan():
    plan = MeasurementPlan()
    short = curve.curve_plan(plan)
    assert short.rounds == 1 and short.min_runs == plan.min_runs // 4
    assert short.min_seconds < plan.min_seconds and short.max_seconds >= short.min_seconds


def _selective_record(device: str, node: str) -> Record:
    from harness.results.record import Accuracy, LatencyMs

    latency = LatencyMs(n=100, min=1, p50=1, p90=1, p99=1, max=1, mean=1, std=0, p90_ci=(1, 1))
    points = [{"k": 0, "layers": [], "map": 0.114, "size_bytes": 873992, "latency_p50_ms": {device: 0.98}},
              {"k": 2, "layers": [f"model/heads/{node}/Reshape", "StatefulPartitionedCall:0"], "map": 0.186,
               "size_bytes": 873936, "latency_p50_ms": {device: 1.06}}]
    return Record(
        run_id="r", device=DeviceInfo(device, "x86-cpu"), model=ModelInfo("m", "selective-int8", size_bytes=873936),
        status="ok", latency_ms=latency, accuracy=Accuracy("d", "a", "x", 10, 0.175, 0.5, 0.3),
        quantization=QuantizationInfo(denylist=(f"model/heads/{node}/Reshape",), selection={"curve": points, "top_nodes": [
            {"layer": node, "op_name": "RESHAPE", "error": 0.354, "added": 0.249, "node": f"model/heads/{node}/Reshape", "followers": 3}]}),
    )


def test_every_report_format_shows_the_curve_with_names_escaped():
    from harness.report.html import render_html
    from harness.report.markdown import render_markdown

    hostile = "<img src=x onerror=alert(1)>"
    record = _selective_record("pi-<1>", hostile)
    html = render_html([record], title="t")
    assert "selective-int8 search on pi-&lt;1&gt;" in html and "calibration mAP" in html
    assert hostile not in html and escape(hostile) in html
    assert "k=2" in html and "1.06" in html
    md = render_markdown([record], title="t")
    assert "| k | layers in float | calibration mAP | size MB | p50 ms |" in md
    assert "| 2 |" in md and "0.186" in md and "1.06" in md
    for text, caption in ((md, "Where int8's error enters"), (html, escape("Where int8's error enters"))):
        assert caption in text and "+0.249" in text  # the whole-model ranking
