"""The result record: one per (device, model, variant), frozen.

The field names are DESIGN.md's contract. Records are stored exactly as
measured (no rounding, no emoji); renderers decide how to show them.
``from_dict`` reads any record this or an older schema wrote.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from harness.results.op_profile import OpProfile

SCHEMA_VERSION = 1

Status = Literal["ok", "failed", "skipped"]


@dataclass(frozen=True)
class RuntimeInfo:
    name: str
    version: str
    # "cpu" (the runtime's own kernels and default delegates, XNNPACK) or
    # the delegate a variant needed ("edgetpu"), with its library.
    delegate: str | None = None
    delegate_library: str | None = None


@dataclass(frozen=True)
class DeviceInfo:
    name: str
    profile: str
    arch: str | None = None
    os: str | None = None
    python: str | None = None
    runtime: RuntimeInfo | None = None
    cpu_count: int | None = None
    # x86 | raspberry-pi | coral, from the device's profile.
    family: str | None = None
    # True for a device that emulates its architecture (the lab's qemu-user
    # Pi): its latency is emulation's, never the real device's.
    emulated: bool = False
    # The inventory's tags for this device, kept so budgets can match by tag
    # from the stored record alone.
    tags: tuple[str, ...] = ()
    # A labgrid place the run held: {place, exporter, coordinator, tags}.
    labgrid: dict[str, Any] | None = field(default=None, hash=False)  # a dict: records stay hashable


@dataclass(frozen=True)
class Configuration:
    """How a pair was run when the run sweeps configurations (`harness run
    --threads 1,2 --runtimes a,b --xnnpack on,off`, or lists in the inventory
    or profile): each field the sweep names, None for the device's default.
    A record without one (every record of a run that sweeps nothing, and
    every record stored before sweeps existed) keeps its old identity."""

    threads: int | None = None
    runtime: str | None = None
    xnnpack: bool | None = None  # None: the runtime's default (on)

    @property
    def slug(self) -> str:
        """The configuration in a record's key, file names and the store's
        variant column: `t2,tflite-runtime,xnnpack-off` (fields it names)."""
        parts = [f"t{self.threads}" if self.threads is not None else "", self.runtime or "",
                 "" if self.xnnpack is None else f"xnnpack-{'on' if self.xnnpack else 'off'}"]
        return ",".join(p for p in parts if p)

    @property
    def label(self) -> str:
        """For people: `2 threads · tflite-runtime · XNNPACK off`."""
        parts = [f"{self.threads} thread{'s' if self.threads != 1 else ''}" if self.threads is not None else "",
                 self.runtime or "", "" if self.xnnpack is None else f"XNNPACK {'on' if self.xnnpack else 'off'}"]
        return " · ".join(p for p in parts if p)


def slot_name(variant: str, configuration: Configuration | None) -> str:
    """A pair's name within its device and model: the variant alone, or
    `fp32@t2,tflite-runtime` when the run sweeps configurations."""
    return f"{variant}@{configuration.slug}" if configuration is not None else variant


@dataclass(frozen=True)
class ModelInfo:
    name: str
    variant: str
    sha256: str | None = None
    size_bytes: int | None = None
    artifact: str | None = None


@dataclass(frozen=True)
class ErrorInfo:
    kind: str
    message: str


@dataclass(frozen=True)
class LatencyMs:
    """The one latency summary, in milliseconds: made from the raw samples by
    harness.measure.stats.summarize_ns (quantiles type 7, distribution-free
    95% intervals, None where n is too small for one)."""

    n: int
    min: float
    p50: float
    p90: float
    p99: float
    max: float
    mean: float
    std: float
    p90_ci: tuple[float, float] | None
    p50_ci: tuple[float, float] | None = None
    p99_ci: tuple[float, float] | None = None
    p90_reliable: bool = True
    p99_reliable: bool = False
    stop_reason: str | None = None
    # Rounds the samples came from (variants are interleaved round by round).
    rounds: int = 1


@dataclass(frozen=True)
class MemoryMb:
    """Resident set size in MiB (2**20 bytes): before load, after, peak."""

    baseline: float | None
    after_load: float | None
    peak: float | None
    method: str | None = None


@dataclass(frozen=True)
class ClassLanding:
    """Where one model class's detections land, matched to the ground truth
    by box alone (harness.dataset.labelcheck)."""

    class_index: int
    expected: str  # the category the label map gives this class ("???": none)
    landed: str  # the category most of its box-matched detections are
    share: float  # of its box-matched detections, the fraction on `landed`
    matched: int

    @property
    def mismatched(self) -> bool:
        return self.landed != self.expected and self.share > 0.5


@dataclass(frozen=True)
class Accuracy:
    dataset: str
    annotations: str
    detections: str
    n_images: int
    map: float
    map50: float
    map75: float
    # How class indices became category ids when the recipe named no labels.
    class_map_note: str | None = None
    # Each class's landing (classes with enough box-matched detections).
    class_landings: tuple[ClassLanding, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Accuracy":
        data = dict(data)
        data["class_landings"] = tuple(ClassLanding(**c) for c in data.get("class_landings") or ())
        return cls(**data)


@dataclass(frozen=True)
class EnvInfo:
    temperature_c_before: float | None = None
    temperature_c_after: float | None = None
    governor: str | None = None
    throttled: bool | None = None
    cpu_mhz: float | None = None
    load_1m_before: float | None = None
    under_load: bool | None = None
    # Why the device was throttled (vcgencmd bits or sysfs) and where each
    # reading came from; the governor the profile expects (a mismatch is flagged).
    throttle_reasons: tuple[str, ...] = ()
    throttling_source: str | None = None
    temperature_source: str | None = None
    expected_governor: str | None = None
    accelerator_temperature_c_after: float | None = None
    cooldown_s: float | None = None


@dataclass(frozen=True)
class EdgeTpuReport:
    """How much of a model maps to the Edge TPU: from the compiler's log when
    it ran (`source` "compiler"), else from the harness's pre-check of the
    uint8 model against Coral's documented rules ("precheck")."""

    source: str
    ops_on_tpu: int
    ops_on_cpu: int
    # (operator, count, reason) for every op that runs on the CPU.
    cpu_ops: tuple[tuple[str, int, str], ...] = ()
    compiler_version: str | None = None
    log: str | None = None


