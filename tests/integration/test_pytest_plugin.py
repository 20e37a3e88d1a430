"""The pytest plugin as a user meets it: a suite in a temporary folder, using
only the documented options and fixtures, run by pytest in a fresh process
against two sshd lab devices and `local`.

pytest-benchmark's own regression gate decides on device samples: saved
with --benchmark-autosave, an unchanged model passes
--benchmark-compare-fail=median:5%, and the demo detector's int16x8 (about
20x slower than its fp32 here) under the same file name fails it.

Noise, measured on this shared 2-core host: with other users' benchmarks
busy on both vCPUs (load average 4.5-5.5), the wall-clock median of the
unchanged fp32 detector jumped between ~2.9 ms and ~6.9 ms from one run to
the next (min stayed within 6%), at any measurement plan and even at
nice -10, so no setting makes median:5% hold then. On a quiet host it
does. So the unchanged comparison must pass unless the harness itself
flagged the pair's measurement `under_load` (1-minute load per core > 0.75
on the device), in which case a regression report is accepted as noise.
The measured processes run at nice -10 (root only) to shed plain
time-slice contention.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

# Enough samples over enough fresh agent processes for a stable median,
# short enough for CI: 2 rounds of >= 1 s each.
SPEED_SUITE = '''\
from pathlib import Path

MODEL = Path(__file__).parent / "detector.tflite"


def test_detector_latency(harness_device, harness_measure, benchmark):
    record = harness_measure(MODEL, rounds=2, min_runs=40, warmup_seconds=0.2, min_seconds=1.0, max_seconds=2.0)
    assert record.status == "ok" and record.latency_ms.n >= 40
'''

REASONS_SUITE = '''\
from pathlib import Path

import pytest

MODEL = Path(__file__).parent / "detector.tflite"
QUICK = dict(rounds=1, min_runs=80, min_seconds=0.2, max_seconds=2.0)  # >= 64 samples: a p90 interval


@pytest.mark.harness_device("pi-lab-1")
def test_needs_a_pi(harness_device, harness_measure):
    harness_measure(MODEL, **QUICK)


@pytest.mark.harness_device(tag="arm64")
def test_needs_arm(harness_device, harness_measure):
    harness_measure(MODEL, **QUICK)


@pytest.mark.harness_device("lab-flaky")
def test_on_a_device_that_dies(harness_device, harness_measure):
    harness_measure(MODEL, rounds=1, min_runs=20, min_seconds=5.0, max_seconds=6.0)


@pytest.mark.harness_device("lab-a")
def test_goes_on(harness_device, harness_measure):
    record = harness_measure(MODEL, **QUICK)
    assert record.status == "ok"


def test_budget_met(harness_measure, harness_budget):
    record = harness_measure(MODEL, device="lab-a", **QUICK)  # the same pair: measured once
    checks = harness_budget(record, p90_ms=10000, size_mb=4)
    assert [c.outcome for c in checks] == ["pass", "pass"]


def test_budget_broken(harness_measure, harness_budget):
    record = harness_measure(MODEL, device="lab-a", **QUICK)
    harness_budget(record, name="lab-p90", p90_ms=0.001)
'''


@dataclass
class UserSuite:
    folder: Path
    inventory: Path
    results: Path
    bench: Path
    env: dict[str, str]

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rsf",
             "--harness-inventory", str(self.inventory), "--harness-results", str(self.results),
             "--benchmark-storage", str(self.bench), *args],
            cwd=self.folder, env=self.env, capture_output=True, text=True, timeout=600,
            preexec_fn=_nice if os.geteuid() == 0 else None,
        )


def _nice() -> None:
    os.nice(-10)


def _niced_python(device) -> None:
    """The lab device's python3 at nice -10 (see the module docstring)."""
    script = device.bin_dir / "python3"
    script.write_text(f'#!/bin/sh\nexec nice -n -10 {sys.executable} "$@"\n')


@pytest.fixture(scope="module")
def demo_models(demo_artifacts):
    """fp32 and int16x8 of the demo detector (the session's conversion)."""
    return {v: demo_artifacts[v] for v in ("fp32", "int16x8")}


@pytest.fixture(scope="module")
def suite(module_lab, demo_models, worker_cache, tmp_path_factory) -> UserSuite:
    root = tmp_path_factory.mktemp("user-suite")
    folder = root / "suite"
    folder.mkdir()
    (folder / "test_speed.py").write_text(SPEED_SUITE)
    (folder / "test_reasons.py").write_text(REASONS_SUITE)
    shutil.copyfile(demo_models["fp32"].path, folder / "detector.tflite")
    shutil.copyfile(demo_models["fp32"].path, root / "fp32.tflite")
    shutil.copyfile(demo_models["int16x8"].path, root / "int16x8.tflite")
    for device in module_lab.devices:
        _niced_python(device)
    # lab-flaky: lab-b's sshd, but an agent killed one second into any command.
    flaky = root / "flaky-python3"
    flaky.write_text(f'#!/bin/sh\nexec timeout -s KILL 1 {sys.executable} "$@"\n')
    flaky.chmod(0o755)
    lab_b = module_lab.devices[1]
    inventory = module_lab.inventory(root / "inventory.yaml", known_hosts=module_lab.known_hosts(root / "known_hosts"))
    import yaml

    data = yaml.safe_load(inventory.read_text())
    data["devices"]["lab-flaky"] = dict(
        data["devices"]["lab-b"], python=str(flaky), cache_dir=str(root / "flaky-cache"), tags=["lab", "flaky"],
    )
    inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    env = dict(os.environ, HARNESS_CACHE=str(worker_cache), COLUMNS="200")
    env.pop("HARNESS_INVENTORY", None)
    # A user's suite of its own: under `make test` this process is an xdist
    # worker, and pytest-benchmark in a child that inherits PYTEST_XDIST_WORKER
    # thinks xdist is on and saves nothing.
    for key in [k for k in env if k.startswith("PYTEST_XDIST")]:
        del env[key]
    assert lab_b.host == data["devices"]["lab-flaky"]["host"]
    return UserSuite(folder, inventory, root / "results", root / "benchmarks", env)


