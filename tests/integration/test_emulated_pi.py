"""The emulated Raspberry Pi: a real SSH lab device whose python3 is aarch64
CPython under qemu-user with the aarch64 numpy and ai-edge-litert wheels.

One `harness run` against `local` (x86) and the emulated Pi measures every
variant the Pi profile allows; the test checks that every Pi record is
marked emulated and that its detections match x86's for the same variant
within the tolerance below (README, "Device families").
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import pytest

from harness.model.variants import DEFAULT_VARIANTS

# Detections with a score at or above SCORE_FLOOR on one device must be found
# on the other: same class, IoU >= MIN_IOU, scores within SCORE_TOL. A
# detection within SCORE_TOL of the floor may be missing on the other side.
SCORE_FLOOR = 0.3
MIN_IOU = 0.95
SCORE_TOL = 0.02


def iou(a: list[float], b: list[float]) -> float:
    """IoU of two COCO [x, y, w, h] boxes."""
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def unmatched(ref: list[dict], other: list[dict]) -> list[dict]:
    """Detections of `ref` above the floor with no counterpart in `other`."""
    missing = []
    for det in ref:
        if det["score"] < SCORE_FLOOR + SCORE_TOL:
            continue
        found = any(
            d["category_id"] == det["category_id"] and abs(d["score"] - det["score"]) <= SCORE_TOL and iou(d["bbox"], det["bbox"]) >= MIN_IOU
            for d in other
        )
        if not found:
            missing.append(det)
    return missing


def by_image(path: str) -> dict[int, list[dict]]:
    grouped: dict[int, list[dict]] = defaultdict(list)
    for det in json.loads(Path(path).read_text()):
        grouped[det["image_id"]].append(det)
    return grouped


def test_tolerance_helper_matches_and_rejects():
    a = {"image_id": 1, "category_id": 2, "bbox": [10, 10, 20, 20], "score": 0.8}
    assert unmatched([a], [dict(a, score=0.79, bbox=[10.1, 10, 20, 20])]) == []
    assert unmatched([a], [dict(a, category_id=3)]) == [a]
    assert unmatched([a], [dict(a, bbox=[14, 10, 20, 20])]) == [a]
    assert unmatched([dict(a, score=0.31)], []) == []  # within the tolerance of the floor


@pytest.mark.emulated
def test_emulated_pi_runs_every_pi_variant_and_matches_x86(emulated_pi_lab, run_cli, demo_artifacts, worker_cache, tmp_path):
    lab = emulated_pi_lab
    pi = lab.devices[0]
    known_hosts = lab.known_hosts(tmp_path / "known_hosts")
    inventory = lab.inventory(tmp_path / "lab.yaml", known_hosts=known_hosts, extra={pi.name: {"profile": "raspberry-pi-4-emulated"}})
    variants = ",".join([*DEFAULT_VARIANTS, "edgetpu"])
    started = time.perf_counter()
    result = run_cli(
        "run", "--inventory", str(inventory), "--devices", f"local,{pi.name}", "--variants", variants,
        env={"HARNESS_CACHE": str(worker_cache)}, timeout=1500, records_only=True,
    )
    elapsed = time.perf_counter() - started
    assert result.exit_code == 0, result.stderr[-3000:] + result.stdout[-3000:]
    run_dir = Path(result.stdout.split("results: ")[1].split()[0]).parent
    records = json.loads((run_dir / "results.json").read_text())["records"]
    found = {(r["device"]["name"], r["model"]["variant"]): r for r in records}
    annotations = json.loads(Path(found[("local", "fp32")]["accuracy"]["annotations"]).read_text())
    first_image_ids = [image["id"] for image in annotations["images"][:4]]  # what the Pi profile scores
    compared = 0

    for variant in DEFAULT_VARIANTS:
        pi_rec, x86_rec = found[(pi.name, variant)], found[("local", variant)]
        assert pi_rec["status"] == "ok", pi_rec["error"]
        assert pi_rec["device"]["emulated"] is True and pi_rec["device"]["family"] == "raspberry-pi"
        assert pi_rec["device"]["arch"] == "aarch64" and x86_rec["device"]["arch"] == "x86_64"
        assert pi_rec["device"]["runtime"]["name"] == "ai-edge-litert" and pi_rec["device"]["runtime"]["delegate"] == "cpu"
        assert x86_rec["device"]["emulated"] is False
        pi_dets, x86_dets = by_image(pi_rec["accuracy"]["detections"]), by_image(x86_rec["accuracy"]["detections"])
        assert pi_rec["accuracy"]["n_images"] == 4
        for image_id in first_image_ids:
            assert not unmatched(x86_dets[image_id], pi_dets[image_id]), (variant, image_id, "x86 detection missing on the Pi")
            assert not unmatched(pi_dets[image_id], x86_dets[image_id]), (variant, image_id, "Pi detection missing on x86")
        compared += sum(1 for i in first_image_ids for d in x86_dets[i] if d["score"] >= SCORE_FLOOR)
    assert compared > 0

    for device in ("local", pi.name):
        edgetpu = found[(device, "edgetpu")]
        assert edgetpu["status"] == "skipped"
        assert "edgetpu_compiler is not installed" in edgetpu["error"]["message"]
        assert "does not offer edgetpu" in edgetpu["error"]["message"]
        assert edgetpu["edgetpu"]["source"] == "precheck" and edgetpu["edgetpu"]["ops_on_tpu"] > 0

    report = (run_dir / "report.md").read_text()
    assert "EMULATED" in report and "not a Raspberry Pi's latency" in report
    assert "Edge TPU pre-check" in report
    print(f"\nrun took {elapsed:.0f} s; p50 ms native x86 vs emulated aarch64 (ratio), mAP x86 (all images) / Pi (4 images):")
    for variant in DEFAULT_VARIANTS:
        x86_rec, pi_rec = found[("local", variant)], found[(pi.name, variant)]
        a, b = x86_rec["latency_ms"]["p50"], pi_rec["latency_ms"]["p50"]
        print(f"  {variant:13} {a:8.3f} {b:9.1f} ({b / a:5.0f}x)  n={pi_rec['latency_ms']['n']}  "
              f"mAP {x86_rec['accuracy']['map']:.3f} / {pi_rec['accuracy']['map']:.3f}")
