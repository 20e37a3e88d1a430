"""A comparison (two runs, variants or devices in one run) in every form:
rich table, Markdown, self-contained HTML, JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
from html import escape

from harness.report.charts import RatioDot, ratio_chart
from harness.report.compare import ComparisonReport, PairComparison
from harness.report.page import page, toggles
from harness.report.view import fmt_ms
from harness.report.view import md_cell as _md

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
        return f"{value:.3f}x"
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
        *(f"<p class='note'>{escape(note)}</p>" for note in report.notes),
        f"<div class='charts'>{ratio_dots(report)}</div>",
        f"<p class='note'>{escape(NOTE.replace('`', ''))}</p>",
    ]
    return page(report.title, body)


def render_table(report: ComparisonReport, console) -> None:  # console: rich.console.Console
    from rich import box
    from rich.table import Table
    from rich.text import Text

    # Narrow terminals: drop what the title already says.
    single_model = len({r.model for r in report.rows}) <= 1
    columns = [(k, h) for k, h in COLUMNS if not (k == "against" and report.kind == "runs") and not (k == "model" and single_model)]
    table = Table(title=report.title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for key, header in columns:
        table.add_column(header, justify="left" if key in TEXT_COLUMNS else "right",
                         no_wrap=key in ("device", "variant", "verdict", "ratio"))
    for r in report.rows:
        style = {"slower": "red", "faster": "green"}.get(r.verdict, "")
        table.add_row(*(Text(cell_text(r, k), style=style if k == "verdict" else "") for k, _ in columns))
    console.print(table)
    for note in report.notes:
        console.print(Text(note))
    console.print(Text(summary_line(report), style="bold"))


def render(report: ComparisonReport, fmt: str) -> str:
    renderers = {"md": render_markdown, "html": render_html, "json": render_json, "csv": render_csv}
    if fmt not in renderers:
        raise ValueError(f"no text rendering of a comparison as {fmt!r}")
    return renderers[fmt](report)
