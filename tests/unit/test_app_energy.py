"""Issue 17, items 3 and 4, the fast parts: the agent's frame preparation
against the host's preprocessing, the stage summaries, the power sources'
parsing (hwmon INA2xx, vcgencmd pmic_read_adc), the energy integration, and
what the record, the reports and the budgets make of them."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from harness.dataset.letterbox import letterbox_image
from harness.dataset.preprocess import InputQuant, InputSpec, normalise, quantise, resize
from harness.errors import InputError
from harness.fleet.energy import parse_energy
from harness.config import Fields
from harness.gate.budgets import Budget, Match
from harness.gate.rules import References, rule_checks
from harness.measure.energy import energy_totals, window_energy_j
from harness.measure.pair import app_latency, energy_info
from harness.measure.stats import summarize_ns
from harness.report.markdown import render_markdown
from harness.results.record import Record
from tests.store_records import make_record

FEED = {"mean": [127.5] * 3, "std": [127.5] * 3, "dtype": "int8", "scale": 0.0078125, "zero_point": -1}


def _host_input(frame: np.ndarray, mode: str, height: int, width: int) -> np.ndarray:
    """What the host's eval set and feed make of the same frame."""
    spec = InputSpec(height, width, resize=mode)
    resized = letterbox_image(frame, height, width) if mode == "letterbox" else resize(frame, height, width, mode)
    pixels = np.clip(np.round(resized), 0, 255).astype(np.uint8)
    return quantise(normalise(pixels[None], spec), InputQuant("int8", FEED["scale"], FEED["zero_point"]))


@pytest.mark.parametrize("mode", ["bilinear", "nearest", "letterbox"])
def test_the_agents_numpy_frame_preparation_is_the_hosts_preprocessing(agent, mode):
    frame = np.random.default_rng(7).integers(0, 256, size=(192, 256, 3), dtype=np.uint8)
    library = agent.image_library("numpy")
    prepare = agent.FramePreparer(frame.shape, (160, 128), mode, agent.Feed(FEED, np), library, (1, 160, 128, 3), np)
    assert library[0] == "numpy"
    np.testing.assert_array_equal(prepare(frame), _host_input(frame, mode, 160, 128))


def test_a_library_asked_for_that_the_device_lacks_is_a_bad_request(agent, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "cv2", None)  # import cv2 -> ImportError
    with pytest.raises(agent.AgentFailure) as err:
        agent.image_library("opencv")
    assert err.value.kind == "bad-request" and "opencv" in err.value.message
    assert agent.image_library("auto")[0] in ("pil", "numpy")


def _app_reply(decodes: bool = True) -> dict:
    stages = {"prepare": [1_000_000] * 70, "invoke": [3_000_000] * 70, "decode": [500_000] * 70}
    stages["frame"] = [sum(v) for v in zip(*stages.values())]
    return {"image_library": {"name": "pil", "version": "13.0.0"}, "resize": "letterbox", "frames": 16,
            "frame_shape": [192, 256, 3], "decodes": decodes, "samples_ns": stages, "stop_reason": "ci-tight",
            "whole_frame_ns": [4_600_000] * 70}


def test_the_app_reply_becomes_stage_summaries_made_by_the_one_summary_function():
    app = app_latency(_app_reply())
    assert app is not None and app.image_library == "pil" and app.frame_shape == (192, 256, 3)
    assert app.prepare == summarize_ns([1_000_000] * 70, stop_reason="ci-tight")
    assert app.stage_p50_sum_ms == pytest.approx(4.5) and app.frame.p50 == pytest.approx(4.5)
    assert app.whole_frame.p50 == pytest.approx(4.6)
    no_decode = app_latency(_app_reply(decodes=False))
    assert no_decode is not None and no_decode.decode is None and no_decode.stage_p50_sum_ms == pytest.approx(4.0)


# --- power sources --------------------------------------------------------------


def _hwmon(root: Path, folder: str, files: dict[str, str]) -> None:
    (root / folder).mkdir(parents=True)
    for name, text in files.items():
        (root / folder / name).write_text(text + "\n")


