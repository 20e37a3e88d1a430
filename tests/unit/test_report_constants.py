"""Facts the CLI keeps a copy of (so `harness --help` imports nothing heavy)
or the report borrows, tied to the one place each is defined."""

from __future__ import annotations

from harness import cli
from harness.fleet.profiles import FAMILIES, FAMILY_TITLES, available_profiles, load_profile
from harness.model.variants import DEFAULT_VARIANTS, VARIANTS
from harness.report import history, view, write
from tests.store_records import make_record


def test_the_cli_offers_exactly_the_report_formats_the_report_layer_renders():
    assert cli.REPORT_FORMATS == write.FORMATS


def test_the_cli_offers_exactly_the_trend_metrics_history_computes():
    assert cli.TREND_METRICS == tuple(history.METRICS)


def test_reports_order_variants_as_the_variant_table_declares_them():
    assert view.VARIANT_ORDER == tuple(VARIANTS)
    assert [v for v in view.VARIANT_ORDER if v in DEFAULT_VARIANTS] == list(DEFAULT_VARIANTS)


def test_every_profile_family_has_a_report_title_and_a_place_in_the_order():
    assert view.FAMILY_ORDER == FAMILIES and set(FAMILY_TITLES) == set(FAMILIES)
    for name in available_profiles():
        assert load_profile(name).family in FAMILY_TITLES, name


def test_every_file_format_renders():
    """`table` is drawn on the console (report/terminal.py); each other format is a text."""
    records = [make_record(variant="fp32"), make_record(variant="int8")]
    for fmt in write.FORMATS:
        if fmt != "table":
            assert write.render(records, fmt, title="t").strip(), fmt
