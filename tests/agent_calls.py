"""The agent run for real in a clean subprocess (`python -I agent.py`): one
request in, exactly one reply line out. Shared by the agent's test files."""

from __future__ import annotations

import json
import subprocess
import sys

from harness import paths

AGENT = paths.agent_path()
# A whole measurement plan: the agent has no defaults of its own.
FAST = {"warmup_runs": 2, "warmup_seconds": 0.0, "min_runs": 70, "min_seconds": 0.0, "max_seconds": 10.0, "ci_rel_tol": 0.01}


def call_agent(request: dict, *, env: dict | None = None, isolated: bool = True) -> tuple[int, dict, str]:
    argv = [sys.executable] + (["-I"] if isolated else []) + [str(AGENT)]
    proc = subprocess.run(argv, input=json.dumps(request).encode(), capture_output=True, timeout=300, env=env)
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == 1, f"stdout must be exactly one reply line, got {lines!r}"
    return proc.returncode, json.loads(lines[0]), proc.stderr.decode()
