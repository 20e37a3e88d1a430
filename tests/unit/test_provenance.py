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


def commit_all(repo, message: str = "v1") -> str:
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD")[:12]


@pytest.fixture
def checkout(no_ci, tmp_path):
    """The harness's own checkout, where the command runs; no repository
    above tmp_path is looked at."""
    no_ci.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    harness = tmp_path / "harness"
    harness.mkdir()
    (harness / "cli.py").write_text("harness\n")
    commit_all(harness)
    no_ci.chdir(harness)
    return harness


def test_a_model_in_its_own_repository_gets_that_commit_not_the_checkouts(checkout, tmp_path):
    models = tmp_path / "models" / "detector"
    models.mkdir(parents=True)
    (models / "model.yaml").write_text("name: detector\n")
    (models / "detector.tflite").write_bytes(b"TFL3")
    head = commit_all(tmp_path / "models")
    assert provenance.source_commit(models / "model.yaml", models / "detector.tflite") == head
    assert provenance.source_commit(models / "detector.tflite") == head  # a bare .tflite
    (models / "detector.tflite").write_bytes(b"TFL3 retrained")
    assert provenance.source_commit(models / "detector.tflite") == head + "-dirty"


def test_a_model_outside_any_repository_has_no_commit_wherever_the_command_runs(checkout, tmp_path):
    outside = tmp_path / "downloads"
    outside.mkdir()
    (outside / "detector.tflite").write_bytes(b"TFL3")
    assert provenance.source_commit(outside / "detector.tflite") is None
    assert provenance.source_commit() is None  # the current folder (the checkout) is never asked


def test_the_recipes_repository_first_then_the_models(checkout, tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "detector.h5").write_bytes(b"\x89HDF")
    weights_head = commit_all(weights)
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "model.yaml").write_text("source: ../weights/detector.h5\n")
    # A recipe outside any repository: the model's repository says the commit.
    assert provenance.source_commit(recipes / "model.yaml", weights / "detector.h5") == weights_head
    recipes_head = commit_all(recipes)
    assert provenance.source_commit(recipes / "model.yaml", weights / "detector.h5") == recipes_head


def test_harness_commit_and_ci_win_over_the_models_repository(checkout, no_ci, tmp_path):
    repo = tmp_path / "m"
    repo.mkdir()
    (repo / "model.yaml").write_text("name: m\n")
    head = commit_all(repo)
    assert provenance.source_commit(repo / "model.yaml") == head
    no_ci.setenv("GITHUB_SHA", "c" * 40)
    assert provenance.source_commit(repo / "model.yaml") == "c" * 40
    no_ci.setenv("HARNESS_COMMIT", "release-9")
    assert provenance.source_commit(repo / "model.yaml") == "release-9"
