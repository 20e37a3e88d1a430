"""A comparison (two runs, variants or devices in one run) in every form:
rich table, Markdown, self-contained HTML, JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Sequence

from harness.report.charts import MISC_COLOUR, LogAxis, log_ticks, mark, svg_open, svg_title, xtick
from harness.report.compare import ComparisonReport, PairComparison
from harness.report.page import inline_code, page, toggles
from harness.report.view import fmt_ms, ratio_words
from harness.report.view import md_cell as _md

if TYPE_CHECKING:
    from rich.console import Console

COLUMNS: tuple[tuple[str, str], ...] = (
    ("device", "device"),
    ("model", "model"),
    ("variant", "variant"),
    ("against", "against"),
    ("baseline_p50_ms", "baseline p50 ms"),
    ("candidate_p50_ms", "candidate p50 ms"),
    ("ratio", "ratio"),
    ("p_value", "p-value"),
    ("effect", "effect"),
    ("verdict", "verdict"),
)
TEXT_COLUMNS = ("device", "model", "variant", "against", "verdict")
NOTE = (
    "ratio: the candidate's p50 against the baseline's, as times slower or faster (2.00x faster: half the time; "
    "json and csv keep candidate / baseline as a number). Verdict from the two-sided Mann–Whitney U test on the raw samples: "
    "`slower`/`faster` only when p < 0.01 and the medians differ by more than 3%; `same` otherwise. "
    "effect = rank-biserial correlation (+1: every candidate sample slower)."
)


def cell_text(row: PairComparison, key: str) -> str:
    value = getattr(row, key)
    if value is None:
        return "—"
    if key.endswith("_ms"):
        return fmt_ms(value)
    if key == "ratio":
        return ratio_words(value)
    if key == "p_value":
        # erfc underflows to 0 for thousands of fully separated samples.
        return f"{value:.2g}" if value > 0 else "<1e-300"
    if key == "effect":
        return f"{value:+.2f}"
    return str(value)


def summary_line(report: ComparisonReport) -> str:
    counts = report.counts()
    return ", ".join(f"{n} {verdict}" for verdict, n in counts.items()) or "no pairs"


def render_json(report: ComparisonReport) -> str:
    return json.dumps(report.to_dict(), indent=1) + "\n"


def render_csv(report: ComparisonReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["kind", *(k for k, _ in COLUMNS), "n_baseline", "n_candidate"])
    for r in report.rows:
        writer.writerow([report.kind, *(getattr(r, k) for k, _ in COLUMNS), r.n_baseline, r.n_candidate])
    return buffer.getvalue()



def markdown_table(report: ComparisonReport) -> list[str]:
    out = ["| " + " | ".join(h for _, h in COLUMNS) + " |",
           "|" + "|".join(":--" if k in TEXT_COLUMNS else "--:" for k, _ in COLUMNS) + "|"]
    for r in report.rows:
        cells = [_md(cell_text(r, k)) for k, _ in COLUMNS]
        if r.verdict in ("slower", "faster"):
            cells[-1] = f"**{cells[-1]}**"
        out.append("| " + " | ".join(cells) + " |")
    return out


def render_markdown(report: ComparisonReport) -> str:
    out = [f"# {_md(report.title)}", "", f"**{_md(summary_line(report))}**", ""]
    out += markdown_table(report)
    out += ["", *(f"- {_md(note)}" for note in report.notes), *([""] if report.notes else []), NOTE]
    return "\n".join(out) + "\n"


def html_table(report: ComparisonReport) -> str:
    out = ["<div class='scroll'><table class='comparison'><thead><tr>"]
    out += [f"<th class='{'l' if k in TEXT_COLUMNS else ''}'>{escape(h)}</th>" for k, h in COLUMNS]
    out.append("</tr></thead><tbody>")
    for r in report.rows:
        out.append(f"<tr data-variant='{escape(r.variant, quote=True)}' class='verdict-{escape(r.verdict, quote=True)}'>")
        for key, _ in COLUMNS:
            klass = "l" if key in TEXT_COLUMNS else ""
            if key in ("verdict", "ratio") and r.verdict in ("slower", "faster"):
                klass += f" {r.verdict}"
            out.append(f"<td class='{klass.strip()}'>{escape(cell_text(r, key))}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def ratio_dots(report: ComparisonReport) -> str:
    dots = [
        RatioDot(
            r.variant, " · ".join(_label_parts(report, r)), r.ratio, r.verdict,
            f"{' '.join(_label_parts(report, r))} vs {r.against}: {cell_text(r, 'ratio')}, p={cell_text(r, 'p_value')}, "
            f"effect {cell_text(r, 'effect')}: {r.verdict}",
        )
        for r in report.rows if r.ratio is not None
    ]
    return ratio_chart(dots, title="candidate / baseline p50 (log scale; colour = verdict)")


# -- the ratio chart: one dot per pair ---------------------------------------


@dataclass(frozen=True)
class RatioDot:
    variant: str
    label: str
    ratio: float
    verdict: str
    tip: str


_VERDICT_COLOUR = {"slower": "#cf222e", "faster": "#1a7f37", "same": "#6e7781"}


def ratio_chart(dots: Sequence[RatioDot], *, title: str) -> str:
    """Candidate / baseline p50 per pair on a log axis centred on 1x (faster
    to the left), coloured by the test's verdict (not by the ratio alone)."""
    dots = [d for d in dots if d.ratio and d.ratio > 0 and math.isfinite(d.ratio)]
    if not dots:
        return ""
    label_w, w, row_h, top = 220, 580, 20, 28
    axis = top + row_h * len(dots)
    h = axis + 42
    span = max(1.1, *(max(d.ratio, 1 / d.ratio) for d in dots))
    x = LogAxis.fit([1 / span, span], label_w, w - 20)
    svg = [svg_open(w, h, title), svg_title(title)]
    one = x(1.0)
    svg.append(f"<line x1='{one:.1f}' y1='{top - 4}' x2='{one:.1f}' y2='{axis}' stroke='#888'/>")
    # Ticks say how many times, the words below which way: "2x" left of 1x
    # is twice as fast (never "0.5x", which reads as slower).
    for tick in log_ticks(x.lo, x.hi):
        svg.append(xtick(x(tick), axis, f"{max(tick, 1 / tick):g}x"))
    svg.append(f"<text x='{label_w}' y='{h - 2}'>← faster</text>")
    svg.append(f"<text x='{w - 20}' y='{h - 2}' text-anchor='end'>slower →</text>")
    for i, d in enumerate(dots):
        y = top + i * row_h + 10
        c = _VERDICT_COLOUR.get(d.verdict, MISC_COLOUR)
        label = d.label if len(d.label) <= 34 else d.label[:33] + "…"
        svg.append(
            f"<g{mark(d.variant, d.tip)}><text x='0' y='{y + 4}'>{escape(label)}</text>"
            f"<line x1='{one:.1f}' y1='{y}' x2='{x(d.ratio):.1f}' y2='{y}' stroke='{c}' stroke-width='2'/>"
            f"<circle cx='{x(d.ratio):.1f}' cy='{y}' r='5' fill='{c}' class='verdict-{escape(d.verdict, quote=True)}'/></g>"
        )
    svg.append("</svg>")
    return "".join(svg)


