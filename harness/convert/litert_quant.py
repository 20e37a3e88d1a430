"""Float `.tflite` sources into their variants with the LiteRT Quantizer
(PyPI `litert-quantizer`, import `litert_quantizer`), which reads and writes
the flatbuffer itself and runs models through ai-edge-litert: this path
never imports TensorFlow (tests/integration/test_litert_quant.py checks).

What its source (0.11.0) says, and this module relies on:

- Recipes are lists of {regex, operation, algorithm_key, op_config}
  (recipe_manager.py); for each op the LAST matching entry wins, and an op
  no entry matches stays float. `regex` is searched in the op's *scope*:
  its output tensor names, each followed by ';' (tfl_flatbuffer_utils.
  get_op_scope). `algorithm_key: no_quantize` keeps the matched ops float.
- Ops it does not know (a custom op such as TFLite_Detection_PostProcess,
  whose builtin code is CUSTOM) are never quantized: params_generator.py,
  "Do not quantize unknown ops", gives every input and output of such an op
  NO_QUANTIZE, so a DEQUANTIZE is inserted in front of it. Seen on the
  demo detector: the post-process op's inputs are `..._dequant` float32.
- The graph's inputs and outputs are virtual INPUT / OUTPUT ops that a
  static recipe quantizes too: static_wi8_ai8 alone made int8 *outputs*
  (renamed `<name>_quantized`, the detection count among them) and
  static_wi8_ai16 an int16 input no device feeds. So every static variant
  here adds `no_quantize` for OUTPUT (outputs stay float, as the TF path's),
  and INPUT is int8 (`int8`), uint8 (`uint8`: the policy allows UINT
  activations on INPUT/OUTPUT only, default_policy.py "static_wi8_au8") or
  float (`int16x8`, `selective-int8`), matching the TF path's I/O types.
- `calibrate()` takes {signature key: [{signature input name: array}, ...]}
  (quantizer.py `_SignatureInput`), one sample per invoke.
- `validate(test_data, error_metrics)` compares every tensor the float and
  quantized models share by name (quantized tensors keep their names;
  values are dequantized) and returns, per signature, `intermediate_tensors`
  and `output_tensors` as {tensor name: {"mse": mean over samples, ...}}
  (model_validator.py compare_model).
- fp16: no named recipe, but the `float_casting` algorithm casts the weights
  of FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D, CONV_2D_TRANSPOSE and
  EMBEDDING_LOOKUP to float16 behind a DEQUANTIZE (weight-only, float
  compute): what TFLiteConverter's float16 does
  (algorithms/nonlinear_quantize/float_casting.py). Other ops stay float.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from harness.convert import selective
from harness.convert.converter import (
    DEBUG_IMAGES,
    MAX_CALIBRATION_IMAGES,
    SENSITIVITY_FILE,
    Artifact,
    Converted,
    ProgressFn,
    _artifact,
    attempt,
    _manifest,
    _quiet_tensorflow,
    _tflite_source_manifest,
    _write_variant,
)
from harness.dataset.coco import CocoDataset
from harness.dataset.preprocess import InputQuant, prepare_batch
from harness.errors import ConversionError, InputError
from harness.model.recipe import Recipe
from harness.model.variants import VARIANTS

QUANTIZER = "litert-quantizer"
# Bump when what this module asks of the quantizer changes (cache key).
LITERT_QUANT_VERSION = 1
MIXED_PLACE = "variant_options.mixed-int16.ops"


@dataclass(frozen=True)
class VariantRecipe:
    """Which of the quantizer's recipes makes a variant, and its I/O."""

    base: str  # a function in litert_quantizer.recipe, or "float16_weights"
    input: str  # float32 | int8 | uint8 | as-recipe (dynamic, fp16: float anyway)
    float_outputs: bool
    summary: str


