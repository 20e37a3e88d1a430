"""FAKE power sensor: an INA226 hwmon tree in a temporary folder.

No INA2xx sensor can exist on the CI machines, so this stands in for
/sys/class/hwmon: a decoy device (`coretemp`), then `hwmonN/` with `name`
(ina226), `in0_input` (the shunt, mV: a value that would be wrong to use),
`in1_input` (bus mV), `curr1_input` (mA) and `power1_input` (uW), laid out
as the kernel's ina2xx driver lays them out. A thread replays a known power
trace, watts as a function of seconds since start(), into power1_input
(and curr1_input at a fixed bus voltage) every tick, each value written to
a temporary file and renamed over the old one, so a reader sees one whole
value or the next, as with sysfs.

Every value is logged with the CLOCK_MONOTONIC time it became visible,
the clock the agent stamps its samples with (one clock per machine), so the
energy the sensor showed over any window is known exactly: the integral of
that step function (`energy_j`). The agent's reading, timing and the host's
integration are the real code under test; only the sensor is fake.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from pathlib import Path
from typing import Callable

BUS_MV = 5000.0


class FakeHwmonTree:
    """FAKE: see the module docstring. Use as a context manager."""

    def __init__(self, root: Path, trace_w: Callable[[float], float], tick_s: float = 0.01, name: str = "ina226") -> None:
        self.root = Path(root)
        self.trace_w = trace_w
        self.tick_s = tick_s
        self.times_ns: list[int] = []
        self.values_w: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._replay, name="fake-hwmon", daemon=True)
        decoy = self.root / "hwmon0"
        decoy.mkdir(parents=True)
        (decoy / "name").write_text("coretemp\n")
        (decoy / "in0_input").write_text("900\n")
        self.device = self.root / "hwmon1"
        self.device.mkdir()
        (self.device / "name").write_text(f"{name}\n")
        (self.device / "in0_input").write_text("25\n")  # shunt mV: never the supply
        (self.device / "in1_input").write_text(f"{BUS_MV:.0f}\n")
        (self.device / "update_interval").write_text("1\n")

    def _write(self, file: str, text: str) -> None:
        tmp = self.device / f".{file}.tmp"
        tmp.write_text(text)
        os.replace(tmp, self.device / file)

    def _show(self, watts: float) -> None:
        self._write("curr1_input", f"{round(watts * 1e6 / BUS_MV)}\n")  # mA x mV = uW
        self._write("power1_input", f"{round(watts * 1e6)}\n")
        self.times_ns.append(time.monotonic_ns())
        self.values_w.append(round(watts * 1e6) / 1e6)  # what the file holds

    def _replay(self) -> None:
        start = time.monotonic()
        while not self._stop.wait(self.tick_s):  # the trace's time base, not a synchronisation
            self._show(self.trace_w(time.monotonic() - start))

    def __enter__(self) -> "FakeHwmonTree":
        self._show(self.trace_w(0.0))
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def shown_w(self, t_ns: int) -> float:
        """The value the file held at monotonic time t_ns."""
        return self.values_w[max(0, bisect.bisect_right(self.times_ns, t_ns) - 1)]

    def energy_j(self, start_ns: int, end_ns: int) -> float:
        """Exact integral of what the sensor showed over [start_ns, end_ns]."""
        edges = [start_ns] + [t for t in self.times_ns if start_ns < t < end_ns] + [end_ns]
        return sum(self.shown_w(a) * (b - a) / 1e9 for a, b in zip(edges, edges[1:]))
