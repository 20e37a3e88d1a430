"""The terminal report fits an 80-column terminal and folds shared flags."""

import io

from rich.console import Console

from harness.report.terminal import _fold_common, render_terminal
from harness.report.view import ratio_words
from tests.store_records import make_record


def test_ratio_words_say_the_direction():
    # Below 1 the reader gets the speed-up, never "0.42x faster".
    assert ratio_words(0.42) == "2.38x faster"
    assert ratio_words(0.48) == "2.08x faster"
    assert ratio_words(1.4) == "1.40x slower"
    assert ratio_words(1.0) == "1.00x"
    assert ratio_words(0.996) == ratio_words(1.004) == "1.00x"  # equal within rounding, either way
    assert ratio_words(23.81) == "23.8x slower"
    assert ratio_words(1 / 23.81) == "23.8x faster"
    assert ratio_words(None) == "—"


def test_flags_every_row_shares_are_said_once():
    notes = ["fp32: under load", "int8: under load, p99<662 samples"]
    assert _fold_common(notes, 2) == ["every variant: under load", "int8: p99<662 samples"]
    assert _fold_common(notes[:1], 2) == notes[:1]  # not every row: kept per row


def test_narrow_table_is_not_truncated():
    records = [make_record(variant="fp32"), make_record(variant="dynamic-int8")]
    out = io.StringIO()
    render_terminal(records, Console(file=out, width=80), title="run r1")
    text = out.getvalue()
    assert "…" not in text
    assert "dynamic-int8" in text and "p50 vs fp32" in text
    assert max(len(line) for line in text.splitlines()) <= 80
