"""Inventory files for the unit tests: write one, and the exit-2 message of a bad one."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import InputError
from harness.fleet.inventory import load_inventory


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    return path


def error_of(path: Path) -> str:
    """The rendered message of the one InputError (exit 2) loading `path` raises."""
    with pytest.raises(InputError) as err:
        load_inventory(path)
    assert err.value.exit_code == 2
    return err.value.render()
