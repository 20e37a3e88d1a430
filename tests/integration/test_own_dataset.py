"""A model file and a dataset, no recipe: `harness run --model X.tflite
--dataset DIR|data.yaml`. The demo detector's fp32 .tflite scored on the
same synthetic images as a COCO 2017 root and as an Ultralytics YOLO copy
gives the same mAP from the same detections; with two labels swapped the
report warns with the mapping the detections show (mAP alone only drops)."""

from __future__ import annotations

import io
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from harness import paths
from harness.measure.events import RunEvents

pytestmark = pytest.mark.slow

N_IMAGES = 48
# Short rounds: this module checks accuracy and reports, not latency.
QUICK = {"warmup_runs": 1, "warmup_seconds": 0.0, "min_runs": 5, "min_seconds": 0.05, "max_seconds": 1.0, "rounds": 1}


@pytest.fixture(scope="module")
def demo_tflite(demo_fp32, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("model") / "demo.tflite"
    shutil.copy(demo_fp32.path, target)
    return target


@pytest.fixture(scope="module")
def same_images(tmp_path_factory) -> tuple[Path, Path]:
    """(COCO root, data.yaml) of the same synthetic val images."""
    from harness.dataset import synth

    base = tmp_path_factory.mktemp("datasets")
    split = synth.generate_split(base / "generated", "val", N_IMAGES, 20261128)
    coco = json.loads(split.annotations_json.read_text())
    root = base / "coco"
    (root / "annotations").mkdir(parents=True)
    shutil.copytree(split.images_dir, root / "val2017")
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(coco))
    return root, _yolo_copy(coco, split.images_dir, base / "yolo")


def _yolo_copy(coco: dict, images_dir: Path, out: Path) -> Path:
    """The YOLO format Ultralytics reads: images/val/*.png, labels/val/*.txt
    (class cx cy w h, normalised), names in class order."""
    (out / "images" / "val").mkdir(parents=True)
    (out / "labels" / "val").mkdir(parents=True)
    cat_ids = sorted(c["id"] for c in coco["categories"])
    names = {c["id"]: c["name"] for c in coco["categories"]}
    lines: dict[int, list[str]] = {img["id"]: [] for img in coco["images"]}
    sizes = {img["id"]: (img["width"], img["height"]) for img in coco["images"]}
    for ann in coco["annotations"]:
        (w, h), (x, y, bw, bh) = sizes[ann["image_id"]], ann["bbox"]
        lines[ann["image_id"]].append(
            f"{cat_ids.index(ann['category_id'])} {(x + bw / 2) / w:.7f} {(y + bh / 2) / h:.7f} {bw / w:.7f} {bh / h:.7f}")
    for img in coco["images"]:
        name = Path(img["file_name"])
        shutil.copy(images_dir / name, out / "images" / "val" / name.name)
        (out / "labels" / "val" / f"{name.stem}.txt").write_text("\n".join(lines[img["id"]]) + "\n")
    data = out / "data.yaml"
    data.write_text(yaml.safe_dump({"path": ".", "train": "images/val", "val": "images/val",
                                    "names": {i: names[c] for i, c in enumerate(cat_ids)}}))
    return data


@pytest.fixture(autouse=True)
def shared_cache(worker_cache, monkeypatch):
    """One conversion cache for the module: the model's loadability checks run once."""
    monkeypatch.setenv("HARNESS_CACHE", str(worker_cache))


def _quick_run(model: Path, reports: Path, dataset: Path | None = None):
    from harness.runner import make_plan, measure_and_write

    plan = make_plan(model, None, "local", reports, command="run", dataset=dataset)
    outcome = measure_and_write(replace(plan, measurement=QUICK), None, RunEvents())
    (record,) = outcome.records
    assert record.status == "ok", record.error
    return outcome, record


def _detections(record) -> list[tuple]:
    """The pair's detections, by image file name (ids differ between formats)."""
    truth = json.loads(Path(record.accuracy.annotations).read_text())
    names = {img["id"]: Path(img["file_name"]).name for img in truth["images"]}
    found = json.loads(Path(record.accuracy.detections).read_text())
    return sorted((names[d["image_id"]], d["category_id"], tuple(d["bbox"]), d["score"]) for d in found)


