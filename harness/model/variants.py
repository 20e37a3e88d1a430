"""The stable variant names and what each one asks of the converter.

Pure data: no TensorFlow here, so the CLI can validate ``--variants`` fast.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from harness.errors import InputError


@dataclass(frozen=True)
class VariantSpec:
    name: str
    summary: str
    # "float32" | "float16" | "int8" | "uint8": the dtype of the model's input.
    input_dtype: str
    needs_calibration: bool
    # What a device must offer to run it (DESIGN: capabilities are explicit).
    requires: frozenset[str] = frozenset()
    # Produced by `harness convert` today; the others arrive with later issues.
    available: bool = True


VARIANTS: dict[str, VariantSpec] = {
    spec.name: spec
    for spec in (
        VariantSpec("fp32", "float32 weights and activations", "float32", False),
        VariantSpec("fp16", "float16 weights, float32 compute", "float32", False),
        VariantSpec(
            "dynamic-int8",
            "int8 weights, activations quantised on the fly",
            "float32",
            False,
        ),
        VariantSpec(
            "int8", "full-integer int8, int8 input", "int8", True, frozenset({"int8"})
        ),
        VariantSpec(
            "uint8",
            "full-integer int8, uint8 input (Edge TPU ready)",
            "uint8",
            True,
            frozenset({"int8"}),
        ),
        VariantSpec(
            "int16x8",
            "int16 activations, int8 weights",
            "float32",
            True,
            frozenset({"int16x8"}),
        ),
        VariantSpec(
            "qat-int8",
            "quantization-aware-trained int8",
            "int8",
            True,
            frozenset({"int8"}),
        ),
        VariantSpec(
            "selective-int8",
            "int8 with sensitive layers kept in float",
            "float32",
            True,
            frozenset({"int8"}),
        ),
        VariantSpec(
            "mixed-int16",
            "int8 with the sensitive ops at int16 activations, int8 weights",
            "int8",
            True,
            # Both kinds of integer kernel: the int8 ops and the 16x8 ones.
            frozenset({"int8", "int16x8"}),
        ),
        VariantSpec(
            "edgetpu",
            "uint8 compiled by edgetpu_compiler",
            "uint8",
            True,
            frozenset({"edgetpu"}),
        ),
    )
}

DEFAULT_VARIANTS: tuple[str, ...] = (
    "fp32", "fp16", "dynamic-int8", "int8", "uint8", "int16x8", "qat-int8", "selective-int8",
)


def parse_variant_names(text: str | list[str], *, source: str = "--variants") -> tuple[str, ...]:
    """Validate a comma list (or list) of variant names; keep the given order."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text)]
    names = [n for n in names if n]
    if not names:
        raise InputError("no variant named", source=source, hint=f"use some of: {', '.join(VARIANTS)}")
    seen: list[str] = []
    for name in names:
        if name not in VARIANTS:
            close = difflib.get_close_matches(name, VARIANTS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known variants: {', '.join(VARIANTS)}"
            raise InputError(f"unknown variant {name!r}", source=source, hint=hint)
        if not VARIANTS[name].available:
            raise InputError(
                f"variant {name!r} is not produced by this version of the harness yet",
                source=source,
                hint=f"choose from: {', '.join(n for n, s in VARIANTS.items() if s.available)}",
            )
        if name not in seen:
            seen.append(name)
    return tuple(seen)
