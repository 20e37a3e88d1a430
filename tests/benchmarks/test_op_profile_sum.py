"""The per-operator profile (issue 20) against the pair's own latency: the
demo's fp32 and int8 pairs measured on `local` and on a lab sshd device carry
the runtime's per-operator profile, whose per-run sum is within 15% of the
unprofiled invoke p50, convolutions first, both views in every format.

A timing check, so it runs here, after the parallel suite, with nothing
else on the host."""

from __future__ import annotations

import json

from harness import paths
from harness.results.op_profile import OpProfile, by_type

# The per-run operator sum against the unprofiled invoke p50 (issue 20's bound).
SUM_TOLERANCE = 0.15
LOADED_BOUNDS = (0.5, 2.0)
CONVOLUTIONS = {"Convolution IGEMM", "Convolution DWConv", "Fully Connected GEMM"}  # XNNPACK runs 1x1 convs as GEMM


def test_demo_pairs_on_local_and_a_lab_device_carry_a_consistent_profile(
    ssh_lab, run_cli, demo_artifacts, worker_cache, tmp_path
):
    lab = ssh_lab(1)
    inventory = lab.inventory(tmp_path / "inventory.yaml", known_hosts=tmp_path / "known_hosts")
    assert run_cli("devices", "trust", "--inventory", str(inventory), "--yes").exit_code == 0
    (remote,) = [d.name for d in lab.devices]
    # One device at a time: two devices measured at once on a 2-core host
    # share its cores, and the profiled pass and the samples then see
    # different neighbours (a sum of 0.39x the p50, unflagged, in CI).
    data, md, html, stdout = [], "", "", ""
    for device in ("local", remote):
        result = run_cli("run", "--model", str(paths.demo_recipe_path()), "--inventory", str(inventory),
                         "--devices", device, "--variants", "fp32,int8",
                         env={"HARNESS_CACHE": str(worker_cache)}, records_only=True)
        assert result.exit_code == 0, result.stdout[-3000:] + result.stderr[-3000:]
        run_dir = max((p.parent for p in (tmp_path / "reports").glob("*/results.json")), key=lambda p: p.stat().st_mtime)
        data += json.loads((run_dir / "results.json").read_text())["records"]
        md += (run_dir / "report.md").read_text()
        html += (run_dir / "report.html").read_text()
        stdout += result.stdout
    assert sorted((r["device"]["name"], r["model"]["variant"]) for r in data) == sorted(
        (d, v) for d in ("local", remote) for v in ("fp32", "int8"))
    for r in data:
        where = f"{r['device']['name']}/{r['model']['variant']}"
        profile = r["op_profile"]
        assert profile["status"] == "ok", (where, profile)
        ratio = profile["per_run_sum_p50_us"] / 1000 / r["latency_ms"]["p50"]
        if r["env"]["under_load"]:
            # The harness flags this pair's latency itself: other work shared the
            # cores, and the profiled pass ran at other moments than the samples
            # (a 2-core host at load 6 moved the ratio 0.66-1.42). Only a gross
            # error (a unit, lost operators) is caught here.
            assert LOADED_BOUNDS[0] <= ratio <= LOADED_BOUNDS[1], (where, ratio, profile["wall_p50_us"])
        else:
            assert abs(ratio - 1) <= SUM_TOLERANCE, (where, ratio, profile["wall_p50_us"])
        assert {o["backend"] for o in profile["ops"]} == {"XNNPACK", "CPU kernels"}
        post = [o for o in profile["ops"] if o["backend"] == "CPU kernels"]
        assert [o["op_type"] for o in post] == ["TFLite_Detection_PostProcess"] and post[0]["tensor"], where
    for device in ("local", remote):
        assert f"Per-operator profile: demo-detector on `{device}`" in md
    assert md.count("int8 vs fp32 per op type") == 2 and html.count("int8 vs fp32 per op type") == 2
    assert "per-operator profile" in stdout  # the terminal report
    for r in data:
        types = by_type(OpProfile.from_dict(r["op_profile"]))
        convolutions = sum(t.share or 0 for t in types if t.op_type in CONVOLUTIONS)
        assert types[0].op_type in CONVOLUTIONS and convolutions > 0.5, [(t.op_type, t.share) for t in types]
    as_json = run_cli("report", "latest", "--format", "json", "--out", str(tmp_path / "r.json"))
    assert as_json.exit_code == 0, as_json.stderr[-2000:]
    int8 = [r for r in json.loads((tmp_path / "r.json").read_text()) if r["model"]["variant"] == "int8"]
    # `latest` is the lab device's run: its int8 pair against its own fp32.
    assert [r["device"]["name"] for r in int8] == [remote] and int8[0]["op_profile_views"]["versus_fp32"]
