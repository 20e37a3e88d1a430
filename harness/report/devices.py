"""Terminal tables for `harness devices list|check|bootstrap`."""

from __future__ import annotations

from typing import Sequence

from rich.console import Console
from rich.table import Table

from harness.device import Device
from harness.fleet.operations import Probe


def _or_dash(value: object) -> str:
    return "–" if value in (None, "") else str(value)


def render_inventory(devices: Sequence[Device], console: Console, *, source: str) -> None:
    table = Table(title=f"devices ({source})", title_justify="left")
    for column in ("device", "kind", "address", "profile", "python", "threads", "tags", "cache"):
        table.add_column(column)
    for d in devices:
        table.add_row(d.name, d.kind, d.address, d.profile, d.python, _or_dash(d.threads), ", ".join(d.tags), d.cache_dir)
    console.print(table)


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


def render_probes(probes: Sequence[Probe], console: Console, *, title: str = "device check") -> None:
    table = Table(title=title, title_justify="left")
    columns = ("device", "reachable", "arch", "OS / kernel", "python", "numpy", "runtime", "cores", "memory free/total",
               "disk free", "governor", "temp", "Edge TPU")
    for column in columns:
        table.add_column(column, overflow="fold")
    for p in probes:
        info = p.platform
        env = p.info.get("env") or {}
        runtime = p.info.get("runtime")
        reach = "[green]yes[/green]" if p.reachable else ("[red]untrusted[/red]" if p.untrusted else "[red]no[/red]")
        if p.reachable and not p.info:
            reach = "[yellow]yes, no agent[/yellow]"
        runtime_text = f"{runtime['name']} {runtime['version']}" if runtime else ("[red]none[/red]" if p.info else "–")
        disk = info.get("disk_free_mb")
        temp = env.get("temperature_c")
        table.add_row(
            p.device.name,
            reach,
            _or_dash(info.get("arch")),
            " / ".join(x for x in (info.get("os_name"), info.get("kernel")) if x) or "–",
            _or_dash(info.get("python")),
            _or_dash(info.get("numpy")) if p.info else "–",
            runtime_text,
            _or_dash(info.get("cpu_count")),
            _memory(p),
            "–" if disk is None else f"{disk / 1024:.1f} GiB",
            _or_dash(env.get("governor")),
            "–" if temp is None else f"{temp:.0f} °C",
            _edgetpu(p),
        )
    console.print(table)
    for p in probes:
        if p.error:
            hint = f"\n    fix: {p.error_hint}" if p.error_hint else ""
            console.print(f"[red]✗[/red] {p.device.name}: {p.error}{hint}")
        for missing in p.lacks():
            console.print(f"[yellow]![/yellow] {p.device.name} lacks {missing}")
