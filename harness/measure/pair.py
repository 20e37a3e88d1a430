"""One (device, model, variant) measurement: upload, benchmark, score.

Turns the agent's reply into a frozen Record; the runner decides order,
storage and what to do when a device fails.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from harness import __version__
from harness.adapters import AdapterSpec
from harness.agent_client import AgentClient, file_sha256
from harness.convert.converter import Artifact
from harness.dataset.coco import CocoDataset
from harness.evaluate import coco_scores, save_results, to_coco_results
from harness.measure.stats import summarize_ns
from harness.profiles import MeasurementPlan
from harness.results.files import device_dir, pair_stem
from harness.results.record import (
    Accuracy,
    DeviceInfo,
    LayerSensitivity,
    QuantizationInfo,
    EnvInfo,
    ErrorInfo,
    LatencyMs,
    MemoryMb,
    ModelInfo,
    Record,
    RuntimeInfo,
)


@dataclass(frozen=True)
class PairContext:
    run_id: str
    run_dir: Path
    device_info: DeviceInfo
    threads: int | None
    plan: MeasurementPlan
    runtime: str | None  # preferred runtime, None = the agent's first


def measure_pair(
    ctx: PairContext,
    client: AgentClient,
    artifact: Artifact,
    inputs_npy: Path | None,
    dataset: CocoDataset | None,
    category_ids: tuple[int, ...] | None,
    adapter: AdapterSpec,
) -> tuple[Record, list[int]]:
    remote_model = client.ensure_file(artifact.path, artifact.sha256, ".tflite")
    remote_inputs = client.ensure_file(inputs_npy, file_sha256(inputs_npy), ".npy") if inputs_npy else None
    remote_anchors = client.ensure_file(adapter.anchors, file_sha256(adapter.anchors), ".npy") if adapter.anchors else None
    plan = ctx.plan
    reply = client.call(
        {
            "command": "benchmark",
            "model": remote_model,
            "inputs": remote_inputs,
            **adapter.request(remote_anchors),
            "threads": ctx.threads,
            "runtime": ctx.runtime,
            "warmup_runs": plan.warmup_runs,
            "warmup_seconds": plan.warmup_seconds,
            "min_runs": plan.min_runs,
            "min_seconds": plan.min_seconds,
            "max_seconds": plan.max_seconds,
            "ci_rel_tol": plan.ci_rel_tol,
        }
    )
    samples_ns = [int(v) for v in reply["samples_ns"]]
    accuracy = None
    if dataset is not None and category_ids is not None and reply.get("detections"):
        accuracy = _score(ctx, artifact, dataset, category_ids, reply["detections"])
    device_info = _with_runtime(ctx.device_info, reply)
    record = Record(
        run_id=ctx.run_id,
        harness_version=__version__,
        device=device_info,
        model=ModelInfo(
            name=artifact.model,
            variant=artifact.variant,
            sha256=artifact.sha256,
            size_bytes=artifact.size_bytes,
            artifact=str(artifact.path),
        ),
        status="ok",
        latency_ms=_latency(samples_ns, reply.get("stop_reason")),
        load_ms=reply.get("load_ms"),
        first_invoke_ms=reply.get("first_invoke_ms"),
        threads=reply.get("threads"),
        memory_mb=MemoryMb(**reply["memory_mb"], method=reply.get("memory_method")),
        accuracy=accuracy,
        env=_env(reply.get("env_before") or {}, reply.get("env_after") or {}),
        quantization=quantization_info(artifact),
    )
    return record, samples_ns


def quantization_info(artifact: Artifact) -> QuantizationInfo:
    """What the manifest says about how the variant was made and who loads it."""
    manifest = artifact.manifest
    selective = manifest.get("selective") or {}
    training = manifest.get("qat")
    report = artifact.path.with_name(f"{artifact.model}-{artifact.variant}.sensitivity.json")
    if not report.is_file():
        report = artifact.sensitivity_path  # type: ignore[assignment]
    return QuantizationInfo(
        loadability=dict(manifest.get("loadability") or {}),
        runtime_versions=dict(manifest.get("runtime_versions") or {}),
        method=_method(manifest),
        top_layers=tuple(LayerSensitivity(**layer) for layer in selective.get("top_layers") or ()),
        denylist=tuple(selective.get("denylist") or ()),
        sensitivity_report=str(report.resolve()) if report else None,
        selection={k: selective[k] for k in ("denylist_source", "fp32_calibration_map", "search", "stop_reason", "max_map_drop") if k in selective}
        or None,
        training=training,
    )


def _method(manifest: dict[str, Any]) -> str | None:
    training, selective = manifest.get("qat"), manifest.get("selective")
    if training:
        return (
            f"quantization-aware fine-tuning: {training['steps']} steps of {training['batch_size']} images "
            f"({training['epochs']} epochs of {training['images']}), lr {training['learning_rate']:g}, "
            f"loss {training['loss']}, {training['seconds']} s"
        )
    if selective:
        kept = len(selective.get("denylist") or ())
        how = "from the recipe" if selective.get("denylist_source") == "recipe" else "found automatically"
        return f"int8 with {kept} layer(s) kept in float (denylist {how})" + (
            f"; {selective['stop_reason']}" if selective.get("stop_reason") else ""
        )
    return manifest.get("summary")


def skipped_record(ctx: PairContext, artifact: Artifact, reason: str) -> Record:
    """A pair that cannot run on this device: recorded with why, never dropped."""
    return replace(
        failed_record(ctx, artifact.model, artifact.variant, "unloadable", reason, artifact), status="skipped"
    )


def failed_record(ctx: PairContext, model: str, variant: str, kind: str, message: str, artifact: Artifact | None = None) -> Record:
    return Record(
        run_id=ctx.run_id,
        harness_version=__version__,
        device=ctx.device_info,
        model=ModelInfo(
            name=model,
            variant=variant,
            sha256=artifact.sha256 if artifact else None,
            size_bytes=artifact.size_bytes if artifact else None,
            artifact=str(artifact.path) if artifact else None,
        ),
        status="failed",
        error=ErrorInfo(kind=kind, message=message),
        threads=ctx.threads,
        quantization=quantization_info(artifact) if artifact else None,
    )


def _score(
    ctx: PairContext, artifact: Artifact, dataset: CocoDataset, category_ids: tuple[int, ...], detections: list[dict[str, Any]]
) -> Accuracy:
    results = to_coco_results(dataset, detections, category_ids)
    path = device_dir(ctx.run_dir, ctx.device_info.name) / f"{pair_stem(artifact.model, artifact.variant)}.detections.json"
    save_results(path, results)
    scores = coco_scores(dataset.annotations_json, results, [img.id for img in dataset.images])
    return Accuracy(
        dataset=dataset.name,
        annotations=str(dataset.annotations_json.resolve()),
        detections=str(path.resolve()),
        n_images=len(dataset.images),
        map=scores.map,
        map50=scores.map50,
        map75=scores.map75,
    )


def _latency(samples_ns: list[int], stop_reason: str | None) -> LatencyMs:
    return LatencyMs(**asdict(summarize_ns(samples_ns)), stop_reason=stop_reason)


def _env(before: dict[str, Any], after: dict[str, Any]) -> EnvInfo:
    flags = [v for v in (before.get("throttled"), after.get("throttled")) if v is not None]
    return EnvInfo(
        temperature_c_before=before.get("temperature_c"),
        temperature_c_after=after.get("temperature_c"),
        governor=before.get("governor"),
        throttled=any(flags) if flags else None,
        cpu_mhz=before.get("cpu_mhz"),
        load_1m_before=before.get("load_1m"),
    )


def _with_runtime(info: DeviceInfo, reply: dict[str, Any]) -> DeviceInfo:
    runtime = reply.get("runtime") or {}
    platform = reply.get("platform") or {}
    return DeviceInfo(
        name=info.name,
        profile=info.profile,
        arch=platform.get("arch", info.arch),
        os=platform.get("os", info.os),
        python=platform.get("python", info.python),
        runtime=RuntimeInfo(runtime["name"], runtime["version"]) if runtime else info.runtime,
        cpu_count=platform.get("cpu_count", info.cpu_count),
    )
