"""`harness history`: the run list and metric trends as a rich table,
Markdown, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from typing import Any, Sequence

from harness.report.history import METRICS, RunSummary, Trend
from harness.report.view import md_cell as _md
from harness.report.view import short_commit

RUN_COLUMNS = ("run_id", "created_at", "source_commit", "host", "status", "command", "pairs", "ok", "failed", "skipped",
               "devices", "models")
TREND_COLUMNS = ("run_id", "created_at", "source_commit", "status", "value", "ci_lo", "ci_hi", "vs_previous")
_BLOCKS = "▁▂▃▄▅▆▇█"


def _run_row(run: RunSummary) -> dict[str, Any]:
    return {**asdict(run), "pairs": run.pairs, "devices": ",".join(run.devices), "models": ",".join(run.models)}


def _trend_rows(trend: Trend) -> list[dict[str, Any]]:
    rows, previous = [], None
    for p in trend.points:
        change = p.value / previous if p.value is not None and previous else None
        rows.append({"run_id": p.run_id, "created_at": p.created_at, "source_commit": p.source_commit,
                     "status": p.status, "value": p.value,
                     "ci_lo": p.ci[0] if p.ci else None, "ci_hi": p.ci[1] if p.ci else None, "vs_previous": change})
        previous = p.value if p.value is not None else previous
    return rows


def sparkline(values: Sequence[float | None]) -> str:
    """One block character per run, scaled between the series' min and max."""
    real = [v for v in values if v is not None]
    if not real:
        return ""
    lo, hi = min(real), max(real)
    return "".join(
        " " if v is None else _BLOCKS[0 if hi == lo else round((v - lo) / (hi - lo) * (len(_BLOCKS) - 1))] for v in values
    )


def _fmt(key: str, value: Any) -> str:
    if key == "source_commit":
        return short_commit(value)
    if value is None:
        return "—"
    if key == "vs_previous":
        return f"{value:.3f}x"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)



def _table_text(headers: Sequence[str], rows: Sequence[dict[str, Any]], fmt: str) -> str:
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(headers)
        writer.writerows([[row[h] for h in headers] for row in rows])
        return buffer.getvalue()
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("--:" if h in ("pairs", "ok", "failed", "skipped", "value",
             "ci_lo", "ci_hi", "vs_previous") else ":--" for h in headers) + "|"]
    lines += ["| " + " | ".join(_md(_fmt(h, row[h])) for h in headers) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def render_runs(runs: Sequence[RunSummary], fmt: str) -> str:
    rows = [_run_row(r) for r in runs]
    if fmt == "json":
        return json.dumps({"runs": rows}, indent=1) + "\n"
    text = _table_text(RUN_COLUMNS, rows, fmt)
    return text if fmt == "csv" else f"# Runs ({len(runs)})\n\n{text}"


def render_trends(trends: Sequence[Trend], fmt: str) -> str:
    if fmt == "json":
        return json.dumps({"trends": [
            {"device": t.key[0], "model": t.key[1], "variant": t.key[2], "metric": t.metric,
             "unit": METRICS[t.metric].unit, "points": _trend_rows(t)} for t in trends
        ]}, indent=1) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["device", "model", "variant", "metric", *TREND_COLUMNS])
        for t in trends:
            writer.writerows([[*t.key, t.metric, *(row[h] for h in TREND_COLUMNS)] for row in _trend_rows(t)])
        return buffer.getvalue()
    parts = []
    for t in trends:
        m = METRICS[t.metric]
        parts.append(f"## {_md(m.label)} ({m.unit or 'fraction'}) of {_md(t.label)}: "
                     f"`{sparkline([p.value for p in t.points])}`\n\n{_table_text(TREND_COLUMNS, _trend_rows(t), 'md')}")
    return "\n".join(parts)


def runs_table(runs: Sequence[RunSummary]):  # -> rich.table.Table
    """The terminal keeps it to one line per run: date to the minute, pairs
    as ok/failed/skipped (md, json and csv carry every column)."""
    from rich import box
    from rich.table import Table

    table = Table(title=f"{len(runs)} stored run(s), oldest first", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.caption = "pairs: total (ok/failed/skipped)"
    for h in ("run", "date (UTC)", "commit", "status", "command", "pairs", "devices"):
        table.add_column(h, no_wrap=True, min_width=len(runs[0].run_id) if h == "run" and runs else None,
                         justify="right" if h == "pairs" else "left")
    for r in runs:
        table.add_row(r.run_id, r.created_at[:16].replace("T", " "), short_commit(r.source_commit), r.status, r.command,
                      f"{r.pairs} ({r.ok}/{r.failed}/{r.skipped})", ",".join(r.devices))
    return table


def trend_tables(trends: Sequence[Trend]) -> list[Any]:
    from rich import box
    from rich.table import Table

    out = []
    for t in trends:
        m = METRICS[t.metric]
        table = Table(title=f"{m.label} ({m.unit or 'fraction'}) of {t.label}  {sparkline([p.value for p in t.points])}",
                      title_justify="left", box=box.SIMPLE_HEAD)
        for h in TREND_COLUMNS:
            table.add_column(h, justify="left" if h in ("run_id", "created_at", "status") else "right",
                             no_wrap=h in ("run_id", "value", "vs_previous"))
        for row in _trend_rows(t):
            table.add_row(*(_fmt(h, row[h]) for h in TREND_COLUMNS))
        out.append(table)
    return out
