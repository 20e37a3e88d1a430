"""The report's sentences about a run's label map: where the class-to-
category map came from when the recipe named no labels, and a warning when
a class's box-matched detections mostly land on another category than its
label's (a permuted or off-by-one label map scores low without saying why)."""

from __future__ import annotations

from typing import Sequence

from harness.results.record import Accuracy, ClassLanding, Record


def label_findings(records: Sequence[Record]) -> list[str]:
    """One sentence per distinct note or mapping, naming the variants it holds for."""
    by_text: dict[str, list[str]] = {}
    for record in records:
        accuracy = record.accuracy
        if accuracy is None:
            continue
        for text in _sentences(accuracy):
            by_text.setdefault(text, []).append(record.model.variant)
    return [f"{', '.join(variants)}: {text}" for text, variants in by_text.items()]


def _sentences(accuracy: Accuracy) -> list[str]:
    out = [f"{accuracy.class_map_note}."] if accuracy.class_map_note else []
    wrong = [c for c in accuracy.class_landings if c.mismatched]
    if wrong:
        out.append(_warning(wrong, accuracy.class_landings))
    return out


def _warning(wrong: list[ClassLanding], every: Sequence[ClassLanding]) -> str:
    what = "; ".join(
        f"class {c.class_index} is labelled {c.expected!r} but {c.share:.0%} of its {c.matched} box-matched detections are {c.landed!r}"
        for c in wrong
    )
    seen = ", ".join(f"{c.class_index} -> {c.landed}" for c in every)
    why = "an off-by-one label map (a background entry too many or too few?)" if _shifted(wrong, every) else "a permuted label map"
    return (f"LABEL MAP WARNING: {what}. This looks like {why}: the mapping the detections show is {seen}; "
            "put the labels in the model's class order.")


def _shifted(wrong: list[ClassLanding], every: Sequence[ClassLanding]) -> bool:
    """True when every wrong class lands on the label one place over, all the same way."""
    labels = {c.class_index: c.expected for c in every}
    return any(all(labels.get(c.class_index + step) == c.landed for c in wrong) for step in (-1, 1))
