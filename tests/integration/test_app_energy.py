"""Issue 17, items 3 and 4, end to end on `local` (the real agent and
runtime): the app's frame per stage for the SSD demo (the post-process op
in the graph) and for shapes-yolo (NMS in the agent), and energy per
inference from a FAKE INA226 hwmon tree replaying a known power trace."""

from __future__ import annotations

import math
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from harness import paths
from harness.fleet.energy import EnergySource
from harness.measure.events import RunEvents
from harness.measure.stats import MIN_SAMPLES_P90
from tests.fake_hwmon import FakeHwmonTree

pytestmark = pytest.mark.slow

# Short rounds (>= 64 samples, so the p90 has an interval); app_latency asks
# for the app pass after the first round's timed loop.
QUICK = {"warmup_runs": 5, "warmup_seconds": 0.0, "min_runs": 100, "min_seconds": 0.3, "max_seconds": 3.0, "rounds": 1}
# The bar: the stage medians add up to the whole frame's within 10%.
STAGES_VS_WHOLE = 0.10
# ... and the energy per inference is the trace's integral within 2%.
ENERGY_TOLERANCE = 0.02


@pytest.fixture(autouse=True)
def shared_cache(worker_cache, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(worker_cache))


def _run(model: Path, reports: Path, measurement: dict, energy: EnergySource | None = None):
    from harness.runner import make_plan, measure_and_write

    plan = make_plan(model, "fp32" if model.suffix == ".yaml" else None, "local", reports, command="run")
    devices = tuple(replace(d, energy=energy) for d in plan.devices)
    outcome = measure_and_write(replace(plan, measurement=measurement, devices=devices), None, RunEvents())
    (record,) = outcome.records
    assert record.status == "ok", record.error
    return outcome, record


@pytest.mark.parametrize("model", ["demo-detector", "shapes-yolo"])
def test_the_apps_stages_add_up_to_the_whole_frame(model, tmp_path):
    # A loaded host (load 8 on 2 cores: 24 ms frames) needs longer than QUICK's cap for 64 frames.
    outcome, record = _run(paths.models_dir() / model / "model.yaml", tmp_path / "reports", dict(QUICK, max_seconds=8.0, app_latency=True))
    app = record.app
    assert app is not None and app.decode is not None
    # The invoke-only figure is its own loop's, untouched by the app pass.
    assert record.latency_ms is not None and record.latency_ms.n >= QUICK["min_runs"]
    assert app.frame.n >= MIN_SAMPLES_P90 and app.whole_frame.n == app.frame.n  # a loaded host ends at max_seconds
    assert app.image_library == _first_image_library()
    assert app.resize == ("letterbox" if model == "shapes-yolo" else "bilinear") and app.frame_shape == (192, 256, 3)
    assert min(app.prepare.p50, app.invoke.p50, app.decode.p50) > 0
    ratio = app.stage_p50_sum_ms / app.whole_frame.p50
    stages = (app.prepare.p50, app.invoke.p50, app.decode.p50, app.frame.p50, app.whole_frame.p50, record.env.load_1m_before)
    if not record.env.under_load:
        assert abs(ratio - 1.0) <= STAGES_VS_WHOLE, stages
        assert abs(app.frame.p50 / app.whole_frame.p50 - 1.0) <= STAGES_VS_WHOLE, stages
    else:
        # Flagged `under load` (a shared CI host): neighbours preempt some
        # frames in some stage, and each stage's median skips its own
        # preempted frames where a whole frame's cannot, so the medians add
        # up to less (measured here at load 6-9 on 2 cores: 0.72-0.90); and
        # interleaved staged and whole frames agree only as far as their
        # 95% intervals can tell.
        assert app.stage_p50_sum_ms <= app.whole_frame.p50_ci[1] * (1.0 + STAGES_VS_WHOLE), stages
        assert _overlap(app.frame.p50_ci, app.whole_frame.p50_ci, STAGES_VS_WHOLE), stages
    md = Path(outcome.report_files[0]).read_text()
    assert f"app frame, fp32 (256x192 frames, {app.resize} with {app.image_library}" in md


