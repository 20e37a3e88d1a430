"""Model recipes (models/<name>/model.yaml), validated at load.

A recipe names the float model, how its input is prepared, how its outputs
are read, which datasets calibrate, train (quantization-aware fine-tuning)
and evaluate it, and which variants to produce with which options. Paths
inside a recipe are relative to the recipe's folder.

Sources: a Keras model (``.h5``/``.keras``), a SavedModel directory, or a
float ``.tflite`` (fp32 is the file as it is; the other variants come from
the LiteRT Quantizer, harness/convert/litert_quant.py; a bare ``.tflite``
given to ``--model`` without a recipe is benchmark-only).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.config import Fields, load_yaml_mapping
from harness.errors import InputError
from harness.dataset.preprocess import InputSpec
from harness.model.labels import parse_labels
from harness.model.not_a_recipe import refuse_model_file
from harness.model.variants import DEFAULT_VARIANTS, parse_variant_names

ADAPTERS = ("ssd-postprocess", "boxes-scores", "yolo", "yolo-end2end", "none")
SOURCE_SUFFIXES = (".h5", ".keras", ".tflite")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
# What each adapter reads from postprocess: (key, type, required).
_BOXES_SCORES_KEYS = ("anchors", "scales", "max_detections", "nms_score_threshold", "nms_iou_threshold", "scores")

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
    # An Ultralytics data.yaml and its split, converted to COCO in the cache.
    yolo: Path | None = None
    yolo_split: str = "val"
    # A seeded sample of this many images (None: all of them).
    size: int | None = None
    seed: int = 0


@dataclass(frozen=True)
class TrainingConfig:
    """Quantization-aware fine-tuning: the data, the loss and how long."""

    dataset: DatasetRef
    loss: str = "ssd-focal"
    epochs: int | None = None  # passes over the split; 1 when neither epochs nor steps is given
    steps: int | None = None  # optimizer steps, cycling the split as often as it takes
    batch_size: int = 16
    learning_rate: float = 3e-5
    seed: int = 0

    def total_steps(self, steps_per_epoch: int) -> int:
        """Optimizer steps to take: `steps` alone means that many, `epochs`
        alone that many passes, both the fewer of the two. (Until 2026-12
        `steps` only capped the default single epoch, so `steps: 150` on a
        256-image split ran 16.)"""
        if self.steps is None:
            return (self.epochs or 1) * steps_per_epoch
        if self.epochs is None:
            return self.steps
        return min(self.epochs * steps_per_epoch, self.steps)


@dataclass(frozen=True)
class SelectiveOptions:
    """selective-int8: a denylist the user gives, or found automatically."""

    denylist: tuple[str, ...] = ()
    max_map_drop: float = 0.005  # absolute mAP on the calibration split, against fp32
    max_layers: int = 8
    top_layers: int = 10  # how many of the most sensitive layers the report shows


@dataclass(frozen=True)
class MixedOptions:
    """mixed-int16: which ops get int16 activations (the rest stay int8).

    Empty: the selective-int8 denylist of the recipe, else the one the run's
    selective-int8 search found (harness/convert/litert_quant.py decides), so
    both variants treat the same ops as the sensitive ones."""

    ops: tuple[str, ...] = ()


_TRAINING_KEYS = ("loss", "epochs", "steps", "batch_size", "learning_rate", "seed")


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
    # Quantization-aware fine-tuning: `training:` merged with variant_options.qat-int8.
    qat: TrainingConfig | None = None
    selective: SelectiveOptions = SelectiveOptions()
    mixed: MixedOptions = MixedOptions()
    # Where labels came from: "" (none: the dataset's category order), "list", "coco80", "coco91", a label file.
    labels_source: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def is_tflite(self) -> bool:
        return self.source.suffix == ".tflite"

    @property
    def is_saved_model(self) -> bool:
        return self.source.is_dir()

    def check_variants(self, variants: tuple[str, ...], *, source: str = "--variants") -> None:
        """Refuse, up front, a variant this recipe cannot make."""
        if self.is_tflite and self.path != self.source:
            _check_tflite_variants(self, variants, source)
        elif self.is_tflite and set(variants) - {"fp32"}:
            raise InputError(
                f"a .tflite source is benchmark-only; it cannot be converted into {', '.join(v for v in variants if v != 'fp32')}",
                source=source,
                hint="ask for fp32 only (the file as it is), or write a model.yaml recipe with this file as source and a "
                "calibration dataset (the LiteRT Quantizer makes the int8 variants from it)",
            )
        if "qat-int8" in variants and self.qat is None:
            raise InputError(
                "qat-int8 needs a training: section (dataset, epochs, learning rate, loss)",
                source=self.path,
                place="training",
                hint="add e.g. `training: {dataset: {split: train, size: 512}, epochs: 1, loss: ssd-focal}`, or drop qat-int8",
            )


def _check_tflite_variants(recipe: Recipe, variants: tuple[str, ...], source: str) -> None:
    """A float .tflite recipe: the LiteRT Quantizer makes every variant but
    qat-int8 (fine-tuning needs the Keras model)."""
    if "qat-int8" in variants:
        raise InputError(
            "qat-int8 cannot be made from a .tflite source: quantization-aware training fine-tunes the Keras model, "
            "and a .tflite holds no trainable graph",
            source=source,
            hint="drop qat-int8 (int8 and selective-int8 come from the LiteRT Quantizer), "
            "or point source at the float Keras or SavedModel model",
        )


def tflite_default_variants(has_calibration: bool) -> tuple[str, ...]:
    """A .tflite recipe without `variants:`: all the quantizer can make, or
    the file as it is when there is nothing to calibrate on."""
    if not has_calibration:
        return ("fp32",)
    return tuple(v for v in DEFAULT_VARIANTS if v != "qat-int8")


def bare_tflite_recipe(path: Path) -> Recipe:
    """`harness run --model x.tflite`: benchmark-only, random inputs, no mAP."""
    path = Path(path)
    if not path.is_file():
        raise InputError("model file not found", source=path, hint="check the path given to --model")
    return Recipe(
        path=path,
        name=path.stem,
        source=path,
        input=InputSpec(height=0, width=0),
        labels=(),
        adapter="none",
        postprocess={},
        calibration=None,
        eval=None,
        variants=("fp32",),
    )


def load_recipe(path: Path) -> Recipe:
    path = Path(path)
    refuse_model_file(path)  # a model or a folder given where the recipe goes: say what to write
    data = load_yaml_mapping(path, what="model recipe")
    top = Fields(data, source=path, place="")
    top.reject_unknown(
        [
            "name", "description", "source", "input", "labels", "adapter", "postprocess", "dataset", "variants",
            "training", "variant_options",
        ]
    )
    folder = path.parent
    source = _source(top, path, folder)

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
        resize=inp.choice("resize", ["bilinear", "nearest", "letterbox"], "bilinear"),
    )
    if any(s == 0 for s in spec.std):
        raise InputError("std must not be 0", source=path, place="input.std", hint="use the model's training std")

    adapter, choice = _adapter(top, path, source)
    if adapter == "ssd-postprocess":
        postprocess = _postprocess(top, path, folder, op_in_model=source.suffix == ".tflite")
    elif adapter == "boxes-scores":
        postprocess = _boxes_scores(top, path, folder)
    elif adapter in ("yolo", "yolo-end2end"):
        postprocess = _yolo_postprocess(top, adapter, getattr(choice, "postprocess", {}))
        spec = _yolo_input(inp, spec)
    else:
        postprocess = {}
    seed, calibration, evaluation = _datasets(top, path, folder)
    training = _training(top, path, folder, postprocess, is_tflite=source.suffix == ".tflite")
    qat, selective = _variant_options(top, training)
    mixed = MixedOptions(ops=top.sub("variant_options").sub("mixed-int16").str_list("ops"))
    if qat is not None and qat.dataset.synthetic_size is not None and seed is None:
        raise InputError(
            "training.dataset.split names a synthetic split, but the recipe's dataset is not synthetic",
            source=path,
            place="training.dataset",
            hint="give training.dataset {annotations, images} of a COCO folder",
        )
    labels = parse_labels(top, folder)
    variants_raw = data.get("variants")
    if variants_raw is None:
        # Defaults are what this recipe can make: a .tflite has no qat-int8
        # (and only fp32 without a calibration split), and qat-int8 needs a
        # training section.
        variants = tflite_default_variants(calibration is not None) if source.suffix == ".tflite" else tuple(
            v for v in DEFAULT_VARIANTS if v != "qat-int8" or qat is not None
        )
    elif isinstance(variants_raw, list):
        variants = parse_variant_names([str(v) for v in variants_raw], source=f"{path}, variants")
    else:
        raise InputError("expected a list of variant names", source=path, place="variants", hint="variants: [fp32, int8]")
    recipe = Recipe(
        path=path,
        name=top.str("name", required=True),
        description=top.str("description", ""),
        source=source,
        input=spec,
        labels=labels.names,
        labels_source=labels.source,
        adapter=adapter,
        postprocess=postprocess,
        calibration=calibration,
        eval=evaluation,
        variants=variants,
        synthetic_seed=seed,
        qat=qat,
        selective=selective,
        mixed=mixed,
        extra={"adapter_choice": choice} if choice is not None else {},
    )
    recipe.check_variants(variants, source=f"{path}, variants")
    return recipe


def _source(top: Fields, path: Path, folder: Path) -> Path:
    source = folder / top.str("source", required=True)
    if source.is_dir():
        if not (source / "saved_model.pb").is_file():
            raise InputError(
                f"{source} is a directory without saved_model.pb",
                source=path,
                place="source",
                hint="point source at a SavedModel directory (tf.saved_model.save / model.save(dir)), a .h5/.keras file or a .tflite",
            )
        return source
    if source.suffix not in SOURCE_SUFFIXES:
        raise InputError(
            f"unsupported model file {source.name!r}",
            source=path,
            place="source",
            hint=f"use a Keras {', '.join(SOURCE_SUFFIXES[:2])} file, a SavedModel directory or a float .tflite",
        )
    if not source.is_file():
        raise InputError(f"model file {source} not found", source=path, place="source", hint="fix the path (relative to the recipe)")
    return source


def _boxes_scores(top: Fields, path: Path, folder: Path) -> dict[str, Any]:
    """Raw boxes + per-class scores; NMS runs in the agent. Anchors (and the
    SSD scales) when the boxes are encodings to decode, none when the model
    outputs normalised corner boxes (ymin, xmin, ymax, xmax)."""
    pp = top.sub("postprocess")
    pp.reject_unknown(_BOXES_SCORES_KEYS)
    out: dict[str, Any] = {
        "max_detections": pp.int("max_detections", 100, minimum=1),
        "nms_score_threshold": pp.float("nms_score_threshold", 0.05, minimum=0.0),
        "nms_iou_threshold": pp.float("nms_iou_threshold", 0.5, minimum=0.0),
        "scores": pp.choice("scores", ["logits", "sigmoid"], "sigmoid"),
    }
    if pp.data.get("anchors") is not None:
        anchors = folder / pp.str("anchors")
        if not anchors.is_file():
            raise InputError(f"anchors file {anchors} not found", source=path, place="postprocess.anchors", hint="fix the path")
        out["anchors"] = str(anchors)
        if pp.data.get("scales") is None:
            raise InputError("postprocess.anchors is given (boxes are encodings to decode against them), but scales is missing",
                             source=path, place="postprocess.scales",
                             hint="add scales: {y: 10.0, x: 10.0, h: 5.0, w: 5.0} (the model's box-encoding scales), or drop anchors for corner boxes")
        scales = pp.sub("scales", required=True)
        scales.reject_unknown(["y", "x", "h", "w"])
        out["scales"] = {k: scales.float(k, required=True, minimum=1e-6) for k in ("y", "x", "h", "w")}
    return out


# Ultralytics' own val defaults (conf 0.001, iou 0.7, max_det 300), so a
# model's mAP here compares with `yolo val`: mAP needs the low-score tail.
YOLO_DEFAULTS = {"score_threshold": 0.001, "iou_threshold": 0.7, "max_detections": 300, "boxes": "auto", "layout": "v8"}


def _yolo_postprocess(top: Fields, adapter: str, fitted: dict[str, Any] | None = None) -> dict[str, Any]:
    """Thresholds for the agent's YOLO readers; `boxes` auto tells
    normalised from pixel boxes by their range, per image. `fitted`: the
    keys the model's layout implies (harness/model/fit.py), under the recipe's."""
    pp = top.sub("postprocess")
    pp = Fields({**(fitted or {}), **pp.data}, source=pp.source, place=pp.place)
    end2end = adapter == "yolo-end2end"
    pp.reject_unknown(["score_threshold", "max_detections", "boxes"] if end2end else list(YOLO_DEFAULTS))
    out: dict[str, Any] = {
        "score_threshold": pp.float("score_threshold", YOLO_DEFAULTS["score_threshold"], minimum=0.0),
        "max_detections": pp.int("max_detections", YOLO_DEFAULTS["max_detections"], minimum=1),
        "boxes": pp.choice("boxes", ["auto", "normalised", "pixels"], YOLO_DEFAULTS["boxes"]),
    }
    if not end2end:
        out["iou_threshold"] = pp.float("iou_threshold", YOLO_DEFAULTS["iou_threshold"], minimum=0.0)
        out["layout"] = pp.choice("layout", ["v8", "v5"], YOLO_DEFAULTS["layout"])
    return out


def fitted_postprocess(adapter: str, keys: dict[str, Any], *, source: Path) -> dict[str, Any]:
    """The postprocess section of a recipe that gives `keys` for a .tflite
    (`harness run --model X.tflite --dataset ...`: the keys the layout
    implies, every other at its default)."""
    top = Fields({"postprocess": dict(keys)}, source=source, place="")
    if adapter in ("yolo", "yolo-end2end"):
        return _yolo_postprocess(top, adapter)
    if adapter == "boxes-scores":
        return _boxes_scores(top, source, source.parent)
    return {}


def _yolo_input(inp: Fields, spec: InputSpec) -> InputSpec:
    """Ultralytics feeds letterboxed RGB in [0, 1]: those are the defaults
    a YOLO recipe gets for the keys it leaves out."""
    return replace(
        spec,
        mean=spec.mean if "mean" in inp.data else (0.0,) * spec.channels,
        std=spec.std if "std" in inp.data else (255.0,) * spec.channels,
        resize=spec.resize if "resize" in inp.data else "letterbox",
    )


def _training(top: Fields, path: Path, folder: Path, postprocess: dict[str, Any], *, is_tflite: bool) -> dict[str, Any] | None:
    """The `training:` mapping, checked; None when absent."""
    tr = top.sub("training")
    if not tr.data:
        return None
    tr.reject_unknown(("dataset", *_TRAINING_KEYS))
    if is_tflite:
        raise InputError("a .tflite source cannot be trained", source=path, place="training", hint="remove training:, or use the Keras model")
    loss = tr.choice("loss", ssd_losses(), "ssd-focal")
    if loss == "ssd-focal" and "anchors" not in postprocess:
        raise InputError(
            "training with the SSD loss needs anchors to match objects to",
            source=path,
            place="postprocess.anchors",
            hint="add postprocess.anchors (and scales), or set training.loss: distill (the fp32 model's own outputs "
            "are the targets: no anchors, no labels), or remove training:",
        )
    ds = tr.sub("dataset", required=True)
    if "split" in ds.data:
        ds.reject_unknown(["split", "size"])
        ref = DatasetRef(ds.str("split", required=True), synthetic_size=ds.int("size", required=True, minimum=1))
    else:
        ds.reject_unknown(["annotations", "images"])
        ref = _folder_ref(ds, "train", path, folder)
    return {"dataset": ref, **{k: tr.data[k] for k in _TRAINING_KEYS if k in tr.data}, "_fields": tr}


def _training_config(base: dict[str, Any], fields: Fields) -> TrainingConfig:
    defaults = TrainingConfig(dataset=base["dataset"])
    return TrainingConfig(
        dataset=base["dataset"],
        loss=fields.choice("loss", ssd_losses(), defaults.loss),
        epochs=fields.int("epochs", None, minimum=1),
        steps=fields.int("steps", None, minimum=1),
        batch_size=fields.int("batch_size", defaults.batch_size, minimum=1),
        learning_rate=fields.float("learning_rate", defaults.learning_rate, minimum=0.0),
        seed=fields.int("seed", defaults.seed, minimum=0),
    )


def _variant_options(top: Fields, training: dict[str, Any] | None) -> tuple[TrainingConfig | None, SelectiveOptions]:
    opts = top.sub("variant_options")
    opts.reject_unknown(["qat-int8", "selective-int8", "mixed-int16"])
    opts.sub("mixed-int16").reject_unknown(["ops"])
    qat = None
    if training is not None:
        base_fields: Fields = training["_fields"]
        _training_config(training, base_fields)  # a bad value is named at training.<key>
        overrides = opts.sub("qat-int8")
        overrides.reject_unknown(_TRAINING_KEYS)
        merged = {k: v for k, v in base_fields.data.items() if k != "dataset"}
        merged.update(overrides.data)
        qat = _training_config(training, Fields(merged, source=top.source, place="variant_options.qat-int8"))
    elif opts.sub("qat-int8").data:
        raise InputError(
            "variant_options.qat-int8 without a training: section",
            source=top.source,
            place="training",
            hint="add training: with the dataset to fine-tune on",
        )
    sel = opts.sub("selective-int8")
    sel.reject_unknown(["denylist", "max_map_drop", "max_layers", "top_layers"])
    d = SelectiveOptions()
    selective = SelectiveOptions(
        denylist=sel.str_list("denylist"),
        max_map_drop=sel.float("max_map_drop", d.max_map_drop, minimum=0.0),
        max_layers=sel.int("max_layers", d.max_layers, minimum=0),
        top_layers=sel.int("top_layers", d.top_layers, minimum=1),
    )
    return qat, selective


def ssd_losses() -> tuple[str, ...]:
    """ssd-focal: the SSD's own loss on labelled boxes (harness/convert/ssd_training.py);
    distill: match the fp32 model's outputs (harness/convert/qat_distill.py)."""
    return ("ssd-focal", "distill")


