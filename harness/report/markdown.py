"""Markdown report, fit for a pull-request comment or a CI step summary."""

from __future__ import annotations

from typing import Sequence

from harness.report.view import HEADERS, cells, findings, sections
from harness.results.record import Record


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def render_markdown(records: Sequence[Record], *, title: str) -> str:
    out = [f"# {_escape(title)}", ""]
    group = None
    for section in sections(records):
        if section.group != group:
            group = section.group
            out.extend([f"## {_escape(group)}", ""])
        out.append(f"### {_escape(section.heading)}")
        out.append("")
        out.append("| " + " | ".join(h for _, h in HEADERS) + " |")
        out.append("|" + "|".join(":--" if k in ("variant", "flags") else "--:" for k, _ in HEADERS) + "|")
        for row in section.rows:
            c = cells(row)
            out.append("| " + " | ".join(_escape(str(getattr(c, k))) for k, _ in HEADERS) + " |")
        notes = findings(section)
        if notes:
            out.append("")
            out.extend(f"- {_escape(line)}" for line in notes)
        out.append("")
    out.append(
        "Latency: `invoke()` only, every sample kept; p90 interval is the distribution-free 95% "
        "order-statistic bound. Ratios compare with fp32 on the same device in the same run. "
        "mAP is COCO mAP@[.5:.95] on the device's own detections; its change against fp32 is in points (0.01 mAP; negative = lost)."
    )
    return "\n".join(out) + "\n"
