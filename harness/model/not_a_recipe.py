"""What to say when the model argument is a model, not a recipe.

`harness run --model` and `harness convert` take a model.yaml recipe (and
`run --model` a bare .tflite too). A new user's first try is the file they
have: `detector.h5`, a SavedModel folder, or `convert x.tflite`. Read as YAML
those fail with a codec error that says nothing useful, so the recipe loader
asks here first and answers with what the argument takes and a recipe that
would load for that very file.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import InputError

TAKES = "`harness run --model` and `harness convert` take a model.yaml recipe (`run --model` also takes a bare .tflite)"
# The first bytes of each model format, so a misnamed file is still named for what it is.
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_TFLITE_IDENTIFIER = b"TFL3"  # FlatBuffers file identifier, at bytes 4-8
KERAS_SUFFIXES = (".h5", ".keras")  # what a recipe's source may end in (harness.model.recipe)
# Formats the harness does not read: say so, and what to export them to.
OTHER_FORMATS = {
    ".onnx": "an ONNX model", ".pt": "a PyTorch model", ".pth": "a PyTorch model", ".pb": "a frozen TensorFlow graph",
}


def refuse_model_file(path: Path) -> None:
    """Raise an InputError when ``path`` is a model (file or SavedModel folder)
    or a folder rather than a recipe; return quietly otherwise, including for
    a path that does not exist (the YAML loader names that)."""
    if path.is_dir():
        _refuse_folder(path)
    if not path.is_file():
        return
    if path.name == "saved_model.pb":
        raise InputError(
            f"this is the graph of the SavedModel folder {path.parent}, not a recipe; {TAKES}",
            source=path,
            hint=_recipe_hint(path.parent),
        )
    kind = _file_kind(path)
    if kind == "keras":
        raise InputError(f"this is a Keras model, not a recipe; {TAKES}", source=path, hint=_recipe_hint(path))
    if kind == "tflite":
        recipe = _recipe_path(path)
        raise InputError(
            "this is a TFLite model, and `harness convert` takes a model.yaml recipe",
            source=path,
            hint=f"to benchmark the file as it is (latency, memory, size): `harness run --model {path}`; "
            f"for its mAP too, write a recipe whose source is the .tflite (it is measured as it is, "
            f"not converted), e.g. {recipe}:\n{_snippet(path)}\n    then `harness run --model {recipe}`",
        )
    if kind is not None:
        raise InputError(
            f"this is {kind}, which the harness does not read; {TAKES}",
            source=path,
            hint="export it as a Keras .h5/.keras file, a SavedModel folder or a float .tflite, "
            "then write a model.yaml recipe whose source: is that export",
        )


def _refuse_folder(folder: Path) -> None:
    if (folder / "saved_model.pb").is_file():
        raise InputError(f"this is a SavedModel folder, not a recipe; {TAKES}", source=folder, hint=_recipe_hint(folder))
    recipe = folder / "model.yaml"
    found = f"did you mean {recipe}? " if recipe.is_file() else ""
    models = _models_in(folder)
    held = f" (this folder holds {', '.join(models)})" if models else ""
    raise InputError(
        f"this is a folder, not a recipe file; {TAKES}",
        source=folder,
        hint=f"{found}give the path of the recipe (models/<name>/model.yaml), or of the model file or "
        f"SavedModel folder{held} to be shown a recipe for it",
    )


def _models_in(folder: Path) -> list[str]:
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []  # an unreadable folder: the message still says what --model takes
    found = (p.name for p in entries if p.suffix in (*KERAS_SUFFIXES, ".tflite") or (p / "saved_model.pb").is_file())
    return sorted(found)[:5]


def _recipe_path(model: Path) -> Path:
    """Beside the model, named after it: never over an existing model.yaml."""
    model = model.resolve()  # `--model .` has no name to build the recipe's from
    return model.parent / f"{model.stem}.yaml"


def _recipe_hint(model: Path) -> str:
    recipe = _recipe_path(model)
    sibling = recipe.parent / "model.yaml"
    found = f"did you mean the recipe beside it, {sibling}? Otherwise " if sibling.is_file() else ""
    if model.is_file() and model.suffix not in KERAS_SUFFIXES:
        found += f"rename it to {model.stem}.h5 (a recipe's Keras source ends in .h5 or .keras) and "
    return (
        f"{found}write a recipe for it, e.g. {recipe}:\n{_snippet(model)}\n"
        f"    then `harness run --model {recipe}` (or `harness convert {recipe}`); add "
        "dataset: {eval: {annotations: val.json, images: val/}} to measure mAP"
    )


def _snippet(model: Path) -> str:
    """A recipe that loads as it is, saved at _recipe_path(model): every key
    the loader requires and an adapter that needs no extra file; the comments
    say which values must be the model's own."""
    model = model.resolve()
    lines = [
        f"name: {model.stem}",
        f"source: {model.name}    # relative to the recipe's folder",
        "input: {height: 320, width: 320}    # the model's input size",
        "labels: [person, car]    # class names, in the model's output order",
        "adapter: boxes-scores    # or ssd-postprocess, with postprocess: {anchors: anchors.npy}",
    ]
    return "\n".join("    " + line for line in lines)


def _file_kind(path: Path) -> str | None:
    """keras, tflite, what another format is, or None (maybe a recipe). The
    suffix decides; the first bytes catch a misnamed file."""
    suffix = path.suffix.lower()
    if suffix in KERAS_SUFFIXES:
        return "keras"
    if suffix == ".tflite":
        return "tflite"
    if suffix in OTHER_FORMATS:
        return OTHER_FORMATS[suffix]
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
    except OSError:
        return None  # the YAML loader reports the unreadable file
    if head.startswith(_HDF5_MAGIC):
        return "keras"
    if head[4:8] == _TFLITE_IDENTIFIER:
        return "tflite"
    return None