def _folder_ref(sub: Fields, split: str, path: Path, folder: Path) -> DatasetRef:
    """A COCO folder, checked now: a missing or empty image folder is named
    by its recipe field, not discovered halfway through a conversion."""
    annotations = folder / sub.str("annotations", required=True)
    images = folder / sub.str("images", required=True)
    where = f"{sub.place}.images"
    if not images.is_dir():
        raise InputError(f"image folder {images} not found", source=path, place=where, hint="fix the path (relative to the recipe)")
    if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in images.iterdir()):
        raise InputError(
            f"image folder {images} is empty (no {', '.join(IMAGE_SUFFIXES[:3])} files)",
            source=path,
            place=where,
            hint="put the images the annotations refer to in that folder, or point the field at the folder that has them",
        )
    if not annotations.is_file():
        raise InputError(
            f"annotation file {annotations} not found",
            source=path,
            place=f"{sub.place}.annotations",
            hint="point it at a COCO instances_*.json file",
        )
    return DatasetRef(split, annotations=annotations, images=images)


def _adapter(top: Fields, path: Path, source: Path) -> tuple[str, Any]:
    """The recipe's adapter, and the AdapterChoice (harness/model/fit.py)
    when it was chosen: a recipe naming none gets, for a .tflite, the one its
    outputs fit, and for a Keras/SavedModel source the post-process op the
    harness builds for it."""
    if top.data.get("adapter") is not None or source.suffix != ".tflite":
        return top.choice("adapter", ADAPTERS, "ssd-postprocess"), None
    from harness.model.fit import choose_adapter
    from harness.model.layout import read_tflite_layout

    choice = choose_adapter(read_tflite_layout(source), source=path, place="adapter")
    return choice.name, choice


