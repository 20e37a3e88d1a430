"""Every terminal table fits an 80-column terminal by dropping or folding
columns: no cell cut to `…`, no name split over lines (comparisons, the
gate, `devices list|check`). The run report's own table is in
test_terminal_report.py."""

from __future__ import annotations

import io
from dataclasses import replace

from rich.console import Console

from harness.device import Device
from harness.fleet.operations import Probe
from harness.gate.checks import Check
from harness.gate.evaluate import GateResult
from harness.report.compare import ComparisonReport, PairComparison
from harness.report.compare_render import render_table
from harness.report.devices import render_inventory, render_probes
from harness.gate.summary import render_gate_terminal

WIDTH = 80


def rendered(draw) -> str:
    out = io.StringIO()
    draw(Console(file=out, width=WIDTH, color_system=None))
    return out.getvalue()


def assert_fits(text: str, *whole: str) -> None:
    """Nothing cut, nothing wider than the terminal, and each of `whole`
    on one line, unbroken."""
    assert "…" not in text, text
    assert max(len(line) for line in text.splitlines()) <= WIDTH, text
    for cell in whole:
        assert any(cell in line for line in text.splitlines()), (cell, text)


def comparison(kind: str) -> ComparisonReport:
    pairs = [
        PairComparison("pi-lab-emulated", "demo-detector", "selective-int8", "slower", 12.5, 24.1, 1.928, 1.8e-131, 0.98,
                       400, 400, "fp32"),
        PairComparison("pi-lab-emulated", "demo-detector", "dynamic-int8", "faster", 12.5, 5.95, 0.476, 3.1e-120, -0.97,
                       400, 400, "fp32"),
        PairComparison("pi-lab-emulated", "demo-detector", "int16x8", "same", 12.5, 12.51, 1.0008, 0.41, 0.02,
                       400, 400, "fp32"),
    ]
    return ComparisonReport(kind, "fp32" if kind == "variants" else "20260101-000000-aaaa", "20260102-000000-bbbb",
                            tuple(pairs))


def test_comparison_tables_fit_80_columns_and_keep_p_values_whole():
    for kind in ("variants", "runs"):
        text = rendered(lambda console: render_table(comparison(kind), console))
        assert_fits(text, "pi-lab-emulated", "selective-int8", "1.8e-131", "1.93x slower", "2.10x faster", "1.00x")
        assert "left out for width" in text  # says what it dropped, and where to find it


def test_a_comparison_that_fits_keeps_every_column():
    narrow = ComparisonReport("variants", "fp32", "r2", (PairComparison("local", "m", "int8", "faster", 2.0, 1.0, 0.5,
                                                                        1e-9, -1.0, 400, 400, "fp32"),))
    out = io.StringIO()
    render_table(narrow, Console(file=out, width=120, color_system=None))
    assert "effect" in out.getvalue() and "against" in out.getvalue() and "left out" not in out.getvalue()


def gate_result() -> GateResult:
    checks = [
        Check("int8-latency-on-pis", "pi-lab-emulated", "demo-detector", "selective-int8", "p90_ms", outcome,
              "p90 12.31 ms [12.10, 12.52]", "<= 45 ms", f"budget 'int8-latency-on-pis' {outcome}")
        for outcome in ("fail", "inconclusive", "pass")
    ]
    checks.append(Check("map-floor", "local", "demo-detector", "dynamic-int8", "min_map", "skipped",
                        "nothing (pair skipped)", ">= 0.3", "skipped"))
    return GateResult("20260102-000000-bbbb", None, checks)


def test_gate_table_fits_80_columns_and_never_splits_a_pair_name():
    text = rendered(lambda console: render_gate_terminal(gate_result(), console, budgets="budgets.yaml"))
    table = text.split("\nbudget ")[0]  # the messages under it are prose the terminal soft-wraps
    assert_fits(table, "pi-lab-emulated", "selective-int8", "int8-latency-on-pis", "INCONCLUSIVE", "dynamic-int8")
    assert "demo-detector" in text.splitlines()[0]  # one model: the title names it


def lab_device(name: str) -> Device:
    return Device(name, "raspberry-pi-4-emulated", "ssh", "/usr/bin/python3", threads=4, tags=("arm64", "lab-a"),
                  cache_dir="~/.cache/edge-harness", host="127.0.0.2", user="pi", port=2222)


def probe(name: str) -> Probe:
    info = {
        "platform": {"arch": "aarch64", "os_name": "Debian GNU/Linux 12 (bookworm)", "kernel": "6.6.31+rpt-rpi-v8",
                     "python": "3.11.2", "numpy": "1.26.4", "cpu_count": 4, "memory_mb": {"total": 7800, "available": 6100},
                     "disk_free_mb": 20480},
        "env": {"governor": "ondemand", "temperature_c": 48.2},
        "runtime": {"name": "ai-edge-litert", "version": "1.2.0"},
        "edgetpu": {"present": True, "pcie": False, "library": True},
    }
    return Probe(lab_device(name), True, 0.2, info)


def test_devices_list_fits_80_columns():
    devices = [lab_device("pi-lab-emulated"), replace(lab_device("local"), kind="local")]
    text = rendered(lambda console: render_inventory(devices, console, source="devices/inventory.example.yaml"))
    assert_fits(text, "pi-lab-emulated", "raspberry-pi-4-emulated", "pi@127.0.0.2:2222")


def test_devices_check_folds_what_does_not_fit_under_the_table():
    text = rendered(lambda console: render_probes([probe("pi-lab-emulated"), probe("pi-lab-2")], console))
    assert_fits(text, "pi-lab-emulated", "ai-edge-litert 1.2.0", "aarch64")
    # Every reading is still there, folded into one line per device.
    for reading in ("Debian GNU/Linux 12 (bookworm) / 6.6.31+rpt-rpi-v8", "20.0 GiB", "ondemand", "48 °C", "yes (USB)"):
        assert reading in " ".join(text.split()), reading
    assert text.count("ai-edge-litert") == 2  # once per device, in the table or under it
