"""The published history site in headless Chromium: every series page
renders its chart with a point per run, no page makes a network request,
and a hostile device name is shown as text (store written through the real
SQLite store, tests/unit/test_publish.py)."""

from __future__ import annotations

from harness.report.publish import publish
from tests import browser
from tests.change_series import HOSTILE, add_run, write_history
from tests.change_series import STORE_RUNS as RUNS


def test_every_page_renders_offline_and_shows_names_as_text(tmp_path):
    browser.chromium()
    site = tmp_path / "site"
    with write_history(tmp_path / "results.sqlite", step_pct=10) as store:
        add_run(store, RUNS, device=HOSTILE)
        publish(store, site)
    pages = sorted(site.glob("*.html"))
    assert len(pages) == 3  # the index and two series
    for n, html in enumerate(pages):
        page = browser.load(html, tmp_path / f"chromium-{n}")
        assert page.page_requests == (), html.name
        assert "<img src=\"x\"" not in page.dom and "onerror=\"alert" not in page.dom  # the name never became markup
        if html.name == "index.html":
            assert "&lt;img src=x onerror=alert(1)&gt;" in page.dom
        else:
            points = page.dom.count("class=\"point\"")
            assert "<svg" in page.dom and points == (RUNS if "pi5-1" in html.name else 1), (html.name, points)
