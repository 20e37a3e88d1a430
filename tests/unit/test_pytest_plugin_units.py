"""The pytest plugin's pure parts: which devices a test gets (or why none),
and measurement settings checked by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.device import Device, local_device
from harness.errors import InputError
from harness.fleet.inventory import Inventory
from harness.pytest_plugin.fleet import device_params
from harness.pytest_plugin.session import checked_measurement


def _ssh(name: str, *tags: str) -> Device:
    return Device(name=name, profile="x86-cpu", kind="ssh", python="python3", tags=tags, host="127.0.0.9", port=22)


LOCAL = local_device(Path("/tmp/unused"))
PI_1, PI_2, X86 = _ssh("pi-1", "arm64"), _ssh("pi-2", "arm64"), _ssh("x86-1")
INVENTORY = Inventory(Path("lab.yaml"), (PI_1, PI_2, X86), Path("known_hosts"))


def test_without_a_marker_every_selected_device():
    params = device_params(INVENTORY, (LOCAL, PI_1, X86))
    assert [(p.id, p.device) for p in params] == [("local", LOCAL), ("pi-1", PI_1), ("x86-1", X86)]


def test_by_name_and_by_tag():
    assert [p.device for p in device_params(INVENTORY, (LOCAL, PI_1, PI_2), names=["pi-2"])] == [PI_2]
    assert [p.device for p in device_params(INVENTORY, (LOCAL, PI_1, PI_2, X86), tag="arm64")] == [PI_1, PI_2]


def test_missing_devices_are_skips_with_the_reason():
    (unknown,) = device_params(INVENTORY, (LOCAL, PI_1), names=["pi-9"])
    assert unknown.device is None and unknown.skip_reason == (
        "device 'pi-9' is not in the fleet: inventory lab.yaml; devices: local, pi-1, pi-2, x86-1"
    )
    (deselected,) = device_params(INVENTORY, (LOCAL, PI_1), names=["pi-2"])
    assert deselected.skip_reason == "device 'pi-2' is not selected (--harness-devices local,pi-1)"
    (untagged,) = device_params(INVENTORY, (LOCAL, X86), tag="arm64")
    assert untagged.device is None and "no selected device is tagged 'arm64'" in untagged.skip_reason
    assert "their tags: local" in untagged.skip_reason


def test_measurement_settings_are_checked_by_name_and_type():
    assert checked_measurement({"min_seconds": 2, "rounds": 4}) == {"min_seconds": 2, "rounds": 4}
    with pytest.raises(InputError, match="unknown measurement setting 'min_second'") as typo:
        checked_measurement({"min_second": 2})
    assert typo.value.hint == "did you mean 'min_seconds'?"
    with pytest.raises(InputError, match="rounds must be a number >= 0"):
        checked_measurement({"rounds": "4"})
    with pytest.raises(InputError, match="warmup_runs counts, so it takes a whole number, got 2.5"):
        checked_measurement({"warmup_runs": 2.5})
    whole = checked_measurement({"warmup_runs": 2.0, "min_seconds": 0.5})
    assert whole == {"warmup_runs": 2, "min_seconds": 0.5} and isinstance(whole["warmup_runs"], int)
