"""Device profiles: every shipped profile loads; bad ones are exit-2 errors
naming the file and the field; capability matching gives skip reasons."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.fleet.capabilities import capability_reason
from harness.edgetpu.compiler import Unavailable
from harness.errors import InputError
from harness.measure.pair import PairContext, delegate_for
from harness.measure.worker import preflight_record
from harness.fleet.profiles import available_profiles, load_profile, parse_profile
from harness.results.record import DeviceInfo, EdgeTpuReport


def test_every_family_has_its_profiles():
    names = set(available_profiles())
    assert {"x86-cpu", "raspberry-pi-4", "raspberry-pi-5", "coral-usb", "coral-dev-board"} <= names
    families = {load_profile(n).family for n in names}
    assert families == {"x86", "raspberry-pi", "coral"}


def test_pi_profiles_read_the_firmware_first_and_want_performance():
    pi = load_profile("raspberry-pi-4")
    assert pi.telemetry["throttling"] == ("vcgencmd", "sysfs") and pi.telemetry["temperature"][0] == "vcgencmd"
    assert pi.governor == "performance" and pi.cooldown.max_temperature_c is not None and not pi.emulated


def test_emulated_pi_extends_the_pi_with_a_short_plan():
    emulated, pi = load_profile("raspberry-pi-4-emulated"), load_profile("raspberry-pi-4")
    assert emulated.emulated and emulated.family == "raspberry-pi" and emulated.capabilities == pi.capabilities
    assert emulated.measurement.max_eval_images == 4 and emulated.measurement.min_runs < pi.measurement.min_runs
    assert emulated.cooldown.max_temperature_c is None  # an explicit null switches the inherited wait off


def test_coral_profiles_name_the_delegate():
    for name in ("coral-usb", "coral-dev-board"):
        profile = load_profile(name)
        assert "edgetpu" in profile.capabilities and profile.delegates["edgetpu"] == "libedgetpu.so.1"


@pytest.mark.parametrize(
    ("data", "place", "fragment"),
    [
        ({"name": "p", "capabilitys": ["float"]}, "capabilitys", "did you mean 'capabilities'"),
        ({"name": "p", "family": "jetson"}, "family", "unknown value 'jetson'"),
        ({"name": "p", "capabilities": ["float", "npu"]}, "capabilities", "unknown capability 'npu'"),
        ({"name": "p", "capabilities": ["edgetpu"]}, "delegates", "needs its delegate library"),
        ({"name": "p", "telemetry": {"temperature": ["ipmi"]}}, "telemetry.temperature", "unknown source 'ipmi'"),
        ({"name": "p", "affinity": [0, "a"]}, "affinity", "list of CPU numbers"),
        ({"name": "p", "cooldown": {"seconds": -1}}, "cooldown.seconds", ">= 0"),
        ({"name": "p", "measurement": {"max_eval_images": 0}}, "measurement.max_eval_images", ">= 1"),
    ],
)
def test_bad_profiles_name_file_and_field(data, place, fragment):
    with pytest.raises(InputError) as err:
        parse_profile(data, Path("devices/profiles/p.yaml"))
    text = err.value.render()
    assert "devices/profiles/p.yaml" in text and place in text and fragment in text


def _ctx(profile_name: str) -> PairContext:
    profile = load_profile(profile_name)
    info = DeviceInfo(name="d", profile=profile_name, family=profile.family, emulated=profile.emulated)
    return PairContext("run", Path("."), info, 1, profile.measurement, None, profile)


def skip_record(ctx, model, variant, artifact):
    """What the device worker records before measuring (not connected yet)."""
    return preflight_record(ctx, model, variant, artifact, runtime=None, lost=None)


def test_a_variant_the_device_cannot_run_is_skipped_with_the_reason():
    assert capability_reason(load_profile("coral-usb"), "edgetpu") is None
    record = skip_record(_ctx("raspberry-pi-4"), "demo", "edgetpu", object())
    assert record.status == "skipped" and record.error.kind == "capability"
    assert "raspberry-pi-4 does not offer edgetpu" in record.error.message and "coral-usb" in record.error.message
    assert skip_record(_ctx("raspberry-pi-4"), "demo", "int8", object()) is None


def test_unavailable_variant_is_skipped_everywhere_with_its_precheck():
    report = EdgeTpuReport(source="precheck", ops_on_tpu=5, ops_on_cpu=1)
    record = skip_record(_ctx("coral-usb"), "demo", "edgetpu", Unavailable("edgetpu", "compiler-missing", "no compiler", report))
    assert record.status == "skipped" and record.error.kind == "compiler-missing" and record.edgetpu == report


def test_only_the_edgetpu_variant_gets_the_delegate():
    class A:
        variant = "edgetpu"

    coral = load_profile("coral-usb")
    assert delegate_for(coral, A()) == {"name": "edgetpu", "library": "libedgetpu.so.1"}
    A.variant = "int8"
    assert delegate_for(coral, A()) is None
