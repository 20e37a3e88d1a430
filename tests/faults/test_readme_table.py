"""README's "what the harness survives" table is generated, never hand-written."""

from tests.faults.survives import README, table, ungrouped, updated


def test_readme_survives_table_is_current():
    text = README.read_text()
    assert not ungrouped(), f"add {ungrouped()} to GROUPS in tests/faults/survives.py"
    assert table() in text and updated(text) == text, "run `python -m tests.faults.survives` and commit README.md"
