"""`pip install .` (not only editable) must carry the agent, profiles and
the bundled demo detector."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_wheel_ships_agent_profiles_and_demo_model(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("edge_harness-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "harness/cli.py",
        "harness/_devices/agent.py",
        "harness/_devices/profiles/x86-cpu.yaml",
        "harness/_devices/inventory.example.yaml",
        "harness/_models/demo-detector/model.yaml",
        "harness/_models/demo-detector/detector.h5",
        "harness/_models/demo-detector/anchors.npy",
        "harness/report/report.js",  # inlined into every HTML report
    ):
        assert required in names, required
    assert not any("__pycache__" in n for n in names)


# -- a quiet build, and a wheel that works without the source tree ----------
#
# The wheel is built by calling setuptools' PEP 517 hooks in a fresh process
# with this venv's setuptools (`make dev` installs one that reads SPDX
# licenses), so no network is needed. pip shows every UserWarning a hook
# raises (its "BuildBackendWarning" lines), which is what the hooks record.

_BUILD_HOOKS = r"""
import json, sys, warnings
from setuptools import build_meta

hook, out_dir = sys.argv[1], sys.argv[2]
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    built = getattr(build_meta, hook)(out_dir)
shown = [f"{w.category.__name__}: {w.message}" for w in caught if issubclass(w.category, UserWarning)]
print(json.dumps({"file": built, "warnings": shown}))
"""
_NOT_BUILD_INPUT = (".git", ".venv*", "reports", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".benchmarks")


def _source_copy(tmp: Path) -> Path:
    """The checkout as `pip install .` sees it, without venvs and outputs
    (the build writes build/ and *.egg-info into the tree it builds)."""
    source = tmp / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*_NOT_BUILD_INPUT))
    return source


def _run_hook(source: Path, hook: str, out_dir: Path) -> tuple[Path, list[str]]:
    version = tuple(int(part) for part in metadata.version("setuptools").split(".")[:2])
    assert version >= (77, 0), "setuptools >= 77 reads `license` as SPDX: run `make dev` (the dev extra pins it)"
    out_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-c", _BUILD_HOOKS, hook, str(out_dir)],
        cwd=source, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    reply = json.loads(proc.stdout.strip().splitlines()[-1])
    return out_dir / reply["file"], reply["warnings"]


@pytest.fixture(scope="module")
def quiet_build(tmp_path_factory) -> tuple[Path, list[str]]:
    tmp = tmp_path_factory.mktemp("wheel")
    return _run_hook(_source_copy(tmp), "build_wheel", tmp / "dist")


@pytest.mark.slow
def test_wheel_build_raises_no_setuptools_warning(quiet_build):
    _, shown = quiet_build
    assert shown == [], "\n\n".join(shown)


@pytest.mark.slow
def test_editable_build_says_only_what_the_makefile_filters(tmp_path):
    """`make dev` installs editable; setuptools' one informational notice for
    a mapped layout is filtered there by its text, and nothing else may show."""
    makefile = (REPO / "Makefile").read_text()
    match = re.search(r'PYTHONWARNINGS="ignore:([^"]+)"', makefile)
    assert match, "the Makefile's editable installs lost their PYTHONWARNINGS filter"
    _, shown = _run_hook(_source_copy(tmp_path), "build_editable", tmp_path / "dist")
    unfiltered = [w for w in shown if not w.split(": ", 1)[1].startswith(match.group(1))]
    assert unfiltered == [], "\n\n".join(unfiltered)


@pytest.mark.slow
def test_wheel_carries_every_module_of_the_source_tree(quiet_build):
    """The packages list in pyproject.toml is written by hand: a new
    subpackage missing from it would install without its modules."""
    wheel, _ = quiet_build
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "harness").rglob("*.py") if "__pycache__" not in p.parts)
    assert modules and [m for m in modules if m not in names] == []
    for source, shipped in (("devices", "harness/_devices"), ("models", "harness/_models")):
        for path in (REPO / source).rglob("*.yaml"):
            assert f"{shipped}/{path.relative_to(REPO / source).as_posix()}" in names, path


@pytest.mark.slow
def test_installed_wheel_finds_agent_profiles_and_demo_without_the_source(quiet_build, tmp_path):
    wheel, _ = quiet_build
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target", str(target), str(wheel)],
        check=True, capture_output=True, timeout=300,
    )
    probe = (
        "import json; from harness import paths; "
        "print(json.dumps([str(paths.agent_path()), str(paths.demo_recipe_path()), "
        "sorted(p.name for p in paths.profiles_dir().glob('*.yaml'))]))"
    )
    # -S: no site-packages, so neither this venv's editable install nor the
    # checkout can answer; the cwd is outside the source tree too.
    proc = subprocess.run(
        [sys.executable, "-S", "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(target)},
        capture_output=True, text=True, timeout=60, check=True,
    )
    agent, recipe, profiles = json.loads(proc.stdout)
    assert Path(agent).is_file() and Path(agent).is_relative_to(target)
    assert Path(recipe).is_file() and Path(recipe).is_relative_to(target)
    assert profiles == sorted(p.name for p in (REPO / "devices" / "profiles").glob("*.yaml"))