RECIPES: dict[str, VariantRecipe] = {
    "fp16": VariantRecipe("float16_weights", "as-recipe", False, "float16 weights, float32 compute (LiteRT Quantizer float_casting)"),
    "dynamic-int8": VariantRecipe(
        "dynamic_wi8_afp32", "as-recipe", False, "int8 weights, activations quantised on the fly (LiteRT Quantizer dynamic_wi8_afp32)"
    ),
    "int8": VariantRecipe("static_wi8_ai8", "int8", True, "full-integer int8, int8 input (LiteRT Quantizer static_wi8_ai8)"),
    "uint8": VariantRecipe("static_wi8_ai8", "uint8", True, "full-integer int8, uint8 input (LiteRT Quantizer static_wi8_ai8)"),
    "int16x8": VariantRecipe("static_wi8_ai16", "float32", True, "int16 activations, int8 weights (LiteRT Quantizer static_wi8_ai16)"),
    "selective-int8": VariantRecipe(
        "static_wi8_ai8", "float32", True, "int8 with sensitive ops kept in float (LiteRT Quantizer static_wi8_ai8 + no_quantize)"
    ),
    "mixed-int16": VariantRecipe(
        "static_wi8_ai8", "int8", True,
        "int8 with the sensitive ops at int16 activations, int8 weights (LiteRT Quantizer static_wi8_ai8 + static_wi8_ai16 per-op overrides)",
    ),
}
# Made by the LiteRT Quantizer from the fp32 file whatever the source (the
# TFLite converter has no per-op precision): a Keras source converts fp32 first.
QUANTIZER_ONLY = frozenset({"mixed-int16"})
# Variants a float .tflite can never become here, and why (refused at recipe load).
NOT_FROM_TFLITE = {
    "qat-int8": "quantization-aware training fine-tunes the Keras model, and a .tflite holds no trainable graph",
}


def quantizer_version() -> str:
    try:
        return metadata.version(QUANTIZER)
    except metadata.PackageNotFoundError:
        return "missing"


def cache_material(recipe: Recipe, variant: str) -> dict[str, Any]:
    """What the cache key adds for a quantizer variant (pure: no import)."""
    spec = RECIPES.get(variant)
    material: dict[str, Any] = {
        "quantizer": QUANTIZER,
        "quantizer_version": quantizer_version(),
        "harness_litert": LITERT_QUANT_VERSION,
        "recipe": None if spec is None else [spec.base, spec.input, spec.float_outputs],
    }
    if variant == "mixed-int16":  # which ops go to int16 (the defaults follow selective-int8's)
        material["mixed"] = [list(recipe.mixed.ops), list(recipe.selective.denylist)]
    return material


# -- recipes as data ----------------------------------------------------------


def no_quantize(regex: str, operation: str = "*") -> dict[str, Any]:
    return {"regex": regex, "operation": operation, "algorithm_key": "no_quantize"}


def node_regex(tensor_name: str) -> str:
    """The scope regex of the op whose first output is `tensor_name`
    (a scope is 'out1;out2;...;', and fused names contain ';' themselves)."""
    return "^" + re.escape(tensor_name) + ";"


_UINT8_INPUT = {
    "activation_tensor_config": {"num_bits": 8, "symmetric": False, "granularity": "TENSORWISE", "dtype": "UINT"},
    "weight_tensor_config": {"num_bits": 8, "symmetric": True, "granularity": "CHANNELWISE", "dtype": "INT"},  # from_dict needs one
    "compute_precision": "INTEGER",
    "explicit_dequantize": False,
}
_FLOAT16_WEIGHTS = {
    "weight_tensor_config": {"num_bits": 16, "symmetric": True, "granularity": "TENSORWISE", "dtype": "FLOAT"},
    "compute_precision": "FLOAT",
    "explicit_dequantize": True,
}


def io_overrides(spec: VariantRecipe) -> list[dict[str, Any]]:
    """Entries after the base recipe that set the graph's I/O types."""
    out: list[dict[str, Any]] = []
    if spec.float_outputs:
        out.append(no_quantize(".*", "OUTPUT"))
    if spec.input == "float32":
        out.append(no_quantize(".*", "INPUT"))
    elif spec.input == "uint8":
        out.append({"regex": ".*", "operation": "INPUT", "algorithm_key": "min_max_uniform_quantize", "op_config": _UINT8_INPUT})
    return out


