"""One board under two inventory names (an alias, or lab devices whose homes
are one NFS share): bootstraps and runs through both names at once share one
device cache, and must not corrupt each other.

Before the fix two concurrent bootstraps failed "cannot upload …whl … [Errno
2] No such file" (both renamed the same `.partial`) and "`python3 -I -m venv
…` failed … No such file or directory: 'gpu_options.py'" (one rebuilt the
venv the other was installing into). The lab device's python3 is a bare
Python (no pip, numpy or runtime), so the bootstrap really installs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.conftest import _require_sshd, records_only_harness
from tests.lab import Lab

pytestmark = pytest.mark.slow

NAMES = ("board", "board-alias")


@pytest.fixture
def bare_board(tmp_path_factory):
    _require_sshd()
    root = tmp_path_factory.mktemp("one-board")
    bare = root / "bare-python"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    lab = Lab(root, 1)
    lab.devices[0].python3_script = f'#!/bin/sh\nexec {bare}/bin/python "$@"\n'
    with lab:
        yield lab


def _inventory(lab: Lab, folder) -> str:
    device = lab.devices[0]
    entry = {"host": device.host, "port": device.port, "user": device.user, "identity_file": str(lab.client_key),
             "profile": "x86-cpu", "python": "python3"}
    known_hosts = lab.known_hosts(folder / "known_hosts")
    path = folder / "inventory.yaml"
    path.write_text(yaml.safe_dump({"known_hosts": str(known_hosts), "devices": {name: entry for name in NAMES}}))
    return str(path)


def _both(argv_of, env: dict[str, str], cwd) -> dict[str, tuple[int, str]]:
    """The same command through both names at once."""
    procs = {name: subprocess.Popen(argv_of(name), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True) for name in NAMES}
    return {name: (proc.wait(timeout=900), proc.stdout.read()) for name, proc in procs.items()}


def test_two_names_for_one_board_bootstrap_and_run_at_once(bare_board, tiny_recipe, worker_cache, tmp_path):
    inventory = _inventory(bare_board, tmp_path)
    env = dict(os.environ, HARNESS_CACHE=str(worker_cache), COLUMNS="200")
    harness = [sys.executable, "-m", "harness"]

    booted = _both(lambda name: [*harness, "devices", "bootstrap", "--inventory", inventory, name], env, tmp_path)
    for name, (code, text) in booted.items():
        assert code == 0, f"{name}: {text}"
        assert "agent runs with ai-edge-litert" in text, text
    # One of them built the venv; the other found it built from the same wheels.
    assert sum("kept " in text for _, text in booted.values()) == 1, booted

    runner, run_env = records_only_harness(env)
    ran = _both(lambda name: [*runner, "run", "--inventory", inventory, "--model", str(tiny_recipe), "--devices", name,
                              "--variants", "fp32,int8"],
                dict(run_env, HARNESS_REPORTS=str(tmp_path / "reports")), tmp_path)
    for name, (code, text) in ran.items():
        assert code == 0, f"{name}: {text}"
    records = [r for results in (tmp_path / "reports").glob("*/results.json") for r in json.loads(results.read_text())["records"]]
    assert sorted((r["device"]["name"], r["model"]["variant"], r["status"]) for r in records) == [
        (name, variant, "ok") for name in NAMES for variant in ("fp32", "int8")
    ]
    assert {r["device"]["runtime"]["name"] for r in records} == {"ai-edge-litert"}

    for name in NAMES:
        check = subprocess.run([*harness, "devices", "check", "--inventory", inventory, name], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=300)
        assert check.returncode == 0 and "lacks" not in check.stdout, check.stdout + check.stderr
