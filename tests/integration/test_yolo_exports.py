"""Ultralytics-layout exports of one trained anchor-free detector
(tests/integration/yolo_detector.py) measured end to end as a user brings
them: `harness run --model X.tflite --dataset data` with no recipe (adapter,
postprocess keys and the letterboxed [0, 1] input read from the file), and
v5 through the recipe `harness inspect --write-recipe` writes; on `local`,
the real agent decoding on the device, letterboxed inputs mapped back, COCO
mAP on the host, and that mAP checked against pycocotools run here over the
detections the run saved."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent
LAYOUTS = ("v8", "v8-fp16", "v8-int8", "v5", "end2end")
# This layout runs through the recipe `harness inspect --write-recipe` wrote
# (the others bare): inspect -> recipe -> run works unchanged.
THROUGH_RECIPE = "v5"


@pytest.fixture(scope="module")
def yolo_models(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("yolo-models")
    proc = subprocess.run([sys.executable, str(HERE / "yolo_detector.py"), str(folder)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return folder


def _written_recipe(models: Path, name: str) -> Path:
    recipe = models / f"{name}.yaml"
    proc = subprocess.run([sys.executable, "-m", "harness", "inspect", str(models / f"{name}.tflite"), "--write-recipe", str(recipe)],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, COLUMNS="200"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = recipe.read_text()
    assert "resize: letterbox" in text and "layout: v5" in text, text  # Ultralytics' preprocessing, the v5 head
    # The user's one edit: the class names for the placeholders.
    recipe.write_text(text.replace("[class_0, class_1, class_2]", "[rectangle, ellipse, triangle]"))
    return recipe


@pytest.fixture(scope="module")
def yolo_runs(yolo_models, tmp_path_factory) -> dict[str, dict]:
    """One `harness run --model ... --dataset data` per export, all at once
    (each its own reports and cache); {layout: the run's one record}."""
    procs = {}
    for name in LAYOUTS:
        reports = tmp_path_factory.mktemp(f"run-{name}") / "reports"
        reports.mkdir()
        env = dict(os.environ, HARNESS_REPORTS=str(reports), HARNESS_CACHE=str(reports.parent / "cache"), COLUMNS="200")
        model = _written_recipe(yolo_models, name) if name == THROUGH_RECIPE else yolo_models / f"{name}.tflite"
        procs[name] = (reports, subprocess.Popen(
            [sys.executable, "-m", "harness", "run", "--model", str(model), "--dataset", str(yolo_models / "data")],
            cwd=reports.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
    records = {}
    for name, (reports, proc) in procs.items():
        _, stderr = proc.communicate(timeout=900)
        assert proc.returncode == 0, (name, stderr[-3000:])
        (run_dir,) = [p for p in reports.iterdir() if p.is_dir() and not p.name.startswith(".")]
        (records[name],) = json.loads((run_dir / "results.json").read_text())["records"]
    return records


def _pycocotools_map(annotations: str, detections: str) -> float:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO(annotations)
        evaluator = COCOeval(truth, truth.loadRes(detections), iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return float(evaluator.stats[0])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_export_layout_records_an_ok_pair_with_map_that_pycocotools_confirms(yolo_runs, layout):
    record = yolo_runs[layout]
    assert record["status"] == "ok", record["error"]
    accuracy = record["accuracy"]
    assert accuracy["map"] > 0.05, accuracy  # 0.101 fp32, 0.069 int8 (48 val images; frozen backbone, heads trained briefly)
    assert _pycocotools_map(accuracy["annotations"], accuracy["detections"]) == pytest.approx(accuracy["map"], abs=0.005)


def test_saved_detections_are_in_the_original_images_pixels(yolo_runs):
    """256x192 images letterboxed to 128x128: boxes mapped back reach the
    whole image, not the 128-px input or its padded band."""
    boxes = [d["bbox"] for d in json.loads(Path(yolo_runs["v8"]["accuracy"]["detections"]).read_text())]
    assert max(x + w for x, _, w, _ in boxes) > 200 and max(y + h for _, y, _, h in boxes) > 150
    assert min(x for x, *_ in boxes) >= 0 and max(x + w for x, _, w, _ in boxes) <= 256


def test_layouts_of_one_model_agree_and_int8_loses_a_measurable_little(yolo_runs):
    maps = {name: r["accuracy"]["map"] for name, r in yolo_runs.items()}
    # v5 repeats v8's rows three times with objectness x class = the same score: NMS leaves the same boxes.
    assert maps["v5"] == pytest.approx(maps["v8"], abs=0.005)
    assert maps["v8-fp16"] == pytest.approx(maps["v8"], abs=0.005)
    assert maps["end2end"] == pytest.approx(maps["v8"], abs=0.03)  # argmax class per box, NMS in the graph
    assert 0.0 < abs(maps["v8"] - maps["v8-int8"]) < 0.1, maps
