"""Quantization-aware fine-tuning against the fp32 model (`training.loss: distill`).

Why distillation and not the model's own training loss: QAT here has to
recover what int8 loses, not teach the detector anything new. The fp32
model's outputs are the best targets for that (the accuracy ceiling is
fp32's), they need no labels, no anchor or label assignment and no
knowledge of how the model was trained, so the same loss serves any
single-output YOLO-style head ([1, 4+nc, N]: boxes in pixels, then
sigmoid scores). Per anchor point the loss is

    cls = sum_c BCE(p_teacher, p_student) - H(p_teacher)      (0 when equal)
    box = |box_student - box_teacher|_1 / input size
    loss = (sum cls + BOX_WEIGHT * sum w * box) / sum w,   w = max_c p_teacher

so boxes count where the teacher sees an object, and background cells'
stray boxes (which no detection uses) do not.

Where the fake quantisation goes decides what QAT can win. With every
layer annotated, the boxes-and-scores concatenation gets ONE learned
range (0..160 px), the scores keep a handful of levels and QAT cannot
train that away (measured: full QAT 0.137 vs PTQ int8 0.133 on
models/shapes-yolo). So the layers of the recipe's selective-int8 denylist
(`keep_float`) are left un-annotated, and training adapts the int8 rest to
a float score path. The export cannot be the QAT graph itself: TF 2.21's
converter carries the int8 scales of neighbouring fake-quant nodes into
the un-annotated concatenations (measured: head/concat int8 at 0.627 again,
and a denylist given to the QuantizationDebugger is ignored for such a
graph). So the fine-tuned weights go back into the float model, which the
converter then quantises as selective-int8 (calibrated, those layers float).
Without `keep_float` the QAT graph is converted directly (full-integer).

tfmot cannot wrap a model nested in a model, so the model is flattened
first; layers tfmot has no config for (Rescaling, an elementwise
BatchNormalization) get an output-only fake quant or stay float; and the
fake-quant ranges start from the fp32 activations on calibration images:
tfmot's moving averages start at [-6, 6] and move 0.1% a step, nowhere
near boxes in pixels in a short run.
"""

from __future__ import annotations

import re
import time
from typing import Any, Callable, Sequence

import numpy as np

from harness.convert.qat import training_summary
from harness.model.recipe import TrainingConfig

# Bumped when the fine-tuning or its export changes what a recipe makes
# (the cache key has it): 2 = SiLU split at TFLite's requantisation points,
# the selective-int8 search's nodes float, `steps` counted as steps.
QAT_VERSION = 2
BOX_WEIGHT = 8.0  # the weight models/shapes-yolo/train.py gave its L1 box loss
_RANGE_VARIABLE = re.compile(r"(output|post_activation)_(min|max)")


def flatten(model: Any, split_silu: bool = False) -> Any:
    """The same graph with every nested Keras model inlined (same layer
    objects), and with `split_silu` each SiLU convolution split in three
    (same weights, same variable names)."""
    import tf_keras
    from tensorflow.python.util import nest

    def call(layer: Any, inputs: Any) -> Any:
        if not isinstance(layer, tf_keras.Model):
            if split_silu and _is_silu_conv(layer):
                return _split_silu(layer, inputs)
            return layer(inputs)
        values = {id(t): v for t, v in zip(layer.inputs, nest.flatten(inputs))}
        for depth in sorted(layer._nodes_by_depth, reverse=True):  # noqa: SLF001 - the graph's only walk order
            for node in layer._nodes_by_depth[depth]:  # noqa: SLF001
                if node.is_input:
                    continue
                args = [values[id(t)] for t in nest.flatten(node.input_tensors)]
                out = call(node.layer, args if len(args) > 1 else args[0])
                values.update({id(t): v for t, v in zip(nest.flatten(node.outputs), nest.flatten(out))})
        outs = [values[id(t)] for t in layer.outputs]
        return outs if len(outs) > 1 else outs[0]

    inputs = tf_keras.Input(model.input_shape[1:], name=model.input_names[0])
    return tf_keras.Model(inputs, call(model, inputs), name=f"{model.name}_flat")


