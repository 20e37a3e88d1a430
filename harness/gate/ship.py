"""What to ship: per (device, model) of a run, the variant to deploy and why.

Pure decisions over stored records, no I/O. A variant is a candidate when it
was measured (status ok) and meets every bound that applies to it: the
budgets file's matching rules, judged by harness/gate/rules.py (the gate's
own checks, so the report and `harness gate` never disagree), or, without a
budgets file, the recipe's accepted mAP drop against fp32 on the same device.
Of the candidates, the one with the lowest p90 (the product's headline
percentile) ships, the next one is the runner-up, and every other variant is
listed with the reason it was ruled out. No candidate at all is an answer
too: nothing to ship, and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

from harness.gate.budgets import Budget, Match
from harness.gate.checks import Check
from harness.gate.rules import References, fp32_of, fp32_references, matching, rule_checks
from harness.results.record import Record

# COCO mAP on a few hundred images moves by a few thousandths between
# variants that detect the same boxes (the bundled demo's int8, uint8 and
# qat-int8 land within 0.003 of each other), so differences up to this are
# ties: within the evaluation's noise, and below what the selective-int8
# search tries to recover. The report's Pareto front uses the same constant.
MAP_TIE = 0.005

# The recipe's accepted drop when a run's selective-int8 record does not say
# (harness/model/recipe.py SelectiveOptions.max_map_drop's default).
DEFAULT_MAX_MAP_DROP = 0.005

Reason = Literal["too slow", "too inaccurate", "too big", "inconclusive", "does not load",
                 "cannot map to the Edge TPU", "slower"]
_SPEED_METRICS = ("p50_ms", "p90_ms", "p99_ms")
_ACCURACY_METRICS = ("min_map", "max_map_drop")
_SIZE_METRICS = ("peak_memory_mb", "size_mb")


@dataclass(frozen=True)
class RuledOut:
    variant: str
    reason: Reason
    detail: str  # e.g. "p90 7.2 ms > 5 ms"

    def text(self) -> str:
        return f"{self.variant} {self.reason} ({self.detail})"


@dataclass(frozen=True)
class ShipDecision:
    device: str
    model: str
    variant: str | None  # None: no variant meets every bound
    why: str  # "fastest that meets every bound (p90 3.1 ms, mAP 0.354, drop 0.5 pt)"
    runner_up: str | None
    runner_up_why: str
    ruled_out: tuple[RuledOut, ...]
    bounds: str  # where the bounds came from

    def headline(self) -> str:
        if self.variant is None:
            return f"nothing to ship on {self.device}: {self.why}"
        return f"ship {self.variant} on {self.device}: {self.why}"

    def sentence(self) -> str:
        """The whole answer on one line (results.json, the gate's messages)."""
        parts = [self.headline()]
        if self.runner_up:
            parts.append(f"runner-up {self.runner_up}")
        if self.ruled_out:
            parts.append("ruled out: " + ", ".join(r.text() for r in self.ruled_out))
        return "; ".join(parts)

    def verdict(self, variant: str) -> tuple[str, str]:
        """(ship | runner-up | ruled out, why) for one variant of the section."""
        if variant == self.variant:
            return "ship", self.why
        if variant == self.runner_up:
            return "runner-up", self.runner_up_why
        for r in self.ruled_out:
            if r.variant == variant:
                return "ruled out", f"{r.reason} ({r.detail})"
        return "ruled out", "not in this run"

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device, "model": self.model, "variant": self.variant, "why": self.why,
            "runner_up": self.runner_up, "runner_up_why": self.runner_up_why,
            "ruled_out": [{"variant": r.variant, "reason": r.reason, "detail": r.detail} for r in self.ruled_out],
            "bounds": self.bounds, "answer": self.sentence(),
        }


def recipe_default_budgets(records: Sequence[Record]) -> tuple[list[Budget], str]:
    """Without a budgets file: the recipe's max_map_drop, as the run's
    selective-int8 record of the model stored it (the drop the recipe
    accepts), against fp32 on the same device. `records` are one model's.
    Recipes declare no latency bound today, so latency only ranks."""
    drops = [
        float(r.quantization.selection["max_map_drop"]) for r in records
        if r.quantization and r.quantization.selection and r.quantization.selection.get("max_map_drop") is not None
    ]
    drop = drops[0] if drops else DEFAULT_MAX_MAP_DROP
    where = "the recipe's max_map_drop (variant_options.selective-int8)"
    budget = Budget(name="recipe defaults", match=Match(), where=where, max_map_drop=drop)
    text = (f"the recipe's defaults: mAP drop <= {_pt(drop)} pt against fp32 on the same device, no latency bound "
            "(pass a budgets file for yours)")
    return [budget], text


