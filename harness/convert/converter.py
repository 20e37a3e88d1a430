"""`harness convert`: a recipe's float model into its TFLite variants.

Each variant is cached by content: the key hashes the float model, the
anchors, the recipe's input, adapter and post-process settings, the
calibration images, the variant's options (training settings for qat-int8,
the denylist policy for selective-int8) and the converter's version, so the
same inputs never convert twice. Next to each .tflite a manifest records
size, ops, I/O dtypes and quantisation parameters, the converter version,
which runtimes can load it, and for the quantization workbench variants what
was done (QAT's training run; selective-int8's denylist and its
sensitivity report, sensitivity.json).

A float .tflite source takes another path (harness/convert/litert_quant.py):
fp32 is the file as it is and the LiteRT Quantizer makes the others, with
the same variant names, cache, manifests and loadability checks, and no
TensorFlow import.

This package is the only one that imports TensorFlow, and only inside the
functions that need it, so `harness --help` stays fast.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from harness.convert import loadability
from harness.model.adapters import adapter_spec
from harness.agent.client import file_sha256
from harness.dataset.coco import CocoDataset
from harness.errors import ConversionError, InputError
from harness.dataset.preprocess import InputQuant, prepare_batch
from harness.model.recipe import Recipe, require_export_keys
from harness.model.variants import VARIANTS

CONVERTER_VERSION = 2
# Calibration images used as the representative dataset (TF's guidance is
# 100-500; more costs time and buys little on this model).
MAX_CALIBRATION_IMAGES = 128
# Images the QuantizationDebugger runs to collect per-layer error statistics.
DEBUG_IMAGES = 32
SENSITIVITY_FILE = "sensitivity.json"


@dataclass(frozen=True)
class Artifact:
    model: str
    variant: str
    path: Path
    manifest_path: Path
    sha256: str
    size_bytes: int
    manifest: dict[str, Any]
    cached: bool

    @property
    def input_quant(self) -> InputQuant:
        spec = self.manifest["inputs"][0]
        return InputQuant(spec["dtype"], spec["quantization"]["scale"], spec["quantization"]["zero_point"])

    @property
    def loadability(self) -> dict[str, str]:
        return dict(self.manifest.get("loadability") or {})

    @property
    def sensitivity_path(self) -> Path | None:
        path = self.manifest_path.parent / SENSITIVITY_FILE
        return path if path.is_file() else None

    @property
    def curve_files(self) -> list[str]:
        """selective-int8's curve models, by file name next to the manifest."""
        points = (self.manifest.get("selective") or {}).get("curve") or ()
        return [p["file"] for p in points if p.get("file")]

    def curve_model(self, name: str) -> Path:
        """A curve model's path: the run's copy next to this artifact (as
        export_artifact names it), else the cache's."""
        copy = self.path.with_name(f"{self.model}-{self.variant}.{name}")
        return copy if copy.is_file() else self.manifest_path.parent / name


@dataclass(frozen=True)
class Converted:
    """One conversion's output: the model, what the manifest should add, and
    extra files to keep next to it."""

    content: bytes
    manifest_extra: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)


ProgressFn = Callable[[str, str], None]  # (variant, message)


def tf_version() -> str:
    try:
        return metadata.version("tensorflow")
    except metadata.PackageNotFoundError:
        return "missing"


def _options_key(recipe: Recipe, variant: str) -> Any:
    if variant == "qat-int8" and recipe.qat is not None:
        ref = recipe.qat.dataset
        data = asdict(recipe.qat)
        data["dataset"] = {
            "split": ref.split,
            "synthetic_size": ref.synthetic_size,
            "seed": recipe.synthetic_seed,
            "annotations": file_sha256(ref.annotations) if ref.annotations and ref.annotations.is_file() else None,
        }
        if recipe.qat.loss == "distill":  # what stays float comes from the selective-int8 options (or their search)
            from harness.convert.qat_distill import QAT_VERSION
            from harness.convert.selective import SEARCH_VERSION

            data.update(selective={**asdict(recipe.selective), "search": SEARCH_VERSION}, qat=QAT_VERSION)
        return data
    if variant == "selective-int8":
        from harness.convert.selective import SEARCH_VERSION

        return {**asdict(recipe.selective), "search": SEARCH_VERSION}
    return None


