"""Fixtures the unit tests share."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest

from harness import paths


@pytest.fixture(scope="module")
def agent() -> ModuleType:
    """devices/agent.py imported as a module, as the device runs it (it
    cannot import the harness)."""
    spec = importlib.util.spec_from_file_location("edge_harness_agent", paths.agent_path())
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