def decide_all(records: Sequence[Record], budgets: Sequence[Budget] | None = None) -> list[ShipDecision]:
    """One decision per (device, model) of the run, in record order.
    `budgets` None: each model's recipe defaults (recipe_default_budgets)."""
    refs = References(fp32=fp32_references(records))
    groups: dict[tuple[str, str], list[Record]] = {}
    for r in records:
        groups.setdefault((r.device.name, r.model.name), []).append(r)
    if budgets is not None:
        files = sorted({b.source for b in budgets if b.source})
        bounds = f"the budgets file {', '.join(files)}" if files else "the given budgets"
        return [decide(group, budgets, refs, bounds=bounds) for group in groups.values()]
    decisions = []
    for (_, model), group in groups.items():
        defaults, bounds = recipe_default_budgets([r for r in records if r.model.name == model])
        decisions.append(decide(group, defaults, refs, bounds=bounds))
    return decisions


def decide(records: Sequence[Record], budgets: Sequence[Budget], refs: References, *, bounds: str) -> ShipDecision:
    """The answer for one device and model (every record shares both)."""
    device, model = records[0].device.name, records[0].model.name
    ruled: list[RuledOut] = []
    fits: list[Record] = []
    for record in records:
        reasons = _why_not(record, budgets, refs)
        if reasons:
            ruled.append(_join(record.key[2], reasons))
        else:
            fits.append(record)
    fits.sort(key=lambda r: (_p90(r), r.key[2]))
    if not fits:
        why = "no variant meets every bound" if records else "no variant was measured"
        return ShipDecision(device, model, None, why, None, "", tuple(ruled), bounds)
    best, why = _pick(fits, fp32_of(refs, fits[0]))
    rest = [r for r in fits if r is not best]
    runner = rest[0] if rest else None
    runner_why = f"next that meets every bound ({_numbers(runner, fp32_of(refs, runner))})" if runner else ""
    for r in rest[1:]:
        ruled.append(RuledOut(r.key[2], "slower", f"p90 {_ms(_p90(r))} ms, meets every bound{_int16_note(r)}"))
    order = {r.key[2]: i for i, r in enumerate(records)}
    ruled.sort(key=lambda r: order[r.variant])
    return ShipDecision(device, model, best.key[2], why, runner.key[2] if runner else None, runner_why,
                        tuple(ruled), bounds)


def _pick(fits: Sequence[Record], fp32: Record | None) -> tuple[Record, str]:
    """The fastest candidate by p90, unless a candidate whose p90 interval
    overlaps the fastest's (no measurable speed difference) is more accurate
    beyond MAP_TIE: then speed is tied and accuracy decides. mAPs within
    MAP_TIE are tied, and the faster p90 decides."""
    fastest = fits[0]
    best = fastest
    for r in fits[1:]:
        if _latency_tied(fastest, r) and _map(r) is not None and _map(best) is not None and _map(r) > _map(best) + MAP_TIE:
            best = r
    if best is fastest:
        return best, f"fastest that meets every bound ({_numbers(best, fp32)})"
    gain = _pt(_map(best) - _map(fastest))  # type: ignore[operator]
    return best, (f"as fast as {fastest.key[2]} within the p90 intervals and {gain} pt more accurate "
                  f"({_numbers(best, fp32)})")


def _why_not(record: Record, budgets: Sequence[Budget], refs: References) -> list[tuple[Reason, str]]:
    if record.status != "ok":
        return [_not_loaded(record)]
    judged = [(b, c) for b in matching(budgets, record) for c in rule_checks(b, record, refs)]
    return [_reason(c, getattr(b, c.metric), record, refs) for b, c in judged if c.outcome in ("fail", "inconclusive")]


def _not_loaded(record: Record) -> tuple[Reason, str]:
    message = _short(record.error.message if record.error else record.status)
    kind = record.error.kind if record.error else ""
    if record.model.variant == "edgetpu" or "edgetpu" in kind or "edge tpu" in message.lower():
        return "cannot map to the Edge TPU", message
    runtime = record.device.runtime
    where = f"on {runtime.name} {runtime.version}: " if runtime else ""
    return "does not load", f"{where}{record.status}, {kind + ': ' if kind else ''}{message}"


