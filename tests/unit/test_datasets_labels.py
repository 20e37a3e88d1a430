"""Labels (lists, label files, coco80/coco91) matched to datasets; YOLO
data.yaml datasets read and converted to COCO; seeded samples; images of
every mode read as RGB; the label-map check's landings and its warning."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.config import Fields
from harness.dataset.coco import load_coco
from harness.dataset.images import read_pixels
from harness.dataset.labelcheck import class_landings
from harness.dataset.locate import coco_root
from harness.dataset.subset import sample
from harness.dataset.yolo import coco_files, label_path
from harness.errors import InputError
from harness.model.labels import COCO80, COCO91, PLACEHOLDER, Labels, class_map, parse_labels
from harness.report.label_findings import label_findings
from tests.coco_cases import det
from tests.store_records import make_record


def _labels(value, folder: Path) -> Labels:
    return parse_labels(Fields({"labels": value}, source=folder / "model.yaml", place=""), folder)


# -- labels ------------------------------------------------------------------


def test_a_tflite_label_file_drops_its_background_line_and_keeps_placeholder_slots(tmp_path):
    (tmp_path / "labelmap.txt").write_text("???\nperson\nbicycle\n???\ncar\n\n")
    labels = _labels("labelmap.txt", tmp_path)
    assert labels.names == ("person", "bicycle", PLACEHOLDER, "car")
    assert labels.source.endswith("labelmap.txt")


def test_builtin_sets_follow_cocos_ids():
    assert len(COCO80) == 80 and COCO80[:3] == ("person", "bicycle", "car") and COCO80[-1] == "toothbrush"
    assert len(COCO91) == 90 and COCO91[11] == PLACEHOLDER and COCO91[12] == "stop sign"  # class 12 = COCO id 13


def test_labels_match_categories_by_name_and_placeholders_match_nothing(two_box_dataset, tmp_path):
    labels = Labels(("Dog", PLACEHOLDER, "cat"), "list")
    assert class_map(labels, two_box_dataset, source="r.yaml").category_ids == (5, -1, 3)


def test_a_label_file_with_names_missing_from_the_dataset_lists_both_sides(two_box_dataset, tmp_path):
    (tmp_path / "labels.txt").write_text("cat\nhorse\n")
    labels = _labels("labels.txt", tmp_path)
    with pytest.raises(InputError) as err:
        class_map(labels, two_box_dataset, source=tmp_path / "model.yaml")
    text = err.value.render()
    assert "['horse'] are not categories of" in text and "categories ['dog']" in text and "labels.txt" in text


def test_no_labels_means_the_datasets_category_order_and_says_so(two_box_dataset):
    mapping = class_map(Labels(()), two_box_dataset, source="x")
    assert mapping.category_ids == (3, 5)
    assert "0 cat, 1 dog" in mapping.note


def test_coco80_may_score_a_subset_of_coco(tmp_path):
    ann = _write_coco(tmp_path, [(1, "person"), (18, "dog")])
    mapping = class_map(Labels(COCO80, "coco80", builtin=True), load_coco(ann, tmp_path), source="x")
    assert mapping.category_ids[0] == 1 and mapping.category_ids[16] == 18 and mapping.category_ids[2] == -1


def _write_coco(folder: Path, categories: list[tuple[int, str]]) -> Path:
    Image.new("RGB", (20, 10)).save(folder / "a.png")
    ann = folder / "instances.json"
    anns = [{"id": i + 1, "image_id": 1, "category_id": cid, "bbox": [1, 1, 5, 5], "area": 25, "iscrowd": 0}
            for i, (cid, _) in enumerate(categories)]
    ann.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png", "width": 20, "height": 10}], "annotations": anns,
                               "categories": [{"id": c, "name": n} for c, n in categories]}))
    return ann


# -- YOLO datasets -------------------------------------------------------------


def _yolo(tmp_path: Path, lines: dict[str, str], names="[cat, dog]") -> Path:
    for stem, text in lines.items():
        (tmp_path / "images" / "val").mkdir(parents=True, exist_ok=True)
        (tmp_path / "labels" / "val").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (200, 100)).save(tmp_path / "images" / "val" / f"{stem}.jpg")
        (tmp_path / "labels" / "val" / f"{stem}.txt").write_text(text)
    data = tmp_path / "data.yaml"
    data.write_text(f"path: .\ntrain: images/train\nval: images/val\nnames: {names}\n")
    return data


def test_yolo_labels_become_coco_pixels_with_deterministic_ids(tmp_path):
    data = _yolo(tmp_path, {"b": "1 0.5 0.5 0.2 0.4\n", "a": "0 0.2 0.25 0.2 0.3\n0 0.2 0.25 0.2 0.3\n"})
    ann, root = coco_files(data, "val", tmp_path / "cache")
    coco = json.loads(ann.read_text())
    assert [(i["id"], i["file_name"]) for i in coco["images"]] == [(1, "a.jpg"), (2, "b.jpg")]
    assert coco["categories"] == [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    # the duplicate line is dropped, as Ultralytics does; boxes in pixels
    assert [(a["id"], a["image_id"], a["category_id"], a["bbox"]) for a in coco["annotations"]] == [
        (1, 1, 1, [20.0, 10.0, 40.0, 30.0]), (2, 2, 2, [80.0, 30.0, 40.0, 40.0])]
    assert load_coco(ann, root).images[0].path == tmp_path / "images" / "val" / "a.jpg"
    assert coco_files(data, "val", tmp_path / "cache") == (ann, root)  # cached


def test_yolo_names_as_a_mapping_and_cocos_names_keep_cocos_ids(tmp_path):
    names = "{" + ", ".join(f"{i}: '{n}'" for i, n in enumerate(COCO80)) + "}"
    data = _yolo(tmp_path, {"000000000139": "79 0.5 0.5 0.1 0.1\n"}, names=names)
    coco = json.loads(coco_files(data, "val", tmp_path / "cache")[0].read_text())
    assert coco["images"][0]["id"] == 139 and coco["annotations"][0]["category_id"] == 90


def test_label_path_follows_ultralytics():
    assert label_path(Path("/d/images/val/x.1.jpg")) == Path("/d/labels/val/x.1.txt")
    assert label_path(Path("/d/images/a/images/b.png")) == Path("/d/images/a/labels/b.txt")


@pytest.mark.parametrize(
    ("line", "needles"),
    [
        ("0 0.5 0.5 0.2", ("b.txt", "line 1", "4 numbers, expected 5", "class x_center")),
        ("0 1.5 0.5 0.2 0.2", ("b.txt", "box outside the image", "divide pixel values")),
        ("0 120 40 30 20", ("box outside the image",)),
        ("2 0.5 0.5 0.2 0.2", ("class 2 is not one of",)),
    ],
)
def test_bad_yolo_label_lines_name_the_file_line_and_fix(tmp_path, line, needles):
    data = _yolo(tmp_path, {"b": line + "\n"})
    with pytest.raises(InputError) as err:
        coco_files(data, "val", tmp_path / "cache")
    for needle in needles:
        assert needle in err.value.render()
    assert not list((tmp_path / "cache").glob("**/*.json"))


def test_a_data_yaml_whose_split_folder_is_missing(tmp_path):
    data = _yolo(tmp_path, {"a": ""})
    with pytest.raises(InputError) as err:
        coco_files(data, "train", tmp_path / "cache")
    text = err.value.render()
    assert "data.yaml, train" in text and "split folder" in text and "images/train" in text and "--split" in text


def test_a_coco_2017_root_is_found_by_either_split_name(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_val2017.json").write_text("{}")
    (tmp_path / "images" / "val2017").mkdir(parents=True)
    assert coco_root(tmp_path, "val") == (tmp_path / "annotations" / "instances_val2017.json", tmp_path / "images" / "val2017")
    with pytest.raises(InputError, match="instances_test2017.json"):
        coco_root(tmp_path, "test")


# -- samples and images ------------------------------------------------------------


def test_the_same_seed_samples_the_same_images_whatever_the_format(tmp_path):
    images = tuple(replace(img, id=i, path=Path(f"/x/{i:04d}.png")) for i, img in enumerate([_image()] * 50))
    dataset = replace(load_coco(*_one(tmp_path)), images=images)
    a, b, c = sample(dataset, 10, 3), sample(dataset, 10, 3), sample(dataset, 10, 4)
    assert a.images == b.images and a.images != c.images and len(a.images) == 10
    assert set(a.images) <= set(sample(dataset, 20, 3).images)  # a larger sample holds a smaller one
    renumbered = replace(dataset, images=tuple(replace(img, id=img.id + 1000) for img in images))
    assert [i.path for i in sample(renumbered, 10, 3).images] == [i.path for i in a.images]
    assert sample(dataset, None).images == images


def _one(tmp_path):
    ann = _write_coco(tmp_path, [(1, "cat")])
    return ann, tmp_path


def _image():
    from harness.dataset.coco import CocoImage

    return CocoImage(0, Path("/x"), 10, 10)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "I;16", "LA", "1"])
def test_every_image_mode_reads_as_rgb(tmp_path, mode):
    path = tmp_path / ("x.tiff" if mode in ("CMYK", "I;16") else "x.png")
    img = Image.new("RGB", (7, 5), (200, 100, 50)).convert(mode) if mode != "I;16" else Image.new("I;16", (7, 5), 51200)
    img.save(path)
    pixels = read_pixels(path)
    assert pixels.shape == (5, 7, 3) and pixels.dtype == np.uint8
    if mode == "I;16":
        assert int(pixels[0, 0, 0]) == 200  # 51200 >> 8, not clipped to 255
    if mode == "RGBA":
        assert tuple(pixels[0, 0]) == (200, 100, 50)


# -- the label-map check ---------------------------------------------------------------


def test_swapped_labels_land_on_each_others_categories(two_box_dataset):
    found = det([(20, 10, 40, 30), (100, 50, 60, 40)], [0, 1], [0.9, 0.8])
    many = replace(two_box_dataset, images=two_box_dataset.images * 12)
    landings = class_landings(many, [found] * 12, (5, 3))  # labels [dog, cat]: swapped
    assert [(c.class_index, c.expected, c.landed, c.matched) for c in landings] == [(0, "dog", "cat", 12), (1, "cat", "dog", 12)]
    assert all(c.mismatched for c in landings)
    assert not any(c.mismatched for c in class_landings(many, [found] * 12, (3, 5)))


def test_the_report_warns_with_the_mapping_it_sees(two_box_dataset):
    found = det([(20, 10, 40, 30), (100, 50, 60, 40)], [0, 1], [0.9, 0.8])
    many = replace(two_box_dataset, images=two_box_dataset.images * 12)
    record = make_record(variant="fp32")
    accuracy = replace(record.accuracy, class_landings=class_landings(many, [found] * 12, (5, 3)))
    record = replace(record, accuracy=accuracy)
    (line,) = label_findings([record])
    assert "LABEL MAP WARNING" in line and "class 0 is labelled 'dog' but 100% of its 12" in line
    assert "permuted" in line and "0 -> cat, 1 -> dog" in line
    # it survives the store's JSON round trip
    from harness.results.record import Record

    assert Record.from_dict(json.loads(json.dumps(record.to_dict()))).accuracy == accuracy


# -- recipe keys ----------------------------------------------------------------------


def test_a_recipe_takes_val_and_calib_entries_in_every_form(tmp_path):
    from harness.model.recipe import load_recipe
    from tests.recipes import write_recipe

    data = _yolo(tmp_path, {"a": "0 0.5 0.5 0.2 0.2\n"})
    recipe = load_recipe(write_recipe(tmp_path, labels="coco80", dataset={
        "val": "data.yaml", "calib": {"data": "data.yaml", "split": "val", "size": 8, "seed": 2}}))
    assert recipe.labels == COCO80 and recipe.labels_source == "coco80"
    assert (recipe.eval.yolo, recipe.eval.yolo_split, recipe.eval.size) == (data, "val", None)
    assert (recipe.calibration.yolo, recipe.calibration.size, recipe.calibration.seed) == (data, 8, 2)
    with pytest.raises(InputError, match="both 'eval' and 'val'"):
        load_recipe(write_recipe(tmp_path, dataset={"val": "data.yaml", "eval": "data.yaml"}))
    with pytest.raises(InputError, match="name the dataset once"):
        load_recipe(write_recipe(tmp_path, dataset={"val": {"data": "data.yaml", "root": "."}}))
    with pytest.raises(InputError, match="no 'val' split in the COCO folder"):
        load_recipe(write_recipe(tmp_path, dataset={"val": "."}))
    assert load_recipe(write_recipe(tmp_path, labels=None)).labels == ()  # no labels: the dataset's order


def test_dataset_flag_replaces_a_recipes_eval_set_and_split_needs_it(tmp_path):
    from harness.model.bare import plan_recipe
    from tests.recipes import write_recipe

    data = _yolo(tmp_path, {"a": "0 0.5 0.5 0.2 0.2\n"})
    recipe = plan_recipe(write_recipe(tmp_path), data, "val")
    assert (recipe.eval.yolo, recipe.eval.yolo_split) == (data, "val")
    with pytest.raises(InputError, match="--split names a split of --dataset"):
        plan_recipe(tmp_path / "model.yaml", None, "val")
    with pytest.raises(InputError, match="dataset YAML not found"):
        plan_recipe(tmp_path / "model.yaml", tmp_path / "nope.yaml", None)
