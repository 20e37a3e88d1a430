"""One (device, model, variant) measurement: upload, benchmark, score.

Turns the agent's reply into a frozen Record; the runner decides order,
storage and what to do when a device fails.
"""

from __future__ import annotations

import posixpath
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from harness import __version__
from harness.heap import release_free_memory
from harness.model.adapters import AdapterSpec
from harness.agent.client import AgentClient, file_sha256
from harness.agent.detections import DetectionList, DetectionsFile, DetectionSource
from harness.convert.converter import Artifact
from harness.dataset.coco import CocoDataset
from harness.dataset.labelcheck import LandingCounter
from harness.dataset.preprocess import EvalInputs, InputSpec
from harness.dataset.scoring import SCORING_CHUNK_IMAGES, ChunkedCocoEval, ResultsWriter, in_image_coordinates, to_coco_results
from harness.model.labels import ClassMap
from harness.measure.energy import energy_totals
from harness.measure.stats import summarize_ns
from harness.fleet.energy import EnergySource
from harness.fleet.profiles import MeasurementPlan, Profile
from harness.results.files import device_dir, pair_stem
from harness.results.op_profile import OpProfile
from harness.results.record import (
    Accuracy,
    AppLatency,
    DeviceInfo,
    EnergyInfo,
    EdgeTpuReport,
    LayerSensitivity,
    QuantizationInfo,
    EnvInfo,
    ErrorInfo,
    MemoryMb,
    ModelInfo,
    Record,
    RuntimeInfo,
    Configuration,
    slot_name,
)


# 1-minute load average per core above which a measurement is flagged: the
# device was doing other work while it was measured.
LOADED_PER_CORE = 0.75


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
    # Cores the inventory pins this device's measurements to.
    cpus: tuple[int, ...] | None = None
    # The configuration a sweep measures this pair in (None: no sweep), and
    # its XNNPACK setting (None: the runtime's default, on).
    configuration: Configuration | None = None
    xnnpack: bool | None = None

    def stem(self, artifact: Artifact) -> str:
        """The pair's file names: one per configuration of a variant."""
        return pair_stem(artifact.model, slot_name(artifact.variant, self.configuration))
    # Where the device's power is read (inventory's, else profile's); None: no energy.
    energy: EnergySource | None = None


def delegate_for(profile: Profile | None, artifact: Artifact) -> dict[str, str] | None:
    """The delegate a variant needs on this device (the Edge TPU's library
    for `edgetpu`), or None for the runtime's CPU kernels."""
    from harness.model.variants import VARIANTS

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


def run_round(
    ctx: PairContext,
    client: AgentClient,
    artifact: Artifact,
    inputs: EvalInputs | None,
    adapter: AdapterSpec,
    *,
    round_index: int,
) -> dict[str, Any]:
    """One round: a fresh agent process loads the model and runs its share
    of the timed loop. Only the first round makes the accuracy pass."""
    remote_model = client.ensure_file(artifact.path, artifact.sha256, ".tflite")
    remote_inputs = client.ensure_file(inputs.path, file_sha256(inputs.path), ".npy") if inputs else None
    remote_anchors = client.ensure_file(adapter.anchors, file_sha256(adapter.anchors), ".npy") if adapter.anchors else None
    app = _app_request(ctx, client, inputs) if round_index == 0 else None
    stem = ctx.stem(artifact)
    # The eval pass's detections come back as a file, not in the reply: a
    # reply listing every image's boxes would grow the controller with the eval set.
    detections_to = posixpath.join(client.cache_root, "detections", f"{ctx.run_id}-{stem}.npy") if round_index == 0 else None
    reply = client.call(
        {
            "command": "benchmark",
            "model": remote_model,
            "inputs": remote_inputs,
            **({"feed": inputs.feed} if inputs else {}),
            "eval": round_index == 0,
            # The per-operator profile's pass, after each round's timed samples.
            **ctx.plan.op_profile_request(),
            **({"detections_to": detections_to} if detections_to else {}),
            **adapter.request(remote_anchors),
            "threads": ctx.threads,
            "runtime": ctx.runtime,
            **({"xnnpack": ctx.xnnpack} if ctx.xnnpack is not None else {}),
            **ctx.plan.round_request(),
            **_profile_request(ctx.profile, artifact),
            # The inventory's per-device cores win over the profile's default.
            **({"affinity": list(ctx.cpus)} if ctx.cpus else {}),
            **({"app": app} if app else {}),
            **({"energy": ctx.energy.request()} if ctx.energy else {}),
        },
        timeout_s=ctx.plan.command_timeout_s,
    )
    if reply.get("detections_file"):
        local = device_dir(ctx.run_dir, ctx.device_info.name) / f"{stem}.detections.npy"
        client.transport.take(reply["detections_file"], local)
        reply["detections_file"] = str(local)
    return reply


