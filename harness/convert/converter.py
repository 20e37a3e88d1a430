"""`harness convert`: a recipe's float model into its TFLite variants.

Each variant is cached by content: the key hashes the float model, the
anchors, the recipe's input and post-process settings, the calibration
images, the variant's options and the converter's version, so the same
inputs never convert twice. Next to each .tflite a manifest records size,
ops, I/O dtypes and quantisation parameters and the converter version.

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
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from harness.agent_client import file_sha256
from harness.dataset.coco import CocoDataset
from harness.errors import ConversionError, InputError
from harness.preprocess import InputQuant, normalise, prepare_batch
from harness.recipe import Recipe
from harness.variants import VARIANTS

CONVERTER_VERSION = 1
# Calibration images used as the representative dataset (TF's guidance is
# 100-500; more costs time and buys little on this model).
MAX_CALIBRATION_IMAGES = 128


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


ProgressFn = Callable[[str, str], None]  # (variant, message)


def tf_version() -> str:
    try:
        return metadata.version("tensorflow")
    except metadata.PackageNotFoundError:
        return "missing"


def cache_key(recipe: Recipe, variant: str, calibration: CocoDataset | None) -> str:
    uses_calibration = VARIANTS[variant].needs_calibration
    material = {
        "converter": CONVERTER_VERSION,
        "tensorflow": tf_version(),
        "source": file_sha256(recipe.source),
        "anchors": file_sha256(Path(recipe.postprocess["anchors"])) if recipe.postprocess.get("anchors") else None,
        "input": repr(recipe.input),
        "postprocess": {k: v for k, v in recipe.postprocess.items() if k != "anchors"},
        "variant": variant,
        "calibration": calibration.annotations_sha256 if (calibration and uses_calibration) else None,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


def convert_variants(
    recipe: Recipe,
    variants: Sequence[str],
    calibration: CocoDataset | None,
    cache_dir: Path,
    *,
    progress: ProgressFn | None = None,
) -> dict[str, Artifact | ConversionError]:
    """Convert (or find in the cache) each variant; a variant the converter
    rejects is returned as its error, the others still convert."""
    say = progress or (lambda variant, message: None)
    results: dict[str, Artifact | ConversionError] = {}
    pending: list[tuple[str, Path]] = []
    for variant in variants:
        folder = cache_dir / "variants" / f"{recipe.name}-{variant}-{cache_key(recipe, variant, calibration)[:20]}"
        if (folder / "manifest.json").is_file() and (folder / "model.tflite").is_file():
            results[variant] = _artifact(recipe.name, variant, folder, cached=True)
            say(variant, "cached")
        else:
            pending.append((variant, folder))
    if not pending:
        return results
    if any(VARIANTS[v].needs_calibration for v, _ in pending) and calibration is None:
        raise InputError(
            "the recipe has no calibration dataset, which integer variants need",
            source=recipe.path,
            place="dataset",
            hint="add a calibration split, or ask only for fp32, fp16 and dynamic-int8",
        )
    with _quiet_tensorflow(cache_dir / "convert.log") as log_path:
        session = _ConverterSession(recipe, calibration)
        for variant, folder in pending:
            say(variant, "converting")
            try:
                content = session.convert(variant)
            except ConversionError as exc:
                results[variant] = exc
                say(variant, "failed")
                continue
            except Exception as exc:  # the TF converter raises many kinds
                results[variant] = ConversionError(
                    f"{recipe.name}: the TFLite converter rejected {variant}: {_first_line(exc)}",
                    hint=f"see {log_path} for the converter's log",
                )
                say(variant, "failed")
                continue
            _write_variant(folder, content, session.manifest(variant, content))
            results[variant] = _artifact(recipe.name, variant, folder, cached=False)
            say(variant, "done")
    return {v: results[v] for v in variants}


def export_artifact(artifact: Artifact, out_dir: Path) -> Path:
    """Copy a variant out of the cache as <model>-<variant>.tflite (+ manifest)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / f"{artifact.model}-{artifact.variant}.tflite"
        shutil.copyfile(artifact.path, target)
        shutil.copyfile(artifact.manifest_path, out_dir / f"{artifact.model}-{artifact.variant}.manifest.json")
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


