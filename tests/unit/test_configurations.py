"""Configurations as a dimension of a run (issue 17), without a device: the
flags and lists that make a sweep, a record's identity, budgets that match a
configuration, the per-slot context and preflight of a device's job, the
scaling and runtime views in every renderer, and `--versus threads`."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from harness.convert.converter import Artifact
from harness.device import local_device
from harness.errors import InputError
from harness.fleet.inventory import load_inventory
from harness.fleet.profiles import load_profile, parse_profile
from harness.gate.budgets import load_budgets
from harness.gate.evaluate import evaluate
from harness.measure.configs import Sweep, cli_sweep, device_sweep, slots
from harness.measure.pair import PairContext
from harness.measure.worker import DeviceJob, Session, preflight
from harness.model.recipe import bare_tflite_recipe
from harness.report.compare import compare_configurations
from harness.report.configs import config_views, per_record
from harness.report.markdown import render_markdown
from harness.report.html import render_html
from harness.report.terminal import render_terminal
from harness.report.write import render
from harness.results.record import Configuration, DeviceInfo, Record, RuntimeInfo, slot_name
from harness.results.store import SqliteStore
from tests.store_records import make_record, samples_ns

C = Configuration


def swept(variant: str, threads: int, runtime: str = "ai-edge-litert", p50_ms: float = 2.0, *,
          device: str = "local", xnnpack: bool | None = None) -> Record:
    record = make_record(variant=variant, p50_ms=p50_ms, device=device)
    versions = {"ai-edge-litert": "2.3.0", "tflite-runtime": "2.14.0"}
    return replace(record, threads=threads, configuration=C(threads, runtime, xnnpack),
                   device=replace(record.device, runtime=RuntimeInfo(runtime, versions.get(runtime, "?"))),
                   latency_ms=replace(record.latency_ms, p90=p50_ms * 1.2))


# -- the sweep ------------------------------------------------------------------


def test_flags_make_every_combination_threads_slowest_and_no_flag_keeps_the_old_identity():
    sweep = cli_sweep("1,2", "ai-edge-litert,tflite-runtime", "on,off")
    configs = sweep.configurations()
    assert len(configs) == 8
    assert configs[:3] == (C(1, "ai-edge-litert", True), C(1, "ai-edge-litert", False), C(1, "tflite-runtime", True))
    assert cli_sweep(None, None, None).configurations() == (None,)
    assert list(slots(("fp32", "int8"), cli_sweep("1,2", None, None).configurations())) == [
        "fp32@t1", "fp32@t2", "int8@t1", "int8@t2"]
    assert slot_name("fp32", None) == "fp32"
    assert slot_name("int8", C(2, "tflite-runtime", False)) == "int8@t2,tflite-runtime,xnnpack-off"
    assert Sweep.from_meta(sweep.to_meta()) == sweep


@pytest.mark.parametrize(("args", "flag", "words"), [
    (("0,2", None, None), "--threads", "not a thread count"),
    (("1,1", None, None), "--threads", "names a value twice"),
    ((None, "tflite-runtim", None), "--runtimes", "did you mean 'tflite-runtime'"),
    ((None, None, "maybe"), "--xnnpack", "not on or off"),
    (("1,", None, None), "--threads", "empty item"),
])
def test_a_bad_flag_is_an_input_error_naming_it(args, flag, words):
    with pytest.raises(InputError) as err:
        cli_sweep(*args)
    assert err.value.source == flag and words in err.value.render()


def test_the_command_line_wins_over_the_inventory_which_wins_over_the_profile(tmp_path):
    profile = parse_profile({"name": "p", "threads": [1, 4], "runtimes": ["tflite-runtime"]}, tmp_path / "p.yaml")
    assert (profile.threads, profile.sweep_threads, profile.runtimes) == (None, (1, 4), ("tflite-runtime",))
    device = replace(local_device(tmp_path), sweep_threads=(2, 3))
    assert device_sweep(Sweep(), device, profile) == Sweep((2, 3), ("tflite-runtime",))
    assert device_sweep(Sweep(runtimes=("ai-edge-litert",)), device, profile) == Sweep((2, 3), ("ai-edge-litert",))
    # A single number is the device's one setting, not a sweep.
    assert device_sweep(Sweep(), local_device(tmp_path), load_profile("x86-cpu")).configurations() == (None,)


def _inventory(tmp_path: Path, **entry) -> Path:
    path = tmp_path / "inventory.yaml"
    device = {"host": "127.0.0.2", "port": 2222, "profile": "x86-cpu", **entry}
    path.write_text(yaml.safe_dump({"devices": {"pi": device}}))
    return path


def test_the_inventory_takes_thread_and_runtime_lists_and_the_interpreter_of_a_runtime(tmp_path):
    (device,) = load_inventory(_inventory(tmp_path, threads=[1, 2], runtimes=["tflite-runtime"],
                                          runtime_pythons={"tflite-runtime": "/opt/tfl/bin/python"})).devices
    assert (device.threads, device.sweep_threads, device.runtimes) == (None, (1, 2), ("tflite-runtime",))
    assert device.runtime_pythons == {"tflite-runtime": "/opt/tfl/bin/python"}
    (single,) = load_inventory(_inventory(tmp_path, threads=4)).devices
    assert (single.threads, single.sweep_threads) == (4, ())
    with pytest.raises(InputError) as err:
        load_inventory(_inventory(tmp_path, threads=[1, 0]))
    assert err.value.place == "devices.pi.threads"
    with pytest.raises(InputError) as err:
        load_inventory(_inventory(tmp_path, runtime_pythons={"tflite": "/x"}))
    assert "devices.pi.runtime_pythons.tflite" in err.value.render()


# -- a record's identity -----------------------------------------------------------


def test_a_swept_record_is_its_own_pair_and_an_old_record_keeps_its_key():
    old = make_record(variant="int8")
    assert old.key == ("local", "demo", "int8")
    data = old.to_dict()
    data.pop("configuration")  # as stored before sweeps existed
    assert Record.from_dict(data) == old
    new = swept("int8", 2, "tflite-runtime")
    assert new.key == ("local", "demo", "int8@t2,tflite-runtime")
    assert Record.from_dict(json.loads(json.dumps(new.to_dict()))) == new


# -- budgets -----------------------------------------------------------------------------


def test_a_budget_matches_by_threads_runtime_and_xnnpack(tmp_path):
    path = tmp_path / "budgets.yaml"
    path.write_text(yaml.safe_dump({"budgets": [
        {"name": "t2", "match": {"variant": "fp32", "threads": 2}, "p50_ms": 100},
        {"name": "tfl", "match": {"runtime": "tflite-runtime", "xnnpack": "off"}, "p50_ms": 100},
    ]}))
    t2, tfl = load_budgets(path)
    assert t2.match.matches_record(swept("fp32", 2)) and not t2.match.matches_record(swept("fp32", 1))
    assert not t2.match.matches_record(swept("int8", 2))
    assert tfl.match.matches_record(swept("int8", 1, "tflite-runtime", xnnpack=False))
    assert not tfl.match.matches_record(swept("int8", 1, "tflite-runtime"))  # XNNPACK left on
    assert "threads=2" in t2.match.describe()
    path.write_text(yaml.safe_dump({"budgets": [{"name": "x", "match": {"runtime": "tflite"}, "p50_ms": 1}]}))
    with pytest.raises(InputError) as err:
        load_budgets(path)
    assert ".match.runtime: unknown runtime" in err.value.render() and "tflite-runtime" in err.value.render()


def test_the_gate_judges_each_configuration_on_its_own_samples(tmp_path):
    with SqliteStore(tmp_path / "results.sqlite") as store:
        from harness.results.store import RunInfo

        store.begin_run(RunInfo("r1", "2026-12-03T00:00:00Z", "0", "finished", "run", str(tmp_path)))
        for threads, p50 in ((1, 4.0), (2, 2.0)):
            record = swept("fp32", threads, p50_ms=p50)
            store.add_record(record, samples_ns(p50))
        path = tmp_path / "budgets.yaml"
        path.write_text(yaml.safe_dump({"budgets": [{"name": "t2", "match": {"threads": 2}, "p90_ms": 3.0}]}))
        passes = evaluate(load_budgets(path), store, "r1")
        assert [(c.variant, c.outcome) for c in passes.checks] == [("fp32@t2,ai-edge-litert", "pass")]
        path.write_text(yaml.safe_dump({"budgets": [{"name": "t2", "match": {"threads": 2}, "p90_ms": 1.0}]}))
        assert [c.outcome for c in evaluate(load_budgets(path), store, "r1").checks] == ["fail"]
        report = compare_configurations(store, "r1", "threads")
        (row,) = report.rows
        assert (row.variant, row.against, row.verdict) == ("fp32@t2,ai-edge-litert", "threads 1", "faster")
        assert row.ratio == pytest.approx(0.5, rel=0.02)
        with pytest.raises(InputError) as err:
            compare_configurations(store, "r1", "runtimes")
        assert "one runtimes value" in err.value.render()


# -- a device's job: each slot's context, a runtime the device lacks ---------------------


def _job(tmp_path: Path) -> DeviceJob:
    manifest = {"loadability": {"ai-edge-litert": "ok", "tflite-runtime": "ok"}}
    (tmp_path / "fp32.tflite").write_bytes(b"model")
    artifact = Artifact("demo", "fp32", tmp_path / "fp32.tflite", tmp_path / "fp32.json", "ab" * 32, 5, manifest, cached=True)
    profile = load_profile("x86-cpu")
    ctx = PairContext("r1", tmp_path, DeviceInfo("local", "x86-cpu"), 1, profile.measurement, None, profile)
    recipe = replace(bare_tflite_recipe(artifact.path), name="demo")
    table = slots(("fp32",), cli_sweep("1,2", "ai-edge-litert,tflite-runtime", None).configurations())
    return DeviceJob(local_device(tmp_path), ctx, recipe, tuple(table), {"fp32": artifact}, {}, None, None, 0.0, "run",
                     slots=table)


def test_each_slot_runs_in_its_configuration_and_a_missing_runtime_is_skipped_with_the_reason(tmp_path):
    job = _job(tmp_path)
    ctx = job.ctx_for("fp32@t2,tflite-runtime")
    assert (ctx.threads, ctx.runtime, ctx.configuration) == (2, "tflite-runtime", C(2, "tflite-runtime"))
    assert job.ctx_for("fp32") is job.ctx and job.variant_of("fp32@t1,ai-edge-litert") == "fp32"
    assert job.runtimes() == ("ai-edge-litert", "tflite-runtime")
    session = Session(None, None, None, ("ai-edge-litert", "2.3.0"),  # type: ignore[arg-type]
                      runtimes={"ai-edge-litert": ("ai-edge-litert", "2.3.0"),
                                "tflite-runtime": "this device has no tflite-runtime for python3: No module named"})
    records = preflight(job, session.runtime, None, session)
    assert set(records) == {"fp32@t1,tflite-runtime", "fp32@t2,tflite-runtime"}
    skipped = records["fp32@t2,tflite-runtime"]
    assert (skipped.status, skipped.error.kind, skipped.threads) == ("skipped", "runtime-missing", 2)
    assert skipped.key == ("local", "demo", "fp32@t2,tflite-runtime") and "No module named" in skipped.error.message


# -- the views -----------------------------------------------------------------------------


def _sweep_records() -> list[Record]:
    return [
        swept("fp32", 1, p50_ms=4.0), swept("fp32", 1, "tflite-runtime", p50_ms=5.0),
        swept("fp32", 2, p50_ms=2.5), swept("fp32", 2, "tflite-runtime", p50_ms=3.0),
        swept("int8", 1, p50_ms=2.0), swept("int8", 2, p50_ms=1.0),
        swept("int8", 1, "tflite-runtime", p50_ms=20.0, xnnpack=False),
        swept("int8", 2, "tflite-runtime", p50_ms=25.0, xnnpack=False),
    ]


def test_scaling_gives_speedup_and_efficiency_and_runtimes_the_ratio_to_the_first():
    views = config_views(_sweep_records())
    lines = {(line.variant, line.setting): line for line in views.scaling}
    fp32 = lines[("fp32", "ai-edge-litert")].points
    assert [(p.threads, p.speedup, p.efficiency) for p in fp32] == [(1, 1.0, 1.0), (2, 1.6, 0.8)]
    assert lines[("int8", "ai-edge-litert")].points[1].speedup == 2.0
    groups = {(g.variant, g.threads): g for g in views.runtimes}
    assert set(groups) == {("fp32", 1), ("fp32", 2), ("int8", 1), ("int8", 2)}
    assert [e.runtime for e in groups[("int8", 1)].entries] == ["ai-edge-litert 2.3.0", "tflite-runtime 2.14.0 · XNNPACK off"]
    assert lines[("int8", "tflite-runtime · XNNPACK off")].points[1].speedup == pytest.approx(0.8)
    assert [(e.runtime, e.ratio) for e in groups[("fp32", 1)].entries] == [
        ("ai-edge-litert 2.3.0", 1.0), ("tflite-runtime 2.14.0", 1.25)]
    placed = per_record(views)
    assert placed[("local", "demo", "fp32@t2,tflite-runtime")]["vs_runtime"] == pytest.approx(1.2)
    # No sweep (or one configuration only): no views.
    assert not config_views([make_record(), make_record(variant="int8")])
    assert not config_views([swept("fp32", 1), swept("int8", 1)])


def test_every_renderer_shows_both_views_and_the_terminal_fits_80_columns():
    records = _sweep_records()
    out = io.StringIO()
    render_terminal(records, Console(file=out, width=80), title="run r1")
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "scaling · demo on local" in text and "runtimes · demo on local" in text
    assert "1.60x" in text and "80%" in text and "1.25x" in text
    assert "tflite-rt 2.14.0 -xnn" in text and "0.80x" in text  # int8 without XNNPACK, 2 threads slower
    md = render_markdown(records, title="run r1")
    assert "#### Scaling: demo on `local`" in md and "#### Runtimes: demo on `local`" in md
    assert "| fp32 | ai-edge-litert | 1 | 4.000 | 4.800 | 1.00x | 100% |" in md
    rows = render(records, "csv", title="r1").splitlines()
    assert rows[0].endswith("threads,runtime,xnnpack,speedup,efficiency,speedup_base_threads,vs_runtime,runtime_reference")
    data = json.loads(render(records, "json", title="r1"))
    assert sorted({round(r["configuration_views"]["speedup"], 3) for r in data}) == [0.8, 1.0, 1.6, 1.667, 2.0]
    # Without a sweep the CSV keeps its old columns and nothing mentions scaling.
    plain = [make_record(), make_record(variant="int8")]
    header = render(plain, "csv", title="r1").splitlines()[0]
    assert header.endswith("map_drop_vs_fp32,error,app_frame_p50_ms,app_frame_p90_ms,whole_frame_p50_ms,mj_per_inference")
    assert "threads" not in header and "speedup" not in header
    assert "Scaling" not in render_markdown(plain, title="r1")


def test_the_html_views_are_escaped_and_draw_their_charts_inline():
    hostile = "<script>alert(1)</script>"
    records = [replace(r, device=replace(r.device, name=hostile)) for r in _sweep_records()]
    page = render_html(records, title="run r1")
    assert hostile not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "p50 against threads on &lt;script&gt;" in page  # the scaling chart
    assert "fp32 · 1 thread: p50 ms per runtime" in page  # a runtime chart
    assert "http://" not in page and "https://" not in page
