"""Shared fixtures: a clean subprocess runner for the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(tmp_path):
    """Run `python -m harness ...` in a fresh process, reports under tmp."""

    def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 900) -> CliResult:
        full_env = dict(os.environ, HARNESS_REPORTS=str(tmp_path / "reports"), COLUMNS="200")
        full_env.update(env or {})
        proc = subprocess.run(
            [sys.executable, "-m", "harness", *args],
            cwd=cwd or tmp_path,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return run
