"""The bundled models and what `harness demo` shows of each.

Two models tell the product's two stories: the demo SSD (models/demo-detector),
where every precision keeps its accuracy and only speed and size move, and
the YOLO-style detector (models/shapes-yolo), which full int8 really hurts and
the quantization workbench wins back. The demo measures the variants that
tell each story rather than all of them, so that `make demo` stays under five
minutes on two cores; `harness run --model models/NAME/model.yaml` runs a
recipe's whole list.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from harness import paths
from harness.errors import InputError


@dataclass(frozen=True)
class DemoModel:
    name: str
    # None: the recipe's own `variants` list.
    variants: tuple[str, ...] | None

    @property
    def recipe_path(self) -> Path:
        return paths.models_dir() / self.name / "model.yaml"


DEMO_MODELS: tuple[DemoModel, ...] = (
    # QAT and selective int8 have nothing to recover on the SSD (int8 loses
    # ~0.2 pt); their story is shapes-yolo's, and they are its slowest steps.
    # dynamic-int8 and uint8 tell nothing fp16 and int8 do not, and on an
    # AVX2-only 2-core host the six-precision demo took 5 min 20 s.
    DemoModel("demo-detector", ("fp32", "fp16", "int8", "int16x8")),
    DemoModel("shapes-yolo", None),
)


def demo_models(names_arg: str | None) -> list[DemoModel]:
    """`--models a,b` (default: every bundled model) in the order asked."""
    if not names_arg:
        return list(DEMO_MODELS)
    known = {m.name: m for m in DEMO_MODELS}
    chosen: list[DemoModel] = []
    for name in (n.strip() for n in names_arg.split(",")):
        if not name:
            continue
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise InputError(
                f"no bundled model named {name!r}", source="--models",
                hint=f"{hint}the bundled models are {', '.join(known)}",
            )
        chosen.append(known[name])
    if not chosen:
        raise InputError("no model named", source="--models", hint=f"name one of {', '.join(known)}")
    return chosen
