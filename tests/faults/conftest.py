"""The fault suite's fixtures: tiny models built once per session, one
converted-variant cache shared by every test, and `faults_run`, the real
controller (tests/faults/controller.py) in its own process with a short
measurement plan."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import REPO

HERE = Path(__file__).resolve().parent
# One round, a few dozen samples: a pair costs ~0.5 s, mostly agent start-up.
FAST_PLAN = {
    "warmup_runs": 1, "warmup_seconds": 0.0, "min_runs": 20, "min_seconds": 0.0, "max_seconds": 5.0,
    "ci_rel_tol": 0.5, "rounds": 1, "retries": 1, "retry_backoff_s": 0.1, "command_timeout_s": 60.0,
    "op_profile_runs": 0,  # the per-operator profile's pass (>= 1 s a pair) is no fault's subject
}


def pytest_collection_modifyitems(items):
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.faults)


def _interruptible() -> None:
    """The controller under test takes Ctrl-C as a terminal gives it: a suite
    started in the background (`make test &`, nohup) inherits SIGINT ignored,
    and Python then installs no KeyboardInterrupt handler at all (measured:
    both Ctrl-C fault tests failed that way)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="session")
def fault_models(tmp_path_factory) -> Path:
    """The tiny detector recipe, six of its variants converted into a
    session cache, and hog.tflite (see models.py)."""
    folder = tmp_path_factory.mktemp("fault-models")
    subprocess.run([sys.executable, str(HERE / "models.py"), str(folder)], check=True, capture_output=True, timeout=300)
    env = dict(os.environ, HARNESS_CACHE=str(folder / "cache"), HARNESS_REPORTS=str(folder / "reports"))
    subprocess.run(
        [sys.executable, "-m", "harness", "convert", str(folder / "model.yaml"), "--variants", "fp32,fp16,dynamic-int8,int8,uint8,int16x8",
         "--out", str(folder / "variants")],
        check=True, capture_output=True, timeout=600, env=env, cwd=REPO,
    )
    return folder


@pytest.fixture(scope="session")
def tiny_tflite(fault_models) -> Path:
    """A bare float .tflite (benchmark-only runs: no dataset, no mAP)."""
    (found,) = (fault_models / "variants").rglob("*fp32*.tflite")
    return found


@dataclass
class Stored:
    """What a run left behind: results.json and the database rows."""

    exit_code: int
    stdout: str
    stderr: str
    reports: Path

    @property
    def db(self) -> Path:
        return self.reports / "results.sqlite"

    def results(self, run_id: str | None = None) -> dict:
        files = sorted(self.reports.glob("*/results.json"), key=lambda p: p.stat().st_mtime)
        if run_id is not None:
            files = [p for p in files if p.parent.name == run_id]
        return json.loads(files[-1].read_text())

    def by_pair(self, run_id: str | None = None) -> dict[tuple[str, str], dict]:
        records = self.results(run_id)["records"]
        pairs = {(r["device"]["name"], r["model"]["variant"]): r for r in records}
        assert len(pairs) == len(records), "a pair is stored twice in results.json"
        return pairs

    def db_counts(self) -> dict[tuple[str, str, str], int]:
        if not self.db.exists():
            return {}
        try:
            with sqlite3.connect(self.db, timeout=30) as conn:
                rows = conn.execute("SELECT run_id, device, variant, COUNT(*) FROM records GROUP BY run_id, device, variant")
                return {(r, d, v): n for r, d, v, n in rows.fetchall()}
        except sqlite3.OperationalError:  # polled while the controller creates it
            return {}

    def db_records(self, run_id: str) -> dict[tuple[str, str], dict]:
        """The store's records (results.json may lag it by the pair being
        saved when the controller was killed)."""
        from harness.results.store import SqliteStore

        with SqliteStore(self.db) as store:
            return {(r.device.name, r.model.variant): r.to_dict() for r in store.records(run_id)}

    def has(self, device: str, variant: str) -> bool:
        return any((d, v) == (device, variant) for (_, d, v) in self.db_counts())

    def assert_no_duplicates(self) -> None:
        assert all(n == 1 for n in self.db_counts().values()), self.db_counts()

    def no_traceback(self) -> None:
        assert "Traceback" not in self.stderr and "Traceback" not in self.stdout, self.stderr[-3000:]


@dataclass
class FaultRun:
    """Starts the controller; `run()` waits, `start()` returns the Popen."""

    tmp: Path
    cache: Path
    plan: dict = field(default_factory=lambda: dict(FAST_PLAN))
    env_extra: dict[str, str] = field(default_factory=dict)
    reports: Path = field(init=False)

    def __post_init__(self) -> None:
        self.reports = self.tmp / "reports"

    def env(self) -> dict[str, str]:
        return dict(
            os.environ, HARNESS_REPORTS=str(self.reports), HARNESS_CACHE=str(self.cache), COLUMNS="200",
            FAULTS_PLAN=json.dumps(self.plan), **self.env_extra,
        )

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.faults.controller", *args], cwd=REPO, env=self.env(),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_interruptible,
        )

    def finish(self, proc: subprocess.Popen, timeout_s: float = 300) -> Stored:
        try:
            out, err = proc.communicate(timeout=timeout_s)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        return Stored(proc.returncode, out, err, self.reports)

    def run(self, *args: str, timeout_s: float = 300) -> Stored:
        return self.finish(self.start(*args), timeout_s)

    def stored(self) -> Stored:
        return Stored(0, "", "", self.reports)


@pytest.fixture
def faults_run(fault_models, tmp_path) -> FaultRun:
    return FaultRun(tmp_path, fault_models / "cache")


@dataclass
class LabSetup:
    lab: object
    inventory: Path
    known_hosts: Path

    def device(self, name: str):
        return next(d for d in self.lab.devices if d.name == name)


@pytest.fixture
def fault_lab(tmp_path_factory):
    """`fault_lab(count, scripts={name: python3 body}, isolated={names},
    extra={name: inventory keys})`: lab devices customised before they
    start, trusted, with an inventory; all stopped (and checked to leave no
    process) at the end."""
    from tests.conftest import _require_sshd
    from tests.lab import Lab

    _require_sshd()
    labs: list[Lab] = []

    def make(count: int, *, scripts: dict[str, str] | None = None, isolated: set[str] | frozenset = frozenset(),
             extra: dict[str, dict] | None = None) -> LabSetup:
        root = tmp_path_factory.mktemp("fault-lab")
        lab = Lab(root, count)
        for device in lab.devices:
            device.python3_script = (scripts or {}).get(device.name)
            device.isolated = device.name in isolated
        labs.append(lab)
        lab.__enter__()
        known_hosts = lab.known_hosts(root / "known_hosts")
        return LabSetup(lab, lab.inventory(root / "inventory.yaml", known_hosts=known_hosts, extra=extra), known_hosts)

    yield make
    for lab in labs:
        lab.stop()


def python3_with(prefix: str) -> str:
    """A device `python3` that runs this venv's interpreter after `prefix`
    (shell lines: an environment variable, a limit)."""
    return f'#!/bin/sh\n{prefix}\nexec {sys.executable} "$@"\n'
