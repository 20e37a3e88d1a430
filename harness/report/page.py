"""The HTML page shell shared by run and comparison reports: inline CSS and
the inline script (harness/report/report.js); nothing is fetched."""

from __future__ import annotations

from functools import lru_cache
from html import escape
from importlib import resources
from typing import Iterable

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem;color:#1d232a;max-width:1200px}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0;font-variant-numeric:tabular-nums}
th,td{padding:.3rem .6rem;border-bottom:1px solid #dde3ea;text-align:right;white-space:nowrap}
.scroll{overflow-x:auto;max-width:100%}
th{background:#f3f6f9}td.l,th.l{text-align:left}
tr.failed td{color:#b00020}.slower{color:#b00020}.faster{color:#137333}
.note{color:#4a5562;font-size:.9rem}td.wrap{white-space:normal;max-width:28rem}table.results td.wrap{max-width:14rem}table.results th{white-space:normal;vertical-align:bottom}.charts{display:flex;gap:2rem;flex-wrap:wrap;align-items:flex-start}
svg text{font:11px system-ui,sans-serif;fill:#1d232a}svg text.ct{font-weight:600}svg text.caption{fill:#4a5562}
.off{display:none}[data-tip]{cursor:default}
.tip{position:absolute;background:#1d232a;color:#fff;padding:.25rem .5rem;border-radius:4px;font-size:12px;pointer-events:none;max-width:32rem;white-space:normal;z-index:9}
.toggles{position:sticky;top:0;background:#fff;padding:.4rem 0;border-bottom:1px solid #dde3ea;z-index:5}
.toggles label{margin-right:.8rem;white-space:nowrap}
"""


@lru_cache(maxsize=1)
def script() -> str:
    # Ours, and checked by a test never to contain "</" (it sits inside <script>).
    return resources.files("harness.report").joinpath("report.js").read_text(encoding="utf-8")


def inline_code(text: str) -> str:
    """Plain text with `backtick` spans (as the Markdown notes write them),
    escaped, the spans as <code>."""
    parts = escape(text).split("`")
    return "".join(f"<code>{part}</code>" if i % 2 else part for i, part in enumerate(parts))


def toggles(variants: Iterable[str]) -> str:
    """One checkbox per variant: unticking hides its rows and marks everywhere."""
    boxes = "".join(
        f"<label><input type='checkbox' class='variant-toggle' value='{escape(v, quote=True)}' checked> {escape(v)}</label>"
        for v in dict.fromkeys(variants)
    )
    return f"<div class='toggles'><strong>variants:</strong> {boxes}</div>" if boxes else ""


def page(title: str, body: Iterable[str]) -> str:
    return "\n".join([
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        # No network: a Content-Security-Policy that allows nothing from outside.
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'; img-src data:\">",
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        *body,
        f"<script>{script()}</script>",
        "</body></html>",
    ])
