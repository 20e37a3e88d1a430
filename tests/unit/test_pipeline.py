"""The run's orchestration, piece by piece and without a device: the device
worker's retry policy and preflight, continuing a pair an interruption left
part-measured, conversion progress, exit codes and what the CLI says."""

from __future__ import annotations

import argparse
import io
import json
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from harness.cli import _interrupted, build_parser
from harness.convert.build import _Progress
from harness.convert.converter import Artifact
from harness.device import Device, local_device
from harness.errors import AgentError, ConversionError, DeviceLost, DeviceUnreachable
from harness.fleet.profiles import MeasurementPlan, load_profile
from harness.measure.events import RunEvents
from harness.measure.pair import PairAccumulator, PairContext, continued
from harness.measure.worker import DeviceJob, Transfer, preflight, retrying
from harness.model.recipe import bare_tflite_recipe
from harness.report.progress import ProgressEvents
from harness.results.record import DeviceInfo, EnvInfo, ErrorInfo, LatencyMs
from harness.runner import RunOutcome, _remaining, exit_code, transfer_note
from tests.store_records import make_record


def _artifact(tmp_path: Path, variant: str, sha: str = "ab" * 32, loadability: dict | None = None) -> Artifact:
    manifest = {"loadability": loadability or {"ai-edge-litert": "ok"}, "runtime_versions": {"ai-edge-litert": "2.3.0"}}
    path = tmp_path / f"{variant}.tflite"
    path.write_bytes(b"model")
    (tmp_path / f"{variant}.json").write_text(json.dumps(manifest))
    return Artifact("demo", variant, path, tmp_path / f"{variant}.json", sha, 5, manifest, cached=True)


def _ctx(rounds: int = 2) -> PairContext:
    profile = load_profile("x86-cpu")
    return PairContext("r1", Path("r1"), DeviceInfo("local", "x86-cpu", family="x86"), 1,
                       replace(profile.measurement, rounds=rounds), None, profile)


def _job(tmp_path: Path, artifacts: dict, rounds: int = 2) -> DeviceJob:
    recipe = bare_tflite_recipe(_artifact(tmp_path, "source").path)
    recipe = replace(recipe, name="demo")
    return DeviceJob(local_device(tmp_path), _ctx(rounds), recipe, tuple(artifacts), artifacts, {}, None, None, 0.0, "run")


# -- retry policy --------------------------------------------------------------


def test_retrying_retries_a_lost_device_with_backoff_and_names_the_first_failure():
    plan = MeasurementPlan(retries=2, retry_backoff_s=0.0)
    calls: list[int] = []
    said: list[str] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise DeviceLost(f"lost {len(calls)}")
        return "reply"

    assert retrying(flaky, plan, threading.Event(), said.append) == "reply"
    assert said == ["lost 1; retry 1/2 in 0 s", "lost 2; retry 2/2 in 0 s"]

    def always(message_of=iter(["lost mid-upload", "refused", "refused"])):
        raise DeviceUnreachable(next(message_of))

    with pytest.raises(DeviceUnreachable) as err:
        retrying(always, plan, threading.Event(), said.append)
    assert err.value.message == "lost mid-upload; then, after 2 retries: refused"


def test_an_agent_failure_or_a_cancelled_run_is_not_retried():
    plan = MeasurementPlan(retries=3, retry_backoff_s=0.0)
    calls: list[int] = []

    def agent_fails() -> None:
        calls.append(1)
        raise AgentError("model does not load")

    with pytest.raises(AgentError):
        retrying(agent_fails, plan, threading.Event(), lambda why: None)
    cancelled = threading.Event()
    cancelled.set()

    def lost() -> None:
        calls.append(1)
        raise DeviceLost("gone")

    with pytest.raises(DeviceLost):
        retrying(lost, plan, cancelled, lambda why: None)
    assert len(calls) == 2


# -- preflight ------------------------------------------------------------------


