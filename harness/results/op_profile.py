"""A pair's per-operator profile (issue 20): what the device's own runtime
reported, operator by operator, in a profiled pass after the timed samples.

The agent (devices/agent.py, "Per-operator profile") reads the runtime's
profiler events; this module holds them in the record and derives the
report's views: the top operators, the summary by op type, and a variant
against fp32 per op type. docs/per-op-profile.md says where the events
come from and what they mean.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, Sequence

Status = Literal["ok", "unavailable"]
# Said once per report where no pair has a profile (and per pair in JSON).
UNAVAILABLE = "unavailable"
# XNNPACK names carry the layout and data type: `Convolution (NHWC, F32)
# IGEMM` and `Convolution (NHWC, QC8) IGEMM` are one op type across variants.
_TYPE_DETAIL = re.compile(r"\s*\([^)]*\)")


@dataclass(frozen=True)
class OpTime:
    """One operator of the profiled runs."""

    op_type: str  # as the backend names it (XNNPACK operator, or the TFLite builtin)
    backend: str  # XNNPACK | CPU kernels (a TFLite builtin kernel)
    mean_us: float  # per run
    p50_us: float  # per run
    share: float | None  # of the mean summed run
    times_called: int
    node: int | None = None  # TFLite node index (CPU kernels); XNNPACK fuses nodes, so it has none
    delegate_index: int | None = None  # the operator's index inside the delegate
    tensor: str | None = None  # the node's first output tensor, where there is a node

    @property
    def family(self) -> str:
        return op_family(self.op_type)


@dataclass(frozen=True)
class OpProfile:
    status: Status
    reason: str | None = None  # why unavailable
    runs: int | None = None
    per_run_sum_p50_us: float | None = None  # median over runs of the summed operator times
    per_run_sum_mean_us: float | None = None
    wall_p50_us: float | None = None  # around each profiled run (profiler on)
    threads: int | None = None
    ops: tuple[OpTime, ...] = ()  # in run order
    source: str = "LiteRT CompiledModel profiler (libLiteRt.so)"

    @classmethod
    def from_replies(cls, replies: Sequence[dict[str, Any]]) -> "OpProfile | None":
        """From the agent's `op_profile` reply fields, one per round (none:
        not asked for). Each round profiles right after its timed samples, so
        the runs together span the time the samples span; the statistics
        are over all of them."""
        from harness.measure.stats import quantile  # it imports the record, which imports this module

        if not replies:
            return None
        refused = [r for r in replies if r.get("status") != "ok"]
        if refused:
            return cls(status="unavailable", reason=str(refused[0].get("reason") or "no reason given"))
        merged: dict[tuple[Any, ...], dict[str, Any]] = {}
        sums: list[int] = []
        for reply in replies:
            runs = int(reply["runs"])
            for op in reply["ops"]:
                key = (op["backend"], op.get("node"), op.get("delegate_index"), op["op_type"])
                entry = merged.setdefault(key, {**op, "times_called": 0, "runs_us": [0] * len(sums)})
                entry["times_called"] += int(op["times_called"])
                entry["runs_us"] += [int(v) for v in op["runs_us"]]
            sums += [0] * runs
            for entry in merged.values():
                entry["runs_us"] += [0] * (len(sums) - len(entry["runs_us"]))  # an operator this round never ran
            for entry in merged.values():
                for i in range(len(sums) - runs, len(sums)):
                    sums[i] += entry["runs_us"][i]
        total_mean = sum(sums) / len(sums)
        walls = sorted(float(r["wall_us"]["p50"]) for r in replies if r.get("wall_us"))
        return cls(
            status="ok",
            runs=len(sums),
            per_run_sum_p50_us=quantile(sorted(sums), 0.5),
            per_run_sum_mean_us=round(total_mean, 2),
            wall_p50_us=quantile(walls, 0.5) if walls else None,
            threads=replies[0].get("threads"),
            ops=tuple(
                OpTime(op_type=e["op_type"], backend=e["backend"], mean_us=round(sum(e["runs_us"]) / len(sums), 2),
                       p50_us=quantile(sorted(e["runs_us"]), 0.5),
                       share=round(sum(e["runs_us"]) / len(sums) / total_mean, 5) if total_mean else None,
                       times_called=e["times_called"], node=e.get("node"), delegate_index=e.get("delegate_index"),
                       tensor=e.get("tensor"))
                for e in merged.values()
            ),
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "OpProfile":
        data = dict(data)
        data["ops"] = tuple(OpTime(**o) for o in data.get("ops") or ())
        return cls(**data)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def op_family(op_type: str) -> str:
    """`Convolution (NHWC, QC8) IGEMM` -> `Convolution IGEMM`."""
    return " ".join(_TYPE_DETAIL.sub("", op_type).split())


@dataclass(frozen=True)
class TypeSummary:
    """One op type's share of a run (the `summary by node type`)."""

    op_type: str
    backends: tuple[str, ...]
    ops: int  # operators of this type in the model
    mean_us: float  # per run, summed over its operators
    share: float | None
    times_called: int


def top_ops(profile: OpProfile, n: int = 10) -> list[OpTime]:
    return sorted(profile.ops, key=lambda o: -o.mean_us)[:n]


def by_type(profile: OpProfile) -> list[TypeSummary]:
    """Op types, most time first."""
    groups: dict[str, list[OpTime]] = {}
    for op in profile.ops:
        groups.setdefault(op.family, []).append(op)
    total = sum(o.mean_us for o in profile.ops)
    rows = [
        TypeSummary(
            op_type=family,
            backends=tuple(dict.fromkeys(o.backend for o in ops)),
            ops=len(ops),
            mean_us=round(sum(o.mean_us for o in ops), 2),
            share=round(sum(o.mean_us for o in ops) / total, 5) if total else None,
            times_called=sum(o.times_called for o in ops),
        )
        for family, ops in groups.items()
    ]
    return sorted(rows, key=lambda r: -r.mean_us)


@dataclass(frozen=True)
class TypeVersus:
    """One op type in a variant against fp32 on the same device."""

    op_type: str
    fp32_us: float | None  # None: fp32 has no operator of this type
    variant_us: float | None
    ratio: float | None  # variant / fp32 (below 1: the variant is faster)


def versus_fp32(variant: OpProfile, fp32: OpProfile) -> list[TypeVersus]:
    """Which op types the variant made faster or slower, most fp32 time first."""
    mine = {r.op_type: r.mean_us for r in by_type(variant)}
    theirs = {r.op_type: r.mean_us for r in by_type(fp32)}
    rows = []
    for op_type in [*theirs, *(t for t in mine if t not in theirs)]:
        a, b = theirs.get(op_type), mine.get(op_type)
        # Below a microsecond a ratio says nothing (the profiler counts whole µs).
        ratio = round(b / a, 3) if a is not None and a >= 1 and b is not None else None
        rows.append(TypeVersus(op_type, a, b, ratio))
    return rows


def unavailable_reasons(profiles: Sequence[tuple[str, OpProfile | None]]) -> list[str]:
    """Each distinct reason once, naming the variants it covers."""
    reasons: dict[str, list[str]] = {}
    for variant, profile in profiles:
        if profile is not None and not profile.ok:
            reasons.setdefault(profile.reason or "no reason given", []).append(variant)
    return [f"per-operator profile unavailable for {', '.join(v)}: {why}" for why, v in reasons.items()]