def cache_key(recipe: Recipe, variant: str, calibration: CocoDataset | None) -> str:
    uses_calibration = VARIANTS[variant].needs_calibration
    source = recipe.source
    material: dict[str, Any] = {
        "converter": CONVERTER_VERSION,
        "tensorflow": tf_version(),
        "source": _source_digest(source),
        "anchors": file_sha256(Path(recipe.postprocess["anchors"])) if recipe.postprocess.get("anchors") else None,
        "input": repr(recipe.input),
        "adapter": recipe.adapter,
        "postprocess": {k: v for k, v in recipe.postprocess.items() if k != "anchors"},
        "variant": variant,
        "options": _options_key(recipe, variant),
        "calibration": calibration.annotations_sha256 if (calibration and uses_calibration) else None,
    }
    from harness.convert import litert_quant  # no TensorFlow import

    if recipe.is_tflite:  # made by the LiteRT Quantizer: its version and recipe, not TensorFlow's
        del material["tensorflow"]
        material.update(litert_quant.cache_material(recipe, variant))
    elif variant in litert_quant.QUANTIZER_ONLY:  # the quantizer's, from TensorFlow's fp32
        material.update(litert_quant.cache_material(recipe, variant))
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


def _source_digest(source: Path) -> str:
    """A file's sha256, or a SavedModel directory's (every file, by relative path)."""
    if not source.is_dir():
        return file_sha256(source)
    digest = hashlib.sha256()
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(source)).encode() + b"\0" + file_sha256(path).encode())
    return digest.hexdigest()


def convert_variants(
    recipe: Recipe,
    variants: Sequence[str],
    calibration: CocoDataset | None,
    cache_dir: Path,
    *,
    progress: ProgressFn | None = None,
    check_loadability: bool = True,
) -> dict[str, Artifact | ConversionError]:
    """Convert (or find in the cache) each variant; a variant the converter
    rejects is returned as its error, the others still convert. Every
    artifact comes back with its per-runtime loadability checked."""
    say = progress or (lambda variant, message: None)
    recipe.check_variants(tuple(variants))
    results: dict[str, Artifact | ConversionError] = {}
    pending: list[tuple[str, Path]] = []
    for variant in variants:
        folder = variant_folder(recipe, variant, calibration, cache_dir)
        if _in_cache(folder):
            results[variant] = _artifact(recipe.name, variant, folder, cached=True)
            say(variant, "cached")
        else:
            pending.append((variant, folder))
    if any(VARIANTS[v].needs_calibration for v, _ in pending) and calibration is None:
        raise InputError(
            "the recipe has no calibration dataset, which integer variants need",
            source=recipe.path,
            place="dataset",
            hint="add a calibration split, or ask only for fp32, fp16 and dynamic-int8",
        )
    if pending and recipe.is_tflite:  # the LiteRT Quantizer: no TensorFlow on this path
        from harness.convert import litert_quant

        litert_quant.convert_pending(recipe, pending, calibration, cache_dir, say, results)
    elif pending:
        _convert_keras_pending(recipe, pending, calibration, cache_dir, say, results)
    if check_loadability:
        _ensure_loadability(recipe, results, cache_dir, say)
    return {v: results[v] for v in variants}


def variant_folder(recipe: Recipe, variant: str, calibration: CocoDataset | None, cache_dir: Path) -> Path:
    return cache_dir / "variants" / f"{recipe.name}-{variant}-{cache_key(recipe, variant, calibration)[:20]}"


def _in_cache(folder: Path) -> bool:
    return (folder / "manifest.json").is_file() and (folder / "model.tflite").is_file()


