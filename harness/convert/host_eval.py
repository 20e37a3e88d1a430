"""mAP of a candidate model measured on this host, during conversion.

Selective quantization searches for the smallest float denylist whose mAP
on the calibration split is close enough to fp32's; each candidate is
scored here with the same agent, adapter and COCO evaluation as a device
run (the agent's `detect` command under this interpreter's ai-edge-litert),
so a number found here means what the report's numbers mean.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from harness.model.adapters import adapter_spec
from harness.dataset.coco import CocoDataset
from harness.device import Device
from harness.dataset.scoring import coco_scores, to_coco_results
from harness.dataset.preprocess import EvalInputs, InputQuant, prepared_inputs
from harness.model.labels import recipe_class_map
from harness.model.recipe import Recipe


class HostEvaluator:
    def __init__(self, recipe: Recipe, dataset: CocoDataset, cache_dir: Path) -> None:
        from harness.agent.client import AgentClient
        from harness.transport.local import LocalTransport

        self.dataset = dataset
        self.recipe = recipe
        self.cache_dir = cache_dir
        self.adapter = adapter_spec(recipe)
        self.category_ids = recipe_class_map(recipe, dataset).category_ids
        self._inputs: dict[InputQuant, EvalInputs] = {}
        device = Device(name="host-eval", profile="x86-cpu", kind="local", python=sys.executable, cache_dir=str(cache_dir / "host-agent"))
        self.client = AgentClient(LocalTransport(device), timeout_s=900, confined=False)

    def map(self, content: bytes, quant: InputQuant = InputQuant("float32")) -> float:
        """COCO mAP@[.5:.95] of the model on the dataset."""
        if quant not in self._inputs:
            self._inputs[quant] = prepared_inputs(self.dataset, self.recipe.input, quant, self.cache_dir)
        folder = self.cache_dir / "host-eval"
        folder.mkdir(parents=True, exist_ok=True)
        model = folder / f"{hashlib.sha256(content).hexdigest()[:24]}.tflite"
        if not model.is_file():
            model.write_bytes(content)
        try:
            reply = self.client.call(
                {"command": "detect", "model": str(model), "inputs": str(self._inputs[quant].path),
                 "feed": self._inputs[quant].feed, **self.adapter.request()}
            )
        finally:
            model.unlink(missing_ok=True)
        results = to_coco_results(self.dataset, reply["detections"], self.category_ids, self.recipe.input)
        return coco_scores(self.dataset.annotations_json, results, [img.id for img in self.dataset.images]).map
