"""`harness publish DIR` from a store written through the real store API:
an index and one page per series, the step marked with its commits, every
name escaped, and a page whose series gained no run not rendered again."""

from __future__ import annotations

import re

from harness.cli import main
from harness.report.publish import MANIFEST, publish
from tests.change_series import HOSTILE, add_run, commit, write_history
from tests.change_series import STORE_RUNS as RUNS
from tests.change_series import STORE_STEP_AT as STEP_AT


def test_the_site_marks_the_step_escapes_names_and_renders_only_what_changed(tmp_path):
    site = tmp_path / "site"
    with write_history(tmp_path / "results.sqlite", step_pct=10) as store:
        add_run(store, RUNS, device=HOSTILE)  # a second series, with a hostile device name
        first = publish(store, site)
        again = publish(store, site)
        add_run(store, RUNS + 1)  # one new run of the first series only
        third = publish(store, site)
    assert (first.series, first.rendered) == (2, 2)
    assert again.rendered == 0 and third.rendered == 1
    # every run's own report, once: RUNS + the hostile one, then only the new run
    assert (first.run_reports, again.run_reports, third.run_reports) == (RUNS + 1, 0, 1)
    pages = sorted(p for p in site.glob("*.html") if p.name != "index.html")
    assert len(pages) == 2 and (site / MANIFEST).exists()
    html = "".join(p.read_text() for p in [site / "index.html", *pages])
    assert HOSTILE not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "http://" not in html and "https://" not in html
    stepped = next(p.read_text() for p in pages if "pi5-1" in p.name)
    assert commit(STEP_AT - 1)[:12] in stepped and commit(STEP_AT)[:12] in stepped and "<svg" in stepped
    links = re.findall(r"<a href='(runs/[^']+)'>", stepped)
    assert len(links) == RUNS + 1 and all((site / link).is_file() for link in links)
    assert "host ci:" in stepped  # write_history's runs name their controller
    first_report = (site / links[0]).read_text()
    assert "run-000" in first_report and "http://" not in first_report


def test_the_command_says_what_it_rendered(tmp_path, capsys):
    write_history(tmp_path / "results.sqlite", step_pct=0).close()
    argv = ["publish", str(tmp_path / "site"), "--store", f"sqlite:///{tmp_path / 'results.sqlite'}"]
    assert main(argv) == 0 and "1 series, 1 page(s) rendered, 30 new run report(s)" in capsys.readouterr().out
    assert main(argv) == 0 and "1 series, 0 page(s) rendered, 0 new run report(s)" in capsys.readouterr().out
