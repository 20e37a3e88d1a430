"""Collects the ratios the benchmarks measure and prints them at the end
(`make bench` shows them; results also go to pytest-benchmark's extra_info)."""

from __future__ import annotations

RATIOS: dict[str, float] = {}


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001 - pytest hook
    if not RATIOS:
        return
    terminalreporter.section("edge harness: measurement ratios")
    for name, value in RATIOS.items():
        terminalreporter.write_line(f"{name:52s} {value:8.3f}")