def _reason(check: Check, bound: float, record: Record, refs: References) -> tuple[Reason, str]:
    """A failed or inconclusive check, said in the words of the answer."""
    if check.outcome == "inconclusive":
        return "inconclusive", f"{check.measured} vs {check.bound}: measure longer"
    if check.metric in _SPEED_METRICS and record.latency_ms is not None:
        name = check.metric.removesuffix("_ms")
        value = getattr(record.latency_ms, name)
        return "too slow", f"{name} {_ms(value)} ms > {bound:g} ms{_int16_note(record)}"
    if check.metric in _ACCURACY_METRICS and record.accuracy is not None:
        if check.metric == "min_map":
            return "too inaccurate", f"mAP {record.accuracy.map:.3f} < {bound:.3f}"
        fp32 = fp32_of(refs, record)
        if fp32 is not None and fp32.accuracy is not None:
            drop = fp32.accuracy.map - record.accuracy.map
            return "too inaccurate", f"drop {_pt(drop)} pt > {_pt(bound)} pt"
    if check.metric in _SIZE_METRICS:
        return "too big", f"{check.metric.removesuffix('_mb')} {check.measured} > {bound:g} MB"
    return "inconclusive", f"{check.metric}: {check.measured}"  # nothing to judge it on (no fp32, no mAP)


# Variants with int16 activations: no delegate here accelerates 16x8 ops
# (XNNPACK takes none; they run on the runtime's reference kernels), which
# is why such a variant is slower, and the answer says so.
_INT16_VARIANTS = frozenset({"int16x8", "mixed-int16"})


def _int16_note(record: Record) -> str:
    if record.model.variant not in _INT16_VARIANTS:
        return ""
    return "; its int16 ops run on the reference kernels, not XNNPACK"


def _join(variant: str, reasons: list[tuple[Reason, str]]) -> RuledOut:
    """One entry a variant: its first reason names it, the details of all."""
    return RuledOut(variant, reasons[0][0], "; ".join(
        detail if reason == reasons[0][0] else f"{reason}: {detail}" for reason, detail in reasons
    ))


def _latency_tied(a: Record, b: Record) -> bool:
    ca = a.latency_ms.p90_ci if a.latency_ms else None
    cb = b.latency_ms.p90_ci if b.latency_ms else None
    return ca is not None and cb is not None and ca[0] <= cb[1] and cb[0] <= ca[1]


def _numbers(record: Record, fp32: Record | None) -> str:
    parts = [f"p90 {_ms(_p90(record))} ms"]
    value = _map(record)
    if value is not None:
        parts.append(f"mAP {value:.3f}")
        reference = _map(fp32) if fp32 is not None and fp32.status == "ok" else None
        if reference is not None and record.model.variant != "fp32":
            parts.append(f"drop {_pt(reference - value)} pt")
    return ", ".join(parts)


def _p90(record: Record) -> float:
    return record.latency_ms.p90 if record.latency_ms else float("inf")


def _map(record: Record | None) -> float | None:
    return record.accuracy.map if record is not None and record.accuracy is not None else None


def _ms(value: float) -> str:
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def _pt(map_fraction: float) -> str:
    """mAP points (0.01 mAP), the unit the reports use for changes."""
    return f"{map_fraction * 100:.1f}"


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def ship_checks(budget: Budget, decisions: Sequence[ShipDecision], matched: Sequence[Record]) -> list[Check]:
    """`ship: VARIANT` on every (device, model) the rule matched: pass when the
    answer names that variant, fail (naming device, expected, actual and why)
    when it names another or nothing."""
    if budget.ship is None:
        return []
    pairs = {(r.device.name, r.model.name) for r in matched}
    out: list[Check] = []
    for d in decisions:
        if (d.device, d.model) not in pairs:
            continue
        bound = f"= {budget.ship}"
        measured = f"ship {d.variant}" if d.variant else "nothing to ship"
        if d.variant is not None and d.variant.split("@")[0] == budget.ship:  # any configuration of it
            message = f"budget {budget.name!r} passes on {d.device}/{d.model}: ship {bound}; {d.headline()}"
            out.append(Check(budget.name, d.device, d.model, budget.ship, "ship", "pass", measured, bound, message))
            continue
        verdict, why = d.verdict(budget.ship)
        message = (f"budget {budget.name!r} FAILS on {d.device}/{d.model}: expected to ship {budget.ship}, "
                   f"the answer is {d.variant or 'nothing'}; {budget.ship} is {verdict}: {why} — "
                   f"{d.sentence()} (bounds: {d.bounds})")
        out.append(Check(budget.name, d.device, d.model, budget.ship, "ship", "fail", measured, bound, message))
    return out
