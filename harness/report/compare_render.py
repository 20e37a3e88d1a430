"""A comparison (two runs, variants or devices in one run) in every form:
rich table, Markdown, self-contained HTML, JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
from html import escape
from typing import TYPE_CHECKING

from harness.report.charts import RatioDot, ratio_chart
from harness.report.compare import ComparisonReport, PairComparison
from harness.report.page import page, toggles
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
    "ratio = candidate p50 / baseline p50. Verdict from the two-sided Mann–Whitney U test on the raw samples: "
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
    out += ["", NOTE]
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


def _label_parts(report: ComparisonReport, r: PairComparison) -> tuple[str, ...]:
    if report.kind == "variants":
        return (r.device, r.variant)
    if report.kind == "devices":
        return (r.variant, r.device)
    return (r.device, r.model, r.variant)


def render_html(report: ComparisonReport) -> str:
    body = [
        toggles(r.variant for r in report.rows),
        f"<p><strong>{escape(summary_line(report))}</strong></p>",
        html_table(report),
        f"<div class='charts'>{ratio_dots(report)}</div>",
        f"<p class='note'>{escape(NOTE.replace('`', ''))}</p>",
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
    console.print(Text(summary_line(report), style="bold"))


def render(report: ComparisonReport, fmt: str) -> str:
    renderers = {"md": render_markdown, "html": render_html, "json": render_json, "csv": render_csv}
    if fmt not in renderers:
        raise ValueError(f"no text rendering of a comparison as {fmt!r}")
    return renderers[fmt](report)
