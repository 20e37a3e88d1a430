"""Shared fixtures: a clean subprocess runner for the CLI."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from harness.results.libpq import isolate_libpq

REPO = Path(__file__).resolve().parent.parent

# Session fixtures convert with TensorFlow in this process, and the store
# tests then connect to PostgreSQL over TLS: libpq must be loaded with its
# own OpenSSL first (harness/results/libpq.py says why). The product does the
# same when it opens a store; test_store_cli checks it in a fresh process.
isolate_libpq()


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(tmp_path):
    """Run `python -m harness ...` in a fresh process, reports under tmp."""

    def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 900,
            records_only: bool = False) -> CliResult:
        """records_only: measure with RECORDS_ONLY_PLAN (below)."""
        full_env = dict(os.environ, HARNESS_REPORTS=str(tmp_path / "reports"), COLUMNS="200")
        full_env.update(env or {})
        harness = [sys.executable, "-m", "harness"]
        if records_only:
            harness, full_env = records_only_harness(full_env)
        proc = subprocess.run(
            [*harness, *args],
            cwd=cwd or tmp_path,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return run


# -- the SSH device lab (tests/lab.py) ------------------------------------


def _require_sshd() -> None:
    """Skip where sshd is missing; in CI (CI set) that is a failure instead,
    so the lab tests can never silently stop running there."""
    from tests.lab import sshd_available

    if sshd_available():
        return
    message = "the SSH device lab needs /usr/sbin/sshd, unshare and ssh-keygen (apt-get install openssh-server)"
    if os.environ.get("CI"):
        pytest.fail(message + "; CI must install it (.ci/run does)")
    pytest.skip(message)


@pytest.fixture
def ssh_lab(tmp_path_factory):
    """Start lab devices: `lab = ssh_lab(2)`; all stopped (and checked to
    leave no process) at the end of the test."""
    from tests.lab import Lab

    _require_sshd()
    labs: list[Lab] = []

    def start(count: int = 2) -> Lab:
        lab = Lab(tmp_path_factory.mktemp("lab"), count).__enter__()
        labs.append(lab)
        return lab

    yield start
    for lab in labs:
        lab.stop()


@pytest.fixture(scope="module")
def module_lab(tmp_path_factory):
    """Two lab devices shared by a module's tests (starting one costs ~50 ms,
    but trusting and deploying to it costs more)."""
    from tests.lab import Lab

    _require_sshd()
    with Lab(tmp_path_factory.mktemp("lab"), 2) as lab:
        yield lab


def _require_qemu() -> None:
    from tests.aarch64_root import qemu_available

    if qemu_available():
        return
    message = "the emulated Raspberry Pi needs qemu-user-static and dpkg (apt-get install qemu-user-static)"
    if os.environ.get("CI"):
        pytest.fail(message + "; CI must install it (.ci/run does)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def emulated_pi_lab(tmp_path_factory):
    """One lab device whose `python3` is aarch64 CPython under qemu-user
    (tests/aarch64_root.py), with the aarch64 numpy and ai-edge-litert."""
    from tests import aarch64_root
    from tests.lab import Lab

    _require_sshd()
    _require_qemu()
    root = aarch64_root.build()
    lab = Lab(tmp_path_factory.mktemp("pi-lab"), 1)
    device = lab.devices[0]
    device.name = "pi-emu"
    script = tmp_path_factory.mktemp("pi-bin") / "python3"
    device.python3_script = aarch64_root.python_wrapper(root, script).read_text()
    with lab:
        yield lab


@pytest.fixture
def isolated_lab(tmp_path_factory):
    """One lab device in its own network namespace (no route out; the host
    reaches it over a veth pair) whose python3 is a bare Python: a venv
    without pip, numpy or a runtime."""
    import shutil
    import subprocess
    import sys

    from tests.lab import Lab

    _require_sshd()
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2 (`ip netns`)")
    root = tmp_path_factory.mktemp("isolated-lab")
    bare = root / "bare-python"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    lab = Lab(root, 1)
    device = lab.devices[0]
    device.name = "offline-a"
    device.isolated = True
    device.python3_script = f'#!/bin/sh\nexec {bare}/bin/python "$@"\n'
    with lab:
        yield lab


# -- the PostgreSQL results store (tests/pg.py) -----------------------------


@pytest.fixture(scope="session")
def pg_cluster():
    """One throw-away PostgreSQL server for the session (about 1 s to start);
    skipped where the server is not installed, a failure in CI."""
    from tests.pg import PgCluster, pg_bin_dir

    if pg_bin_dir() is None:
        message = "the PostgreSQL store tests need the server (apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must install it (.ci/run does)")
        pytest.skip(message)
    with PgCluster() as cluster:
        yield cluster


@pytest.fixture
def pg_url(pg_cluster, request) -> str:
    """A fresh, empty database on the session's cluster (with its password)."""
    import re
    import secrets

    name = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:40] + "_" + secrets.token_hex(3)
    return pg_cluster.create_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """Each back end in turn: the store test suite runs on both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'results.sqlite'}"
    return request.getfixturevalue("pg_url")


# --- the bundled demo detector, converted once per session ------------------
# Converting the six variants costs a TensorFlow import and about a minute, so
# one session converts them once into a shared cache; CLI tests point
# HARNESS_CACHE at it and find every variant already there.

from harness import paths as _paths  # noqa: E402
from harness.model.recipe import Recipe, load_recipe  # noqa: E402
from harness.model.variants import DEFAULT_VARIANTS  # noqa: E402



@pytest.fixture(scope="session")
def demo_recipe() -> Recipe:
    return load_recipe(_paths.demo_recipe_path())


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    # HARNESS_TEST_CACHE: a developer's warm cache (e.g. reports/.cache after
    # `make demo`), or the one `make test` hands both of its pytest runs, so
    # the benchmarks do not convert again. Under pytest-xdist the workers
    # share one folder (the parent of their base temp dirs): the demo
    # detector is converted once for all of them (demo_artifacts).
    override = os.environ.get("HARNESS_TEST_CACHE")
    if override:
        # A folder named by hand need not exist yet (make test creates its own).
        Path(override).mkdir(parents=True, exist_ok=True)
        return Path(override)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = tmp_path_factory.getbasetemp().parent / "harness-cache"
        shared.mkdir(exist_ok=True)
        return shared
    return tmp_path_factory.mktemp("harness-cache")


# What a worker's cache view shares with the session cache: everything
# content-addressed. local-device/ (the `local` device's lock and agent) is
# the worker's own.
SHARED_CACHE_ENTRIES = ("variants", "datasets", "inputs", "host-eval", "host-agent")


@pytest.fixture(scope="session")
def worker_cache(session_cache, tmp_path_factory) -> Path:
    """HARNESS_CACHE for this pytest process's CLI runs: the session's
    converted variants, datasets and prepared inputs (symlinks into
    session_cache) and a `local` device of its own. With one cache, two
    xdist workers measuring on `local` wait for each other's device lock
    (one run per device at a time, as the harness means it) and fail."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return session_cache
    view = tmp_path_factory.mktemp("harness-cache-view")
    for name in SHARED_CACHE_ENTRIES:
        (session_cache / name).mkdir(exist_ok=True)
        (view / name).symlink_to(session_cache / name, target_is_directory=True)
    return view


