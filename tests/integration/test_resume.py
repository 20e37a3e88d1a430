"""A device lost mid-run, then `harness run --resume`: the other device's
results are all ok, the lost device's pairs fail with a reason, exit 3; after
the device is back, --resume measures only what is missing, once."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from tests.polling import wait_for

pytestmark = pytest.mark.slow


def records_of(db_path, device: str) -> int:
    if not db_path.exists():
        return 0
    try:
        with sqlite3.connect(db_path, timeout=30) as db:
            return db.execute("SELECT COUNT(*) FROM records WHERE device = ?", (device,)).fetchone()[0]
    except sqlite3.OperationalError:  # polled between the file's creation and its first migration
        return 0


def test_device_lost_mid_run_then_resume(ssh_lab, tiny_recipe, tmp_path):  # noqa: F811
    lab = ssh_lab(2)
    known_hosts = lab.known_hosts(tmp_path / "known_hosts")
    inventory = lab.inventory(tmp_path / "inventory.yaml", known_hosts=known_hosts)
    reports = tmp_path / "reports"
    env = dict(os.environ, HARNESS_REPORTS=str(reports), HARNESS_CACHE=str(tmp_path / "cache"), COLUMNS="200")
    base = [sys.executable, "-m", "harness", "run", "--inventory", str(inventory)]
    run = subprocess.Popen(
        base + ["--model", str(tiny_recipe), "--devices", "lab-a,lab-b", "--variants", "fp32,int8"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    db = reports / "results.sqlite"
    try:
        # lab-b goes down once it has measured its first round of something.
        wait_for(lambda: records_of(db, "lab-b") >= 1, 240, "lab-b's first measurement")
        lab.devices[1].kill()
        out, err = run.communicate(timeout=300)
    finally:
        run.kill()
    assert run.returncode == 3, out + err
    assert "Traceback" not in err
    (results,) = reports.glob("*/results.json")
    data = json.loads(results.read_text())
    by_pair = {(r["device"]["name"], r["model"]["variant"]): r for r in data["records"]}
    assert all(by_pair[("lab-a", v)]["status"] == "ok" for v in ("fp32", "int8"))
    lost = [r for (d, _), r in by_pair.items() if d == "lab-b" and r["status"] == "failed"]
    assert lost and all(r["error"]["kind"] == "device" and r["error"]["message"] for r in lost)

    lab.devices[1].restart()
    resumed = subprocess.run(base + ["--resume", data["run_id"]], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    data = json.loads(results.read_text())
    assert sorted((r["device"]["name"], r["model"]["variant"], r["status"]) for r in data["records"]) == [
        (d, v, "ok") for d in ("lab-a", "lab-b") for v in ("fp32", "int8")
    ]
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT device, variant, COUNT(*) FROM records GROUP BY run_id, device, variant").fetchall()
    assert sorted(rows) == [(d, v, 1) for d in ("lab-a", "lab-b") for v in ("fp32", "int8")]
    # lab-a was complete: the resume did not measure it again.
    assert by_pair[("lab-a", "fp32")]["created_at"] == {
        (r["device"]["name"], r["model"]["variant"]): r for r in data["records"]
    }[("lab-a", "fp32")]["created_at"]
