"""Terminal tables for `harness devices list|check|bootstrap`.

Both fit the terminal (harness/report/fit.py): `list` drops its least used
columns, `check` folds the readings it has no room for into one line per
device under the table, so nothing is cut."""

from __future__ import annotations

from typing import Any, Sequence

from rich.console import Console
from rich.text import Text

from harness.device import Device
from harness.fleet.operations import Probe
from harness.report import fit

INVENTORY_COLUMNS = tuple(fit.Column(k, k) for k in ("device", "kind", "address", "profile", "python", "threads", "tags", "cache"))
INVENTORY_DROPS = ("cache", "python", "tags", "threads", "kind")

PROBE_COLUMNS = tuple(fit.Column(k, h) for k, h in (
    ("device", "device"), ("reachable", "reachable"), ("arch", "arch"), ("os", "OS / kernel"), ("python", "python"),
    ("numpy", "numpy"), ("runtime", "runtime"), ("cores", "cores"), ("memory", "memory\nfree/total"),
    ("disk", "disk free"), ("governor", "governor"), ("temp", "temp"), ("edgetpu", "Edge TPU"),
))
# Folded under the table first: the readings that rarely decide anything.
PROBE_DROPS = ("os", "disk", "governor", "numpy", "temp", "cores", "python", "memory", "edgetpu", "arch", "runtime")


def _or_dash(value: object) -> str:
    return "–" if value in (None, "") else str(value)


def render_inventory(devices: Sequence[Device], console: Console, *, source: str) -> None:
    rows = [
        {"device": d.name, "kind": d.kind, "address": d.address, "profile": d.profile, "python": d.python,
         "threads": _or_dash(d.threads), "tags": ", ".join(d.tags), "cache": d.cache_dir}
        for d in devices
    ]
    table, dropped = fit.fitted(INVENTORY_COLUMNS, rows, console.width, INVENTORY_DROPS, title=f"devices ({source})")
    console.print(table)
    if dropped:
        console.print(Text(f"(left out for width: {fit.headers(dropped)}; a wider terminal shows them)", style="dim"))


def _memory(probe: Probe) -> str:
    mem = probe.platform.get("memory_mb") or {}
    if not mem.get("total"):
        return "–"
    return f"{mem.get('available', 0) / 1024:.1f}/{mem['total'] / 1024:.1f} GiB"


def _edgetpu(probe: Probe) -> str:
    tpu = probe.info.get("edgetpu")
    if not tpu:
        return "–"
    if not tpu.get("present"):
        return "no"
    where = "PCIe" if tpu.get("pcie") else "USB"
    return f"yes ({where}{'' if tpu.get('library') else ', no libedgetpu'})"


def _reach(probe: Probe) -> Text:
    if probe.reachable and not probe.info:
        return Text("yes, no agent", style="yellow")
    if probe.reachable:
        return Text("yes", style="green")
    return Text("untrusted" if probe.untrusted else "no", style="red")


def _probe_row(p: Probe) -> dict[str, Any]:
    info = p.platform
    env = p.info.get("env") or {}
    runtime = p.info.get("runtime")
    disk = info.get("disk_free_mb")
    temp = env.get("temperature_c")
    return {
        "device": p.device.name,
        "reachable": _reach(p),
        "arch": _or_dash(info.get("arch")),
        "os": " / ".join(x for x in (info.get("os_name"), info.get("kernel")) if x) or "–",
        "python": _or_dash(info.get("python")),
        "numpy": _or_dash(info.get("numpy")) if p.info else "–",
        "runtime": f"{runtime['name']} {runtime['version']}" if runtime else (Text("none", style="red") if p.info else "–"),
        "cores": _or_dash(info.get("cpu_count")),
        "memory": _memory(p),
        "disk": "–" if disk is None else f"{disk / 1024:.1f} GiB",
        "governor": _or_dash(env.get("governor")),
        "temp": "–" if temp is None else f"{temp:.0f} °C",
        "edgetpu": _edgetpu(p),
    }


def render_probes(probes: Sequence[Probe], console: Console, *, title: str = "device check") -> None:
    rows = [_probe_row(p) for p in probes]
    table, dropped = fit.fitted(PROBE_COLUMNS, rows, console.width, PROBE_DROPS, title=title)
    console.print(table)
    folded = [c for c in PROBE_COLUMNS if c in dropped]  # in the table's order
    for p, row in zip(probes, rows):
        readings = [f"{fit.headers([c])} {fit.plain(row[c.key])}" for c in folded if fit.plain(row[c.key]) != "–"]
        if readings:
            console.print(Text(f"  {p.device.name}: " + "; ".join(readings)))
    for p in probes:
        if p.error:
            hint = f"\n    fix: {p.error_hint}" if p.error_hint else ""
            console.print(Text.assemble(("✗", "red"), f" {p.device.name}: {p.error}{hint}"))
        for missing in p.lacks():
            console.print(Text.assemble(("!", "yellow"), f" {p.device.name} lacks {missing}"))