@dataclass(frozen=True)
class LayerSensitivity:
    """One layer's quantisation error (QuantizationDebugger), most sensitive first."""

    layer: str
    op_name: str
    rmse_over_scale: float
    mean_error: float
    tensor_name: str


@dataclass(frozen=True)
class QuantizationInfo:
    """How the variant was made and who can load it (from its manifest).

    ``loadability``: runtime -> ``ok`` | ``unavailable: <why>`` | the
    runtime's error message, checked on the host (ai-edge-litert,
    tflite-runtime 2.14, tf.lite). ``top_layers``/``denylist``/
    ``sensitivity_report``: selective-int8's per-layer statistics and the
    layers it kept in float; ``training``: qat-int8's fine-tuning run.
    """

    loadability: dict[str, str] = field(default_factory=dict)
    runtime_versions: dict[str, str] = field(default_factory=dict)
    method: str | None = None
    top_layers: tuple[LayerSensitivity, ...] = ()
    denylist: tuple[str, ...] = ()
    sensitivity_report: str | None = None
    selection: dict[str, Any] | None = None
    training: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "QuantizationInfo":
        data = dict(data)
        data["top_layers"] = tuple(LayerSensitivity(**layer) for layer in data.get("top_layers") or ())
        data["denylist"] = tuple(data.get("denylist") or ())
        return cls(**data)


@dataclass(frozen=True)
class Record:
    run_id: str
    device: DeviceInfo
    model: ModelInfo
    status: Status
    created_at: str = field(default_factory=lambda: utc_now_iso())
    harness_version: str = ""
    schema_version: int = SCHEMA_VERSION
    error: ErrorInfo | None = None
    latency_ms: LatencyMs | None = None
    load_ms: float | None = None
    first_invoke_ms: float | None = None
    threads: int | None = None
    memory_mb: MemoryMb | None = None
    accuracy: Accuracy | None = None
    env: EnvInfo | None = None
    edgetpu: EdgeTpuReport | None = None
    # Added with the quantization workbench; absent in older records.
    quantization: QuantizationInfo | None = None
    # Added with the per-operator profile (issue 20); absent in older records.
    op_profile: OpProfile | None = None
    # Added with configuration sweeps (issue 17); absent in older records.
    configuration: Configuration | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        """(device, model, slot): the slot is the variant, with the
        configuration when the run swept some (slot_name)."""
        return (self.device.name, self.model.name, slot_name(self.model.variant, self.configuration))

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Record":
        data = upgrade(data)
        device = dict(data["device"])
        if device.get("runtime"):
            device["runtime"] = RuntimeInfo(**device["runtime"])
        latency = data.get("latency_ms")
        if latency:
            latency = dict(latency)
            for key in ("p50_ci", "p90_ci", "p99_ci"):
                if latency.get(key) is not None:
                    latency[key] = tuple(latency[key])
        return cls(
            schema_version=data["schema_version"],
            run_id=data["run_id"],
            created_at=data["created_at"],
            harness_version=data.get("harness_version", ""),
            device=DeviceInfo(**{**device, "tags": tuple(device.get("tags") or ())}),
            model=ModelInfo(**data["model"]),
            status=data["status"],
            error=ErrorInfo(**data["error"]) if data.get("error") else None,
            latency_ms=LatencyMs(**latency) if latency else None,
            load_ms=data.get("load_ms"),
            first_invoke_ms=data.get("first_invoke_ms"),
            threads=data.get("threads"),
            memory_mb=MemoryMb(**data["memory_mb"]) if data.get("memory_mb") else None,
            accuracy=Accuracy.from_dict(data["accuracy"]) if data.get("accuracy") else None,
            env=_env(data["env"]) if data.get("env") else None,
            edgetpu=_edgetpu(data["edgetpu"]) if data.get("edgetpu") else None,
            quantization=QuantizationInfo.from_dict(data["quantization"]) if data.get("quantization") else None,
            op_profile=OpProfile.from_dict(data["op_profile"]) if data.get("op_profile") else None,
            configuration=Configuration(**data["configuration"]) if data.get("configuration") else None,
        )


def _env(data: dict[str, Any]) -> EnvInfo:
    data = dict(data)
    data["throttle_reasons"] = tuple(data.get("throttle_reasons") or ())
    return EnvInfo(**data)


def _edgetpu(data: dict[str, Any]) -> EdgeTpuReport:
    data = dict(data)
    data["cpu_ops"] = tuple(tuple(op) for op in data.get("cpu_ops") or ())
    return EdgeTpuReport(**data)


def upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """Bring a stored record up to SCHEMA_VERSION (the first schema is 1)."""
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ValueError(f"unknown result schema_version {version!r} (this harness reads {SCHEMA_VERSION})")
    return data


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    """Tuples to lists, so a record survives a JSON round trip unchanged."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
