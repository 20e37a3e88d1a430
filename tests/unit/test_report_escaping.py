"""Device, model and error text are user input: every report escapes them."""

from dataclasses import replace

import re

from harness.report.html import render_html
from harness.report.markdown import render_markdown
from harness.report.view import HEADERS
from harness.results.record import DeviceInfo, ErrorInfo, ModelInfo
from tests.store_records import make_record

HOSTILE = "<script>alert(1)</script>|x"


def hostile_records():
    ok = make_record()
    ok = replace(ok, device=replace(ok.device, name=HOSTILE), model=replace(ok.model, name=HOSTILE))
    failed = replace(
        make_record(variant="int8", status="failed"),
        device=DeviceInfo(HOSTILE, "x86-cpu"),
        model=ModelInfo(HOSTILE, "int8"),
        error=ErrorInfo("agent", HOSTILE),
        latency_ms=None,
        accuracy=None,
    )
    return [ok, failed]


def test_html_escapes_every_user_string():
    html = render_html(hostile_records(), title=HOSTILE)
    assert html.count("<script>") == 1  # the report's own inline script only
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_markdown_cannot_break_the_table_or_inject_html():
    md = render_markdown(hostile_records(), title=HOSTILE)
    assert "<script>" not in md
    assert "\\|x" in md  # a pipe in a name is escaped
    rows = [line for line in md.splitlines() if line.startswith("|")]
    assert rows
    for line in rows:  # no row gains a column from user text
        assert len(re.findall(r"(?<!\\)\|", line)) == len(HEADERS) + 1, line