def _overlap(a: tuple[float, float] | None, b: tuple[float, float] | None, slack: float) -> bool:
    """Two intervals, each widened by `slack` of itself, share a point."""
    assert a is not None and b is not None
    return a[0] * (1 - slack) <= b[1] * (1 + slack) and b[0] * (1 - slack) <= a[1] * (1 + slack)


def _first_image_library() -> str:
    """What the agent should pick on this machine (it runs this interpreter)."""
    import importlib.util

    return next((name for name, module in (("opencv", "cv2"), ("pil", "PIL")) if importlib.util.find_spec(module)), "numpy")


def _trace_w(elapsed_s: float) -> float:
    """The known trace: a rising draw with a ripple, so the timed loop
    (later) draws more than the idle window before it."""
    return 1.5 + 2.0 * elapsed_s + 0.05 * math.sin(2 * math.pi * elapsed_s / 0.13)


def test_millijoules_per_inference_are_the_fake_traces_integral(demo_fp32, ssh_lab, tmp_path):
    """On `local` (the energy source set on the device) and on a lab sshd
    device (from its inventory entry), both reading the one fake sensor."""
    from harness.runner import make_plan, measure_and_write

    model = tmp_path / "demo.tflite"
    shutil.copy(demo_fp32.path, model)
    lab = ssh_lab(1)
    (lab_device,) = lab.devices
    with FakeHwmonTree(tmp_path / "hwmon", _trace_w) as fake:
        source = EnergySource("hwmon", name="ina226", root=str(fake.root), interval_ms=2.0, idle_seconds=0.4)
        inventory = lab.inventory(tmp_path / "lab.yaml", known_hosts=lab.known_hosts(tmp_path / "known_hosts"),
                                  extra={lab_device.name: {"energy": {"source": "hwmon", "name": "ina226", "root": str(fake.root),
                                                                      "interval_ms": 2.0, "idle_seconds": 0.4}}})
        plan = make_plan(model, None, f"local,{lab_device.name}", tmp_path / "reports", command="run", inventory_path=inventory)
        devices = tuple(replace(d, energy=source) if d.name == "local" else d for d in plan.devices)
        outcome = measure_and_write(replace(plan, measurement=dict(QUICK, rounds=2, min_seconds=0.4), devices=devices), None, RunEvents())
    assert {r.device.name for r in outcome.records} == {"local", lab_device.name}
    for record in outcome.records:
        assert record.status == "ok", record.error
        _check_energy(record, fake)


def _check_energy(record, fake: FakeHwmonTree) -> None:
    energy = record.energy
    assert energy is not None and energy.error is None and "hwmon1 (ina226) power1_input" in energy.sensor
    assert len(energy.windows_ns) == 2 and energy.invokes == record.latency_ms.n
    active_j = sum(fake.energy_j(a0, a1) for _, _, a0, a1 in energy.windows_ns)
    active_s = sum(a1 - a0 for _, _, a0, a1 in energy.windows_ns) / 1e9
    idle_w = sum(fake.energy_j(i0, i1) for i0, i1, _, _ in energy.windows_ns) / (
        sum(i1 - i0 for i0, i1, _, _ in energy.windows_ns) / 1e9)
    expected_mj = 1000.0 * (active_j - idle_w * active_s) / energy.invokes
    assert expected_mj > 0
    assert energy.mj_per_inference == pytest.approx(expected_mj, rel=ENERGY_TOLERANCE), (record.device.name, expected_mj)
    assert energy.idle_power_w == pytest.approx(idle_w, rel=ENERGY_TOLERANCE)
    assert energy.power_w == pytest.approx(active_j / active_s, rel=ENERGY_TOLERANCE)
