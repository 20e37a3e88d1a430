"""The host's TFLite runtime, for reading a model's ops (never TensorFlow)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.errors import InputError


def host_interpreter(path: Path) -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter  # type: ignore[no-redef]
        except ImportError:
            raise InputError(
                "no TFLite runtime on this host to read the model's ops",
                hint="pip install 'edge-harness[runtime]' (ai-edge-litert)",
            ) from None
    try:
        return Interpreter(model_path=str(path))
    except Exception as exc:
        raise InputError(f"cannot read the model: {exc}", source=path, hint="check that it is a .tflite file") from None
