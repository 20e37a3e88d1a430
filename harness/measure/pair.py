"""One (device, model, variant) measurement: upload, benchmark, score.

Turns the agent's reply into a frozen Record; the runner decides order,
storage and what to do when a device fails.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from harness import __version__
from harness.agent_client import AgentClient, file_sha256
from harness.convert.converter import Artifact
from harness.dataset.coco import CocoDataset
from harness.evaluate import coco_scores, save_results, to_coco_results
from harness.measure.stats import summarize_ns
from harness.profiles import MeasurementPlan, Profile
from harness.results.files import device_dir, pair_stem
from harness.results.record import (
    Accuracy,
    DeviceInfo,
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
    # The device's profile: telemetry sources, affinity, cool-down, delegates.
    profile: Profile | None = None


def delegate_for(profile: Profile | None, artifact: Artifact) -> dict[str, str] | None:
    """The delegate a variant needs on this device (the Edge TPU's library
    for `edgetpu`), or None for the runtime's CPU kernels."""
    from harness.variants import VARIANTS

    if profile is None:
        return None
    spec = VARIANTS.get(artifact.variant)
    for capability in sorted(spec.requires if spec else ()):
        if capability in profile.delegates:
            return {"name": capability, "library": profile.delegates[capability]}
    return None


def _profile_request(profile: Profile | None, artifact: Artifact) -> dict[str, Any]:
    if profile is None:
        return {}
    request: dict[str, Any] = {
        "telemetry": profile.telemetry_request(),
        "affinity": list(profile.affinity) if profile.affinity else None,
        "delegate": delegate_for(profile, artifact),
        "cooldown": asdict(profile.cooldown),
    }
    if profile.measurement.max_eval_images:
        request["max_eval_images"] = profile.measurement.max_eval_images
    return request


def measure_pair(
    ctx: PairContext,
    client: AgentClient,
    artifact: Artifact,
    inputs_npy: Path | None,
    dataset: CocoDataset | None,
    category_ids: tuple[int, ...] | None,
    adapter: str,
) -> tuple[Record, list[int]]:
    remote_model = client.ensure_file(artifact.path, artifact.sha256, ".tflite")
    remote_inputs = client.ensure_file(inputs_npy, file_sha256(inputs_npy), ".npy") if inputs_npy else None
    plan = ctx.plan
    reply = client.call(
        {
            "command": "benchmark",
            "model": remote_model,
            "inputs": remote_inputs,
            "adapter": adapter,
            "threads": ctx.threads,
            "runtime": ctx.runtime,
            "warmup_runs": plan.warmup_runs,
            "warmup_seconds": plan.warmup_seconds,
            "min_runs": plan.min_runs,
            "min_seconds": plan.min_seconds,
            "max_seconds": plan.max_seconds,
            "ci_rel_tol": plan.ci_rel_tol,
            **_profile_request(ctx.profile, artifact),
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
        env=_env(reply.get("env_before") or {}, reply.get("env_after") or {}, ctx.profile, reply.get("cooldown")),
        edgetpu=_edgetpu_report(artifact),
    )
    return record, samples_ns


def _edgetpu_report(artifact: Artifact) -> Any:
    from harness.edgetpu.compiler import report_of

    return report_of(artifact)


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
    )


def _score(
    ctx: PairContext, artifact: Artifact, dataset: CocoDataset, category_ids: tuple[int, ...], detections: list[dict[str, Any]]
) -> Accuracy:
    if len(detections) < len(dataset.images):  # the profile scores only the first images
        dataset = replace(dataset, images=dataset.images[: len(detections)])
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


def _env(before: dict[str, Any], after: dict[str, Any], profile: Profile | None, cooldown: dict | None) -> EnvInfo:
    flags = [v for v in (before.get("throttled"), after.get("throttled")) if v is not None]
    reasons = list(dict.fromkeys([*(before.get("throttle_reasons") or []), *(after.get("throttle_reasons") or [])]))
    return EnvInfo(
        temperature_c_before=before.get("temperature_c"),
        temperature_c_after=after.get("temperature_c"),
        governor=before.get("governor"),
        throttled=any(flags) if flags else None,
        cpu_mhz=before.get("cpu_mhz"),
        load_1m_before=before.get("load_1m"),
        throttle_reasons=tuple(reasons),
        throttling_source=before.get("throttling_source"),
        temperature_source=before.get("temperature_source"),
        expected_governor=profile.governor if profile else None,
        accelerator_temperature_c_after=after.get("accelerator_temperature_c"),
        cooldown_s=(cooldown or {}).get("waited_s"),
    )


def _with_runtime(info: DeviceInfo, reply: dict[str, Any]) -> DeviceInfo:
    runtime = reply.get("runtime") or {}
    delegate = reply.get("delegate") or {}
    platform = reply.get("platform") or {}
    return DeviceInfo(
        name=info.name,
        profile=info.profile,
        arch=platform.get("arch", info.arch),
        os=platform.get("os", info.os),
        python=platform.get("python", info.python),
        runtime=RuntimeInfo(runtime["name"], runtime["version"], delegate.get("name"), delegate.get("library"))
        if runtime
        else info.runtime,
        cpu_count=platform.get("cpu_count", info.cpu_count),
        family=info.family,
        emulated=info.emulated,
    )