@pytest.fixture(scope="session")
def demo_datasets(demo_recipe, session_cache):
    from harness.model.datasets import resolve_dataset

    with _exclusive(session_cache / ".demo-datasets.lock"):
        return (
            resolve_dataset(demo_recipe, demo_recipe.calibration, session_cache),
            resolve_dataset(demo_recipe, demo_recipe.eval, session_cache),
        )


@pytest.fixture(scope="session")
def demo_artifacts(demo_recipe, demo_datasets, session_cache):
    from harness.convert.converter import convert_variants

    calibration, _ = demo_datasets
    # One converter at a time per cache: a second worker waits here, then
    # finds every variant in the cache.
    with _exclusive(session_cache / ".demo-artifacts.lock"):
        return convert_variants(demo_recipe, DEFAULT_VARIANTS, calibration, session_cache)


@pytest.fixture(scope="session")
def demo_fp32(demo_recipe, session_cache):
    """The demo detector's fp32 variant alone (cheap when demo_artifacts
    already ran; under the same lock, so two workers never write it at once)."""
    from harness.convert.converter import convert_variants

    with _exclusive(session_cache / ".demo-artifacts.lock"):
        return convert_variants(demo_recipe, ("fp32",), None, session_cache)["fp32"]


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)



# The measurement plan of the tests that read what a run recorded, not how
# fast it ran: the profile's minimum of 100 samples a pair stays (tests
# assert n >= 100), but a pair stops as soon as it has them (the p90's
# interval within +-20%) instead of running to the 2 s minimum, and on a
# loaded host to the 20 s cap, while waiting for +-1%. The cap and the two
# interleaved rounds stay, so int16x8 (~160 ms an invoke loaded) still
# reaches 100 samples. The fault suite's controller applies it to every
# profile (tests/faults/controller.py); the emulated Pi's own plan already
# has these warm-ups and minimums.
RECORDS_ONLY_PLAN = {"warmup_runs": 1, "warmup_seconds": 0.0, "min_seconds": 0.0, "ci_rel_tol": 0.2}


