"""Quantization-aware fine-tuning (`qat-int8`) with tensorflow-model-optimization.

tfmot's ``quantize_model`` only accepts Keras 2 (``tf_keras``) Sequential or
Functional models; TF 2.21's ``tf.keras`` is Keras 3, so the converter package
sets ``TF_USE_LEGACY_KERAS=1`` before TensorFlow is imported (see export.py).

The recipe's float model is cloned, its BatchNorm layers frozen (their
statistics stay those of the float training: a few hundred images in small
batches would only add noise to them), wrapped with fake-quantisation, and
fine-tuned with the recipe's loss for a short run. Fine-tuning is not
optional: a freshly wrapped model evaluates to mAP ~0 until it has taken at
least one training step (its activation ranges are not yet calibrated).
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from harness.convert import ssd_training
from harness.dataset.preprocess import InputSpec
from harness.model.recipe import TrainingConfig


def is_keras2(model: Any) -> bool:
    import tf_keras

    return isinstance(model, tf_keras.Model)


def keras_flavour(model: Any) -> str:
    module = type(model).__module__.split(".")[0]
    try:
        import keras

        return f"{module} (keras {keras.__version__})" if module == "keras" else module
    except ImportError:
        return module


def finetune(
    model: Any, train: ssd_training.TrainSet, config: TrainingConfig, spec: InputSpec, num_classes: int,
    say: Callable[[str], None] = lambda message: None,
) -> tuple[Any, dict[str, Any]]:
    """(the fine-tuned QAT model, what was done: steps, losses, seconds)."""
    import tensorflow_model_optimization as tfmot
    import tf_keras

    started = time.perf_counter()
    tf_keras.utils.set_random_seed(config.seed)
    clone = tf_keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    for layer in clone.layers:
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            layer.trainable = False
    qat_model = tfmot.quantization.keras.quantize_model(clone)
    optimizer = tf_keras.optimizers.Adam(learning_rate=config.learning_rate)
    step = ssd_training.make_train_step(qat_model, optimizer, num_classes, spec.mean, spec.std)

    count = len(train.images)
    batch = min(config.batch_size, count)
    steps_per_epoch = max(1, count // batch)
    total = config.total_steps(steps_per_epoch)
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(count)
    losses: list[tuple[float, float]] = []
    for i in range(total):
        position = i % steps_per_epoch
        if position == 0 and i:
            order = rng.permutation(count)
        if position == 0:  # minutes on a real model: the display shows each epoch
            say(f"fine-tuning, epoch {i // steps_per_epoch + 1}/{-(-total // steps_per_epoch)}")
        idx = np.sort(order[position * batch : (position + 1) * batch])
        cls_loss, box_loss = step(train.images[idx], train.classes[idx], train.boxes[idx], np.float32(config.learning_rate))
        losses.append((float(cls_loss), float(box_loss)))
    return qat_model, training_summary(config, [c + b for c, b in losses], steps_per_epoch, batch, count, started)


def training_summary(
    config: TrainingConfig, losses: list[float], steps_per_epoch: int, batch: int, images: int, started: float
) -> dict[str, Any]:
    """What a fine-tuning did, for the manifest: steps, epochs, the first loss
    and the mean of the last ten (one step's loss is noisy)."""
    tail = losses[-max(1, min(10, len(losses))) :]
    return {
        "loss": config.loss,
        "steps": len(losses),
        "epochs": round(len(losses) / steps_per_epoch, 3),
        "batch_size": batch,
        "images": images,
        "learning_rate": config.learning_rate,
        "first_loss": round(losses[0], 5) if losses else None,
        "final_loss": round(sum(tail) / len(tail), 5) if losses else None,
        "seconds": round(time.perf_counter() - started, 1),
    }