def _postprocess(top: Fields, path: Path, folder: Path, *, op_in_model: bool = False) -> dict[str, Any]:
    """The post-process op's settings. A .tflite that already holds the op
    (op_in_model) needs none: the op carries its anchors and thresholds."""
    pp = top.sub("postprocess")
    pp.reject_unknown(_PP_KEYS)
    out: dict[str, Any] = {}
    for key, kind in _PP_KEYS.items():
        if pp.data.get(key) is None:  # `key:` with no value is the same as no key
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
        if op_in_model:
            return out
        raise InputError(
            "missing anchors: the post-process op the harness builds for a Keras/SavedModel model decodes against them",
            source=path, place="postprocess.anchors",
            hint="add under postprocess: anchors: anchors.npy (float32 [N, 4]: ycenter, xcenter, height, width, normalised)",
        )
    anchors = folder / out["anchors"]
    if not anchors.is_file():
        raise InputError(f"anchors file {anchors} not found", source=path, place="postprocess.anchors", hint="fix the path")
    out["anchors"] = str(anchors)
    return out


# What the post-process op the harness builds for a Keras/SavedModel SSD
# reads (harness/convert/export.py), with the TF OD API's usual values.
EXPORT_KEYS = {
    "anchors": "anchors.npy", "scales": "{y: 10.0, x: 10.0, h: 5.0, w: 5.0}", "max_detections": "100",
    "max_classes_per_detection": "1", "detections_per_class": "100", "use_regular_nms": "false",
    "nms_score_threshold": "0.05", "nms_iou_threshold": "0.5",
}