def records_only_harness(env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """`harness` with RECORDS_ONLY_PLAN: the command and its environment."""
    path = os.pathsep.join(filter(None, (str(REPO), env.get("PYTHONPATH"))))
    plan_env = dict(env, FAULTS_PLAN=json.dumps(RECORDS_ONLY_PLAN), PYTHONPATH=path)
    return [sys.executable, "-m", "tests.faults.controller"], plan_env


@pytest.fixture(scope="session")
def demo_run(demo_artifacts, worker_cache, tmp_path_factory):
    """One real `harness demo` per session (variants come from the session's
    conversion cache, pairs measured with RECORDS_ONLY_PLAN): (reports
    folder, run folder, the finished process). Treat it as read-only; copy
    the reports folder to add runs to it."""
    reports = tmp_path_factory.mktemp("reports")
    env = dict(os.environ, HARNESS_REPORTS=str(reports), HARNESS_CACHE=str(worker_cache), COLUMNS="220")
    env.pop("HARNESS_STORE", None)  # the default store: reports/results.sqlite
    harness, env = records_only_harness(env)
    # The demo SSD alone, every variant of its recipe: the regression baseline
    # the workbench and report tests read (the bundled `harness demo` picks
    # fewer variants and adds shapes-yolo, tests/unit/test_demo_models.py).
    every_variant = "fp32,fp16,dynamic-int8,int8,uint8,int16x8,qat-int8,selective-int8"
    proc = subprocess.run(
        [*harness, "demo", "--models", "demo-detector", "--variants", every_variant],
        cwd=reports, env=env, capture_output=True, text=True, timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = [p for p in reports.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return reports, run_dir, proc


# --- pytest-xdist: which tests share a worker ----------------------------------


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """A module per worker, the demo-run modules together, longest first
    (tests/xdist_groups.py)."""
    from tests.xdist_groups import make_scheduler

    return make_scheduler(config, log)


def pytest_collection_modifyitems(config, items):
    from tests.xdist_groups import check_demo_run_groups

    strays = check_demo_run_groups(items, Path(config.rootpath))
    if strays:
        raise pytest.UsageError(f"tests/xdist_groups.py does not see that these read demo_run: {strays[:3]}")


# --- small inputs several test files share ------------------------------------


@pytest.fixture
def two_box_dataset(tmp_path):
    """One image, a cat and a dog (tests/coco_cases.py): scores checkable by hand."""
    from tests.coco_cases import write_two_box_dataset

    return write_two_box_dataset(tmp_path)


@pytest.fixture(scope="module")
def tiny_recipe(tmp_path_factory) -> Path:
    """A tiny real detector (tests/integration/tiny_detector.py), trained and
    written with its recipe: cheap to convert, for fleet and resume runs."""
    folder = tmp_path_factory.mktemp("tiny-detector")
    script = REPO / "tests" / "integration" / "tiny_detector.py"
    subprocess.run([sys.executable, str(script), str(folder)], check=True, capture_output=True, timeout=300)
    return folder / "model.yaml"