def _label_parts(report: ComparisonReport, r: PairComparison) -> tuple[str, ...]:
    if report.kind == "variants":
        return (r.device, r.variant)
    if report.kind == "devices":
        return (r.variant, r.device)
    if report.kind in ("threads", "runtimes", "xnnpack"):  # the pair's slot names its configuration
        return (r.device, r.variant)
    return (r.device, r.model, r.variant)


def render_html(report: ComparisonReport) -> str:
    body = [
        toggles(r.variant for r in report.rows),
        f"<p><strong>{escape(summary_line(report))}</strong></p>",
        html_table(report),
        *(f"<p class='note'>{escape(note)}</p>" for note in report.notes),
        f"<div class='charts'>{ratio_dots(report)}</div>",
        f"<p class='note'>{inline_code(NOTE)}</p>",
    ]
    return page(report.title, body)


# What a narrow terminal drops first: `against` is in the title, the effect
# size and the two medians are behind the ratio; md, csv and json keep all.
TERMINAL_DROPS = ("against", "effect", "baseline_p50_ms", "candidate_p50_ms", "p_value")
TERMINAL_HEADERS = {"baseline_p50_ms": "baseline\np50 ms", "candidate_p50_ms": "candidate\np50 ms"}


def render_table(report: ComparisonReport, console: Console) -> None:
    from rich.text import Text

    from harness.report import fit

    single_model = len({r.model for r in report.rows}) <= 1
    columns = [
        fit.Column(k, TERMINAL_HEADERS.get(k, h), "left" if k in TEXT_COLUMNS else "right") for k, h in COLUMNS
        if not (k == "against" and report.kind == "runs") and not (k == "model" and single_model)
    ]
    style = {"slower": "red", "faster": "green"}
    rows = [{k: Text(cell_text(r, k), style=style.get(r.verdict, "") if k == "verdict" else "") for k, _ in COLUMNS}
            for r in report.rows]
    table, dropped = fit.fitted(columns, rows, console.width, TERMINAL_DROPS, title=report.title)
    console.print(table)
    if dropped:
        console.print(Text(f"(left out for width: {fit.headers(dropped)}; --format md, csv or json has every column)",
                           style="dim"))
    for note in report.notes:
        console.print(Text(note))
    console.print(Text(summary_line(report), style="bold"))


def render(report: ComparisonReport, fmt: str) -> str:
    renderers = {"md": render_markdown, "html": render_html, "json": render_json, "csv": render_csv}
    if fmt not in renderers:
        raise ValueError(f"no text rendering of a comparison as {fmt!r}")
    return renderers[fmt](report)
