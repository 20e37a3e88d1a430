"""Result records for store tests: complete, realistic, cheap to make."""

from __future__ import annotations

from harness.results.record import (
    Accuracy,
    DeviceInfo,
    EnvInfo,
    LatencyMs,
    MemoryMb,
    ModelInfo,
    Record,
    RuntimeInfo,
)


def make_record(run_id: str = "r1", variant: str = "fp32", status: str = "ok", *, device: str = "local",
                p50_ms: float = 2.0, map_: float = 0.5) -> Record:
    return Record(
        run_id=run_id,
        harness_version="0.1.0",
        device=DeviceInfo(device, "x86-cpu", "x86_64", "Linux 6", "3.11.7", RuntimeInfo("ai-edge-litert", "2.3.0"), 2),
        model=ModelInfo("demo", variant, "ab" * 32, 1234, "/tmp/m.tflite"),
        status=status,  # type: ignore[arg-type]
        latency_ms=LatencyMs(3, 1.0, p50_ms, 2.9, 2.99, 3.0, 2.0, 1.0, (1.5, 3.0), (1.0, 3.0), None, False, False, "ci-tight"),
        load_ms=1.5,
        first_invoke_ms=3.2,
        threads=1,
        memory_mb=MemoryMb(50.0, 60.0, 70.0, "vmhwm-reset"),
        accuracy=Accuracy("val", "/a.json", f"/runs/{run_id}/{device}-{variant}.detections.json", 200, map_, 0.8, 0.6),
        env=EnvInfo(40.0, 41.0, "performance", False, 2400.0, 0.3),
    )


def samples_ns(median_ms: float, n: int = 400, seed: int = 1) -> list[int]:
    """Deterministic spread of +-5% around a median (a Weyl sequence)."""
    return [int(median_ms * 1e6 * (0.95 + 0.1 * ((i * 0.6180339887 * seed) % 1.0))) for i in range(n)]