def _app_request(ctx: PairContext, client: AgentClient, inputs: EvalInputs | None) -> dict[str, Any] | None:
    """The app pass's request field (the frames uploaded), when the plan asks
    for it and the pair has eval images to make frames of."""
    if not ctx.plan.app_latency or inputs is None or not inputs.app:
        return None
    frames = Path(inputs.app["frames"])
    return dict(inputs.app, frames=client.ensure_file(frames, file_sha256(frames), ".npy"))


def app_latency(reply: dict[str, Any] | None) -> AppLatency | None:
    """The record's `app` from the agent's app pass (agent 0.7.0 and later)."""
    if not reply:
        return None
    samples, library = reply["samples_ns"], reply.get("image_library") or {}
    stop = reply.get("stop_reason")
    return AppLatency(
        prepare=summarize_ns(samples["prepare"], stop_reason=stop),
        invoke=summarize_ns(samples["invoke"], stop_reason=stop),
        decode=summarize_ns(samples["decode"], stop_reason=stop) if reply.get("decodes") else None,
        frame=summarize_ns(samples["frame"], stop_reason=stop),
        whole_frame=summarize_ns(reply["whole_frame_ns"], stop_reason=stop),
        image_library=library.get("name", "numpy"),
        image_library_version=library.get("version"),
        resize=reply.get("resize"),
        frames=int(reply.get("frames") or 0),
        frame_shape=tuple(reply.get("frame_shape") or ()),
    )


def energy_info(replies: list[dict[str, Any]]) -> EnergyInfo | None:
    """The record's `energy`, every round's windows together."""
    parts = [r["energy"] for r in replies if r.get("energy")]
    totals = energy_totals(parts)
    if totals is None:
        return None
    errors = [w["error"] for p in parts for w in (p["idle"], p["active"]) if w.get("error")]
    return EnergyInfo(
        source=parts[0]["source"],
        sensor=parts[0]["sensor"],
        power_w=totals.power_w,
        idle_power_w=totals.idle_power_w,
        mj_per_inference=totals.mj_per_inference,
        active_s=totals.active_s,
        idle_s=totals.idle_s,
        invokes=totals.invokes,
        samples=totals.samples,
        error=errors[0] if errors else None,
        windows_ns=totals.windows_ns,
    )


@dataclass
class PairAccumulator:
    """The rounds of one pair so far; any prefix of them is a valid record."""

    artifact: Artifact
    replies: list[dict[str, Any]] = field(default_factory=list)
    accuracy: Accuracy | None = None
    # The rounds a run stored before it was interrupted (record, raw
    # samples), which --resume continues instead of measuring them again.
    earlier: tuple[Record, list[int]] | None = None

    def add(
        self,
        reply: dict[str, Any],
        ctx: PairContext,
        dataset: CocoDataset | None,
        category_ids: ClassMap | None,
        input_spec: InputSpec | None = None,
    ) -> None:
        # What the record needs of a reply; its detections are scored here, then dropped.
        self.replies.append({key: value for key, value in reply.items() if key != "detections"})
        source = _detections_of(reply)
        try:
            if self.accuracy is None and dataset is not None and category_ids is not None and source is not None:
                self.accuracy = _score(ctx, self.artifact, dataset, category_ids, source, input_spec)
        finally:
            if reply.get("detections_file"):
                Path(reply["detections_file"]).unlink(missing_ok=True)  # the COCO results JSON is what is kept

    @property
    def samples_ns(self) -> list[int]:
        return [int(v) for reply in self.replies for v in reply["samples_ns"]]

    def record(self, ctx: PairContext) -> tuple[Record, list[int]]:
        """The pair so far, with its raw samples (the earlier sitting's first)."""
        record, samples_ns = self._measured(ctx)
        if self.earlier is None:
            return record, samples_ns
        earlier, earlier_ns = self.earlier
        samples_ns = earlier_ns + samples_ns
        return continued(earlier, record, samples_ns), samples_ns

    def _measured(self, ctx: PairContext) -> tuple[Record, list[int]]:
        first, last = self.replies[0], self.replies[-1]
        samples_ns = self.samples_ns
        peaks = [r["memory_mb"]["peak"] for r in self.replies if r["memory_mb"].get("peak") is not None]
        memory = dict(first["memory_mb"], peak=max(peaks) if peaks else None)
        record = Record(
            run_id=ctx.run_id,
            harness_version=__version__,
            device=_with_runtime(ctx.device_info, first),
            model=ModelInfo(
                name=self.artifact.model,
                variant=self.artifact.variant,
                sha256=self.artifact.sha256,
                size_bytes=self.artifact.size_bytes,
                artifact=str(self.artifact.path),
            ),
            status="ok",
            latency_ms=summarize_ns(samples_ns, stop_reason=last.get("stop_reason"), rounds=len(self.replies)),
            load_ms=first.get("load_ms"),
            first_invoke_ms=first.get("first_invoke_ms"),
            threads=first.get("threads"),
            memory_mb=MemoryMb(**memory, method=first.get("memory_method")),
            accuracy=self.accuracy,
            env=_env(first.get("env_before") or {}, last.get("env_after") or {}, self.replies, ctx.profile),
            edgetpu=_edgetpu_report(self.artifact),
            quantization=quantization_info(self.artifact),
            op_profile=OpProfile.from_replies([r["op_profile"] for r in self.replies if r.get("op_profile")]),
            configuration=ctx.configuration,
            app=app_latency(next((r["app"] for r in self.replies if r.get("app")), None)),
            energy=energy_info(self.replies),
        )
        return record, samples_ns


