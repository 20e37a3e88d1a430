"""The synthetic COCO dataset: deterministic, independent splits, valid COCO."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.dataset import synth


def _digest_tree(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_two_generations_are_byte_identical(tmp_path: Path) -> None:
    synth.generate_dataset(tmp_path / "a", {"calib": 6, "val": 8})
    synth.generate_dataset(tmp_path / "b", {"calib": 6, "val": 8})
    digests_a = _digest_tree(tmp_path / "a")
    assert len(digests_a) == 6 + 8 + 2
    assert digests_a == _digest_tree(tmp_path / "b")


def test_split_content_does_not_depend_on_other_splits(tmp_path: Path) -> None:
    synth.generate_dataset(tmp_path / "a", {"train": 3, "val": 5})
    synth.generate_dataset(tmp_path / "b", {"train": 11, "val": 5})
    assert _digest_tree(tmp_path / "a" / "val") == _digest_tree(tmp_path / "b" / "val")
    ann_a = (tmp_path / "a" / "annotations" / "instances_val.json").read_bytes()
    ann_b = (tmp_path / "b" / "annotations" / "instances_val.json").read_bytes()
    assert ann_a == ann_b


def test_seed_and_split_name_change_the_content(tmp_path: Path) -> None:
    base = synth.render_image("val", 0).pixels
    assert not np.array_equal(base, synth.render_image("val", 0, seed=synth.DEFAULT_SEED + 1).pixels)
    assert not np.array_equal(base, synth.render_image("calib", 0).pixels)
    assert not np.array_equal(base, synth.render_image("val", 1).pixels)


def test_render_image_matches_written_split(tmp_path: Path) -> None:
    paths = synth.generate_split(tmp_path, "val", 3)
    for index in range(3):
        written = np.asarray(Image.open(paths.images_dir / f"{index:06d}.png"))
        assert np.array_equal(written, synth.render_image("val", index).pixels)


def test_annotations_are_inside_the_image_with_known_categories(tmp_path: Path) -> None:
    paths = synth.generate_split(tmp_path, "val", 40)
    document = json.loads(paths.annotations_json.read_text())
    assert document["categories"] == [
        {"id": 1, "name": "rectangle", "supercategory": "shape"},
        {"id": 2, "name": "ellipse", "supercategory": "shape"},
        {"id": 3, "name": "triangle", "supercategory": "shape"},
    ]
    per_image: dict[int, int] = {}
    for ann in document["annotations"]:
        x, y, w, h = ann["bbox"]
        assert 0 <= x and 0 <= y and w > 0 and h > 0
        assert x + w <= synth.IMAGE_WIDTH_PX and y + h <= synth.IMAGE_HEIGHT_PX
        assert ann["category_id"] in (1, 2, 3)
        assert ann["iscrowd"] == 0 and ann["area"] == pytest.approx(w * h)
        # Sizes in the documented range, with a pixel of rasterisation slack.
        assert 8 <= max(w, h) <= 92
        per_image[ann["image_id"]] = per_image.get(ann["image_id"], 0) + 1
    assert set(per_image) <= {im["id"] for im in document["images"]}
    assert all(1 <= count <= 6 for count in per_image.values())
    # Every class shows up in 40 images (about 140 objects).
    assert {ann["category_id"] for ann in document["annotations"]} == {1, 2, 3}
    for image in document["images"]:
        with Image.open(paths.images_dir / image["file_name"]) as im:
            assert im.size == (image["width"], image["height"]) == (256, 192)
            assert im.mode == "RGB"


def test_coco_json_loads_with_pycocotools(tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    paths = synth.generate_split(tmp_path, "calib", 5)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(paths.annotations_json))
    assert sorted(coco.getImgIds()) == [1, 2, 3, 4, 5]
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(synth.CLASS_NAMES)
    assert len(coco.getAnnIds()) >= 5


def test_existing_split_is_reused_and_a_changed_one_is_regenerated(tmp_path: Path) -> None:
    paths = synth.generate_split(tmp_path, "val", 4)
    stamp_mtime_ns = paths.annotations_json.stat().st_mtime_ns
    synth.generate_split(tmp_path, "val", 4)
    assert paths.annotations_json.stat().st_mtime_ns == stamp_mtime_ns

    synth.generate_split(tmp_path, "val", 2)
    assert sorted(p.name for p in paths.images_dir.iterdir()) == ["000000.png", "000001.png"]
    assert json.loads(paths.annotations_json.read_text())["info"]["n_images"] == 2

    # A deleted image invalidates the stamp.
    (paths.images_dir / "000001.png").unlink()
    synth.generate_split(tmp_path, "val", 2)
    assert (paths.images_dir / "000001.png").is_file()


@pytest.mark.parametrize("index", range(10))
def test_every_object_keeps_half_of_its_pixels_visible(index: int) -> None:
    # Not observable from the boxes alone, so replay the renderer's layering
    # (later shapes are drawn on top) from the full masks it returns.
    _pixels, shapes = synth._render_image(synth._image_rng(synth.DEFAULT_SEED, "val", index))
    owner = np.full((synth.IMAGE_HEIGHT_PX, synth.IMAGE_WIDTH_PX), -1)
    for k, shape in enumerate(shapes):
        owner[shape.mask] = k
    for k, shape in enumerate(shapes):
        assert np.count_nonzero(owner == k) >= 0.5 * np.count_nonzero(shape.mask)


def test_invalid_arguments_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        synth.generate_split(tmp_path, "val", -1)
    with pytest.raises(ValueError):
        synth.generate_split(tmp_path, "../escape", 1)
