"""Model recipes (models/<name>/model.yaml), validated at load.

A recipe names the float model, how its input is prepared, how its outputs
are read, which datasets calibrate and evaluate it, and which variants to
produce. Paths inside a recipe are relative to the recipe's folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import Fields, load_yaml_mapping
from harness.errors import InputError
from harness.preprocess import InputSpec
from harness.variants import DEFAULT_VARIANTS, parse_variant_names

ADAPTERS = ("ssd-postprocess", "none")
SOURCE_SUFFIXES = (".h5", ".keras", ".tflite")

_PP_KEYS = {
    "anchors": str,
    "max_detections": int,
    "max_classes_per_detection": int,
    "detections_per_class": int,
    "use_regular_nms": bool,
    "nms_score_threshold": float,
    "nms_iou_threshold": float,
    "scales": dict,
    "scores": str,
}


@dataclass(frozen=True)
class DatasetRef:
    """Either a synthetic split (generator + seed) or a COCO folder."""

    split: str
    annotations: Path | None = None
    images: Path | None = None
    synthetic_size: int | None = None


@dataclass(frozen=True)
class Recipe:
    path: Path
    name: str
    source: Path
    input: InputSpec
    labels: tuple[str, ...]
    adapter: str
    postprocess: dict[str, Any]
    calibration: DatasetRef | None
    eval: DatasetRef | None
    variants: tuple[str, ...]
    synthetic_seed: int | None = None
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def is_tflite(self) -> bool:
        return self.source.suffix == ".tflite"


def load_recipe(path: Path) -> Recipe:
    path = Path(path)
    data = load_yaml_mapping(path, what="model recipe")
    top = Fields(data, source=path, place="")
    top.reject_unknown(
        ["name", "description", "source", "input", "labels", "adapter", "postprocess", "dataset", "variants", "training"]
    )
    folder = path.parent
    source = folder / top.str("source", required=True)
    if source.suffix not in SOURCE_SUFFIXES:
        raise InputError(
            f"unsupported model file {source.name!r}",
            source=path,
            place="source",
            hint=f"use a Keras {', '.join(SOURCE_SUFFIXES[:2])} file or a float .tflite",
        )
    if not source.is_file():
        raise InputError(f"model file {source} not found", source=path, place="source", hint="fix the path (relative to the recipe)")

    inp = top.sub("input", required=True)
    inp.reject_unknown(["height", "width", "channels", "layout", "mean", "std", "resize"])
    channels = inp.int("channels", 3, minimum=1)
    if inp.str("layout", "NHWC") != "NHWC":
        raise InputError("only NHWC input is supported", source=path, place="input.layout", hint="set layout: NHWC")
    spec = InputSpec(
        height=inp.int("height", required=True, minimum=1),
        width=inp.int("width", required=True, minimum=1),
        channels=channels,
        mean=inp.float_list("mean", channels) or (0.0,) * channels,
        std=inp.float_list("std", channels) or (1.0,) * channels,
        resize=inp.choice("resize", ["bilinear", "nearest"], "bilinear"),
    )
    if any(s == 0 for s in spec.std):
        raise InputError("std must not be 0", source=path, place="input.std", hint="use the model's training std")

    adapter = top.choice("adapter", ADAPTERS, "ssd-postprocess")
    postprocess = _postprocess(top, path, folder) if adapter == "ssd-postprocess" else {}
    seed, calibration, evaluation = _datasets(top, path, folder)
    variants_raw = data.get("variants")
    if variants_raw is None:
        variants = DEFAULT_VARIANTS
    elif isinstance(variants_raw, list):
        variants = parse_variant_names([str(v) for v in variants_raw], source=f"{path}, variants")
    else:
        raise InputError("expected a list of variant names", source=path, place="variants", hint="variants: [fp32, int8]")
    return Recipe(
        path=path,
        name=top.str("name", required=True),
        description=top.str("description", ""),
        source=source,
        input=spec,
        labels=top.str_list("labels", required=adapter == "ssd-postprocess"),
        adapter=adapter,
        postprocess=postprocess,
        calibration=calibration,
        eval=evaluation,
        variants=variants,
        synthetic_seed=seed,
        extra={"training": data.get("training")},
    )


def _postprocess(top: Fields, path: Path, folder: Path) -> dict[str, Any]:
    pp = top.sub("postprocess", required=True)
    pp.reject_unknown(_PP_KEYS)
    out: dict[str, Any] = {}
    for key, kind in _PP_KEYS.items():
        if key not in pp.data:
            continue
        if kind is str:
            out[key] = pp.str(key)
        elif kind is int:
            out[key] = pp.int(key, minimum=1)
        elif kind is float:
            out[key] = pp.float(key, minimum=0.0)
        elif kind is bool:
            out[key] = pp.bool(key)
        else:
            scales = pp.sub(key)
            scales.reject_unknown(["y", "x", "h", "w"])
            out[key] = {k: scales.float(k, required=True, minimum=1e-6) for k in ("y", "x", "h", "w")}
    if "anchors" not in out:
        raise InputError("missing required key", source=path, place="postprocess.anchors", hint="anchors: anchors.npy")
    anchors = folder / out["anchors"]
    if not anchors.is_file():
        raise InputError(f"anchors file {anchors} not found", source=path, place="postprocess.anchors", hint="fix the path")
    out["anchors"] = str(anchors)
    return out


def _datasets(top: Fields, path: Path, folder: Path) -> tuple[int | None, DatasetRef | None, DatasetRef | None]:
    ds = top.sub("dataset")
    if not ds.data:
        return None, None, None
    ds.reject_unknown(["generator", "seed", "splits", "calibration", "eval"])
    generator = ds.choice("generator", ["synthetic"])
    if generator == "synthetic":
        splits = ds.sub("splits", required=True)
        splits.reject_unknown(["calib", "val"])
        return (
            ds.int("seed"),
            DatasetRef("calib", synthetic_size=splits.int("calib", required=True, minimum=1)),
            DatasetRef("val", synthetic_size=splits.int("val", required=True, minimum=1)),
        )

    def folder_ref(key: str, split: str) -> DatasetRef | None:
        sub = ds.sub(key)
        if not sub.data:
            return None
        sub.reject_unknown(["annotations", "images"])
        return DatasetRef(
            split,
            annotations=folder / sub.str("annotations", required=True),
            images=folder / sub.str("images", required=True),
        )

    return None, folder_ref("calibration", "calib"), folder_ref("eval", "val")