def _edgetpu_report(artifact: Artifact) -> Any:
    from harness.edgetpu.compiler import report_of

    return report_of(artifact)


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
        selection={k: selective[k] for k in ("denylist_source", "fp32_calibration_map", "search", "stop_reason", "max_map_drop", "curve", "top_nodes") if k in selective}
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
            + (f"; {len(training['kept_float'])} layer(s) float ({training.get('kept_float_from') or 'the recipe'})"
               if training.get("kept_float") else "")
        )
    mixed = manifest.get("mixed")
    if mixed:
        return (f"int8 with {len(mixed['ops'])} op(s) at int16 activations, int8 weights (ops from {mixed['source']}; "
                f"{mixed['int16_ops']} ops compute in int16, on the reference kernels); LiteRT Quantizer per-op overrides")
    if selective:
        kept = len(selective.get("denylist") or ())
        how = "from the recipe" if selective.get("denylist_source") == "recipe" else "found automatically"
        return f"int8 with {kept} layer(s) kept in float (denylist {how})" + (
            f"; {selective['stop_reason']}" if selective.get("stop_reason") else ""
        )
    return manifest.get("summary")


def unmeasured_record(
    ctx: PairContext,
    model: str,
    variant: str,
    status: Literal["failed", "skipped"],
    error: ErrorInfo,
    artifact: Artifact | None = None,
    edgetpu: EdgeTpuReport | None = None,
) -> Record:
    """The one record for a pair without a measurement: `skipped` (it
    cannot run on this device) or `failed` (conversion, agent, device),
    with why, never dropped. The artifact, when there is one, says what
    would have been measured."""
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
        status=status,
        error=error,
        threads=ctx.threads,
        edgetpu=edgetpu,
        quantization=quantization_info(artifact) if artifact else None,
        configuration=ctx.configuration,
    )


def continued(earlier: Record, later: Record, samples_ns: list[int]) -> Record:
    """A pair measured in two sittings (Ctrl-C, then --resume) as one record:
    what only the first round measures (load, memory baseline, accuracy, the
    device's runtime) from the earlier part, the last environment reading
    from the later one, and the latency over every sample of both."""
    assert earlier.latency_ms is not None and later.latency_ms is not None
    rounds = earlier.latency_ms.rounds + later.latency_ms.rounds
    memory = earlier.memory_mb
    if memory is not None and later.memory_mb is not None:
        peaks = [p for p in (memory.peak, later.memory_mb.peak) if p is not None]
        memory = replace(memory, peak=max(peaks) if peaks else None)
    return replace(
        later,
        device=earlier.device,
        latency_ms=summarize_ns(samples_ns, stop_reason=later.latency_ms.stop_reason, rounds=rounds),
        load_ms=earlier.load_ms,
        first_invoke_ms=earlier.first_invoke_ms,
        threads=earlier.threads,
        memory_mb=memory,
        accuracy=earlier.accuracy,
        # A profile holds statistics, not runs: the first sitting's stands.
        op_profile=earlier.op_profile or later.op_profile,
        env=_continued_env(earlier.env, later.env),
        app=earlier.app or later.app,  # the first round's pass
        energy=later.energy or earlier.energy,
    )


def _continued_env(earlier: EnvInfo | None, later: EnvInfo | None) -> EnvInfo | None:
    if earlier is None or later is None:
        return earlier or later
    flags = [v for v in (earlier.throttled, later.throttled) if v is not None]
    loaded = [v for v in (earlier.under_load, later.under_load) if v is not None]
    waited_s = [v for v in (earlier.cooldown_s, later.cooldown_s) if v is not None]
    return replace(
        earlier,
        temperature_c_after=later.temperature_c_after,
        throttled=any(flags) if flags else None,
        under_load=any(loaded) if loaded else None,
        throttle_reasons=tuple(dict.fromkeys(earlier.throttle_reasons + later.throttle_reasons)),
        accelerator_temperature_c_after=later.accelerator_temperature_c_after,
        cooldown_s=sum(waited_s) if waited_s else None,
    )