def test_preflight_records_what_will_not_be_measured_and_why(tmp_path):
    cannot = _artifact(tmp_path, "int16x8", loadability={"ai-edge-litert": "ok", "tflite-runtime": "Didn't find op"})
    artifacts = {"fp32": _artifact(tmp_path, "fp32"), "int8": ConversionError("the converter rejected int8"),
                 "int16x8": cannot}
    job = _job(tmp_path, artifacts)
    records = preflight(job, ("tflite-runtime", "2.14.0"), lost=None)
    assert set(records) == {"int8", "int16x8"}
    assert (records["int8"].status, records["int8"].error.kind) == ("failed", "conversion")
    assert "the converter rejected int8" in records["int8"].error.message and records["int8"].model.sha256 is None
    skipped = records["int16x8"]
    assert (skipped.status, skipped.error.kind, skipped.model.sha256) == ("skipped", "unloadable", "ab" * 32)
    assert "tflite-runtime 2.14.0, which cannot load int16x8" in skipped.error.message
    # A device already lost is not asked what it loads: its pairs fail as lost.
    assert set(preflight(job, ("tflite-runtime", "2.14.0"), lost="unreachable")) == {"int8"}


# -- continuing an interrupted pair --------------------------------------------------


def test_a_part_measured_pair_continues_with_its_earlier_rounds_kept(tmp_path):
    earlier = replace(make_record("r1", "fp32"), latency_ms=replace(make_record().latency_ms, rounds=1))
    earlier_ns = [1_000_000 + i for i in range(100)]
    reply = {"samples_ns": [2_000_000 + i for i in range(100)], "load_ms": 9.0, "first_invoke_ms": 9.5, "threads": 1,
             "memory_mb": {"baseline": 55.0, "after_load": 66.0, "peak": 90.0},
             "env_before": {"temperature_c": 50.0}, "env_after": {"temperature_c": 52.0, "throttled": True}}
    pair = PairAccumulator(_artifact(tmp_path, "fp32"), earlier=(earlier, earlier_ns))
    pair.add(reply, _ctx(), None, None)
    record, samples_ns = pair.record(_ctx())
    assert samples_ns == earlier_ns + reply["samples_ns"]
    assert record.latency_ms.rounds == 2 and record.latency_ms.n == 200
    # First-round facts from the first sitting, the last reading from the second.
    assert (record.load_ms, record.first_invoke_ms, record.accuracy) == (earlier.load_ms, earlier.first_invoke_ms, earlier.accuracy)
    assert record.memory_mb.baseline == earlier.memory_mb.baseline and record.memory_mb.peak == 90.0
    assert record.env.temperature_c_before == earlier.env.temperature_c_before and record.env.temperature_c_after == 52.0
    assert record.env.throttled is True and record.device == earlier.device


def test_continued_env_keeps_every_warning_of_both_sittings():
    earlier = replace(make_record(), env=EnvInfo(40.0, 41.0, under_load=True, throttle_reasons=("arm freq capped",), cooldown_s=2.0))
    later = replace(make_record(), env=EnvInfo(42.0, 43.0, throttled=False, under_load=False, throttle_reasons=("soft temp",),
                                               cooldown_s=1.0))
    env = continued(earlier, later, [1_000_000] * 10).env
    assert env.under_load is True and env.throttled is False and env.cooldown_s == 3.0
    assert env.throttle_reasons == ("arm freq capped", "soft temp") and (env.temperature_c_before, env.temperature_c_after) == (40.0, 43.0)


def test_resume_skips_complete_pairs_and_continues_partial_ones_of_the_same_model(tmp_path):
    artifacts = {v: _artifact(tmp_path, v) for v in ("fp32", "int8", "fp16")}
    artifacts["fp16"] = replace(artifacts["fp16"], sha256="cd" * 32)  # converted again since: a new model
    partial = LatencyMs(**{**make_record().latency_ms.__dict__, "rounds": 1})
    records = [
        replace(make_record("r1", "fp32"), latency_ms=replace(partial, rounds=2)),
        replace(make_record("r1", "int8"), latency_ms=partial),
        replace(make_record("r1", "fp16"), latency_ms=partial),
    ]
    job = _remaining(_job(tmp_path, artifacts), records, frozenset(), lambda record: [7, 8])
    assert job.variants == ("int8", "fp16") and set(job.earlier) == {"int8"}
    assert job.earlier["int8"][1] == [7, 8] and job.rounds_done("int8") == 1 and job.units == 1 + 2
    again = _remaining(_job(tmp_path, artifacts), records, frozenset({("local", "fp32")}), lambda record: [7, 8])
    assert again.variants == ("fp32", "int8", "fp16")  # gate --remeasure: measured anew


