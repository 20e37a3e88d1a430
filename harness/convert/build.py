"""Every asked variant of a recipe, as `harness run` and `harness convert`
both need them: uint8 too when edgetpu is asked (it is compiled from
uint8), converted or found in the cache, then the Edge TPU compile; each
variant's progress reported as it goes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

from harness.convert.converter import Artifact, convert_variants
from harness.dataset.coco import CocoDataset
from harness.edgetpu.compiler import Unavailable, add_edgetpu, needs_uint8
from harness.errors import ConversionError
from harness.measure.events import RunEvents
from harness.model.recipe import Recipe

Built = Artifact | ConversionError | Unavailable
# The converter's last word on a variant; every other message is a step.
_OUTCOMES = ("done", "cached", "failed", "unavailable")


def build_variants(
    recipe: Recipe, variants: Sequence[str], calibration: CocoDataset | None, cache: Path, events: RunEvents
) -> dict[str, Built]:
    """Each variant's artifact, or why there is none, in the asked order."""
    wanted = needs_uint8(variants)
    events.stage("convert", total=len(wanted) + (1 if "edgetpu" in variants else 0))
    progress = _Progress(events)
    converted = convert_variants(recipe, wanted, calibration, cache, progress=progress)
    built = add_edgetpu(variants, converted)
    if "edgetpu" in built:
        result = built["edgetpu"]
        outcome = "done" if isinstance(result, Artifact) else "unavailable" if isinstance(result, Unavailable) else "failed"
        progress("edgetpu", outcome)
    return built


class _Progress:
    """The converter's (variant, message) calls as run events: a step moves
    the label, an outcome advances the bar and reports how long it took."""

    def __init__(self, events: RunEvents) -> None:
        self.events = events
        self.started: dict[str, float] = {}

    def __call__(self, variant: str, message: str) -> None:
        now = time.monotonic()
        if message == "converting":
            self.started[variant] = now
        if message not in _OUTCOMES:
            self.events.advance("convert", f"{variant}: {message}")
            return
        seconds = now - self.started.pop(variant, now)
        self.events.advance("convert", f"{variant}: {message}", units=1)
        self.events.converted(variant, message, seconds)
