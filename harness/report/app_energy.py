"""The app's per-stage latency and the energy figures of a section, as
sentences beside its invoke-only table (every renderer shows them as
findings, so terminal, Markdown and HTML agree)."""

from __future__ import annotations

from harness.report.view import DeviceSection, fmt_ms
from harness.results.record import AppLatency, EnergyInfo, Record


def app_line(record: Record, app: AppLatency) -> str:
    shape = "x".join(str(v) for v in app.frame_shape[1::-1]) if len(app.frame_shape) >= 2 else "?"
    library = f"{app.image_library} {app.image_library_version}" if app.image_library_version else app.image_library
    decode = f" + decode {fmt_ms(app.decode.p50)}" if app.decode else ""
    invoke_only = f"; invoke-only {fmt_ms(record.latency_ms.p50)} ms" if record.latency_ms else ""
    return (
        f"app frame, {record.model.variant} ({shape} frames, {app.resize or '?'} with {library}): "
        f"prepare {fmt_ms(app.prepare.p50)} + invoke {fmt_ms(app.invoke.p50)}{decode} = "
        f"{fmt_ms(app.stage_p50_sum_ms)} ms p50; per frame p50 {fmt_ms(app.frame.p50)} / p90 {fmt_ms(app.frame.p90)} ms; "
        f"whole frame p50 {fmt_ms(app.whole_frame.p50)} ms{invoke_only}"
        + (" (under load: stage medians may add up to less than a whole frame's)" if record.env and record.env.under_load else "")
    )


def energy_line(record: Record, energy: EnergyInfo) -> str:
    def watts(value: float | None) -> str:
        return "—" if value is None else f"{value:.3f} W"

    per = "—" if energy.mj_per_inference is None else f"{energy.mj_per_inference:.3g} mJ"
    tail = f" (sensor error: {energy.error})" if energy.error else ""
    return (
        f"energy, {record.model.variant}: {per} per inference above idle; {watts(energy.power_w)} over "
        f"{energy.active_s:.2f} s of invokes, idle {watts(energy.idle_power_w)} ({energy.sensor}){tail}"
    )


def app_energy_lines(section: DeviceSection) -> list[str]:
    lines: list[str] = []
    for row in section.rows:
        record = row.record
        if record.app is not None:
            lines.append(app_line(record, record.app))
        if record.energy is not None:
            lines.append(energy_line(record, record.energy))
    return lines