def test_hwmon_power_is_power1_input_else_current_times_bus_voltage_never_the_shunt(agent, tmp_path):
    _hwmon(tmp_path, "hwmon0", {"name": "coretemp", "in0_input": "900"})
    _hwmon(tmp_path, "hwmon3", {"name": "ina219", "in0_input": "40", "in1_input": "5100", "curr1_input": "600"})
    sensor, read = agent.hwmon_power_reader(str(tmp_path), None)
    assert "hwmon3" in sensor and read() == pytest.approx(600 * 5100 / 1e6)  # 3.06 W; the shunt would give 0.024
    _hwmon(tmp_path, "hwmon4", {"name": "ina226", "power1_input": "2750000", "curr1_input": "1", "in1_input": "1"})
    sensor, read = agent.hwmon_power_reader(str(tmp_path), "ina226")
    assert "power1_input" in sensor and read() == pytest.approx(2.75)


def test_a_missing_hwmon_sensor_names_what_the_root_has(agent, tmp_path):
    _hwmon(tmp_path, "hwmon0", {"name": "coretemp"})
    with pytest.raises(agent.AgentFailure) as err:
        agent.hwmon_power_reader(str(tmp_path), "ina226")
    assert err.value.kind == "energy-source" and "ina226" in err.value.message and "coretemp" in err.value.message


PMIC_READ_ADC = """\
     3V7_WL_SW_A current(0)=0.00390372A
       3V3_SYS_A current(1)=0.05660400A
      VDD_CORE_A current(7)=2.10000000A
     3V7_WL_SW_V volt(8)=3.74435600V
       3V3_SYS_V volt(9)=3.31219800V
      VDD_CORE_V volt(15)=0.80000000V
         EXT5V_V volt(24)=5.12530000V
"""


def test_pmic_read_adc_power_is_the_sum_of_each_rails_volts_times_amps(agent):
    expected = 0.00390372 * 3.74435600 + 0.05660400 * 3.31219800 + 2.1 * 0.8  # EXT5V has no current: left out
    assert agent.pmic_watts(PMIC_READ_ADC) == pytest.approx(expected)
    with pytest.raises(agent.AgentFailure):
        agent.pmic_watts("EXT5V_V volt(24)=5.1V\n")


def test_a_power_window_integrates_a_linear_trace_exactly(agent):
    """The trapezoid rule is exact on a line, wherever the samples fall, so
    the sampler's timing cannot matter: only its timestamps and values."""
    origin_ns = time.monotonic_ns()

    def line_w() -> float:
        return 2.0 + 50.0 * (time.monotonic_ns() - origin_ns) / 1e9

    window = agent.PowerWindow(line_w, 0.0005).start()
    sum(i * i for i in range(200_000))  # some work inside the window
    measured = window.stop()
    first, last = measured["samples"][0][0], measured["samples"][-1][0]
    exact_j = sum(2.0 * (b - a) / 1e9 + 25.0 * (((b - origin_ns) / 1e9) ** 2 - ((a - origin_ns) / 1e9) ** 2)
                  for a, b in [(first, last)])
    assert measured["error"] is None and len(measured["samples"]) >= 2
    assert window_energy_j(measured["samples"]) == pytest.approx(exact_j, rel=1e-3)


def _window(start_s: float, end_s: float, watts: float) -> dict:
    return {"start_ns": int(start_s * 1e9), "end_ns": int(end_s * 1e9), "error": None,
            "samples": [[int(start_s * 1e9), watts], [int((start_s + end_s) / 2 * 1e9), watts], [int(end_s * 1e9), watts]]}


def test_millijoules_per_inference_are_active_minus_idle_over_every_rounds_invokes():
    rounds = [
        {"source": "hwmon", "sensor": "fake", "idle": _window(0, 1, 2.0), "active": _window(1, 3, 3.0), "invokes": 400},
        {"source": "hwmon", "sensor": "fake", "idle": _window(5, 6, 2.0), "active": _window(6, 7, 3.5), "invokes": 100},
    ]
    totals = energy_totals(rounds)
    assert totals is not None and totals.idle_power_w == pytest.approx(2.0)
    assert totals.power_w == pytest.approx((6.0 + 3.5) / 3)
    assert totals.mj_per_inference == pytest.approx(1000 * ((6.0 - 4.0) + (3.5 - 2.0)) / 500)  # 7 mJ
    info = energy_info([{"energy": r} for r in rounds])
    assert info is not None and info.windows_ns[1] == (5_000_000_000, 6_000_000_000, 6_000_000_000, 7_000_000_000)