def _convert_keras_pending(
    recipe: Recipe,
    pending: list[tuple[str, Path]],
    calibration: CocoDataset | None,
    cache_dir: Path,
    say: ProgressFn,
    results: dict[str, Artifact | ConversionError],
) -> None:
    """TensorFlow's variants, then the LiteRT Quantizer's (mixed-int16) from
    TensorFlow's fp32 file, which is converted too when it is not at hand."""
    from harness.convert import litert_quant

    later = [(v, f) for v, f in pending if v in litert_quant.QUANTIZER_ONLY]
    now = [(v, f) for v, f in pending if v not in litert_quant.QUANTIZER_ONLY]
    if later and "fp32" not in results and "fp32" not in dict(now):
        folder = variant_folder(recipe, "fp32", calibration, cache_dir)
        if _in_cache(folder):
            results["fp32"] = _artifact(recipe.name, "fp32", folder, cached=True)
        else:
            now.insert(0, ("fp32", folder))
    if now:
        _convert_pending(recipe, now, calibration, cache_dir, say, results)
    if not later:
        return
    fp32 = results.get("fp32")
    if isinstance(fp32, Artifact):
        litert_quant.quantize_pending(recipe, later, fp32, calibration, cache_dir, say, results)
        return
    for variant, _ in later:
        results[variant] = ConversionError(f"{recipe.name}: {variant} quantizes the fp32 file, and fp32 did not convert")
        say(variant, "failed")


def _convert_pending(
    recipe: Recipe,
    pending: list[tuple[str, Path]],
    calibration: CocoDataset | None,
    cache_dir: Path,
    say: ProgressFn,
    results: dict[str, Artifact | ConversionError],
) -> None:
    with _quiet_tensorflow(cache_dir / "convert.log") as log_path:
        say(pending[0][0], "loading TensorFlow and the float model")
        session = _ConverterSession(recipe, calibration, cache_dir)
        session.known.update({v: a.path.read_bytes() for v, a in results.items() if isinstance(a, Artifact) and v == "fp32"})
        if any(v == "qat-int8" for v, _ in pending):
            session.require_keras2()  # before any work: a clear exit 2, not a late failure
        for variant, folder in pending:
            say(variant, "converting")
            converted = attempt(
                variant, lambda v=variant: session.convert(v, lambda message: say(v, message)), results, say,
                f"{recipe.name}: the TFLite converter rejected {variant}", f"see {log_path} for the converter's log",
            )
            if converted is None:
                continue
            manifest = session.manifest(variant, converted.content)
            manifest.update(converted.manifest_extra)
            _write_variant(folder, converted, manifest)
            results[variant] = _artifact(recipe.name, variant, folder, cached=False)
            say(variant, "done")


def attempt(variant: str, make: Callable[[], Any], results: dict[str, Any], say: ProgressFn, what: str, hint: str) -> Any:
    """make()'s result, or None with the variant's error recorded: a
    converter's failure is that variant's, the others still convert."""
    try:
        return make()
    except InputError:
        raise  # the recipe is wrong (a denylist entry, a dataset): exit 2 now
    except ConversionError as exc:
        results[variant] = exc
    except Exception as exc:  # noqa: BLE001 - the converters raise many kinds
        results[variant] = ConversionError(f"{what}: {_first_line(exc)}", hint=hint)
    say(variant, "failed")
    return None


