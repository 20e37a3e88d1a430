"""Where a run came from: the source commit it measured and the controller
host that ran it, stored with the run so a team's shared history can answer
"which commit made int8 slower?" and "which runner measured this?".

The commit is, in order: $HARNESS_COMMIT (set it when git cannot see where
the model came from); the commit CI says it is building (GitHub Actions,
GitLab CI, Buildkite, Jenkins); `git describe` of the repository the recipe
or model file lives in, with `-dirty` for uncommitted changes. Never the
folder the command runs in: from the harness's own checkout that is the
harness's commit, not the model's. None when none of these is known: a
model outside any repository is still a run.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

# Checked in order; the first one set wins.
COMMIT_VARIABLES = ("HARNESS_COMMIT", "GITHUB_SHA", "CI_COMMIT_SHA", "BUILDKITE_COMMIT", "GIT_COMMIT")
GIT_TIMEOUT_S = 5.0
MAX_COMMIT_CHARS = 80


def source_commit(*places: str | Path) -> str | None:
    """The commit of the first place (a file or a folder: the recipe, then the
    model it names) that lives in a git repository."""
    for name in COMMIT_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            return value[:MAX_COMMIT_CHARS]
    for place in places:
        commit = _git_describe(Path(place))
        if commit:
            return commit
    return None


def _git_describe(place: Path) -> str | None:
    folder = place if place.is_dir() else place.parent
    try:
        described = subprocess.run(
            ["git", "-C", str(folder), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None  # no git on this machine, or a hung file system: not worth failing a run over
    value = described.stdout.strip()
    return value[:MAX_COMMIT_CHARS] if described.returncode == 0 and value else None


def controller_host() -> str:
    return socket.gethostname()