def test_an_energy_block_is_checked_where_it_is_written():
    where = {"source": "inventory.yaml", "place": "devices.pi-5.energy"}
    assert parse_energy(Fields({}, **where)) is None
    spec = parse_energy(Fields({"source": "hwmon", "name": "ina226", "interval_ms": 2}, **where))
    assert spec is not None and spec.root == "/sys/class/hwmon" and spec.request()["name"] == "ina226"
    with pytest.raises(InputError) as err:
        parse_energy(Fields({"source": "command"}, **where))
    assert "devices.pi-5.energy.command" in str(err.value.place)
    with pytest.raises(InputError) as err:
        parse_energy(Fields({"source": "hwmon", "nmae": "ina226"}, **where))
    assert "did you mean 'name'" in str(err.value.hint)


# --- the record, the report, the budget -------------------------------------------


def _measured_record() -> Record:
    rounds = [{"source": "hwmon", "sensor": "hwmon1 (ina226) power1_input", "idle": _window(0, 1, 2.0),
               "active": _window(1, 3, 3.0), "invokes": 400}]
    return replace(make_record(), app=app_latency(_app_reply()), energy=energy_info([{"energy": r} for r in rounds]))


def test_app_and_energy_survive_the_records_json_round_trip_and_show_in_the_report():
    record = _measured_record()
    assert Record.from_dict(record.to_dict()) == record
    markdown = render_markdown([record], title="run r1")
    assert "prepare 1.000 + invoke 3.000 + decode 0.500 = 4.500 ms p50" in markdown
    assert "whole frame p50 4.600 ms; invoke-only 2.000 ms" in markdown
    assert "energy, fp32: 5 mJ per inference above idle; 3.000 W over 2.00 s" in markdown


def test_a_budget_bounds_the_app_frames_p90_on_its_interval():
    record = _measured_record()

    def outcome(bound: float, rec: Record) -> tuple[str, str]:
        budget = Budget(name="frame", match=Match(), where="b.yaml, frame", frame_p90_ms=bound)
        (check,) = rule_checks(budget, rec, References(fp32={}))
        return check.outcome, check.message

    assert outcome(5.0, record)[0] == "pass"
    assert outcome(4.0, record)[0] == "fail"
    missing, hint = outcome(5.0, replace(record, app=None))
    assert missing == "fail" and "app_latency: true" in hint


def test_an_inventory_entrys_energy_wins_and_a_bad_one_names_its_place(tmp_path):
    from harness.fleet.inventory import load_inventory

    path = tmp_path / "inventory.yaml"
    path.write_text("devices:\n  pi-5:\n    host: 127.0.0.2\n    profile: raspberry-pi-5\n"
                    "    energy: {source: hwmon, name: ina226, idle_seconds: 2}\n")
    (device,) = load_inventory(path).devices
    assert device.energy is not None and (device.energy.name, device.energy.idle_seconds) == ("ina226", 2.0)
    path.write_text("devices:\n  pi-5:\n    host: 127.0.0.2\n    profile: raspberry-pi-5\n    energy: {source: ina}\n")
    with pytest.raises(InputError) as err:
        load_inventory(path)
    assert err.value.exit_code == 2 and "devices.pi-5.energy.source" in err.value.render()


def test_a_command_source_reads_the_first_number_it_prints_in_watts(agent):
    import sys

    sensor, read = agent.power_reader({"source": "command", "command": [sys.executable, "-c", "print('rail: 2.75 W')"]})
    assert read() == pytest.approx(2.75) and sys.executable in sensor
    with pytest.raises(agent.AgentFailure) as err:
        agent.power_reader({"source": "command", "command": [sys.executable, "-c", "print('no reading')"]})[1]()
    assert err.value.kind == "energy-source" and "no number" in err.value.message


def test_the_app_frames_are_confined_to_the_cache_like_every_other_path(agent, tmp_path):
    request = {"command": "benchmark", "model": str(tmp_path / "m.tflite"), "app": {"frames": "/etc/passwd"}}
    with pytest.raises(agent.AgentFailure) as err:
        agent.confine(request, str(tmp_path))
    assert err.value.kind == "outside-cache" and "/etc/passwd" in err.value.message
