"""Model recipes for bad-input tests: a complete recipe that loads, each test
overriding the one field it breaks. The model file is not a real model: the
recipe loader checks paths and fields, the converter reads the file."""

from __future__ import annotations

import numpy as np
import yaml


def write_recipe(folder, **overrides):
    np.save(folder / "anchors.npy", np.zeros((4, 4), np.float32))
    (folder / "model.h5").write_bytes(b"not a keras file")
    recipe = {
        "name": "tiny",
        "source": "model.h5",
        "input": {"height": 8, "width": 8, "channels": 3},
        "labels": ["a"],
        "adapter": "ssd-postprocess",
        "postprocess": {"anchors": "anchors.npy"},
        "variants": ["fp32"],
    }
    recipe.update(overrides)
    path = folder / "model.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path