def _detections_of(reply: dict[str, Any]) -> DetectionSource | None:
    """The eval pass's detections: the file the agent wrote (taken to this
    machine by run_round), or the reply's list (agents before 0.6.0)."""
    if reply.get("detections_file") and reply.get("detections_images"):
        return DetectionsFile(Path(reply["detections_file"]), int(reply["detections_images"]))
    if reply.get("detections"):
        return DetectionList(reply["detections"])
    return None


def _score(
    ctx: PairContext,
    artifact: Artifact,
    dataset: CocoDataset,
    category_ids: ClassMap,
    detections: DetectionSource,
    input_spec: InputSpec | None = None,
) -> Accuracy:
    """COCO scores, the label-map check and the pair's COCO results file,
    made a chunk of images at a time."""
    if detections.n_images < len(dataset.images):  # the profile scores only the first images
        dataset = replace(dataset, images=dataset.images[: detections.n_images])
    if detections.n_images != len(dataset.images):
        raise ValueError(f"{detections.n_images} detection sets for {len(dataset.images)} images")
    class_map = category_ids
    path = device_dir(ctx.run_dir, ctx.device_info.name) / f"{ctx.stem(artifact)}.detections.json"
    release_free_memory()  # what the run's preparation freed: scoring is the controller's peak
    evaluation = ChunkedCocoEval(dataset.annotations_json, [img.id for img in dataset.images])
    landings = LandingCounter(dataset, class_map.category_ids, evaluation.truth.dataset["annotations"])
    with ResultsWriter(path) as out:
        for start, found in detections.chunks(SCORING_CHUNK_IMAGES):
            part = replace(dataset, images=dataset.images[start : start + len(found)])
            results = to_coco_results(part, found, class_map.category_ids, input_spec)
            out.write(results)
            evaluation.add([img.id for img in part.images], results)
            landings.add(part.images, in_image_coordinates(part, found, input_spec))
    found_landings = landings.landings()
    del landings  # its ground truth, before accumulate(), the scoring's peak
    scores = evaluation.scores()
    return Accuracy(
        class_map_note=class_map.note or None,
        class_landings=found_landings,
        dataset=dataset.name,
        annotations=str(dataset.annotations_json.resolve()),
        detections=str(path.resolve()),
        n_images=len(dataset.images),
        map=scores.map,
        map50=scores.map50,
        map75=scores.map75,
    )


def _env(before: dict[str, Any], after: dict[str, Any], replies: list[dict[str, Any]], profile: Profile | None) -> EnvInfo:
    flags = [
        v for r in replies for v in ((r.get("env_before") or {}).get("throttled"), (r.get("env_after") or {}).get("throttled"))
        if v is not None
    ]
    reasons = list(
        dict.fromkeys(
            reason
            for r in replies
            for side in ("env_before", "env_after")
            for reason in ((r.get(side) or {}).get("throttle_reasons") or [])
        )
    )
    loads = [(r.get("env_before") or {}).get("load_1m") for r in replies]
    cpus = (replies[0].get("platform") or {}).get("cpu_count") or 1
    waited = [(r.get("cooldown") or {}).get("waited_s") for r in replies]
    waited_s = [w for w in waited if w is not None]
    return EnvInfo(
        temperature_c_before=before.get("temperature_c"),
        temperature_c_after=after.get("temperature_c"),
        governor=before.get("governor"),
        throttled=any(flags) if flags else None,
        cpu_mhz=before.get("cpu_mhz"),
        load_1m_before=before.get("load_1m"),
        # Other work on the device competes for the cores being measured.
        under_load=any(load is not None and load / cpus > LOADED_PER_CORE for load in loads),
        throttle_reasons=tuple(reasons),
        throttling_source=before.get("throttling_source"),
        temperature_source=before.get("temperature_source"),
        expected_governor=profile.governor if profile else None,
        accelerator_temperature_c_after=after.get("accelerator_temperature_c"),
        cooldown_s=sum(waited_s) if waited_s else None,
    )


def _with_runtime(info: DeviceInfo, reply: dict[str, Any]) -> DeviceInfo:
    runtime = reply.get("runtime") or {}
    delegate = dict(reply.get("delegate") or {})
    if reply.get("xnnpack") is False and delegate.get("name") == "cpu":  # a sweep's --xnnpack off
        delegate["name"] = "cpu-no-xnnpack"
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
        tags=info.tags,
        labgrid=info.labgrid,
    )
