"""Where a run came from: the commit it measured, from CI's variables or git."""

from __future__ import annotations

import subprocess

import pytest

from harness.results import provenance


@pytest.fixture
def no_ci(monkeypatch):
    for name in provenance.COMMIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def git(repo, *argv: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *argv], check=True, capture_output=True, text=True).stdout.strip()


def test_the_commit_of_the_current_folder_and_its_uncommitted_changes(no_ci, tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "model.py").write_text("v1\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "v1")
    head = git(tmp_path, "rev-parse", "HEAD")
    assert provenance.source_commit(str(tmp_path)) == head[:12]
    (tmp_path / "model.py").write_text("v2\n")
    assert provenance.source_commit(str(tmp_path)) == head[:12] + "-dirty"


def test_ci_variables_win_over_git_and_harness_commit_over_ci(no_ci, tmp_path):
    assert provenance.source_commit(str(tmp_path)) is None  # not a repository: unknown, not an error
    no_ci.setenv("GITHUB_SHA", "a" * 40)
    assert provenance.source_commit(str(tmp_path)) == "a" * 40
    no_ci.setenv("HARNESS_COMMIT", "release-2.3")
    assert provenance.source_commit(str(tmp_path)) == "release-2.3"


def test_no_git_on_the_machine_is_no_commit(no_ci, tmp_path):
    no_ci.setenv("PATH", str(tmp_path))  # no git to be found
    assert provenance.source_commit(str(tmp_path)) is None
