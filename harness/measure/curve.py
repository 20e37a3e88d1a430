"""selective-int8's curve on each target device: the latency of every list
the search kept (k = 0, and each k layers in float), so a report can say
what each recovered mAP point costs in milliseconds there.

The curve's models travel with the variant (harness.convert.selective
writes them next to its manifest; the run copies them into its artifacts)
and are timed on the device right after the variant's last round, each
with a short plan (CURVE_SHARE of the device's own, one round, no accuracy
pass: their mAP is the search's, on the calibration split). The points are
timed back to back on the same device under the same plan, so they compare
with each other; the variant's own record keeps the full measurement.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.agent.client import AgentClient, file_sha256
from harness.convert.converter import Artifact
from harness.dataset.preprocess import EvalInputs
from harness.fleet.profiles import MeasurementPlan
from harness.measure.pair import PairContext, run_round
from harness.measure.stats import summarize_ns
from harness.model.adapters import AdapterSpec
from harness.results.record import Record

# The share of the device's plan (runs and seconds) each curve point gets.
CURVE_SHARE = 0.25


def curve_plan(plan: MeasurementPlan) -> MeasurementPlan:
    """One round with a quarter of the device plan's minimums and cap."""
    return replace(
        plan,
        rounds=1,
        warmup_runs=max(1, min(plan.warmup_runs, 5)),
        warmup_seconds=plan.warmup_seconds * CURVE_SHARE,
        min_runs=max(1, int(plan.min_runs * CURVE_SHARE)),
        min_seconds=plan.min_seconds * CURVE_SHARE,
        max_seconds=plan.max_seconds * CURVE_SHARE,
    )


def time_points(ctx: PairContext, client: AgentClient, artifact: Artifact, inputs: EvalInputs | None, adapter: AdapterSpec) -> dict[int, float]:
    """p50 latency (ms) of each curve point's model on this device, by k."""
    short = replace(ctx, plan=curve_plan(ctx.plan))
    latencies: dict[int, float] = {}
    for point in (artifact.manifest.get("selective") or {}).get("curve") or ():
        if not point.get("file"):
            continue
        path = artifact.curve_model(point["file"])
        model = replace(artifact, path=path, sha256=file_sha256(path), size_bytes=path.stat().st_size)
        # round_index 1: the timed loop only, no accuracy pass.
        reply = run_round(short, client, model, inputs, adapter, round_index=1)
        latencies[int(point["k"])] = round(summarize_ns([int(v) for v in reply["samples_ns"]]).p50, 4)
    return latencies


def with_latencies(record: Record, latencies: dict[int, float], error: str | None = None) -> Record:
    """The record with this device's latency in each curve point."""
    quantization = record.quantization
    if quantization is None or not quantization.selection or not quantization.selection.get("curve"):
        return record
    device = record.device.name
    points = []
    for point in quantization.selection["curve"]:
        timed = dict(point.get("latency_p50_ms") or {})
        if int(point["k"]) in latencies:
            timed[device] = latencies[int(point["k"])]
        points.append({**point, "latency_p50_ms": timed})
    selection = {**quantization.selection, "curve": points}
    if error:
        selection["curve_error"] = error
    return replace(record, quantization=replace(quantization, selection=selection))


def merge_into_report(record: Record, run_dir: Path) -> None:
    """The run's copy of sensitivity.json gains this device's curve
    latencies (the cache's copy is shared between runs and left alone)."""
    quantization = record.quantization
    report_path = Path(quantization.sensitivity_report) if quantization and quantization.sensitivity_report else None
    curve = (quantization.selection or {}).get("curve") if quantization else None
    if not curve or report_path is None or not report_path.is_file() or run_dir.resolve() not in report_path.resolve().parents:
        return
    report: dict[str, Any] = json.loads(report_path.read_text())
    by_k = {int(p["k"]): p.get("latency_p50_ms") or {} for p in curve}
    for point in report.get("curve") or ():
        point["latency_p50_ms"] = {**(point.get("latency_p50_ms") or {}), **by_k.get(int(point["k"]), {})}
    report_path.write_text(json.dumps(report, indent=1))