# -- conversion progress ------------------------------------------------------------


class Recorded(RunEvents):
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def advance(self, name: str, label: str, units: int = 0) -> None:
        self.calls.append(("advance", label, units))

    def converted(self, variant: str, outcome: str, seconds: float) -> None:
        self.calls.append(("converted", variant, outcome))


def test_every_converter_step_moves_the_label_and_each_variant_advances_the_bar_once():
    events = Recorded()
    progress = _Progress(events)
    for variant, message in [("qat-int8", "loading TensorFlow and the float model"), ("qat-int8", "converting"),
                             ("qat-int8", "fine-tuning, epoch 1/3"), ("qat-int8", "done"), ("fp32", "cached"),
                             ("int8", "converting"), ("int8", "failed")]:
        progress(variant, message)
    assert events.calls == [
        ("advance", "qat-int8: loading TensorFlow and the float model", 0), ("advance", "qat-int8: converting", 0),
        ("advance", "qat-int8: fine-tuning, epoch 1/3", 0),
        ("advance", "qat-int8: done", 1), ("converted", "qat-int8", "done"),
        ("advance", "fp32: cached", 1), ("converted", "fp32", "cached"),
        ("advance", "int8: converting", 0), ("advance", "int8: failed", 1), ("converted", "int8", "failed"),
    ]


def test_the_display_prints_one_line_per_converted_variant():
    screen = io.StringIO()
    with ProgressEvents(Console(file=screen, width=100)) as events:
        events.stage("convert", total=2)
        events.converted("fp32", "done", 4.25)
        events.converted("int8", "cached", 0.0)
    lines = screen.getvalue().splitlines()
    assert lines[:2] == ["  ✓ fp32: converted in 4.2 s", "  ✓ int8: from the cache"]


# -- after the run ----------------------------------------------------------------------


def test_exit_code_of_a_run():
    ok, failed = make_record(variant="fp32"), make_record(variant="int8", status="failed")
    assert exit_code(RunOutcome("r", Path("r"), records=[ok])) == 0
    assert exit_code(RunOutcome("r", Path("r"), records=[ok, replace(failed, error=ErrorInfo("conversion", "x"))])) == 2
    assert exit_code(RunOutcome("r", Path("r"), records=[ok, replace(failed, error=ErrorInfo("agent", "x"))])) == 3
    assert exit_code(RunOutcome("r", Path("r"), records=[ok], infra_failures=["lost"])) == 3


def test_the_local_device_reports_no_upload_to_itself():
    sent = Transfer(116_920_000, 13)
    assert transfer_note(local_device(), sent) is None
    pi = Device("pi", "raspberry-pi-4", "ssh", "python3", host="10.0.0.2", user="pi", port=22)
    assert transfer_note(pi, sent) == "sent 116.92 MB (13 files)"


@pytest.mark.parametrize("command", ["run", "demo"])
def test_run_and_demo_take_reports_like_every_other_command_and_still_out(command):
    parser = build_parser()
    assert parser.parse_args([command, "--reports", "x"]).reports == Path("x")
    assert parser.parse_args([command, "--out", "x"]).reports == Path("x")
    for argv in (["report"], ["gate", "--budgets", "b.yaml"], ["history"], ["convert", "m.yaml"], ["devices", "list"],
                 ["store", "export", "--out", "-"]):
        assert parser.parse_args([*argv, "--reports", "x"]).reports == Path("x")


def test_ctrl_c_names_the_command_that_continues_the_run():
    args = argparse.Namespace(command="run", reports=Path("my reports"), store=None)
    text = _interrupted(args, "20260101-120000-0001")
    assert "interrupted; every pair measured so far is saved" in text
    assert "harness run --resume 20260101-120000-0001 --reports 'my reports'" in text
    assert _interrupted(argparse.Namespace(command="report", reports=None, store=None), None) == "harness report: interrupted\n"
