"""The "what the harness survives" table (docs/testing.md) is generated, never hand-written."""

from tests.faults.survives import TARGET, table, ungrouped, updated


def test_readme_survives_table_is_current():
    text = TARGET.read_text()
    assert not ungrouped(), f"add {ungrouped()} to GROUPS in tests/faults/survives.py"
    assert table() in text and updated(text) == text, "run `python -m tests.faults.survives` and commit docs/testing.md"
