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
    def from_reply(cls, reply: dict[str, Any] | None) -> "OpProfile | None":
        """From the agent's `op_profile` reply field (None: not asked for)."""
        if not reply:
            return None
        if reply.get("status") != "ok":
            return cls(status="unavailable", reason=str(reply.get("reason") or "no reason given"))
        sums = reply.get("per_run_sum_us") or {}
        return cls(
            status="ok",
            runs=int(reply["runs"]),
            per_run_sum_p50_us=float(sums["p50"]),
            per_run_sum_mean_us=float(sums["mean"]),
            wall_p50_us=(reply.get("wall_us") or {}).get("p50"),
            threads=reply.get("threads"),
            ops=tuple(
                OpTime(op_type=o["op_type"], backend=o["backend"], mean_us=float(o["mean_us"]), p50_us=float(o["p50_us"]),
                       share=o.get("share"), times_called=int(o["times_called"]), node=o.get("node"),
                       delegate_index=o.get("delegate_index"), tensor=o.get("tensor"))
                for o in reply.get("ops") or ()
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