def _write_variant(folder: Path, content: bytes, manifest: dict[str, Any]) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
    (tmp / "model.tflite").write_bytes(content)
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)


@contextlib.contextmanager
def _quiet_tensorflow(log_path: Path) -> Iterator[Path]:
    """Send TensorFlow's C++ and Python logging to a file: the converter
    writes hundreds of lines to fd 2 that would bury the progress display."""
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


class _ConverterSession:
    """Loads TensorFlow, the float model and the calibration batch once."""

    def __init__(self, recipe: Recipe, calibration: CocoDataset | None) -> None:
        self.recipe = recipe
        self.calibration = calibration
        self._calib_batch: np.ndarray | None = None
        if recipe.is_tflite:
            raise InputError(
                "a .tflite source is benchmark-only: it cannot be converted into variants",
                source=recipe.path,
                place="source",
                hint="point source at the float Keras model (.h5 or .keras)",
            )
        from harness.convert import export  # imports TensorFlow

        self.tf = export.tf
        self.export = export
        self.model = _load_keras(recipe)
        try:
            anchors = np.load(recipe.postprocess["anchors"])
            self.function = export.build_export_function(
                self.model, anchors, recipe.postprocess, (recipe.input.height, recipe.input.width)
            )
        except export.ExportError as exc:
            raise InputError(str(exc), source=recipe.path, place="postprocess", hint="match the model's outputs") from None

    def calibration_images(self) -> np.ndarray:
        if self._calib_batch is None:
            assert self.calibration is not None
            images = self.calibration.images[:MAX_CALIBRATION_IMAGES]
            self._calib_batch = prepare_batch([img.path for img in images], self.recipe.input, InputQuant("float32"))
        return self._calib_batch

    def convert(self, variant: str) -> bytes:
        tf = self.tf
        converter = tf.lite.TFLiteConverter.from_concrete_functions([self.function], self.model)
        converter.allow_custom_ops = True  # TFLite_Detection_PostProcess
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

    def manifest(self, variant: str, content: bytes) -> dict[str, Any]:
        interpreter = self.tf.lite.Interpreter(model_content=content)
        ops: dict[str, int] = {}
        for op in interpreter._get_ops_details():  # noqa: SLF001 - the only op listing TF offers
            ops[op["op_name"]] = ops.get(op["op_name"], 0) + 1
        return {
            "model": self.recipe.name,
            "variant": variant,
            "summary": VARIANTS[variant].summary,
            "sha256": hashlib.sha256(content).hexdigest(),
            "size_bytes": len(content),
            "source": str(self.recipe.source),
            "source_sha256": file_sha256(self.recipe.source),
            "converter": {"tensorflow": self.tf.__version__, "harness_converter": CONVERTER_VERSION},
            "calibration": (
                {"dataset": str(self.calibration.annotations_json), "images": len(self.calibration_images())}
                if VARIANTS[variant].needs_calibration and self.calibration
                else None
            ),
            "ops": dict(sorted(ops.items())),
            "inputs": [_tensor_manifest(d) for d in interpreter.get_input_details()],
            "outputs": [_tensor_manifest(d) for d in interpreter.get_output_details()],
        }


def _tensor_manifest(detail: dict[str, Any]) -> dict[str, Any]:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return {
        "name": detail["name"],
        "shape": [int(v) for v in detail["shape"]],
        "dtype": np.dtype(detail["dtype"]).name,
        "quantization": {"scale": float(scale), "zero_point": int(zero_point)},
    }


def _load_keras(recipe: Recipe) -> Any:
    path = recipe.source
    try:
        if path.suffix == ".h5":
            import tf_keras

            return tf_keras.models.load_model(path, compile=False)
        import keras

        return keras.models.load_model(path, compile=False)
    except Exception as exc:
        raise InputError(
            f"cannot load the float model: {_first_line(exc)}",
            source=path,
            hint="check that the file is a complete Keras model saved with model.save()",
        ) from None
