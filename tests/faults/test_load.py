"""Load: eight lab devices at once, three variants each; every pair stored
once, no agent left running, and the controller's memory bounded."""

from __future__ import annotations

import re

from tests.faults.checks import assert_outcome
from tests.faults.lab_faults import no_agent_left

VARIANTS = ("fp32", "int8", "fp16")


def test_eight_devices_three_variants_each(fault_lab, faults_run, fault_models):
    setup = fault_lab(8)
    names = [d.name for d in setup.lab.devices]
    stored = faults_run.run("run", "--model", str(fault_models / "model.yaml"), "--inventory", str(setup.inventory),
                            "--devices", ",".join(names), "--variants", ",".join(VARIANTS), timeout_s=600)
    assert stored.exit_code == 0, stored.stderr[-3000:]
    pairs = assert_outcome(stored, ok={(d, v) for d in names for v in VARIANTS}, failed={})
    assert len(pairs) == 24 and len(stored.db_counts()) == 24
    for device in setup.lab.devices:
        no_agent_left(device)
    peak_kib = int(re.search(r"faults-controller peak_rss_kib=(\d+)", stored.stderr).group(1))
    print(f"controller peak RSS for 24 pairs on 8 devices: {peak_kib / 1024:.0f} MiB")
    assert peak_kib < 400 * 1024
