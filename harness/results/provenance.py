"""Where a run came from: the source commit it measured and the controller
host that ran it, stored with the run so a team's shared history can answer
"which commit made int8 slower?" and "which runner measured this?".

The commit is, in order: $HARNESS_COMMIT (set it when the model is not built
from the folder the harness runs in); the commit CI says it is building
(GitHub Actions, GitLab CI, Buildkite, Jenkins); `git describe` of the
current folder, with `-dirty` for uncommitted changes. None when none of
these is known: a run outside any repository is still a run.
"""

from __future__ import annotations

import os
import socket
import subprocess

# Checked in order; the first one set wins.
COMMIT_VARIABLES = ("HARNESS_COMMIT", "GITHUB_SHA", "CI_COMMIT_SHA", "BUILDKITE_COMMIT", "GIT_COMMIT")
GIT_TIMEOUT_S = 5.0
MAX_COMMIT_CHARS = 80


def source_commit(cwd: str | None = None) -> str | None:
    for name in COMMIT_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            return value[:MAX_COMMIT_CHARS]
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None  # no git on this machine, or a hung file system: not worth failing a run over
    value = described.stdout.strip()
    return value[:MAX_COMMIT_CHARS] if described.returncode == 0 and value else None


def controller_host() -> str:
    return socket.gethostname()