SILU_SUFFIX = "_silu"  # the MUL of a split SiLU convolution


def _is_silu_conv(layer: Any) -> bool:
    import tf_keras

    activation = getattr(layer, "activation", None)
    return isinstance(layer, tf_keras.layers.Conv2D) and getattr(activation, "__name__", "") in ("silu", "swish")


def _split_silu(layer: Any, inputs: Any) -> Any:
    """conv(x, activation=silu) as conv(x) * sigmoid(conv(x)): the three
    tensors the int8 file requantises (CONV_2D, LOGISTIC, MUL), so each gets
    its own fake quant. Fused, tfmot would quantise only the product and
    training would never see the conv output's and the gate's rounding."""
    import tf_keras

    config = layer.get_config()
    config["activation"] = "linear"
    conv = type(layer).from_config(config)  # same name: its variables keep the original's names
    pre = conv(inputs)
    conv.set_weights(layer.get_weights())
    gate = tf_keras.layers.Activation("sigmoid", name=f"{layer.name}_sigmoid")(pre)
    return tf_keras.layers.Multiply(name=f"{layer.name}{SILU_SUFFIX}")([pre, gate])


# How TF's converter names the exported function's output tensor: a
# selective-int8 denylist entry like this one means the model's output layer.
_EXPORTED_OUTPUT = "StatefulPartitionedCall"


def _leaf_layers(model: Any) -> list[Any]:
    import tf_keras

    return [leaf for layer in model.layers for leaf in (_leaf_layers(layer) if isinstance(layer, tf_keras.Model) else [layer])]


def float_layers(model: Any, entries: Sequence[str]) -> list[tuple[str, str]]:
    """(entry, the Keras layer it keeps float) for each selective-int8
    denylist entry that names one: a layer name, a TFLite tensor name with
    that layer in its path (what the search lists:
    model/shapes_yolo/heads/p4_scores/Reshape), or the exported output
    tensor (the model's last layer). Op types name no layer."""
    leaves = _leaf_layers(model)
    names = {layer.name for layer in leaves}
    found = []
    for entry in entries:
        if entry.startswith(_EXPORTED_OUTPUT):
            found.append((entry, leaves[-1].name))
            continue
        path = [part for part in re.split(r"[/;:]", entry) if part in names]
        if path:
            found.append((entry, path[-1]))
    return found


def keep_layers(model: Any, entries: Sequence[str]) -> tuple[str, ...]:
    """The Keras layers (of the flattened model) that a selective-int8
    denylist keeps float (float_layers says which entry names which)."""
    return tuple(dict.fromkeys(layer for _, layer in float_layers(model, entries)))


def export_entries(model: Any, entries: Sequence[str]) -> tuple[str, ...]:
    """The denylist for the fine-tuned model's export: each entry by its
    layer name, which a second instance of the model keeps (its tensor
    names do not: TensorFlow numbers the scope, model_1/...); the exported
    output, op types and anything else as they are."""
    by_entry = dict(float_layers(model, entries))
    return tuple(dict.fromkeys(e if e.startswith(_EXPORTED_OUTPUT) else by_entry.get(e, e) for e in entries))


