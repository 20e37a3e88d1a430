"""`python -m tests.faults.controller ARGS...` is `harness ARGS...` with the
measurement plan of every device profile shortened to $FAULTS_PLAN (JSON of
MeasurementPlan fields), so a fault test measures a pair in well under a
second. Everything else is the real controller in its own process: signals,
SSH, the store, exit codes. The session's demo run, the workbench runs and
the emulated Pi's run use it too (tests/conftest.py RECORDS_ONLY_PLAN).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace

import harness.runner as runner
from harness.cli import main
from harness.fleet.profiles import load_profile


def _short_profile(name: str):
    profile = load_profile(name)
    plan = json.loads(os.environ.get("FAULTS_PLAN") or "{}")
    return replace(profile, measurement=replace(profile.measurement, **plan))


def _peak_rss_kib() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


if __name__ == "__main__":
    runner.load_profile = _short_profile
    code = main(sys.argv[1:])
    sys.stderr.write(f"faults-controller peak_rss_kib={_peak_rss_kib()}\n")  # the load test reads it
    sys.exit(code)
