"""Where the shipped files are: agent, device profiles, bundled models.

They live at the top of the repository (devices/, models/) and are shipped
in the wheel as the packages ``harness._devices`` and ``harness._models``;
this module finds them in either layout.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def _package_dir(package: str, source_name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return _SOURCE_ROOT / source_name


def devices_dir() -> Path:
    return _package_dir("harness._devices", "devices")


def models_dir() -> Path:
    return _package_dir("harness._models", "models")


def agent_path() -> Path:
    return devices_dir() / "agent.py"


def profiles_dir() -> Path:
    return devices_dir() / "profiles"


def demo_recipe_path() -> Path:
    return models_dir() / "demo-detector" / "model.yaml"


def reports_dir() -> Path:
    """Default output folder: $HARNESS_REPORTS, else ./reports."""
    return Path(os.environ.get("HARNESS_REPORTS", "reports"))


def cache_dir(reports: Path | None = None) -> Path:
    """Converted variants, generated datasets, prepared inputs:
    $HARNESS_CACHE, else <reports>/.cache. Content-addressed, so one cache
    can serve several output folders."""
    override = os.environ.get("HARNESS_CACHE")
    if override:
        return Path(override)
    return (reports or reports_dir()) / ".cache"


TFLITE214_ENV = "HARNESS_TFLITE214_PYTHON"
TFLITE214_VENV = ".venv-tflite214"


def tflite214_python() -> Path | None:
    """The interpreter of the side virtualenv with tflite-runtime 2.14 (which
    needs numpy < 2, so it cannot share the main one): $HARNESS_TFLITE214_PYTHON,
    else `.venv-tflite214` in the source tree or the current folder
    (`make .venv-tflite214` creates it). None when there is none."""
    override = os.environ.get(TFLITE214_ENV)
    if override:
        return Path(override)
    for root in (_SOURCE_ROOT, Path.cwd()):
        candidate = root / TFLITE214_VENV / "bin" / "python"
        if candidate.is_file():
            return candidate
    return None
