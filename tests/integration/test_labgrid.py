"""Boards shared through a real labgrid coordinator.

The test starts `labgrid-coordinator` and `labgrid-exporter` on loopback (as
labgrid's own tests do), exports the lab's real sshd devices (tests/lab.py)
as NetworkServices, and creates and tags places with `labgrid-client`, the
way a lab admin would. The harness runs are real controller processes.

Places: rpi4-a and rpi4-b (board=rpi4, one lab device each), and solo
(board=solo, a second export of lab-a's board) for the one-place cases.
Each test gets the places released and unreserved, which is also what every
test asserts the harness leaves behind.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from tests.conftest import _require_sshd, records_only_harness
from tests.lab import Lab

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
READY_TIMEOUT_S = 30.0


def _free_loopback(port: int) -> str:
    for last in range(200, 250):
        host = f"127.0.0.{last}"
        probe = socket.socket()
        try:
            probe.bind((host, port))
            return host
        except OSError:
            continue
        finally:
            probe.close()
    raise RuntimeError(f"no free loopback address for port {port}")


class LabgridLab:
    """A coordinator, one exporter and the places, all on loopback."""

    def __init__(self, root: Path, lab: Lab) -> None:
        self.root, self.lab = root, lab
        self.address = f"{_free_loopback(20408)}:20408"
        self.processes: list[subprocess.Popen] = []

    def client(self, *args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([str(BIN / "labgrid-client"), "-x", self.address, *args], capture_output=True,
                                text=True, timeout=60, env=dict(os.environ, **(env or {})))
        if check:
            assert result.returncode == 0, result.stderr
        return result

    def _spawn(self, argv: list[str], log: str) -> None:
        with open(self.root / log, "ab") as out:
            self.processes.append(subprocess.Popen(argv, cwd=self.root, stdout=out, stderr=out, stdin=subprocess.DEVNULL))

    def _poll(self, ready, what: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready():
            assert all(p.poll() is None for p in self.processes), f"{what}: a labgrid process exited; see {self.root}"
            assert time.monotonic() < deadline, f"{what} not ready after {READY_TIMEOUT_S} s; see {self.root}"
            time.sleep(0.1)  # polling interval, not synchronisation

    def start(self) -> "LabgridLab":
        a, b = self.lab.devices
        exports = {
            group: {"NetworkService": {"address": dev.host, "port": dev.port, "username": dev.user}}
            for group, dev in (("lab-a", a), ("lab-b", b), ("solo", a))
        }
        (self.root / "exports.yaml").write_text(yaml.safe_dump(exports))
        self._spawn([str(BIN / "labgrid-coordinator"), "--listen", self.address], "coordinator.log")
        self._poll(lambda: self.client("places", check=False).returncode == 0, "coordinator")
        self._spawn([str(BIN / "labgrid-exporter"), "--coordinator", self.address, "--name", "benchhost",
                     "--hostname", "127.0.0.1", str(self.root / "exports.yaml")], "exporter.log")
        self._poll(lambda: self.client("resources").stdout.count("NetworkService") == 3, "exporter")
        for place, group, board in (("rpi4-a", "lab-a", "rpi4"), ("rpi4-b", "lab-b", "rpi4"), ("solo", "solo", "solo")):
            self.client("-p", place, "create")
            self.client("-p", place, "add-match", f"benchhost/{group}/*")
            self.client("-p", place, "set-tags", f"board={board}")
        return self

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def held(self) -> tuple[list[str], list[str]]:
        """(places acquired, reservations not yet gone), as the coordinator says."""
        places = self.client("-v", "places").stdout
        acquired = [block.split("'")[0] for block in places.split("Place '")[1:] if "acquired: None" not in block]
        reservations = self.client("reservations").stdout
        return acquired, [line.split("'")[1] for line in reservations.splitlines() if line.startswith("Reservation '")]

    def inventory(self, path: Path, **pool) -> Path:
        section = {"coordinator": self.address, "profile": "x86-cpu", "identity_file": str(self.lab.client_key),
                   "python": "python3", **pool}
        known_hosts = self.lab.known_hosts(path.parent / "known_hosts")
        path.write_text(yaml.safe_dump({"known_hosts": str(known_hosts), "labgrid": section}))
        return path


@pytest.fixture(scope="module")
def labgrid_lab(tmp_path_factory):
    _require_sshd()
    if not (BIN / "labgrid-coordinator").is_file():
        message = "labgrid is not installed (pip install -e '.[dev]')"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("labgrid")
    with Lab(root / "devices", 2) as lab:
        lg = LabgridLab(root, lab)
        try:
            yield lg.start()
        finally:
            lg.stop()


@pytest.fixture
def lg(labgrid_lab):
    yield labgrid_lab
    acquired, reservations = labgrid_lab.held()
    for place in acquired:  # what a failed test left; asserted by the tests themselves
        labgrid_lab.client("-p", place, "release", "--kick", check=False)
    for token in reservations:
        labgrid_lab.client("cancel-reservation", token, check=False)


def _controller(args: list[str], reports: Path, cache: Path, *, full_plan: bool = False) -> subprocess.Popen:
    """A controller process; `full_plan`: the profile's own measurement
    plan (seconds a pair) rather than the records-only one."""
    base = dict(os.environ, HARNESS_REPORTS=str(reports), HARNESS_CACHE=str(cache), COLUMNS="200")
    harness, full_env = ([sys.executable, "-m", "harness"], base) if full_plan else records_only_harness(base)
    reports.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([*harness, *args], cwd=reports.parent, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out + err


def _records(reports: Path) -> list[dict]:
    (results,) = reports.glob("*/results.json")
    return json.loads(results.read_text())["records"]


def _run_args(inventory: Path, recipe: Path, *extra: str, variants: str = "fp32,int8") -> list[str]:
    return ["run", "--inventory", str(inventory), "--model", str(recipe), "--devices", "labgrid",
            "--variants", variants, *extra]


def test_run_by_tag_measures_every_pair_and_leaves_nothing_held(lg, tiny_recipe, worker_cache, tmp_path):
    inventory = lg.inventory(tmp_path / "lab.yaml", tags={"board": "rpi4"}, count=2)
    code, text = _finish(_controller(_run_args(inventory, tiny_recipe), tmp_path / "reports", worker_cache))
    assert code == 0, text
    records = _records(tmp_path / "reports")
    assert sorted((r["device"]["name"], r["model"]["variant"], r["status"]) for r in records) == [
        ("rpi4-a", "fp32", "ok"), ("rpi4-a", "int8", "ok"), ("rpi4-b", "fp32", "ok"), ("rpi4-b", "int8", "ok")
    ]
    info = records[0]["device"]["labgrid"]
    assert info["exporter"] == "benchhost" and info["tags"] == {"board": "rpi4"} and info["coordinator"] == lg.address
    assert "board=rpi4" in records[0]["device"]["tags"]
    assert lg.held() == ([], [])
    # labgrid held the place: the harness's own lock file was never written.
    assert not list(lg.lab.root.glob("dev*/home/.cache/edge-harness/lock.json"))


def test_unknown_place_or_tag_is_exit_2_before_converting_and_a_dead_coordinator_exit_3(lg, tiny_recipe, run_cli, tmp_path):
    cases = [
        ({"places": ["rpi4-z"]}, 2, ["unknown labgrid place 'rpi4-z'", "labgrid.places", "did you mean 'rpi4-"]),
        ({"tags": {"board": "rpi5"}}, 2, ["have tags board=rpi5", "labgrid.tags", "board=rpi4", "set-tags"]),
        ({"tags": {"board": "rpi4"}, "coordinator": f"{lg.address.split(':')[0]}:1"}, 3,
         ["cannot reach the labgrid coordinator at", "labgrid-coordinator --listen", "coordinator:"]),
    ]
    for pool, code, wanted in cases:
        inventory = lg.inventory(tmp_path / "lab.yaml", **pool)
        # A fresh recipe path no cache has seen: any conversion would show.
        result = run_cli(*_run_args(inventory, tiny_recipe), env={"HARNESS_CACHE": str(tmp_path / "empty-cache")})
        text = " ".join((result.stdout + result.stderr).split())
        assert result.exit_code == code, text
        assert "Traceback" not in text and str(inventory) in text, text
        for part in wanted:
            assert part in text, (part, text)
        assert not (tmp_path / "empty-cache").exists(), "converted before checking the inventory"
        assert not (tmp_path / "reports").exists() or not list((tmp_path / "reports").glob("*/results.json"))
    assert lg.held() == ([], [])


def _poll(condition, what: str, proc: subprocess.Popen | None = None, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: the controller ended first: {_finish(proc)[1]}")
        assert time.monotonic() < deadline, f"{what} did not happen in {timeout_s} s"
        time.sleep(0.1)  # polling interval, not synchronisation


def test_ctrl_c_releases_the_place(lg, tiny_recipe, worker_cache, tmp_path):
    inventory = lg.inventory(tmp_path / "lab.yaml", tags={"board": "rpi4"}, count=1)
    reports = tmp_path / "reports"
    proc = _controller(_run_args(inventory, tiny_recipe), reports, worker_cache)
    # The run folder exists once the place is held (the variants come first).
    _poll(lambda: list(reports.glob("*/results.json")) and lg.held()[0], "holding a place", proc)
    proc.send_signal(signal.SIGINT)
    code, text = _finish(proc)
    assert code == 3 and "interrupted" in text and "Traceback" not in text, text
    assert lg.held() == ([], [])  # --resume after a stop: the killed-board test below


def _interval(records: list[dict]) -> tuple[datetime, datetime]:
    """From acquiring the place (microseconds) to the last pair's record
    (whole seconds, so an overlap under a second would not show)."""
    def at(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    return min(at(r["device"]["labgrid"]["acquired_at"]) for r in records), max(at(r["created_at"]) for r in records)


def test_two_controllers_share_two_places_and_queue_for_one(lg, tiny_recipe, worker_cache, tmp_path):
    # Two places: a colleague holds both; both controllers queue; when the
    # colleague lets go, labgrid allocates one place to each, at once.
    alice = {"LG_HOSTNAME": "alice-laptop"}
    for place in ("rpi4-a", "rpi4-b"):
        lg.client("-p", place, "acquire", env=alice)
    inventory = lg.inventory(tmp_path / "lab.yaml", tags={"board": "rpi4"}, count=1)
    runs = {name: tmp_path / name / "reports" for name in ("ci-1", "ci-2")}
    procs = {name: _controller(_run_args(inventory, tiny_recipe, "--lock-wait", "120", variants="fp32"), reports, worker_cache)
             for name, reports in runs.items()}
    _poll(lambda: len(lg.held()[1]) == 2, "both controllers waiting in labgrid's queue")
    for place in ("rpi4-a", "rpi4-b"):
        lg.client("-p", place, "release", env=alice)
    places = {}
    for name, proc in procs.items():
        code, text = _finish(proc)
        assert code == 0, text
        records = _records(runs[name])
        assert [r["model"]["variant"] for r in records] == ["fp32"]
        places[name] = {r["device"]["name"] for r in records}
    assert sorted(p for names in places.values() for p in names) == ["rpi4-a", "rpi4-b"], places
    assert lg.held() == ([], [])

    # One place: while a colleague holds it, a controller that may not wait
    # fails at once naming the holder as labgrid reports it.
    solo = lg.inventory(tmp_path / "solo.yaml", tags={"board": "solo"})
    lg.client("-p", "solo", "acquire", env=alice)
    code, text = _finish(_controller(_run_args(solo, tiny_recipe, "--lock-wait", "0", variants="fp32"), tmp_path / "busy" / "reports",
                                     worker_cache))
    text = " ".join(text.split())
    assert code == 3 and "Traceback" not in text, text
    assert "every labgrid place with board=solo is held: solo acquired by alice-laptop/" in text, text
    lg.client("-p", "solo", "release", env=alice)
    assert lg.held() == ([], [])

    # Two controllers for the one place with --lock-wait: one after the other.
    runs = {name: tmp_path / f"solo-{name}" / "reports" for name in ("ci-1", "ci-2")}
    procs = {name: _controller(_run_args(solo, tiny_recipe, "--lock-wait", "120", variants="fp32"), reports, worker_cache)
             for name, reports in runs.items()}
    intervals = []
    for name, proc in procs.items():
        code, text = _finish(proc)
        assert code == 0, text
        records = _records(runs[name])
        assert [(r["device"]["name"], r["model"]["variant"], r["status"]) for r in records] == [("solo", "fp32", "ok")]
        intervals.append(_interval(records))
    first, second = sorted(intervals)
    assert first[1] <= second[0], f"two controllers measured on the one place at once: {intervals}"
    assert lg.held() == ([], [])


def _stored(db: Path) -> list[tuple[str, str]]:
    """(device, variant) of every record row in the store, superseded or not."""
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            return conn.execute("SELECT device, variant FROM records").fetchall()
    except sqlite3.OperationalError:  # polled before the store's first migration
        return []


def test_a_board_killed_mid_run_releases_and_resume_measures_only_what_is_missing(lg, tiny_recipe, worker_cache, tmp_path):
    inventory = lg.inventory(tmp_path / "lab.yaml", places=["rpi4-b"])  # by name, this time
    reports, board = tmp_path / "reports", lg.lab.devices[1]
    proc = _controller(_run_args(inventory, tiny_recipe), reports, worker_cache, full_plan=True)
    try:
        _poll(lambda: _stored(reports / "results.sqlite"), "rpi4-b's first measured round", proc)
        board.kill()
        code, text = _finish(proc)
    finally:
        proc.kill()
        if board.process is None:
            board.restart()
    assert code == 3 and "Traceback" not in text, text
    assert lg.held() == ([], []), "a device lost (exit 3) must release its place"
    (results,) = reports.glob("*/results.json")
    before = {(r["model"]["variant"]): r for r in json.loads(results.read_text())["records"]}
    assert any(r["status"] == "failed" and r["error"]["kind"] == "device" for r in before.values()), before

    code, text = _finish(_controller(["run", "--resume", results.parent.name], reports, worker_cache, full_plan=True))
    assert code == 0, text
    after = json.loads(results.read_text())["records"]
    assert sorted((r["device"]["name"], r["model"]["variant"], r["status"]) for r in after) == [
        ("rpi4-b", "fp32", "ok"), ("rpi4-b", "int8", "ok")
    ]
    kept = [v for v, r in before.items() if r["status"] == "ok" and r["latency_ms"]["rounds"] == 2]
    assert all(r["created_at"] == before[r["model"]["variant"]]["created_at"] for r in after if r["model"]["variant"] in kept)
    assert lg.held() == ([], [])
