"""`harness history`: the run list and metric trends as a rich table,
Markdown, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import asdict
from typing import Any, Callable, Iterator, Sequence

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


# Below this width the tables keep what a decision needs and fold the rest
# (as the run report's terminal table does); md, json and csv carry it all.
WIDE_COLUMNS = 120
# Run ids the harness makes start with their UTC creation time, to the second.
_STAMPED_ID = re.compile(r"^\d{8}-\d{6}(-|$)")


class _FitsWidth:
    """A rich renderable laid out for the width it is printed at."""

    def __init__(self, layout: Callable[[int], list[Any]]) -> None:
        self._layout = layout

    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        yield from self._layout(options.max_width)


def _dated_by_id(run_ids: Sequence[str]) -> bool:
    """Every run id already says when its run started: a date column repeats it."""
    return all(_STAMPED_ID.match(run_id) for run_id in run_ids)


def runs_table(runs: Sequence[RunSummary]) -> _FitsWidth:
    """One row per run, pairs as ok/failed/skipped. Below WIDE_COLUMNS the
    command goes, the date too when the run ids carry it, and a device set
    every run shares is said once under the table."""
    return _FitsWidth(lambda width: _runs_layout(runs, width))


def _runs_layout(runs: Sequence[RunSummary], width: int) -> list[Any]:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    wide = width >= WIDE_COLUMNS
    dropped = [] if wide else ["command", *(["date"] if _dated_by_id([r.run_id for r in runs]) else [])]
    same_devices = len({r.devices for r in runs}) == 1 and not wide
    table = Table(title=f"{len(runs)} stored run(s), oldest first", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.caption = "pairs: total (ok/failed/skipped)"
    columns = [c for c in _RUN_CELLS if c[0] not in dropped and not (c[0] == "devices" and same_devices)]
    longest = {"run": max((len(r.run_id) for r in runs), default=0)}
    for name, header, _ in columns:
        table.add_column(header, no_wrap=name not in ("commit", "devices"), overflow="fold", min_width=longest.get(name),
                         justify="right" if name == "pairs" else "left")
    for r in runs:
        cells = [cell(r) for _, _, cell in columns]
        if not wide and columns[-1][0] == "devices":  # one per line: a name is never split
            cells[-1] = "\n".join(r.devices)
        table.add_row(*cells)
    out: list[Any] = [table]
    if same_devices:  # said once, not on every line
        out.append(Text(f"devices: {', '.join(runs[0].devices) or 'none'} (every run)"))
    if dropped:
        out.append(Text(f"({' and '.join(dropped)}: a terminal of {WIDE_COLUMNS}+ columns, or --format md)", style="dim"))
    return out


_RUN_CELLS: tuple[tuple[str, str, Callable[[RunSummary], str]], ...] = (
    ("run", "run", lambda r: r.run_id),
    ("date", "date (UTC)", lambda r: r.created_at[:16].replace("T", " ")),
    ("commit", "commit", lambda r: short_commit(r.source_commit)),
    ("status", "status", lambda r: r.status),
    ("command", "command", lambda r: r.command),
    ("pairs", "pairs", lambda r: f"{r.pairs} ({r.ok}/{r.failed}/{r.skipped})"),
    ("devices", "devices", lambda r: ", ".join(r.devices)),
)


def trend_tables(trends: Sequence[Trend]) -> list[_FitsWidth]:
    return [_FitsWidth(lambda width, t=t: _trend_layout(t, width)) for t in trends]


def _trend_layout(trend: Trend, width: int) -> list[Any]:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    # Above the table, not its title: a title wraps at the table's width.
    heading = Text(_trend_title(trend, width), style="italic")
    if width < WIDE_COLUMNS:
        return [heading, _narrow_trend_table(trend)]
    table = Table(box=box.SIMPLE_HEAD)
    for h in TREND_COLUMNS:
        table.add_column(h, justify="left" if h in ("run_id", "created_at", "status") else "right",
                         no_wrap=h in ("run_id", "value", "vs_previous"))
    for row in _trend_rows(trend):
        table.add_row(*(_fmt(h, row[h]) for h in TREND_COLUMNS))
    return [heading, table]


def _trend_title(trend: Trend, width: int) -> str:
    """The metric and pair, and a sparkline of as many of the last runs as fit the line."""
    m = METRICS[trend.metric]
    title = f"{m.label} ({m.unit or 'fraction'}) of {trend.label}"
    values = [p.value for p in trend.points]
    if len(title) + 2 + len(values) <= width:
        return f"{title}  {sparkline(values)}"
    shown = max(1, width - len(title) - len("  last 999 runs: "))
    return f"{title}  last {min(shown, len(values))} runs: {sparkline(values[-shown:])}"


def _narrow_trend_table(trend: Trend):  # -> rich.table.Table
    """Run, commit, value (or the pair's status when it has none), the
    interval as one column and the change: what fits 80 columns."""
    from rich import box
    from rich.table import Table

    dated = _dated_by_id([p.run_id for p in trend.points])
    with_ci = any(p.ci for p in trend.points)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    headers = ["run", *([] if dated else ["date (UTC)"]), "commit", "value", *(["95% CI"] if with_ci else []), "vs prev"]
    for h in headers:
        table.add_column(h, justify="left" if h in ("run", "date (UTC)", "commit") else "right",
                         no_wrap=h != "commit", overflow="fold")
    for row in _trend_rows(trend):
        value = _fmt("value", row["value"]) if row["status"] == "ok" else row["status"]
        ci = f"{_fmt('ci_lo', row['ci_lo'])}–{_fmt('ci_hi', row['ci_hi'])}" if row["ci_lo"] is not None else "—"
        table.add_row(row["run_id"], *([] if dated else [row["created_at"][:16].replace("T", " ")]),
                      _fmt("source_commit", row["source_commit"]), value, *([ci] if with_ci else []),
                      _fmt("vs_previous", row["vs_previous"]))
    return table