def _saved_benchmarks(folder: Path) -> dict:
    (saved,) = folder.rglob("0001_*.json")
    return json.loads(saved.read_text())


def test_benchmark_compare_passes_unchanged_and_fails_slower(suite):
    devices = ("--harness-devices", "local,lab-a,lab-b")
    first = suite.run("test_speed.py", "--benchmark-autosave", *devices)
    assert first.returncode == 0, first.stdout + first.stderr
    saved = _saved_benchmarks(suite.bench)
    by_name = {b["name"]: b for b in saved["benchmarks"]}
    assert sorted(by_name) == [f"test_detector_latency[{d}]" for d in ("lab-a", "lab-b", "local")]
    with sqlite3.connect(suite.results / "results.sqlite") as db:
        run_id, rows = db.execute("SELECT run_id, COUNT(*) FROM records WHERE status = 'ok' GROUP BY run_id").fetchone()
        assert rows == 3  # one run for the session, every pair in it
        stored = {r[0]: json.loads(r[1]) for r in db.execute("SELECT device, record_json FROM records")}
    for device, bench in ((n.split("[")[1][:-1], b) for n, b in by_name.items()):
        info = bench["extra_info"]
        assert info["device"] == device and info["variant"] == "fp32" and info["model"] == "detector"
        assert info["runtime"].startswith("ai-edge-litert") and info["harness_run_id"] == run_id
        # The device's samples, not the host's timing of an SSH round trip.
        assert bench["stats"]["rounds"] == stored[device]["latency_ms"]["n"]
        assert bench["stats"]["min"] * 1e3 == pytest.approx(stored[device]["latency_ms"]["min"])
        assert bench["stats"]["median"] * 1e3 == pytest.approx(stored[device]["latency_ms"]["p50"])
    medians = {d: by_name[f"test_detector_latency[{d}]"]["stats"]["median"] for d in ("local", "lab-a", "lab-b")}

    compare = ("--benchmark-compare", "--benchmark-compare-fail=median:5%")
    unchanged = suite.run("test_speed.py", *compare, *devices)
    output = unchanged.stdout + unchanged.stderr
    assert "Comparing against benchmarks from" in output and "test_detector_latency[lab-b] (NOW)" in output
    if unchanged.returncode != 0:
        regressed = [d for d in medians if f"test_detector_latency[{d}] (" in output.split("Performance has regressed", 1)[-1]]
        assert regressed, output
        loaded = _under_load(suite.results / "results.sqlite")
        assert all(loaded[d] for d in regressed), f"{output}\nsaved medians: {medians}\nunder load: {loaded}"

    shutil.copyfile(_int16x8_path(suite), suite.folder / "detector.tflite")
    try:
        slower = suite.run("test_speed.py", *compare, "--harness-devices", "lab-a")
    finally:  # the other suite measures the fp32 file
        shutil.copyfile(suite.folder.parent / "fp32.tflite", suite.folder / "detector.tflite")
    output = slower.stdout + slower.stderr
    assert slower.returncode != 0, output
    assert "Performance has regressed" in output and "test_detector_latency[lab-a]" in output
    assert "median" in output.split("Performance has regressed", 1)[1]


def _under_load(db_path: Path) -> dict[str, bool]:
    """Per device: did the harness flag any of its measurements under load?"""
    with sqlite3.connect(db_path) as db:
        rows = db.execute("SELECT device, record_json FROM records").fetchall()
    loaded: dict[str, bool] = {}
    for device, record in rows:
        loaded[device] = loaded.get(device, False) or bool((json.loads(record)["env"] or {}).get("under_load"))
    return loaded


def _int16x8_path(suite: UserSuite) -> Path:
    return suite.folder.parent / "int16x8.tflite"


def test_skips_and_device_failures_say_why_and_keep_every_record(suite):
    result = suite.run("test_reasons.py")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "2 failed, 2 passed, 2 skipped" in output, output
    assert "Traceback" not in output
    assert f"device 'pi-lab-1' is not in the fleet: inventory {suite.inventory}" in output
    assert "no selected device is tagged 'arm64'" in output and "their tags: flaky, lab, local" in output
    (failure,) = [line for line in output.splitlines() if line.startswith("FAILED") and "lab-flaky" in line]
    assert "detector fp32 on lab-flaky" in failure and "failed" in failure
    with sqlite3.connect(suite.results / "results.sqlite") as db:
        rows = db.execute("SELECT device, status, record_json FROM records ORDER BY id DESC LIMIT 2").fetchall()
    by_device = {device: (status, json.loads(record)) for device, status, record in rows}
    assert by_device["lab-a"][0] == "ok"
    status, record = by_device["lab-flaky"]
    assert status == "failed" and record["error"]["kind"] in ("agent", "device") and record["error"]["message"]
    assert "edge-harness" in output and "1 ok, 1 failed" in output  # lab-a measured once for three tests
    (broken,) = [line for line in output.splitlines() if line.startswith("FAILED") and "test_budget_broken" in line]
    assert "budget 'lab-p90' FAILS on lab-a/detector/fp32: p90_ms <= 0.001 ms; measured p90" in broken
    assert "the whole interval is above the bound" in output