def denylist_overrides(denylist: selective.Denylist) -> list[dict[str, Any]]:
    """selective-int8's ops kept float: by op type, or by the op's output tensor."""
    return [no_quantize(".*", op) for op in denylist.ops] + [no_quantize(node_regex(n)) for n in denylist.nodes]


def int16_overrides(ops: selective.Denylist, a16_recipe: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """mixed-int16's sensitive ops at int16 activations and int8 weights: the
    entries of static_wi8_ai16 (`a16_recipe`), narrowed to each op type or to
    each op by its output tensor. They come after the int8 base, so they win
    (the last matching entry does); the quantizer puts a QUANTIZE between an
    int8 tensor and an int16 consumer and back."""
    out: list[dict[str, Any]] = []
    for entry in a16_recipe:
        out += [{**entry, "regex": ".*", "operation": op} for op in ops.ops]
        out += [{**entry, "regex": node_regex(node)} for node in ops.nodes]
    return out


def base_recipe(name: str) -> list[dict[str, Any]]:
    """The quantizer's own recipe, as plain JSON data (its enums are str)."""
    if name == "float16_weights":
        return [{"regex": ".*", "operation": "*", "algorithm_key": "float_casting", "op_config": _FLOAT16_WEIGHTS}]
    from litert_quantizer import recipe as quantizer_recipes

    return json.loads(json.dumps(getattr(quantizer_recipes, name)()))


def variant_recipe(variant: str, denylist: selective.Denylist = selective.Denylist()) -> list[dict[str, Any]]:
    """`denylist`: the ops kept float (selective-int8) or put at int16 (mixed-int16)."""
    spec = RECIPES[variant]
    if variant == "mixed-int16":
        # The I/O entries last: OUTPUT stays float even where an int16 entry matches it.
        return base_recipe(spec.base) + int16_overrides(denylist, base_recipe("static_wi8_ai16")) + io_overrides(spec)
    return base_recipe(spec.base) + io_overrides(spec) + denylist_overrides(denylist)


def sensitive_entries(recipe: Recipe, selective_manifest: dict[str, Any] | None) -> tuple[tuple[str, ...], str]:
    """(mixed-int16's op entries, where they came from): its own `ops`, else
    the recipe's selective-int8 denylist, else what this run's selective-int8
    kept float (its manifest). None of them: exit 2, saying what to write."""
    if recipe.mixed.ops:
        return recipe.mixed.ops, MIXED_PLACE
    if recipe.selective.denylist:
        return recipe.selective.denylist, selective.DENYLIST_PLACE
    found = tuple((selective_manifest or {}).get("denylist") or ())
    if found:
        return found, "the selective-int8 search of this run"
    raise InputError(
        "mixed-int16 needs to know which ops are the sensitive ones, and the recipe names none",
        source=recipe.path,
        place=MIXED_PLACE,
        hint="list them (layer names, tensor names from a selective-int8 sensitivity.json, or op types such as LOGISTIC) "
        "in variant_options.mixed-int16.ops or variant_options.selective-int8.denylist, or ask for selective-int8 "
        "in the same run (its search's result is used)",
    )


# -- sensitivity from validate() ---------------------------------------------


# Ops that move values without re-quantizing them (the quantizer constrains
# their output to their input's scale): keeping one float buys nothing, and
# their error is their producer's.
_SAME_SCALE_OPS = frozenset({"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE", "PACK", "UNPACK", "SLICE", "STRIDED_SLICE"})


def sensitivity_rows(comparison: dict[str, dict[str, float]], ops: Sequence[tuple[str, str]], scales: dict[str, float]) -> list[selective.LayerError]:
    """validate()'s per-tensor MSE as the workbench's rows, most sensitive first.

    `ops`: (op type, first output tensor) of every op of the float model;
    `scales`: the quantized model's scale of each tensor. The metric is the
    TF path's (sqrt(mse) / scale): here the error is the quantized model's
    end-to-end one at that tensor, not the layer's alone. Ops whose output
    is not quantized (the post-process op, DEQUANTIZE) or not re-quantized
    (RESHAPE) have nothing to keep float and are left out."""
    rows = []
    for op_name, tensor in ops:
        scale = scales.get(tensor, 0.0)
        metrics = comparison.get(tensor)
        if metrics is None or scale <= 0 or op_name in _SAME_SCALE_OPS:
            continue
        mse = float(metrics.get("mse", 0.0))
        mse = mse if math.isfinite(mse) and mse >= 0 else 0.0
        rows.append(selective.LayerError(tensor, op_name, math.sqrt(mse) / scale, 0.0, 0.0, mse, scale, 0))
    rows.sort(key=lambda r: -r.rmse_over_scale)
    return rows


def _ops_and_scales(float_model: bytes, quantized: bytes) -> tuple[list[tuple[str, str]], dict[str, float]]:
    from ai_edge_litert.interpreter import Interpreter

    reference = Interpreter(model_content=float_model)
    names = {d["index"]: d["name"] for d in reference.get_tensor_details()}
    ops = [(op["op_name"], names[op["outputs"][0]]) for op in reference._get_ops_details() if len(op["outputs"])]  # noqa: SLF001
    target = Interpreter(model_content=quantized)
    scales = {d["name"]: float(d["quantization"][0]) for d in target.get_tensor_details()}
    return ops, scales


def int16_op_count(content: bytes) -> int:
    """Ops of a quantized model whose output is int16 (the ones no
    accelerating delegate takes: they run on the reference kernels)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    dtypes = {d["index"]: np.dtype(d["dtype"]) for d in interpreter.get_tensor_details()}
    return sum(1 for op in interpreter._get_ops_details() if op["outputs"] and dtypes[op["outputs"][0]] == np.int16)  # noqa: SLF001


# -- the session -----------------------------------------------------------------


class QuantizerSession:
    """The float model, its calibration samples and calibration results, once."""

    def __init__(self, recipe: Recipe, calibration: CocoDataset | None, cache_dir: Path, fp32: Artifact) -> None:
        self.recipe = recipe
        self.calibration = calibration
        self.cache_dir = cache_dir
        self.fp32 = fp32
        self.content = fp32.path.read_bytes()
        self._samples: list[dict[str, np.ndarray]] | None = None
        self._qsvs: dict[str, Any] = {}
        from ai_edge_litert.interpreter import Interpreter

        signatures = Interpreter(model_content=self.content).get_signature_list()
        if len(signatures) != 1 or len(next(iter(signatures.values()))["inputs"]) != 1:
            raise ConversionError(
                f"{recipe.name}: the LiteRT Quantizer path takes a model with one signature and one input; "
                f"this one has {json.dumps({k: v['inputs'] for k, v in signatures.items()})}"
            )
        self.signature = next(iter(signatures))
        self.input_name = signatures[self.signature]["inputs"][0]

    def samples(self) -> list[dict[str, np.ndarray]]:
        """Calibration images, prepared as the host prepares eval inputs for
        the source model (its own input dtype and quantisation)."""
        if self._samples is None:
            assert self.calibration is not None
            paths = [img.path for img in self.calibration.images[:MAX_CALIBRATION_IMAGES]]
            batch = prepare_batch(paths, self.recipe.input, self.fp32.input_quant)
            self._samples = [{self.input_name: batch[i : i + 1]} for i in range(len(batch))]
        return self._samples

    def quantize(self, recipe_data: list[dict[str, Any]], say: Callable[[str], None]) -> bytes:
        from litert_quantizer import Quantizer

        quantizer = Quantizer(self.content, recipe_data)
        qsvs = None
        if quantizer.need_calibration:
            key = json.dumps(recipe_data[0], sort_keys=True)  # the base recipe decides which tensors need ranges
            if key not in self._qsvs:
                say(f"calibrating on {len(self.samples())} images")
                self._qsvs[key] = quantizer.calibrate({self.signature: self.samples()})
            qsvs = self._qsvs[key]
        return bytes(quantizer.quantize(qsvs, enable_progress_report=False).quantized_model)

    def comparison(self, quantized: bytes) -> dict[str, dict[str, float]]:
        from litert_quantizer import Quantizer
        from litert_quantizer.quantizer import ValidationErrorMetric

        quantizer = Quantizer(self.content, previous_quantized_model=quantized)
        result = quantizer.validate({self.signature: self.samples()[:DEBUG_IMAGES]}, [ValidationErrorMetric.MSE, ValidationErrorMetric.SNR])
        per_signature = result.get_signature_comparison_result(self.signature)
        return {**per_signature.intermediate_tensors, **per_signature.output_tensors}

    def convert(self, variant: str, say: Callable[[str], None], selective_manifest: dict[str, Any] | None = None) -> Converted:
        if variant == "selective-int8":
            return self._selective(say)
        if variant == "mixed-int16":
            return self._mixed(say, selective_manifest)
        say(f"quantizing ({RECIPES[variant].base})")
        recipe_data = variant_recipe(variant)
        return Converted(self.quantize(recipe_data, say), {"quantization_recipe": recipe_data})

    def _selective(self, say: Callable[[str], None]) -> Converted:
        options = self.recipe.selective
        full_int8 = self.quantize(variant_recipe("selective-int8"), say)
        say("per-tensor error (the quantizer's validate())")
        ops, scales = _ops_and_scales(self.content, full_int8)
        rows = sensitivity_rows(self.comparison(full_int8), ops, scales)

        def quantised(denylist: selective.Denylist) -> bytes:
            return full_int8 if denylist.size == 0 else self.quantize(variant_recipe("selective-int8", denylist), say)

        choice = selective.choose_denylist(
            rows, self.recipe, self.calibration, self.cache_dir, lambda: self.content, quantised, say,
            quant=self.fp32.input_quant, unit="ops",
        )
        denylist = choice.denylist
        recipe_data = variant_recipe("selective-int8", denylist)
        content = quantised(denylist)
        full = selective.report(rows, options, denylist, source=choice.source, fp32_map=choice.fp32_map, search=choice.search)
        full["metric"] = (
            "rmse_over_scale = sqrt(mse) / scale of the quantised tensor, mse from the LiteRT Quantizer's validate() "
            "(the quantized model's end-to-end error at that tensor; mean_error and max_abs_error are not reported by it: 0)"
        )
        extra = {
            "selective": {**selective.summary(full, options.top_layers), "no_quantize": denylist_overrides(denylist)},
            "sensitivity_report": SENSITIVITY_FILE,
            "quantization_recipe": recipe_data,
        }
        return Converted(content, extra, {SENSITIVITY_FILE: json.dumps(full, indent=1).encode()})

    def _mixed(self, say: Callable[[str], None], selective_manifest: dict[str, Any] | None) -> Converted:
        entries, where = sensitive_entries(self.recipe, selective_manifest)
        ops, _ = _ops_and_scales(self.content, self.content)
        rows = [selective.LayerError(tensor, op, 0.0, 0.0, 0.0, 0.0, 0.0, 0) for op, tensor in ops]
        try:
            chosen = selective.resolve_user_denylist(entries, rows, recipe_path=self.recipe.path)
        except InputError as exc:
            if where == MIXED_PLACE:  # the same check as the denylist's, named at the key that holds the entry
                message = exc.message.split(f"{selective.DENYLIST_PLACE}: ", 1)[-1]
                hint = (exc.hint or "").replace("every node is listed in the variant's sensitivity.json",
                                                "names are Keras layer names or the fp32 file's tensor names")
                raise InputError(message, source=self.recipe.path, place=MIXED_PLACE, hint=hint) from None
            raise
        say(f"quantizing (int8, {chosen.size} op(s) at int16)")
        recipe_data = variant_recipe("mixed-int16", chosen)
        content = self.quantize(recipe_data, say)
        extra = {
            "mixed": {"ops": chosen.entries(), "entries": list(entries), "source": where, "int16_ops": int16_op_count(content)},
            "quantization_recipe": recipe_data,
        }
        return Converted(content, extra)

    def manifest(self, variant: str, content: bytes) -> dict[str, Any]:
        from ai_edge_litert.interpreter import Interpreter

        spec = RECIPES[variant]
        converter = {"quantizer": QUANTIZER, "version": quantizer_version(), "recipe": spec.base, "harness_litert": LITERT_QUANT_VERSION}
        calibration = None
        if VARIANTS[variant].needs_calibration and self.calibration is not None:
            calibration = {"dataset": str(self.calibration.annotations_json), "images": len(self.samples())}
        manifest = _manifest(self.recipe, variant, content, Interpreter(model_content=content), converter, calibration)
        manifest["summary"] = spec.summary
        return manifest


def _convert_one(session: QuantizerSession, variant: str, say: ProgressFn, results: dict[str, Any]) -> tuple[Converted, dict[str, Any]]:
    made = results.get("selective-int8")
    selective_manifest = made.manifest.get("selective") if isinstance(made, Artifact) else None
    converted = session.convert(variant, lambda message: say(variant, message), selective_manifest)
    return converted, session.manifest(variant, converted.content)


def convert_pending(recipe: Recipe, pending: list[tuple[str, Path]], calibration: CocoDataset | None, cache_dir: Path, say: ProgressFn, results: dict[str, Any]) -> None:
    """A float .tflite source's pending variants: fp32 is the file as it is
    (made first when only the quantized ones are asked: they start from it)."""
    from harness.convert.converter import cache_key

    fp32 = results.get("fp32")
    if not isinstance(fp32, Artifact):
        folder = dict(pending).get("fp32") or cache_dir / "variants" / f"{recipe.name}-fp32-{cache_key(recipe, 'fp32', calibration)[:20]}"
        if not (folder / "manifest.json").is_file():
            content = recipe.source.read_bytes()
            _write_variant(folder, Converted(content), _tflite_source_manifest(recipe, "fp32", content))
        fp32 = _artifact(recipe.name, "fp32", folder, cached=False)
        if "fp32" in dict(pending):
            results["fp32"] = fp32
            say("fp32", "done")
    quantized = [(v, f) for v, f in pending if v != "fp32"]
    if quantized:
        quantize_pending(recipe, quantized, fp32, calibration, cache_dir, say, results)


def quantize_pending(
    recipe: Recipe,
    pending: list[tuple[str, Path]],
    fp32: Artifact,
    calibration: CocoDataset | None,
    cache_dir: Path,
    say: ProgressFn,
    results: dict[str, Any],
) -> None:
    """Each pending variant (not fp32) through the quantizer, into the cache
    (mixed-int16 after selective-int8: it may take that one's ops)."""
    pending = sorted(pending, key=lambda item: item[0] == "mixed-int16")
    with _quiet_tensorflow(cache_dir / "convert.log") as log_path:  # its progress bars go to fd 2
        session: QuantizerSession | None = None
        for variant, folder in pending:
            say(variant, "converting")
            started = time.perf_counter()
            session = session or attempt(
                variant, lambda: QuantizerSession(recipe, calibration, cache_dir, fp32), results, say, f"{recipe.name}: {variant}", ""
            )
            made = session and attempt(
                variant, lambda v=variant: _convert_one(session, v, say, results), results, say,
                f"{recipe.name}: the LiteRT Quantizer rejected {variant}", f"see {log_path} for its log",
            )
            if not made:
                continue
            converted, manifest = made
            manifest.update(converted.manifest_extra)
            manifest["converter"]["seconds"] = round(time.perf_counter() - started, 2)
            _write_variant(folder, converted, manifest)
            results[variant] = _artifact(recipe.name, variant, folder, cached=False)
            say(variant, "done")