def _ensure_loadability(recipe: Recipe, results: dict[str, Artifact | ConversionError], cache_dir: Path, say: ProgressFn) -> None:
    """Check, and record in each manifest, which runtimes load each variant.
    A verdict is kept; "unavailable" (runtime not installed) is asked again."""
    todo: dict[str, list[str]] = {}
    for variant, artifact in results.items():
        if not isinstance(artifact, Artifact):
            continue
        known = artifact.loadability
        for runtime in loadability.RUNTIMES:
            if loadability.status_kind(known.get(runtime)) == loadability.UNAVAILABLE:
                todo.setdefault(runtime, []).append(variant)
    if not todo:
        return
    for variant in sorted({v for vs in todo.values() for v in vs}):
        say(variant, "checking which runtimes load it")
    adapter = adapter_spec(recipe)
    with ThreadPoolExecutor(max_workers=len(todo)) as pool:  # one subprocess per runtime
        futures = {
            runtime: pool.submit(loadability.check_runtime, runtime, [results[v].path for v in variants], cache_dir, adapter)  # type: ignore[union-attr]
            for runtime, variants in todo.items()
        }
        reports = {runtime: future.result() for runtime, future in futures.items()}
    for runtime, variants in todo.items():
        report = reports[runtime]
        for variant in variants:
            artifact = results[variant]
            assert isinstance(artifact, Artifact)
            manifest = dict(artifact.manifest)
            manifest.setdefault("loadability", {})[runtime] = report.statuses[str(artifact.path)]
            if report.version:
                manifest.setdefault("runtime_versions", {})[runtime] = report.version
            adapter_error = report.adapter_errors.get(str(artifact.path))
            if adapter_error and recipe.is_tflite and runtime == "ai-edge-litert":
                raise InputError(
                    adapter_error,
                    source=recipe.path,
                    place="adapter",
                    hint="choose the adapter that matches the model's outputs (ssd-postprocess, boxes-scores), or none for latency only",
                )
            artifact.manifest_path.write_text(json.dumps(manifest, indent=2))
            results[variant] = _artifact(artifact.model, variant, artifact.manifest_path.parent, cached=artifact.cached)


def export_artifact(artifact: Artifact, out_dir: Path) -> Path:
    """Copy a variant out of the cache as <model>-<variant>.tflite (+ manifest, sensitivity report)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = f"{artifact.model}-{artifact.variant}"
        target = out_dir / f"{stem}.tflite"
        shutil.copyfile(artifact.path, target)
        shutil.copyfile(artifact.manifest_path, out_dir / f"{stem}.manifest.json")
        if artifact.sensitivity_path is not None:
            shutil.copyfile(artifact.sensitivity_path, out_dir / f"{stem}.{SENSITIVITY_FILE}")
        for name in artifact.curve_files:
            shutil.copyfile(artifact.manifest_path.parent / name, out_dir / f"{stem}.{name}")
    except OSError as exc:
        raise InputError(f"cannot write the variant: {exc}", source=out_dir, hint="choose a writable folder with --out") from None
    return target


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _artifact(model: str, variant: str, folder: Path, *, cached: bool) -> Artifact:
    manifest = json.loads((folder / "manifest.json").read_text())
    return Artifact(
        model=model,
        variant=variant,
        path=folder / "model.tflite",
        manifest_path=folder / "manifest.json",
        sha256=manifest["sha256"],
        size_bytes=manifest["size_bytes"],
        manifest=manifest,
        cached=cached,
    )


def _write_variant(folder: Path, converted: Converted, manifest: dict[str, Any]) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
    (tmp / "model.tflite").write_bytes(converted.content)
    for name, content in converted.files.items():
        (tmp / name).write_bytes(content)
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)


@contextlib.contextmanager
def _quiet_tensorflow(log_path: Path) -> Iterator[Path]:
    """Send TensorFlow's C++ and Python logging to a file: the converter
    writes hundreds of lines to fd 2 that would bury the progress display
    (which draws on its own copy of fd 2, report.progress, so it keeps
    moving meanwhile)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    saved = os.dup(2)
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield log_path
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _manifest(recipe: Recipe, variant: str, content: bytes, interpreter: Any, converter: dict[str, Any], calibration: Any) -> dict[str, Any]:
    ops: dict[str, int] = {}
    for op in interpreter._get_ops_details():  # noqa: SLF001 - the only op listing the runtimes offer
        ops[op["op_name"]] = ops.get(op["op_name"], 0) + 1
    return {
        "model": recipe.name,
        "variant": variant,
        "summary": VARIANTS[variant].summary,
        "sha256": hashlib.sha256(content).hexdigest(),
        "size_bytes": len(content),
        "source": str(recipe.source),
        "source_sha256": _source_digest(recipe.source),
        "adapter": recipe.adapter,
        "converter": converter,
        "calibration": calibration,
        "ops": dict(sorted(ops.items())),
        "inputs": [_tensor_manifest(d) for d in interpreter.get_input_details()],
        "outputs": [_tensor_manifest(d) for d in interpreter.get_output_details()],
    }


