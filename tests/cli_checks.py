"""What every test of a bad-input failure checks about the CLI's answer:
exit 2, no traceback, and the message naming the file, the place and the fix."""

from __future__ import annotations


def assert_clean_input_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in result.stderr, result.stderr
