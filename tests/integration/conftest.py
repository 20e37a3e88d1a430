"""Session fixtures around the bundled demo detector.

Converting the six variants costs a TensorFlow import and about a minute,
so one session converts them once into a shared cache; the CLI tests point
HARNESS_CACHE at it and find every variant already there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import paths
from harness.recipe import Recipe, load_recipe
from harness.variants import DEFAULT_VARIANTS


@pytest.fixture(scope="session")
def demo_recipe() -> Recipe:
    return load_recipe(paths.demo_recipe_path())


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("harness-cache")


@pytest.fixture(scope="session")
def demo_datasets(demo_recipe, session_cache):
    from harness.dataset.resolve import resolve_dataset

    return (
        resolve_dataset(demo_recipe, demo_recipe.calibration, session_cache),
        resolve_dataset(demo_recipe, demo_recipe.eval, session_cache),
    )


@pytest.fixture(scope="session")
def demo_artifacts(demo_recipe, demo_datasets, session_cache):
    from harness.convert.converter import convert_variants

    calibration, _ = demo_datasets
    return convert_variants(demo_recipe, DEFAULT_VARIANTS, calibration, session_cache)
