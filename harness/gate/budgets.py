"""The budgets file (DESIGN.md "Budgets"): rules that bound what a pair may cost.

Parsed once, strictly, into frozen :class:`Budget` objects; the gate
(harness/gate/) turns them into checks. Every problem names the file, the rule
(by position and name) and the field, because a misspelt bound that is
silently ignored is a release gate that never fails.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from harness.config import Fields, load_yaml_mapping
from harness.errors import InputError
from harness.fleet.profiles import RUNTIMES
from harness.model.variants import VARIANTS
from harness.results.record import Record

# Bounds a rule may set, in the order checks are reported. The unit is in
# the name, as in the file.
LATENCY_BOUNDS = ("p50_ms", "p90_ms", "p99_ms")
BOUND_KEYS = (*LATENCY_BOUNDS, "peak_memory_mb", "size_mb", "min_map", "max_map_drop", "max_regression_pct", "max_step_pct")
# How many of a series' latest runs `max_step_pct` looks at for a step.
DEFAULT_STEP_RUNS = 10
# `ship: VARIANT` asserts the "what to ship" answer (harness/gate/ship.py)
# for every device and model the rule matches.
RULE_KEYS = ("name", "match", "description", *BOUND_KEYS, "step_runs", "ship")
MATCH_KEYS = ("model", "variant", "device", "tags", "threads", "runtime", "xnnpack")


@dataclass(frozen=True)
class Match:
    """Which pairs a rule applies to. Each of model/variant/device is one or
    more shell-style globs (any may match); every listed tag must be on the
    device (tags come from the inventory and are stored in each record).
    `threads`, `runtime` and `xnnpack` pick configurations: the threads a
    pair ran with, the runtime that measured it, XNNPACK on or off."""

    model: tuple[str, ...] = ("*",)
    variant: tuple[str, ...] = ("*",)
    device: tuple[str, ...] = ("*",)
    tags: tuple[str, ...] = ()
    threads: tuple[int, ...] = ()
    runtime: tuple[str, ...] = ()
    xnnpack: bool | None = None

    def matches_record(self, record: Record) -> bool:
        """The rule applies to this stored pair (its variant, not its slot:
        `variant: int8` matches int8 in every configuration)."""
        runtime = record.device.runtime.name if record.device.runtime else None
        xnnpack = record.configuration.xnnpack if record.configuration else None
        return (
            self.matches(record.device.name, record.model.name, record.model.variant, record.device.tags)
            and (not self.threads or record.threads in self.threads)
            and (not self.runtime or runtime in self.runtime)
            # Not switched off is on: the runtimes apply XNNPACK by default.
            and (self.xnnpack is None or (xnnpack is not False) == self.xnnpack)
        )

    def matches(self, device: str, model: str, variant: str, device_tags: tuple[str, ...] = ()) -> bool:
        return (
            _any_glob(self.model, model)
            and _any_glob(self.variant, variant)
            and _any_glob(self.device, device)
            and all(tag in device_tags for tag in self.tags)
        )

    def describe(self) -> str:
        parts = [
            f"{key}={'|'.join(getattr(self, key))}" for key in ("model", "variant", "device") if getattr(self, key) != ("*",)
        ]
        if self.tags:
            parts.append(f"tags={','.join(self.tags)}")
        if self.threads:
            parts.append(f"threads={'|'.join(map(str, self.threads))}")
        if self.runtime:
            parts.append(f"runtime={'|'.join(self.runtime)}")
        if self.xnnpack is not None:
            parts.append(f"xnnpack={'on' if self.xnnpack else 'off'}")
        return " ".join(parts) or "every pair"


def _any_glob(patterns: tuple[str, ...], name: str) -> bool:
    # Case-sensitive: variant and device names are identifiers, and `Int8`
    # matching `int8` on one OS but not another would be a surprise.
    return any(fnmatchcase(name, pattern) for pattern in patterns)


@dataclass(frozen=True)
class Budget:
    name: str
    match: Match
    where: str  # "FILE, budgets[N] (name)": for messages
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    peak_memory_mb: float | None = None
    size_mb: float | None = None
    min_map: float | None = None  # a fraction in [0, 1], like the records
    max_map_drop: float | None = None  # absolute mAP against fp32 on the same device
    max_regression_pct: float | None = None  # against --baseline
    max_step_pct: float | None = None  # a p90 step up in the stored history (harness/results/changes.py)
    step_runs: int = DEFAULT_STEP_RUNS  # ... whose first run after is among the series' last this many
    description: str | None = None
    source: str = ""  # the budgets file
    ship: str | None = None  # the variant the "what to ship" answer must name on matching devices

    def bounds(self) -> dict[str, float]:
        return {key: getattr(self, key) for key in BOUND_KEYS if getattr(self, key) is not None}


def load_budgets(path: Path) -> list[Budget]:
    path = Path(path)
    data = load_yaml_mapping(path, what="budgets file")
    top = Fields(data, source=path, place="")
    top.reject_unknown(["budgets"])
    rules = data.get("budgets")
    if not isinstance(rules, list) or not rules:
        raise InputError(
            "expected a non-empty list under 'budgets:'",
            source=path,
            place="budgets",
            hint="add rules such as `- {name: int8-p90, match: {variant: int8}, p90_ms: 45}` (README, Budgets)",
        )
    budgets: list[Budget] = []
    seen: dict[str, str] = {}
    for index, raw in enumerate(rules):
        budget = _rule(raw, path, index)
        if budget.name in seen:
            raise InputError(
                f"rule name {budget.name!r} is used twice (first at {seen[budget.name]})",
                source=path,
                place=f"budgets[{index}].name",
                hint="give every rule its own name: it names the rule in gate messages and JUnit test cases",
            )
        seen[budget.name] = f"budgets[{index}]"
        budgets.append(budget)
    return budgets


def _rule(raw: Any, path: Path, index: int) -> Budget:
    place = f"budgets[{index}]"
    f = Fields(raw, source=path, place=place)
    name = f.str("name", required=True)
    assert name is not None
    if not name.strip():
        raise InputError("empty rule name", source=path, place=f"{place}.name", hint="name the rule, e.g. int8-on-pis")
    f.place = f"{place} ({name})"
    f.reject_unknown(RULE_KEYS)
    values: dict[str, float | None] = {}
    for key in BOUND_KEYS:
        value = f.float(key)
        if value is not None and not value == value:  # NaN is never a bound
            raise f._fail(key, "a number", value)
        values[key] = value
    _check_ranges(values, f)
    ship = _ship(f)
    if ship is None and not any(v is not None for v in values.values()):
        raise InputError(
            "the rule bounds nothing",
            source=path,
            place=f.place,
            hint=f"set at least one of: {', '.join(BOUND_KEYS)}, or ship: VARIANT",
        )
    match = _match(f)
    if ship is not None and match.variant != ("*",):
        raise InputError(
            "a rule with ship: matches devices and models, not variants",
            source=path,
            place=f"{f.place}.match.variant",
            hint=f"drop match.variant: `ship: {ship}` already names the variant the answer must be",
        )
    return Budget(
        name=name,
        match=match,
        where=f"{path}, {f.place}",
        description=f.str("description"),
        source=str(path),
        ship=ship,
        step_runs=f.int("step_runs", DEFAULT_STEP_RUNS, minimum=1) or DEFAULT_STEP_RUNS,
        **values,  # type: ignore[arg-type]
    )


def _ship(f: Fields) -> str | None:
    value = f.str("ship")
    if value is None or value in VARIANTS:
        return value
    close = difflib.get_close_matches(value, list(VARIANTS), n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"variant names: {', '.join(VARIANTS)}"
    raise InputError(f"unknown variant {value!r} in ship:", source=f.source, place=f._where("ship"), hint=hint)


def _check_ranges(values: dict[str, float | None], f: Fields) -> None:
    for key, value in values.items():
        if value is None:
            continue
        if key in ("min_map", "max_map_drop"):
            if not 0.0 <= value <= 1.0:
                hint = f"mAP is a fraction in [0, 1] as in the results (write {value / 100:g}, not {value:g})" if 1 < value <= 100 else "mAP is a fraction in [0, 1]"
                raise InputError(f"{key} must be between 0 and 1, got {value:g}", source=f.source, place=f._where(key), hint=hint)
        elif key in ("max_regression_pct", "max_step_pct"):
            if value < 0:
                raise InputError(f"{key} must be >= 0, got {value:g}", source=f.source, place=f._where(key), hint="a percentage, e.g. 5 for +5%")
        elif value <= 0:
            raise InputError(
                f"{key} must be a positive number, got {value:g}", source=f.source, place=f._where(key), hint="bounds are upper limits in the unit of the name"
            )


def _match(f: Fields) -> Match:
    if "match" not in f.data or f.data["match"] is None:
        return Match()
    m = f.sub("match")
    m.reject_unknown(MATCH_KEYS)
    return Match(
        model=_globs(m, "model"),
        variant=_globs(m, "variant"),
        device=_globs(m, "device"),
        tags=m.str_list("tags"),
        threads=_threads(m),
        runtime=_runtimes(m),
        xnnpack=_xnnpack(m),
    )


def _threads(m: Fields) -> tuple[int, ...]:
    value = m.data.get("threads")
    values = value if isinstance(value, list) else [value] if value is not None else []
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values) or value == []:
        raise m._fail("threads", "a thread count or a list of them", value)
    return tuple(values)


def _runtimes(m: Fields) -> tuple[str, ...]:
    value = m.data.get("runtime")
    names = (value,) if isinstance(value, str) else _globs(m, "runtime") if value is not None else ()
    for name in names:
        if name not in RUNTIMES:
            close = difflib.get_close_matches(name, RUNTIMES, n=1)
            raise InputError(f"unknown runtime {name!r}", source=m.source, place=m._where("runtime"),
                             hint=f"did you mean {close[0]!r}?" if close else f"runtimes: {', '.join(RUNTIMES)}")
    return names


def _xnnpack(m: Fields) -> bool | None:
    value = m.data.get("xnnpack")
    # YAML reads a bare on/off as a boolean (1.1) or a string (1.2): take both.
    words = {"on": True, "off": False, True: True, False: False}
    if value is None:
        return None
    if not isinstance(value, (str, bool)) or value not in words:
        raise m._fail("xnnpack", "on or off", value)
    return words[value]


def _globs(m: Fields, key: str) -> tuple[str, ...]:
    value = m.data.get(key)
    if value is None:
        return ("*",)
    if isinstance(value, str) and value:
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise m._fail(key, "a name or glob, or a list of them", value)