def _tflite_source_manifest(recipe: Recipe, variant: str, content: bytes) -> dict[str, Any]:
    """A .tflite source is measured as it is: its manifest, read with the
    LiteRT interpreter (no TensorFlow import)."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_content=content)
    except Exception as exc:  # noqa: BLE001 - any load failure is a bad model file
        raise InputError(f"not a loadable .tflite: {_first_line(exc)}", source=recipe.path, place="source", hint="check the file") from None
    manifest = _manifest(recipe, variant, content, interpreter, {"source": "the .tflite as it is"}, None)
    manifest["summary"] = "the source .tflite, as it is"
    return manifest


def _tensor_manifest(detail: dict[str, Any]) -> dict[str, Any]:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return {
        "name": detail["name"],
        "shape": [int(v) for v in detail["shape"]],
        "dtype": np.dtype(detail["dtype"]).name,
        "quantization": {"scale": float(scale), "zero_point": int(zero_point)},
    }


class _ConverterSession:
    """Loads TensorFlow, the float model and the calibration batch once."""

    def __init__(self, recipe: Recipe, calibration: CocoDataset | None, cache_dir: Path) -> None:
        self.recipe = recipe
        self.calibration = calibration
        self.cache_dir = cache_dir
        self._calib_batch: np.ndarray | None = None
        # Models already made in this run or found in the cache, by variant:
        # selective-int8 scores fp32 without converting it a second time.
        self.known: dict[str, bytes] = {}
        # What this session's selective-int8 search kept float (qat-int8 keeps
        # the same), and the variant it made, for when qat-int8 asked first.
        self.searched: tuple[str, ...] | None = None
        self._selective: Converted | None = None
        from harness.convert import export  # imports TensorFlow

        self.tf = export.tf
        self.export = export
        self.model, self.trackable = _load_model(recipe)
        if self.trackable is self.model:
            self.trackable = export.variables_holder(self.model)
        self.anchors = np.load(recipe.postprocess["anchors"]) if recipe.postprocess.get("anchors") else None
        self.function = self._export_function(self.model)

    def _export_function(self, model: Any) -> Any:
        recipe, export = self.recipe, self.export
        size = (recipe.input.height, recipe.input.width)
        try:
            if recipe.adapter == "boxes-scores":
                return export.build_boxes_scores_function(model, self.anchors, recipe.postprocess, size)
            if recipe.adapter == "yolo":
                return export.build_yolo_function(model, size)
            if recipe.adapter == "none":
                raise InputError(
                    "adapter none cannot be converted: the converter needs to know the detection outputs",
                    source=recipe.path,
                    place="adapter",
                    hint="use ssd-postprocess or boxes-scores",
                )
            require_export_keys(recipe.postprocess, recipe.path)
            return export.build_export_function(model, self.anchors, recipe.postprocess, size)
        except export.ExportError as exc:
            raise InputError(
                f"the model has no detection outputs the {recipe.adapter} adapter understands: {exc}",
                source=recipe.path,
                place="adapter",
                hint="give the model one output, its decoded head [1, 4+nc, N] (or [1, N, 5+nc] with layout: v5)"
                if recipe.adapter == "yolo"
                else "name the model's outputs box_encodings [1, N, 4] and class_logits (or class_scores) [1, N, C], "
                "with N matching postprocess.anchors",
            ) from None

    def require_keras2(self) -> None:
        from harness.convert import qat

        if not qat.is_keras2(self.model):
            raise InputError(
                f"qat-int8 needs a tf_keras (Keras 2) model, and {self.recipe.source.name} loads as "
                f"{qat.keras_flavour(self.model)}: tensorflow-model-optimization's quantize_model only wraps "
                "Keras 2 Sequential or Functional models",
                source=self.recipe.path,
                place="source",
                hint="rebuild the model with `import tf_keras` (same layers) and save it with model.save('model.h5'), "
                "then point source at it; or drop qat-int8 from variants",
            )

    def calibration_images(self) -> np.ndarray:
        if self._calib_batch is None:
            assert self.calibration is not None
            images = self.calibration.images[:MAX_CALIBRATION_IMAGES]
            self._calib_batch = prepare_batch([img.path for img in images], self.recipe.input, InputQuant("float32"))
        return self._calib_batch

    def _converter(self, function: Any = None, trackable: Any = None) -> Any:
        converter = self.tf.lite.TFLiteConverter.from_concrete_functions(
            [function or self.function], trackable if trackable is not None else self.trackable
        )
        converter.allow_custom_ops = True  # TFLite_Detection_PostProcess
        return converter

    def convert(self, variant: str, say: Callable[[str], None] = lambda message: None) -> Converted:
        if variant == "qat-int8":
            return self._convert_qat(say)
        if variant == "selective-int8":
            return self._selective or self._convert_selective(say)
        content = self._ptq(variant)
        self.known[variant] = content
        return Converted(content)

    def _ptq(self, variant: str) -> bytes:
        tf = self.tf
        converter = self._converter()
        if variant == "fp32":
            pass
        elif variant == "fp16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif variant == "dynamic-int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        elif variant in ("int8", "uint8"):
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = self.export.representative_dataset(self.calibration_images())
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8 if variant == "int8" else tf.uint8
        elif variant == "int16x8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = self.export.representative_dataset(self.calibration_images())
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
                # The post-process custom op has no 16x8 kernel; it stays float.
                tf.lite.OpsSet.TFLITE_BUILTINS,
            ]
        else:
            raise ConversionError(f"variant {variant!r} is not produced by this converter yet")
        return converter.convert()

    def _convert_qat(self, say: Callable[[str], None]) -> Converted:
        from harness.convert import qat, ssd_training
        from harness.model.datasets import resolve_dataset

        self.require_keras2()
        config = self.recipe.qat
        assert config is not None
        if config.loss == "distill":
            return self._convert_qat_distill(say)
        assert self.anchors is not None
        say("preparing the training split")
        dataset = resolve_dataset(self.recipe, config.dataset, self.cache_dir)
        assert dataset is not None
        train = ssd_training.coco_train_set(
            dataset, self.recipe.input, self.recipe.labels, self.anchors, self.recipe.postprocess["scales"]
        )
        say(f"fine-tuning on {len(train.images)} images")
        qat_model, training = qat.finetune(self.model, train, config, self.recipe.input, len(self.recipe.labels), say)
        say("converting the fine-tuned model")
        # Never the QAT model itself as the trackable: saving it can fail on
        # a layer's traced call and silently drop the custom-op fusion
        # (export.variables_holder says more).
        converter = self._converter(self._export_function(qat_model), self.export.variables_holder(qat_model))
        # The fake-quant nodes carry the ranges. No supported_ops: with
        # TFLITE_BUILTINS_INT8 and no representative dataset TF 2.21 refuses
        # ("representative_dataset must be specified").
        converter.optimizations = [self.tf.lite.Optimize.DEFAULT]
        converter.inference_input_type = self.tf.int8
        training["dataset"] = dataset.name
        return Converted(converter.convert(), {"qat": training})

    def _convert_qat_distill(self, say: Callable[[str], None]) -> Converted:
        """qat-int8 with the fp32 model as the teacher (harness/convert/qat_distill.py
        says why, and why the export is selective-int8's when layers stay float)."""
        from harness.convert import qat_distill
        from harness.model.datasets import resolve_dataset

        config = self.recipe.qat
        assert config is not None
        say("preparing the training split")
        dataset = resolve_dataset(self.recipe, config.dataset, self.cache_dir)
        assert dataset is not None
        images = prepare_batch([img.path for img in dataset.images], self.recipe.input, InputQuant("float32"))
        entries, where = self._float_entries(say)
        keep = qat_distill.keep_layers(self.model, entries)
        size_px = float(max(self.recipe.input.height, self.recipe.input.width))
        say(f"fine-tuning on {len(images)} images" + (f", {len(keep)} layer(s) float" if keep else ""))
        try:
            qat_model, training = qat_distill.finetune(self.model, images, self.calibration_images(), config, keep, size_px, say)
        except ValueError as exc:
            raise InputError(
                str(exc), source=self.recipe.path, place="training.loss",
                hint="loss distill is for a model with one YOLO-style output; use ssd-focal for an SSD",
            ) from None
        training["dataset"] = dataset.name
        training["kept_float_from"] = where if keep else None
        if not keep:  # every layer fake-quantised: the QAT graph converts as it is
            say("converting the fine-tuned model")
            converter = self._converter(self._export_function(qat_model), self.export.variables_holder(qat_model))
            converter.optimizations = [self.tf.lite.Optimize.DEFAULT]
            converter.inference_input_type = self.tf.int8
            return Converted(converter.convert(), {"qat": {**training, "export": "the QAT graph, full-integer"}})
        fine_tuned = qat_distill.load_weights(_load_model(self.recipe)[0], qat_distill.trained_weights(qat_model))
        say("quantizing the fine-tuned weights as selective-int8")
        # The same nodes float as in training (no second search: the weights
        # were adapted to exactly this split of float and int8).
        made = self._convert_selective(say, fine_tuned, denylist=qat_distill.export_entries(self.model, entries))
        training["export"] = "the fine-tuned weights, calibrated and quantized as selective-int8 (the same nodes float)"
        return Converted(made.content, {**made.manifest_extra, "qat": training}, made.files)

    def _float_entries(self, say: Callable[[str], None]) -> tuple[tuple[str, ...], str]:
        """What qat-int8 keeps float, and where that came from: the recipe's
        selective-int8 denylist, else what the selective-int8 search keeps
        (this session's, the cache's, or searched now)."""
        options = self.recipe.selective
        if options.denylist:
            return options.denylist, "variant_options.selective-int8.denylist"
        if self.searched is None:
            folder = variant_folder(self.recipe, "selective-int8", self.calibration, self.cache_dir)
            if _in_cache(folder):
                manifest = _artifact(self.recipe.name, "selective-int8", folder, cached=True).manifest
                self.searched = tuple((manifest.get("selective") or {}).get("denylist") or ())
            else:  # kept: a selective-int8 later in this session is this one
                say("selective-int8 search (which nodes QAT keeps float)")
                self._selective = self._convert_selective(say)
        assert self.searched is not None
        return self.searched, "the selective-int8 search"

    def _convert_selective(self, say: Callable[[str], None], model: Any = None, denylist: Sequence[str] = ()) -> Converted:
        """`model`: another float model than the recipe's (qat-int8's fine-tuned
        one); `denylist`: entries to keep float instead of the recipe's or a search."""
        from harness.convert import selective, sensitivity

        tf = self.tf
        recipe = self.recipe if not denylist else replace(self.recipe, selective=replace(self.recipe.selective, denylist=tuple(denylist)))
        options = recipe.selective
        images = self.calibration_images()
        function, trackable = (None, None) if model is None else (self._export_function(model), self.export.variables_holder(model))

        def full_int8_converter() -> Any:
            converter = self._converter(function, trackable)
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = self.export.representative_dataset(images)
            return converter

        say("per-layer sensitivity (QuantizationDebugger)")
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=full_int8_converter(), debug_dataset=self.export.representative_dataset(images[:DEBUG_IMAGES])
        )
        debugger.run()
        dump = _StringSink()
        debugger.layer_statistics_dump(dump)
        rows = selective.parse_statistics(dump.getvalue())

        def quantised(denylist: selective.Denylist) -> bytes:
            debugger.options = tf.lite.experimental.QuantizationDebugOptions(
                denylisted_nodes=list(denylist.nodes) or None, denylisted_ops=list(denylist.ops) or None
            )
            return debugger.get_nondebug_quantized_model()

        if model is None:
            fp32 = self.known.get("fp32") or self._ptq("fp32")
            self.known["fp32"] = fp32
        else:  # the fine-tuned model's own float file is what its int8 is compared with
            fp32 = self._converter(function, trackable).convert()
        say("whole-model sensitivity (int8 against float, tensor by tensor)")
        nodes = sensitivity.whole_model_sensitivity(fp32, quantised(selective.Denylist()), images)
        groups = sensitivity.candidate_groups(nodes, limit=len(nodes))
        choice = selective.choose_denylist(rows, recipe, self.calibration, self.cache_dir, lambda: fp32, quantised, say, groups=groups)
        chosen = choice.denylist
        if model is None and not denylist:
            self.searched = chosen.entries()
        content = choice.models.get(chosen.nodes) if not chosen.ops else None
        content = content or quantised(chosen)
        points = selective.curve(choice.search, choice.models)
        full = selective.report(
            rows, options, chosen, source="the nodes qat-int8 trained float" if denylist else choice.source, fp32_map=choice.fp32_map, search=choice.search, nodes=nodes, curve_points=points
        )
        extra = {"selective": selective.summary(full, options.top_layers), "sensitivity_report": SENSITIVITY_FILE}
        files = {SENSITIVITY_FILE: json.dumps(full, indent=1).encode(), **selective.curve_files(points, choice.models)}
        return Converted(content, extra, files)

    def manifest(self, variant: str, content: bytes) -> dict[str, Any]:
        interpreter = self.tf.lite.Interpreter(model_content=content)
        calibration = (
            {"dataset": str(self.calibration.annotations_json), "images": len(self.calibration_images())}
            if VARIANTS[variant].needs_calibration and self.calibration and variant != "qat-int8"
            else None
        )
        converter = {"tensorflow": self.tf.__version__, "harness_converter": CONVERTER_VERSION}
        return _manifest(self.recipe, variant, content, interpreter, converter, calibration)


