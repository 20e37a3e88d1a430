"""The layout of any model a recipe can name: a .tflite through the LiteRT
interpreter (harness/model/layout.py, no TensorFlow), a SavedModel or a
Keras file through TensorFlow (its serving signature's inputs and outputs;
operators exist only after conversion)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.model.layout import ModelLayout, TensorInfo, read_tflite_layout


def read_model_layout(path: Path) -> ModelLayout:
    path = Path(path)
    if path.suffix == ".tflite":
        return read_tflite_layout(path)
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return _saved_model_layout(path)
    if path.suffix in (".h5", ".keras") and path.is_file():
        return _keras_layout(path)
    raise InputError(
        "not a model harness inspect can read",
        source=path,
        hint="give a .tflite, a SavedModel directory (with saved_model.pb) or a Keras .h5/.keras file",
    )


def _spec_tensor(name: str, spec: Any) -> TensorInfo:
    shape = tuple(-1 if v is None else int(v) for v in spec.shape.as_list())
    return TensorInfo(name=name, shape=shape, dtype=spec.dtype.name)


def _saved_model_layout(path: Path) -> ModelLayout:
    from harness.convert.export import SIGNATURE_KEY, tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:  # noqa: BLE001 - any load failure is a bad model folder
        raise InputError(f"cannot load the SavedModel: {str(exc).splitlines()[0]}", source=path, hint="check the folder") from None
    if SIGNATURE_KEY not in loaded.signatures:
        raise InputError(f"the SavedModel has no {SIGNATURE_KEY!r} signature", source=path, hint="save it with a serving signature")
    function = loaded.signatures[SIGNATURE_KEY]
    inputs = function.structured_input_signature[1]
    outputs = function.structured_outputs
    return ModelLayout(
        path=path,
        kind="saved-model",
        inputs=tuple(_spec_tensor(k, v) for k, v in sorted(inputs.items())),
        outputs=tuple(_spec_tensor(k, v) for k, v in sorted(outputs.items())),
        signatures={SIGNATURE_KEY: {k: k for k in sorted(outputs)}},
    )


def _keras_layout(path: Path) -> ModelLayout:
    from harness.convert.export import tf_keras

    try:
        model = tf_keras.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - any load failure is a bad model file
        raise InputError(f"cannot load the Keras model: {str(exc).splitlines()[0]}", source=path, hint="check the file") from None

    def tensor(name: str, t: Any) -> TensorInfo:
        return TensorInfo(name=name, shape=tuple(-1 if v is None else int(v) for v in t.shape), dtype=t.dtype.name)

    return ModelLayout(
        path=path,
        kind="keras",
        inputs=tuple(tensor(n, t) for n, t in zip(model.input_names, model.inputs)),
        outputs=tuple(tensor(n, t) for n, t in zip(model.output_names, model.outputs)),
    )