def _output_only_config() -> Any:
    import tensorflow_model_optimization as tfmot

    q = tfmot.quantization.keras

    class OutputOnly(q.QuantizeConfig):
        """Fake-quantise a weightless layer's output (int8, asymmetric): what
        the converter does to a Rescaling it quantises."""

        def get_weights_and_quantizers(self, layer: Any) -> list:
            return []

        def get_activations_and_quantizers(self, layer: Any) -> list:
            return []

        def set_quantize_weights(self, layer: Any, quantize_weights: list) -> None:
            pass

        def set_quantize_activations(self, layer: Any, quantize_activations: list) -> None:
            pass

        def get_output_quantizers(self, layer: Any) -> list:
            return [q.quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

        def get_config(self) -> dict:
            return {}

    return OutputOnly


def quantize(flat: Any, keep_float: Sequence[str]) -> Any:
    """The QAT model: every layer annotated but `keep_float` (layer names)
    and the elementwise BatchNormalizations (tfmot's Conv+BN transforms
    handle only the per-channel kind)."""
    import tensorflow_model_optimization as tfmot
    import tf_keras

    q = tfmot.quantization.keras
    registry = q.default_8bit.Default8BitQuantizeRegistry()
    output_only = _output_only_config()
    keep = set(keep_float)

    def annotate(layer: Any) -> Any:
        if isinstance(layer, tf_keras.layers.InputLayer) or layer.name in keep:
            return layer
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            per_channel = layer.axis in (-1, [-1], [3], 3) or list(np.atleast_1d(layer.axis)) == [len(layer.input_shape) - 1]
            return q.quantize_annotate_layer(layer) if per_channel else layer
        if registry.supports(layer):
            return q.quantize_annotate_layer(layer)
        return q.quantize_annotate_layer(layer, output_only())

    annotated = tf_keras.models.clone_model(flat, clone_function=annotate)
    annotated.set_weights(flat.get_weights())
    with q.quantize_scope({"OutputOnly": output_only}):
        model = q.quantize_apply(annotated)
    # Every weight trains, as tfmot's wrapper has it (it lists a wrapped
    # layer's kernel as trainable whatever the layer's own flag says): what
    # int8 costs is spread over the whole graph. Measured on shapes-yolo
    # (300 steps, lr 3e-4): all 46 kernels trained 0.188 mAP; its frozen
    # backbone and fixed box-decode matrices left alone 0.178; only the
    # decode ones left alone 0.181. BatchNorm stays frozen: its statistics
    # (and an elementwise BN's anchor grid) come from the float training.
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)
        layer.trainable = not isinstance(inner, tf_keras.layers.BatchNormalization)
    return model


def seed_ranges(qat_model: Any, flat: Any, images: np.ndarray) -> int:
    """Each fake-quant output range from the float model's activations on
    `images` (the input's from the images). Returns how many layers."""
    import tf_keras

    targets: dict[str, list[Any]] = {}
    for layer in qat_model.layers:
        inner = getattr(layer, "layer", None)
        variables = [v for v in layer.weights if _RANGE_VARIABLE.search(v.name)]
        if inner is not None and variables:
            targets[inner.name] = variables
    names = sorted(targets)
    probe = tf_keras.Model(flat.input, [flat.get_layer(n)._inbound_nodes[-1].outputs for n in names])  # noqa: SLF001 - the flat graph's node
    values = probe.predict(images, batch_size=16, verbose=0)
    for name, value in zip(names, values if len(names) > 1 else [values]):
        low, high = min(float(np.min(value)), 0.0), max(float(np.max(value)), 0.0)
        for variable in targets[name]:
            variable.assign(low if variable.name.split(":")[0].endswith("min") else high)
    low, high = min(float(images.min()), 0.0), max(float(images.max()), 0.0)
    for variable in qat_model.weights:
        if variable.name.startswith("quantize_layer") and re.search(r"_(min|max):", variable.name):
            variable.assign(low if "_min:" in variable.name else high)
    return len(names)


def trains(layer: Any) -> bool:
    """Whether fine-tuning changes `layer`: tfmot's wrapper lists its
    kernel in trainable_weights even when the wrapper is set untrainable,
    so the flag is asked first."""
    return bool(layer.trainable and layer.trainable_weights)


def training_variables(model: Any) -> list[Any]:
    seen: dict[int, Any] = {}
    for layer in model.layers:
        if trains(layer):
            seen.update((id(v), v) for v in layer.trainable_weights)
    return list(seen.values())


