"""A recipe's dataset reference into a loaded COCO dataset (generating the
synthetic splits on first use, converting a YOLO split in the cache, and
sampling `size` images with the reference's seed)."""

from __future__ import annotations

from pathlib import Path

from harness.dataset.coco import CocoDataset, load_coco
from harness.dataset.subset import sample
from harness.model.recipe import DatasetRef, Recipe


def resolve_dataset(recipe: Recipe, ref: DatasetRef | None, cache_dir: Path) -> CocoDataset | None:
    if ref is None:
        return None
    if ref.synthetic_size is not None:
        from harness.dataset import synth

        seed = recipe.synthetic_seed if recipe.synthetic_seed is not None else synth.DEFAULT_SEED
        root = cache_dir / "datasets" / f"synthetic-{seed}"
        split = synth.generate_split(root, ref.split, ref.synthetic_size, seed)
        return load_coco(split.annotations_json, split.images_dir, name=f"synthetic-{ref.split}")
    if ref.yolo is not None:
        from harness.dataset.yolo import coco_files

        annotations, images = coco_files(ref.yolo, ref.yolo_split, cache_dir)
        dataset = load_coco(annotations, images, name=f"{ref.yolo.stem}-{ref.yolo_split}")
        return sample(dataset, ref.size, ref.seed)
    assert ref.annotations is not None and ref.images is not None
    return sample(load_coco(ref.annotations, ref.images, name=f"{recipe.name}-{ref.split}"), ref.size, ref.seed)