def test_a_coco_root_and_its_yolo_copy_give_the_same_map(demo_tflite, same_images, tmp_path):
    coco_root, data_yaml = same_images
    # make_plan is what `harness run --model demo.tflite --dataset X` calls (the CLI's flags are checked below)
    outcome, yolo = _quick_run(demo_tflite, tmp_path / "yolo", data_yaml)
    _, coco = _quick_run(demo_tflite, tmp_path / "coco", coco_root)
    assert coco.accuracy.n_images == yolo.accuracy.n_images == N_IMAGES
    assert coco.accuracy.map > 0.2  # the demo detector really detects
    assert _detections(coco) == _detections(yolo)
    assert abs(coco.accuracy.map - yolo.accuracy.map) < 1e-9 and abs(coco.accuracy.map50 - yolo.accuracy.map50) < 1e-9
    assert not any(c.mismatched for c in coco.accuracy.class_landings)
    md = Path(outcome.report_files[0]).read_text()
    assert "no labels given: class i is the dataset's i-th category in id order (0 rectangle, 1 ellipse, 2 triangle)" in md


@pytest.mark.parametrize(
    ("case", "needles"),
    [
        ("missing-split", ("data.yaml, test", "no 'test' split", "--split")),
        ("four-numbers", ("000000.txt", "line 1", "4 numbers, expected 5")),
        ("outside", ("000000.txt", "box outside the image", "fractions of the image")),
        ("label-file", ("labels.txt", "['square'] are not categories of", "categories ['rectangle']")),
    ],
)
def test_bad_datasets_are_refused_by_the_cli(run_cli, demo_tflite, same_images, tmp_path, case, needles):
    from tests.cli_checks import assert_clean_input_error

    data = tmp_path / "yolo"
    shutil.copytree(same_images[1].parent, data)
    args = ["run", "--model", str(demo_tflite), "--dataset", str(data / "data.yaml"), "--reports", str(tmp_path / "r")]
    if case == "missing-split":
        args += ["--split", "test"]
    elif case == "four-numbers":
        (data / "labels" / "val" / "000000.txt").write_text("0 0.5 0.5 0.2\n")
    elif case == "outside":
        (data / "labels" / "val" / "000000.txt").write_text("0 120 40 30 20\n")
    else:
        (data / "labels.txt").write_text("square\nellipse\ntriangle\n")
        recipe = yaml.safe_load(paths.demo_recipe_path().read_text())
        recipe = {k: recipe[k] for k in ("name", "input", "adapter")}
        recipe.update(source=str(demo_tflite), labels="labels.txt", variants=["fp32"], dataset={"val": "data.yaml"},
                      postprocess={"anchors": str(paths.demo_recipe_path().parent / "anchors.npy")})
        (data / "model.yaml").write_text(yaml.safe_dump(recipe))
        args = ["run", "--model", str(data / "model.yaml"), "--reports", str(tmp_path / "r")]
    assert_clean_input_error(run_cli(*args, env={"HARNESS_CACHE": str(tmp_path / "cache")}), *needles)


def test_swapped_labels_are_caught_in_every_report(demo_tflite, same_images, tmp_path):
    demo = yaml.safe_load(paths.demo_recipe_path().read_text())
    labels = list(demo["labels"])
    labels[0], labels[1] = labels[1], labels[0]
    recipe = dict(demo, source=str(demo_tflite), labels=labels, variants=["fp32"],
                  dataset={"val": str(same_images[0])})
    recipe["postprocess"] = dict(demo["postprocess"], anchors=str(paths.demo_recipe_path().parent / "anchors.npy"))
    for key in ("training", "variant_options"):
        recipe.pop(key)
    path = tmp_path / "swapped.yaml"
    path.write_text(yaml.safe_dump(recipe))
    outcome, record = _quick_run(path, tmp_path / "reports")
    wrong = {(c.class_index, c.expected, c.landed) for c in record.accuracy.class_landings if c.mismatched}
    assert wrong == {(0, "ellipse", "rectangle"), (1, "rectangle", "ellipse")}
    md, html = (Path(p).read_text() for p in outcome.report_files)
    from rich.console import Console

    from harness.report.terminal import render_terminal

    screen = io.StringIO()
    render_terminal(outcome.records, Console(file=screen, width=200), title="t")
    for text in (md, html, screen.getvalue()):
        assert "LABEL MAP WARNING" in text and "0 -&gt; rectangle" in text.replace("->", "-&gt;")
        assert "permuted" in text