class _StringSink:
    """A text file object for layer_statistics_dump (it writes CSV rows)."""

    def __init__(self) -> None:
        self._parts: list[str] = []

    def write(self, text: str) -> int:
        self._parts.append(text)
        return len(text)

    def getvalue(self) -> str:
        return "".join(self._parts)


def _load_model(recipe: Recipe) -> tuple[Any, Any]:
    """(the model the export calls, the trackable object the converter keeps
    alive). tf_keras where the file allows it (QAT needs Keras 2)."""
    path = recipe.source
    try:
        if path.is_dir():
            import tf_keras

            if (path / "keras_metadata.pb").is_file():
                model = tf_keras.models.load_model(path, compile=False)
                return model, model
            from harness.convert.export import SignatureModel, tf

            loaded = tf.saved_model.load(str(path))
            return SignatureModel(loaded), loaded
        if path.suffix == ".h5" or _keras_file_version(path).startswith("2."):
            import tf_keras

            model = tf_keras.models.load_model(path, compile=False)
            return model, model
        import keras

        model = keras.models.load_model(path, compile=False)
        return model, model
    except InputError:
        raise
    except Exception as exc:
        raise InputError(
            f"cannot load the float model: {_first_line(exc)}",
            source=path,
            hint="check that the file is a complete Keras model saved with model.save() (or a SavedModel directory)",
        ) from None


def _keras_file_version(path: Path) -> str:
    """keras_version in a .keras archive's metadata.json ('' when unknown)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return str(json.loads(archive.read("metadata.json")).get("keras_version", ""))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return ""
