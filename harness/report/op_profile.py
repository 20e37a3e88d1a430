"""The per-operator profile's block for a (device, model) section, as
display strings the terminal, Markdown and HTML renderers format alike.

One table per profiled variant (its top operators and its summary by op
type), one table of each variant against fp32 per op type, and the
unavailable ones said once per reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from harness.report.view import DeviceSection, edgetpu_lines
from harness.results.op_profile import OpProfile, by_type, top_ops, unavailable_reasons, versus_fp32

# Operators listed per variant; the JSON report and the record carry them all.
TOP_OPS = 10
TOP_HEADERS = ("#", "op type", "backend", "node", "tensor", "mean µs", "p50 µs", "share", "times called")
TYPE_HEADERS = ("op type", "backend", "ops", "mean µs / run", "share", "cdf", "times called")
VERSUS_HEADERS = ("op type", "fp32 µs", "variant µs", "variant / fp32")


@dataclass(frozen=True)
class VariantProfile:
    variant: str
    check: str  # the summed operators against the pair's unprofiled invoke p50
    top: tuple[tuple[str, ...], ...]  # rows of TOP_HEADERS
    types: tuple[tuple[str, ...], ...]  # rows of TYPE_HEADERS


@dataclass(frozen=True)
class VersusTable:
    variant: str
    rows: tuple[tuple[str, ...], ...]  # rows of VERSUS_HEADERS
    faster_or_slower: tuple[str, ...]  # the tone of each row: faster | slower | ''


@dataclass(frozen=True)
class OpProfileBlock:
    section: DeviceSection
    variants: tuple[VariantProfile, ...]
    versus: tuple[VersusTable, ...]
    unavailable: tuple[str, ...]  # one line per reason
    source: str
    # The Edge TPU compiler's op mapping, where a variant has one: what the
    # device's runtime cannot profile (a delegate), the compiler says.
    edgetpu: tuple[str, ...] = ()


def _us(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _pct(share: float | None) -> str:
    return "—" if share is None else f"{share * 100:.1f}%"


def _check(profile: OpProfile, invoke_p50_ms: float | None) -> str:
    summed_ms = (profile.per_run_sum_p50_us or 0) / 1000
    text = f"operators sum to {summed_ms:.2f} ms per run (p50 of {profile.runs} profiled runs"
    if profile.threads:
        text += f", {profile.threads} thread{'s' if profile.threads != 1 else ''}"
    text += ")"
    if invoke_p50_ms:
        text += f"; the unprofiled invoke p50 is {invoke_p50_ms:.2f} ms ({summed_ms / invoke_p50_ms:.2f}×)"
    return text


def _variant(variant: str, profile: OpProfile, invoke_p50_ms: float | None) -> VariantProfile:
    top = tuple(
        (str(i), o.op_type, o.backend, "—" if o.node is None else str(o.node), o.tensor or "—", _us(o.mean_us),
         _us(o.p50_us), _pct(o.share), str(o.times_called))
        for i, o in enumerate(top_ops(profile, TOP_OPS), 1)
    )
    types, cdf = [], 0.0
    for t in by_type(profile):
        cdf += t.share or 0.0
        types.append((t.op_type, ", ".join(t.backends), str(t.ops), _us(t.mean_us), _pct(t.share), _pct(cdf),
                      str(t.times_called)))
    return VariantProfile(variant, _check(profile, invoke_p50_ms), top, tuple(types))


def _versus(variant: str, profile: OpProfile, fp32: OpProfile) -> VersusTable:
    rows, tones = [], []
    for r in versus_fp32(profile, fp32):
        rows.append((r.op_type, _us(r.fp32_us), _us(r.variant_us), "—" if r.ratio is None else f"{r.ratio:.2f}×"))
        tones.append("" if r.ratio is None or 0.95 <= r.ratio <= 1.05 else "faster" if r.ratio < 1 else "slower")
    return VersusTable(variant, tuple(rows), tuple(tones))


def op_profile_block(section: DeviceSection) -> OpProfileBlock | None:
    """None where no pair of the section asked for a profile."""
    pairs = [(row.variant, row.record) for row in section.rows if row.record.op_profile is not None]
    if not pairs:
        return None
    ok = [(v, r) for v, r in pairs if r.op_profile is not None and r.op_profile.ok]
    variants = tuple(
        _variant(v, r.op_profile, r.latency_ms.p50 if r.latency_ms else None) for v, r in ok if r.op_profile
    )
    fp32 = next((r.op_profile for v, r in ok if v == "fp32"), None)
    versus = tuple(_versus(v, r.op_profile, fp32) for v, r in ok if fp32 is not None and v != "fp32" and r.op_profile)
    unavailable = tuple(unavailable_reasons([(v, r.op_profile) for v, r in pairs]))
    source = ok[0][1].op_profile.source if ok and ok[0][1].op_profile else ""
    edgetpu = tuple(line for row in section.rows for line in edgetpu_lines(row.record))
    return OpProfileBlock(section, variants, versus, unavailable, source, edgetpu)


def json_views(records: Sequence[Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Per (device, model, variant): the summary by op type and, for a
    variant with an fp32 on its device, the comparison per op type."""
    fp32 = {(r.device.name, r.model.name): r.op_profile for r in records
            if r.model.variant == "fp32" and r.op_profile is not None and r.op_profile.ok}
    out = {}
    for r in records:
        profile = r.op_profile
        if profile is None or not profile.ok:
            continue
        view: dict[str, Any] = {"by_type": [t.__dict__ | {"backends": list(t.backends)} for t in by_type(profile)]}
        reference = fp32.get((r.device.name, r.model.name))
        if reference is not None and r.model.variant != "fp32":
            view["versus_fp32"] = [v.__dict__ for v in versus_fp32(profile, reference)]
        out[r.key] = view
    return out