def require_export_keys(postprocess: dict[str, Any], path: Path) -> None:
    """Every key the export reads, named before it runs (not a KeyError or
    a wrong "no detection outputs" from inside the conversion)."""
    missing = [key for key in EXPORT_KEYS if key not in postprocess]
    if not missing:
        return
    raise InputError(
        f"missing {', '.join(missing)}: the post-process op the harness builds for a Keras/SavedModel model reads them at export",
        source=path, place="postprocess." + missing[0],
        hint="add under postprocess: " + "; ".join(f"{key}: {EXPORT_KEYS[key]}" for key in missing)
        + " (the model's own anchors and settings; these are the TF OD API's usual values)",
    )


def _datasets(top: Fields, path: Path, folder: Path) -> tuple[int | None, DatasetRef | None, DatasetRef | None]:
    ds = top.sub("dataset")
    if not ds.data:
        return None, None, None
    ds.reject_unknown(["generator", "seed", "splits", "calibration", "eval", "calib", "val"])
    generator = ds.choice("generator", ["synthetic"])
    if generator == "synthetic":
        splits = ds.sub("splits", required=True)
        splits.reject_unknown(["calib", "val"])
        return (
            ds.int("seed"),
            DatasetRef("calib", synthetic_size=splits.int("calib", required=True, minimum=1)),
            DatasetRef("val", synthetic_size=splits.int("val", required=True, minimum=1)),
        )

    from harness.model.dataset_refs import dataset_entries  # imports this module

    return (None, *dataset_entries(ds, path, folder))
