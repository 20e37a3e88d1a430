"""`harness inspect` on the two SSD export layouts users bring (TF OD API
with scrambled outputs, EfficientDet-Lite with uint8 input): inspect, write
a recipe, run it on `local` with the real agent and the real COCO scorer,
and get the demo detector's mAP back. A model no adapter reads is exit 2.

The models are the demo detector re-exported as the exporters do
(tests/integration/ssd_exports.py), built once for the module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent
# The demo detector's own synthetic val split (seed), small: mAP > 0 is the point.
DATASET = """\
dataset:
  generator: synthetic
  seed: 20261128
  splits: {calib: 8, val: 48}
"""


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ssd-exports")
    subprocess.run([sys.executable, str(HERE / "ssd_exports.py"), str(folder)], check=True, capture_output=True)
    return folder


def _harness(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HARNESS_REPORTS=str(cwd / "reports"), HARNESS_CACHE=str(cwd / "cache"), COLUMNS="80")
    env.pop("HARNESS_STORE", None)
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _only_record(reports: Path) -> dict:
    (run_dir,) = [p for p in reports.iterdir() if p.is_dir() and not p.name.startswith(".")]
    (record,) = json.loads((run_dir / "results.json").read_text())["records"]
    return record


@pytest.mark.parametrize(
    ("model", "input_dtype", "labels_from_model"),
    [("od_api.tflite", "float32", False), ("efficientdet_lite.tflite", "uint8", True)],
)
def test_inspect_writes_a_recipe_that_runs_with_map(exports, tmp_path, model, input_dtype, labels_from_model):
    recipe = tmp_path / "recipes" / "model.yaml"
    shown = _harness("inspect", str(exports / model), "--write-recipe", str(recipe), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "adapter: ssd-postprocess" in out and "TFLite_Detection_PostProcess" in out
    assert input_dtype in out and "num_classes 3" in out
    # Listed scrambled (scores, boxes, count, classes), mapped by the op's outputs.
    rows = [r for r in (line.split() for line in out.splitlines()) if len(r) > 1 and r[0].startswith("StatefulPartitionedCall:") and r[1].startswith("[")]
    assert [(r[0], r[-1]) for r in rows] == [
        ("StatefulPartitionedCall:1", "scores"),
        ("StatefulPartitionedCall:3", "boxes"),
        ("StatefulPartitionedCall:0", "num_detections"),
        ("StatefulPartitionedCall:2", "classes"),
    ]
    assert max(len(line) for line in out.splitlines()) <= 80
    text = recipe.read_text()
    assert "\npostprocess:" not in text  # the op in the model carries its settings
    if labels_from_model:
        assert "labels: [rectangle, ellipse, triangle]" in text and "mean: [0.0, 0.0, 0.0]" in text
    else:  # the OD API path keeps its label map outside the model: name the classes
        assert "labels: [class_0, class_1, class_2]" in text
        text = text.replace("[class_0, class_1, class_2]", "[rectangle, ellipse, triangle]")
    recipe.write_text(text + DATASET)

    ran = _harness("run", "--model", str(recipe), cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-3000:]
    record = _only_record(tmp_path / "reports")
    assert record["status"] == "ok", record.get("error")
    assert record["accuracy"]["map"] > 0.2, record["accuracy"]


def test_a_model_no_adapter_reads_is_exit_2_listing_its_outputs(exports, tmp_path):
    shown = _harness("inspect", str(exports / "classifier.tflite"), "--write-recipe", str(tmp_path / "m.yaml"), cwd=tmp_path)
    assert shown.returncode == 2, shown.stderr
    assert "Traceback" not in shown.stderr
    assert "no output adapter fits this model" in shown.stderr
    assert "  its outputs:\n    Identity [1, 3] float32\n" in shown.stderr
    assert "boxes-scores: two outputs" in shown.stderr and "ssd-postprocess: a TFLite_Detection_PostProcess op" in shown.stderr
    assert not (tmp_path / "m.yaml").exists()
    # The same model in a recipe that names no adapter: exit 2 at the recipe's `adapter`.
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: c\nsource: {exports / 'classifier.tflite'}\ninput: {{height: 160, width: 160}}\nlabels: [a]\n")
    ran = _harness("run", "--model", str(recipe), cwd=tmp_path)
    assert ran.returncode == 2 and f"{recipe}, adapter: no output adapter fits" in ran.stderr, ran.stderr


def test_a_recipe_naming_no_adapter_gets_the_one_that_fits(exports, tmp_path):
    from harness.model.recipe import load_recipe

    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: od\nsource: {exports / 'od_api.tflite'}\ninput: {{height: 160, width: 160}}\nlabels: [a, b, c]\n")
    loaded = load_recipe(recipe)
    assert loaded.adapter == "ssd-postprocess" and loaded.postprocess == {}
    assert loaded.extra["adapter_choice"].options["outputs"]["boxes"] == "StatefulPartitionedCall:3"