def make_step(student: Any, optimizer: Any, input_size_px: float) -> Callable[..., Any]:
    import tensorflow as tf

    variables = training_variables(student)

    @tf.function
    def step(images: Any, teacher: Any) -> tuple[Any, Any]:
        with tf.GradientTape() as tape:
            out = student(images, training=True)
            p_teacher = tf.clip_by_value(teacher[:, 4:], 1e-6, 1.0 - 1e-6)
            p_student = tf.clip_by_value(out[:, 4:], 1e-6, 1.0 - 1e-6)
            weight = tf.reduce_max(teacher[:, 4:], axis=1)  # [B, N]
            norm = tf.maximum(tf.reduce_sum(weight), 1.0)
            cross = -(p_teacher * tf.math.log(p_student) + (1.0 - p_teacher) * tf.math.log(1.0 - p_student))
            entropy = -(p_teacher * tf.math.log(p_teacher) + (1.0 - p_teacher) * tf.math.log(1.0 - p_teacher))
            cls_loss = tf.reduce_sum(cross - entropy) / norm
            box_error = tf.reduce_sum(tf.abs(out[:, :4] - teacher[:, :4]), axis=1) / input_size_px
            box_loss = tf.reduce_sum(weight * box_error) / norm
            loss = cls_loss + BOX_WEIGHT * box_loss
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return cls_loss, box_loss

    return step


def finetune(
    model: Any, images: np.ndarray, calibration: np.ndarray, config: TrainingConfig, keep_float: Sequence[str],
    input_size_px: float, say: Callable[[str], None] = lambda message: None,
) -> tuple[Any, dict[str, Any]]:
    """(the QAT model, what was done).
    `images`: the training split, float as the model takes it."""
    import tf_keras

    started = time.perf_counter()
    tf_keras.utils.set_random_seed(config.seed)
    head = model.outputs[0].shape
    if len(model.outputs) != 1 or len(head) != 3 or head[1] is None or head[1] < 5:
        raise ValueError(f"loss distill takes one [1, 4+nc, N] output (boxes, then sigmoid scores); the model has {[tuple(t.shape) for t in model.outputs]}")
    flat = flatten(model, split_silu=True)
    silu_split = sum(1 for layer in flat.layers if layer.name.endswith(SILU_SUFFIX))
    say("teacher outputs (fp32)")
    teacher = flat.predict(images, batch_size=32, verbose=0)
    qat_model = quantize(flat, keep_float)
    seeded = seed_ranges(qat_model, flat, calibration[:64])
    count = len(images)
    batch = min(config.batch_size, count)
    steps_per_epoch = max(1, count // batch)
    total = config.total_steps(steps_per_epoch)
    step = make_step(qat_model, tf_keras.optimizers.Adam(learning_rate=config.learning_rate), input_size_px)
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(count)
    losses: list[float] = []
    for i in range(total):
        position = i % steps_per_epoch
        if position == 0 and i:
            order = rng.permutation(count)
        if position == 0:
            say(f"fine-tuning, epoch {i // steps_per_epoch + 1}/{-(-total // steps_per_epoch)}")
        idx = np.sort(order[position * batch : (position + 1) * batch])
        cls_loss, box_loss = step(images[idx], teacher[idx])
        losses.append(float(cls_loss) + BOX_WEIGHT * float(box_loss))
    return qat_model, {
        **training_summary(config, losses, steps_per_epoch, batch, count, started),
        "fake_quant_ranges_seeded": seeded,
        "silu_split": silu_split,
        "kept_float": list(keep_float),
    }


def trained_weights(qat_model: Any) -> dict[str, np.ndarray]:
    """The QAT model's trained weights by variable name (tfmot keeps a
    wrapped layer's kernel under the layer's own name), without the
    fake-quant ranges."""
    return {v.name: v.numpy() for v in qat_model.weights if not v.name.startswith(("quant_", "quantize_layer"))}


def load_weights(model: Any, trained: dict[str, np.ndarray]) -> Any:
    """`model` (a fresh copy of the float model) with the fine-tuned weights."""
    missing = [v.name for v in model.weights if v.name not in trained]
    if missing:
        raise ValueError(f"the QAT model has no trained value for {missing[:5]}")
    for variable in model.weights:
        variable.assign(trained[variable.name])
    return model
