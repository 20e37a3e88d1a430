"""`pip install .` (not only editable) must carry the agent, profiles and
the bundled demo detector."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

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
