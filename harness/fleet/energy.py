"""Where a device's power is read, from a profile's or an inventory
entry's `energy:` block (the inventory's wins): an hwmon INA2xx sensor
found by its `name`, the Raspberry Pi 5's `vcgencmd pmic_read_adc`, or a
command that prints watts. The agent does the reading (devices/agent.py,
"Energy"); docs/measurement.md says what the figures mean."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.config import Fields
from harness.errors import InputError

ENERGY_SOURCES = ("hwmon", "vcgencmd", "command")
ENERGY_KEYS = ("source", "name", "root", "command", "interval_ms", "idle_seconds")
DEFAULT_HWMON_ROOT = "/sys/class/hwmon"


@dataclass(frozen=True)
class EnergySource:
    source: str
    # hwmon: the sensor's `name` file (None: any INA2xx) under `root`.
    name: str | None = None
    root: str = DEFAULT_HWMON_ROOT
    command: tuple[str, ...] = ()
    # How often the background thread reads the source, and how long the
    # idle window before the timed loop lasts.
    interval_ms: float = 5.0
    idle_seconds: float = 1.0

    def request(self) -> dict[str, Any]:
        """The agent's `energy` request field."""
        return {
            "source": self.source, "name": self.name, "root": self.root, "command": list(self.command),
            "interval_ms": self.interval_ms, "idle_seconds": self.idle_seconds,
        }


def parse_energy(f: Fields) -> EnergySource | None:
    """An `energy:` block, or None when there is none."""
    if not f.data:
        return None
    f.reject_unknown(ENERGY_KEYS)
    source = f.choice("source", ENERGY_SOURCES, required=True)
    command = f.str_list("command")
    if source == "command" and not command:
        raise InputError("energy source `command` needs the command to run", source=f.source, place=f"{f.place}.command",
                         hint="command: [cat, /run/power_w] (it prints watts)")
    interval_ms = f.float("interval_ms", EnergySource.interval_ms, minimum=0.5)
    assert interval_ms is not None and source is not None
    return EnergySource(
        source=source,
        name=f.str("name"),
        root=f.str("root", DEFAULT_HWMON_ROOT) or DEFAULT_HWMON_ROOT,
        command=command,
        interval_ms=interval_ms,
        idle_seconds=f.float("idle_seconds", EnergySource.idle_seconds, minimum=0) or 0.0,
    )
