"""README's "what the harness survives" table is generated, never hand-written."""

from tests.faults.survives import README, table, updated


def test_readme_survives_table_is_current():
    text = README.read_text()
    assert table() in text and updated(text) == text, "run `python -m tests.faults.survives` and commit README.md"
