"""Write a run's report files next to its results."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Sequence

from harness.errors import InputError
from harness.gate.budgets import Budget
from harness.report.context import ReportContext
from harness.report.view import sections, short_commit
from harness.results.record import Record
from harness.results.store import ResultsStore

FORMATS = ("table", "md", "html", "json", "csv", "benchmark-json")


def render(records: Sequence[Record], fmt: str, *, title: str, context: ReportContext | None = None) -> str:
    if fmt == "md":
        from harness.report.markdown import render_markdown

        return render_markdown(records, title=title, context=context)
    if fmt == "html":
        from harness.report.html import render_html

        return render_html(records, title=title, context=context)
    if fmt == "benchmark-json":
        from harness.report.benchmark_json import render_benchmark_json

        run_id = records[0].run_id if records else ""
        created = min((r.created_at for r in records), default="")
        context = context or ReportContext()
        return render_benchmark_json(run_id, created, records, context.samples_ms, context.budgets)
    if fmt == "json":
        return json.dumps(_records_with_ship(records, (context or ReportContext()).budgets), indent=1) + "\n"
    if fmt == "csv":
        return _csv(records)
    raise ValueError(f"no text rendering for {fmt!r}")


def _records_with_ship(records: Sequence[Record], budgets: Sequence[Budget] | None) -> list[dict[str, Any]]:
    """Each record as stored, plus `ship`: this variant's verdict on its
    device (ship | runner-up | ruled out, and why) and the device's answer."""
    from harness.gate.ship import decide_all

    from harness.report.op_profile import json_views

    answers = {(d.device, d.model): d for d in decide_all(records, budgets)}
    profiles = json_views(records)  # the per-operator profile's summary by op type and vs fp32
    placed = _config_views(records)
    out = []
    for r in records:
        d = answers[(r.device.name, r.model.name)]
        verdict, why = d.verdict(r.key[2])
        views = {"configuration_views": placed[r.key]} if r.key in placed else {}
        if r.key in profiles:
            views["op_profile_views"] = profiles[r.key]
        out.append({**r.to_dict(), "ship": {"verdict": verdict, "why": why, "device_ships": d.variant,
                                            "answer": d.sentence(), "bounds": d.bounds}, **views})
    return out


def _config_views(records: Sequence[Record]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """A swept run's scaling and runtime figures per record (none without a sweep)."""
    from harness.report.configs import config_views, per_record

    return per_record(config_views(records))


# The columns a swept run's CSV adds (a run without a sweep keeps the old ones).
SWEEP_COLUMNS = ("threads", "runtime", "xnnpack", "speedup", "efficiency", "speedup_base_threads", "vs_runtime",
                 "runtime_reference")


def _csv(records: Sequence[Record]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    placed = _config_views(records)
    swept = any(r.configuration is not None for r in records)
    writer.writerow(
        ["run_id", "device", "model", "variant", "status", "p50_ms", "p90_ms", "p99_ms", "n",
         "latency_vs_fp32", "peak_mb", "size_bytes", "map", "map50", "map75", "map_drop_vs_fp32", "error"]
        + (list(SWEEP_COLUMNS) if swept else [])
    )
    for section in sections(records):
        for row in section.rows:
            r = row.record
            lat, acc = r.latency_ms, r.accuracy
            writer.writerow(
                [r.run_id, r.device.name, r.model.name, r.model.variant, r.status,
                 lat and lat.p50, lat and lat.p90, lat and lat.p99, lat and lat.n,
                 row.latency_ratio, r.memory_mb and r.memory_mb.peak, r.model.size_bytes,
                 acc and acc.map, acc and acc.map50, acc and acc.map75, row.map_drop,
                 r.error.message if r.error else ""]
                + (_sweep_cells(r, placed.get(r.key, {})) if swept else [])
            )
    return buffer.getvalue()


def _sweep_cells(record: Record, placed: dict[str, Any]) -> list[Any]:
    config = record.configuration
    runtime = record.device.runtime.name if record.device.runtime else (config.runtime if config else None)
    xnnpack = "" if config is None or config.xnnpack is None else ("on" if config.xnnpack else "off")
    return [record.threads, runtime, xnnpack, *(placed.get(k) for k in SWEEP_COLUMNS[3:])]


def write_text(path: Path, text: str, *, flag: str = "--out") -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror or exc}", source=path, hint=f"choose a writable path for {flag}") from None
    return path


def write_run_reports(
    records: Sequence[Record], run_dir: Path, *, title: str, context: ReportContext | None = None
) -> tuple[Path, Path]:
    md = write_text(run_dir / "report.md", render(records, "md", title=title, context=context))
    html = write_text(run_dir / "report.html", render(records, "html", title=title, context=context))
    return md, html


def run_title(store: ResultsStore, run_id: str) -> str:
    """`run <id>`, with the commit it measured when that is known."""
    info = store.run(run_id)
    commit = info.source_commit if info else None
    return f"run {run_id} · commit {short_commit(commit)}" if commit else f"run {run_id}"
