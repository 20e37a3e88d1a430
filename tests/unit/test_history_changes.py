"""`harness history --changes` on a history with a known 10% step, written
through the real store: the step with both runs and commits, in every
format, and a table that fits 80 columns."""

from __future__ import annotations

import csv
import io
import json

import pytest
from rich.console import Console

from harness.cli import main
from harness.report import history_changes
from harness.results.store import SqliteStore
from tests.change_series import STORE_RUNS as RUNS
from tests.change_series import STORE_STEP_AT as STEP_AT
from tests.change_series import commit, write_history

@pytest.fixture(scope="module")
def stepped(tmp_path_factory):
    path = tmp_path_factory.mktemp("changes") / "results.sqlite"
    write_history(path, step_pct=10).close()
    return path


def test_the_step_is_listed_with_both_commits_and_fits_80_columns(stepped):
    with SqliteStore(stepped) as store:
        found = history_changes.all_changes(store, "p90")
    [row] = found[0].rows()
    assert (row["before_run"], row["after_run"]) == (f"run-{STEP_AT - 1:03d}", f"run-{STEP_AT:03d}")
    assert (row["before_commit"], row["after_commit"]) == (commit(STEP_AT - 1), commit(STEP_AT))
    assert row["step_pct_lo"] < row["step_pct"] < row["step_pct_hi"] and 8 < row["step_pct"] < 12
    out = io.StringIO()
    Console(file=out, width=80, color_system=None).print(*history_changes.changes_tables(found))
    text = out.getvalue()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80, text
    assert commit(STEP_AT - 1)[:12] in text and commit(STEP_AT)[:12] in text and "+10" in text


@pytest.mark.parametrize("fmt", ("json", "csv", "md"))
def test_every_format_carries_the_step(stepped, fmt, capsys):
    assert main(["history", "--changes", "--format", fmt, "--store", f"sqlite:///{stepped}"]) == 0
    out = capsys.readouterr().out
    if fmt == "json":
        [series] = json.loads(out)["series"]
        assert series["runs"] == RUNS and [s["after_commit"] for s in series["steps"]] == [commit(STEP_AT)]
    elif fmt == "csv":
        [row] = list(csv.DictReader(io.StringIO(out)))
        assert row["before_commit"] == commit(STEP_AT - 1) and row["variant"] == "int8"
    else:
        assert f"run-{STEP_AT:03d} {commit(STEP_AT)[:12]}" in out


def test_a_flat_history_lists_no_step_and_says_what_it_could_see(tmp_path):
    with write_history(tmp_path / "flat.sqlite", step_pct=0) as store:
        found = history_changes.all_changes(store, "p90")
    assert not found[0].changes.steps
    assert "steps under 1.0% not detectable" in history_changes.render_changes(found, "md")


def test_since_lists_only_the_steps_from_that_run_on(stepped, capsys):
    url = f"sqlite:///{stepped}"
    assert main(["history", "--changes", "--since", f"run-{STEP_AT:03d}", "--format", "csv", "--store", url]) == 0
    [row] = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert row["after_run"] == f"run-{STEP_AT:03d}"
    assert main(["history", "--changes", "--since", f"run-{STEP_AT + 1:03d}", "--format", "json", "--store", url]) == 0
    [series] = json.loads(capsys.readouterr().out)["series"]
    assert series["steps"] == [] and series["runs"] == RUNS  # the fit still saw every run


def test_since_names_an_unknown_run_or_a_missing_changes_flag(stepped, capsys):
    url = f"sqlite:///{stepped}"
    assert main(["history", "--changes", "--since", "run-999", "--store", url]) == 2
    assert "no run 'run-999'" in capsys.readouterr().err
    assert main(["history", "--since", "run-001", "--store", url]) == 2
    assert "add --changes" in capsys.readouterr().err
