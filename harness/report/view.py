"""What a report shows, computed once from stored records (no I/O, no rich).

Every renderer (terminal, Markdown, HTML) reads these rows, so the three
always agree. Ratios are against fp32 of the same model on the same device,
in the same run: the only comparison that survives noisy machines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from harness.fleet.profiles import FAMILIES, FAMILY_TITLES
from harness.model.variants import VARIANTS
from harness.report.label_findings import label_findings
from harness.results.record import Record

# Sections follow the profiles' family order; variants the order they are
# declared in (harness/model/variants.py): one list each, not a copy here.
FAMILY_ORDER = FAMILIES
VARIANT_ORDER = tuple(VARIANTS)
EMULATED_NOTE = "EMULATED (aarch64 under qemu-user on an x86 host): not a Raspberry Pi's latency"
DELEGATE_WORDS = {"cpu": "CPU kernels + default XNNPACK", "cpu-no-xnnpack": "CPU kernels, XNNPACK off",
                  "edgetpu": "Edge TPU (libedgetpu)"}

REFERENCE_VARIANT = "fp32"
# p50 more than 5% off fp32's is coloured slower / faster in every renderer.
TONE_MARGIN = 0.05


@dataclass(frozen=True)
class Row:
    record: Record
    is_reference: bool
    latency_ratio: float | None  # p50 / fp32's p50 on this device
    size_ratio: float | None
    map_drop: float | None  # fp32 mAP - this mAP (absolute, positive = worse)
    flags: tuple[str, ...]

    @property
    def variant(self) -> str:
        return self.record.model.variant

    @property
    def tone(self) -> str:
        """slower | faster | '' (within 5% of fp32, or no ratio)."""
        if self.latency_ratio is None:
            return ""
        if self.latency_ratio > 1 + TONE_MARGIN:
            return "slower"
        return "faster" if self.latency_ratio < 1 - TONE_MARGIN else ""


@dataclass(frozen=True)
class DeviceSection:
    device: str
    model: str
    runtime: str
    rows: tuple[Row, ...]
    family: str = "x86"
    emulated: bool = False
    delegates: str = "?"

    @property
    def group(self) -> str:
        """The family heading this section sits under (x86 / Pi / Coral)."""
        title = FAMILY_TITLES.get(self.family, self.family or "other")
        return f"{title} (emulated)" if self.emulated else title

    @property
    def heading(self) -> str:
        parts = [f"{self.model} on {self.device}", self.group]
        if self.emulated:
            parts.append(EMULATED_NOTE)
        parts.append(f"{self.runtime}, delegate: {self.delegates}")
        return " · ".join(parts)


def _order(record: Record) -> tuple[int, str]:
    v = record.model.variant
    return (VARIANT_ORDER.index(v) if v in VARIANT_ORDER else len(VARIANT_ORDER), v)


def flags_for(record: Record) -> tuple[str, ...]:
    flags: list[str] = []
    if record.status != "ok":
        flags.append(record.status)
    if record.device.emulated:
        flags.append("emulated")
    if record.env and record.env.throttled:
        reasons = ", ".join(r for r in record.env.throttle_reasons if "occurred" not in r)
        flags.append(f"throttled ({reasons})" if reasons else "throttled")
    if record.env and record.env.governor and record.env.expected_governor and record.env.governor != record.env.expected_governor:
        flags.append(f"governor {record.env.governor}")
    runtime = record.device.runtime
    if runtime and runtime.delegate and runtime.delegate != "cpu":
        flags.append(f"delegate {runtime.delegate}")
    if record.env and record.env.under_load:
        flags.append("under load")
    if record.latency_ms and not record.latency_ms.p90_reliable:
        flags.append("p90<64 samples")
    if record.latency_ms and not record.latency_ms.p99_reliable:
        flags.append("p99<662 samples")
    return tuple(flags)


def _family_rank(section: DeviceSection) -> tuple[int, bool]:
    family = section.family if section.family in FAMILY_ORDER else None
    return (FAMILY_ORDER.index(family) if family else len(FAMILY_ORDER), section.emulated)


def sections(records: Sequence[Record]) -> list[DeviceSection]:
    """One section per (device, model), grouped x86 / Pi / Coral (emulated
    devices after the real ones of their family), run order otherwise."""
    groups: dict[tuple[str, str], list[Record]] = {}
    for record in records:
        groups.setdefault((record.device.name, record.model.name), []).append(record)
    out: list[DeviceSection] = []
    for (device, model), group in groups.items():
        group.sort(key=_order)
        # A swept run compares each configuration's variants with its own fp32.
        refs = {_config(r): r for r in reversed(group) if r.model.variant == REFERENCE_VARIANT and r.status == "ok"}
        rows = tuple(_row(r, refs.get(_config(r))) for r in group)
        # A swept run may measure with several runtimes: the heading names each.
        runtime = ", ".join(dict.fromkeys(f"{r.device.runtime.name} {r.device.runtime.version}" for r in group if r.device.runtime)) or "?"
        delegates = sorted({r.device.runtime.delegate or "cpu" for r in group if r.device.runtime})
        first = group[0].device
        out.append(DeviceSection(
            device, model, runtime, rows, family=first.family or "x86", emulated=first.emulated,
            delegates=", ".join(DELEGATE_WORDS.get(d, d) for d in delegates) or "?",
        ))
    return sorted(out, key=_family_rank)


def _config(record: Record) -> str:
    return record.configuration.slug if record.configuration else ""


def _row(record: Record, ref: Record | None) -> Row:
    latency_ratio = size_ratio = map_drop = None
    if ref is not None and record.status == "ok":
        if record.latency_ms and ref.latency_ms and ref.latency_ms.p50 > 0:
            latency_ratio = record.latency_ms.p50 / ref.latency_ms.p50
        if record.model.size_bytes and ref.model.size_bytes:
            size_ratio = record.model.size_bytes / ref.model.size_bytes
        if record.accuracy and ref.accuracy:
            map_drop = ref.accuracy.map - record.accuracy.map
    return Row(record, record is ref, latency_ratio, size_ratio, map_drop, flags_for(record))


# Ratios this close to 1 (both ways) print as equal.
EQUAL_WITHIN = 0.005


def ratio_words(ratio: float | None) -> str:
    """A time ratio (this / reference) as a reader says it: 1.4 is '1.40x
    slower', 0.48 is '2.08x faster' (never '0.48x faster', which reads as
    slower or as 48%), about 1 is '1.00x'. The data keeps the raw ratio."""
    if ratio is None or not ratio > 0 or math.isinf(ratio):
        return "—"
    factor = ratio if ratio >= 1 else 1 / ratio
    if factor < 1 + EQUAL_WITHIN:
        return "1.00x"
    return (f"{factor:.2f}x " if factor < 10 else f"{factor:.1f}x ") + ("slower" if ratio > 1 else "faster")


def md_cell(text: str) -> str:
    """Text made safe for one Markdown table cell: no column breaks, no
    line breaks, no raw HTML (names are user input)."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" if value < 10 else f"{value:.2f}" if value < 100 else f"{value:.1f}"


def fmt_ci(ci: Sequence[float] | None) -> str:
    if not ci:
        return "n/a"
    return f"{fmt_ms(ci[0])}–{fmt_ms(ci[1])}"


def fmt_mb(size_bytes: int | None) -> str:
    return "—" if size_bytes is None else f"{size_bytes / 1e6:.2f}"


def fmt_map(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def fmt_drop(drop: float | None) -> str:
    """Change of mAP against fp32 in points (1 point = 0.01 mAP): negative
    means the variant lost accuracy."""
    if drop is None:
        return "—"
    change_pt = -drop * 100
    return "0.0 pt" if abs(change_pt) < 0.05 else f"{change_pt:+.1f} pt"


@dataclass(frozen=True)
class Cells:
    """One row as display strings, shared by every renderer."""

    variant: str
    status: str
    p50: str
    p90: str
    p90_ci: str
    p99: str
    vs_fp32: str
    peak_mb: str
    size_mb: str
    size_vs_fp32: str
    size_both: str
    map: str
    map50: str
    map_drop: str
    flags: str
    error: str
    runtime: str = "—"


def cells(row: Row) -> Cells:
    r = row.record
    lat = r.latency_ms
    return Cells(
        variant=config_label(r),
        status=r.status,
        p50=fmt_ms(lat.p50) if lat else "—",
        p90=fmt_ms(lat.p90) if lat else "—",
        p90_ci=fmt_ci(lat.p90_ci) if lat else "—",
        p99=fmt_ms(lat.p99) if lat else "—",
        vs_fp32="ref" if row.is_reference else ratio_words(row.latency_ratio),
        peak_mb=f"{r.memory_mb.peak:.1f}" if r.memory_mb and r.memory_mb.peak is not None else "—",
        size_mb=fmt_mb(r.model.size_bytes),
        size_vs_fp32="ref" if row.is_reference else "—" if row.size_ratio is None else f"{row.size_ratio:.2f}x",
        size_both=fmt_mb(r.model.size_bytes)
        + ("" if row.is_reference or row.size_ratio is None else f" ({row.size_ratio:.2f}x)"),
        map=fmt_map(r.accuracy.map) if r.accuracy else "—",
        map50=fmt_map(r.accuracy.map50) if r.accuracy else "—",
        map_drop="ref" if row.is_reference else fmt_drop(row.map_drop),
        flags=", ".join(row.flags),
        error=f"{r.error.kind}: {r.error.message}" if r.error else "",
        runtime=_runtime_cell(r),
    )


def config_label(record: Record) -> str:
    """The variant, and in a swept run its configuration, short enough for a
    table cell: `fp32 2t tflite-rt`, `int8 1t litert -xnn` (XNNPACK off)."""
    c = record.configuration
    if c is None:
        return record.model.variant
    parts = [record.model.variant, f"{c.threads}t" if c.threads is not None else "",
             RUNTIME_LABELS.get(c.runtime, c.runtime) if c.runtime else "", "-xnn" if c.xnnpack is False else ""]
    return " ".join(p for p in parts if p)


def _runtime_cell(record: Record) -> str:
    runtime = record.device.runtime
    if runtime is None:
        return "—"
    return f"{runtime.name} {runtime.version} / {runtime.delegate or 'cpu'}"


HEADERS: tuple[tuple[str, str], ...] = (
    ("variant", "variant"),
    ("p50", "p50 ms"),
    ("p90", "p90 ms"),
    ("p90_ci", "p90 95% CI"),
    ("p99", "p99 ms"),
    ("vs_fp32", "p50 vs fp32"),
    ("peak_mb", "peak RSS MiB"),
    ("size_mb", "size MB"),
    ("size_vs_fp32", "size vs fp32"),
    ("map", "mAP"),
    ("map50", "mAP50"),
    ("map_drop", "mAP vs fp32"),
    ("runtime", "runtime / delegate"),
    ("flags", "flags"),
)


# The terminal is narrow: fewer, shorter columns (the files carry them all).
TERMINAL_HEADERS: tuple[tuple[str, str], ...] = (
    ("variant", "variant"),
    ("p50", "p50 ms"),
    ("p90", "p90 ms"),
    ("p90_ci", "p90 CI95"),
    ("p99", "p99 ms"),
    ("vs_fp32", "p50 vs fp32"),
    ("peak_mb", "peak MiB"),
    ("size_mb", "MB"),
    ("size_vs_fp32", "size vs fp32"),
    ("size_both", "MB (vs fp32)"),
    ("map", "mAP"),
    ("map_drop", "ΔmAP"),
    ("flags", "flags"),
)


def findings(section: DeviceSection) -> list[str]:
    """Plain sentences for what a reader should not miss."""
    lines: list[str] = []
    # A swept run says it per configuration (each against its own fp32).
    for row in (r for name in ("int8", "uint8") for r in section.rows if r.variant == name):
        if row.latency_ratio is not None and row.latency_ratio > 1.05:
            runtime = row.record.device.runtime
            lines.append(
                f"{config_label(row.record)} is {row.latency_ratio:.2f}x slower than fp32 on {section.device} "
                f"({f'{runtime.name} {runtime.version}' if runtime else section.runtime}); on CPUs without int8 "
                "dot-product instructions this is expected, on ARM devices the ratio usually turns the other way."
            )
    if section.emulated:
        lines.append(
            f"{section.device} is emulated: its figures prove that the variants run on aarch64 and give the same "
            "detections; its latency and memory are qemu's, not a Raspberry Pi's, and are not comparable with real devices."
        )
    lines.extend(label_findings([row.record for row in section.rows]))
    for row in section.rows:
        if row.record.status != "ok" and row.record.error:
            lines.append(f"{row.variant} {row.record.status}: {row.record.error.message}")
        lines.extend(edgetpu_lines(row.record))
        env = row.record.env
        if env and env.governor and env.expected_governor and env.governor != env.expected_governor:
            lines.append(
                f"{row.variant}: CPU governor was {env.governor!r}, not {env.expected_governor!r}: the clock moves with "
                "load, so latency varies; set it with `echo performance | sudo tee "
                "/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor`."
            )
        if env and env.throttled:
            why = ", ".join(env.throttle_reasons) or "throttling reported"
            lines.append(f"{row.variant}: measured while throttled ({why}, from {env.throttling_source}): its latency is not the device's best.")
    return lines


def edgetpu_lines(record: Record) -> list[str]:
    report = record.edgetpu
    if report is None:
        return []
    what = "Edge TPU pre-check of the uint8 model (no compiler)" if report.source == "precheck" else (
        f"edgetpu_compiler {report.compiler_version or ''}".strip())
    total = report.ops_on_tpu + report.ops_on_cpu
    head = f"{record.model.variant}: {what}: {report.ops_on_tpu} of {total} ops on the Edge TPU, {report.ops_on_cpu} on the CPU"
    details = "; ".join(f"{op} x{count} ({reason})" for op, count, reason in report.cpu_ops)
    return [head + (f": {details}" if details else "") + "."]


# -- quantization section ----------------------------------------------------

RUNTIME_LABELS = {"ai-edge-litert": "litert", "tflite-runtime": "tflite-rt", "tensorflow": "tf.lite"}
# Below this int8 mAP loss (absolute) there is nothing worth recovering.
NEGLIGIBLE_INT8_DROP = 0.003


def load_word(status: str | None) -> str:
    """ok | FAILS | n/a (runtime not installed where it was checked) | — (never checked)."""
    if status is None:
        return "—"
    if status == "ok":
        return "ok"
    return "n/a" if status.startswith("unavailable") else "FAILS"


@dataclass(frozen=True)
class QuantCells:
    variant: str
    size_mb: str
    map: str
    map_drop: str
    loads: dict[str, str]  # runtime label -> ok | FAILS | n/a
    method: str


@dataclass(frozen=True)
class SensitiveLayer:
    rank: int
    layer: str
    op: str
    rmse_over_scale: str
    mean_error: str
    in_float: str
    tensor_name: str


WHOLE_MODEL_CAPTION = (
    "Where int8's error enters (the int8 model against the float one, tensor by tensor, on calibration images: "
    "error = RMSE / std of the float tensor, added = above its inputs' largest; what the search ranks by)"
)


@dataclass(frozen=True)
class SensitiveNode:
    rank: int
    layer: str
    op: str
    error: str
    added: str
    followers: int  # nodes that share its scale, kept float with it
    in_float: str
    node: str


def sensitive_nodes(section: DeviceSection) -> list[SensitiveNode]:
    """selective-int8's whole-model ranking (the error each node adds), when measured."""
    row = next((r for r in section.rows if r.variant == "selective-int8" and r.record.quantization), None)
    q = row.record.quantization if row else None
    if q is None or not q.selection:
        return []
    denied = set(q.denylist)
    return [
        SensitiveNode(i + 1, n["layer"], n["op_name"], f"{n['error']:.3f}", f"{n['added']:+.3f}", int(n.get("followers", 0)),
                      "yes" if n["node"] in denied else "no", n["node"])
        for i, n in enumerate(q.selection.get("top_nodes") or ())
    ]


CURVE_CAPTION = (
    "selective-int8's search, k layers kept in float (mAP on the calibration split; p50 from a short plan on this "
    "device, to compare the points with each other)"
)


@dataclass(frozen=True)
class CurvePoint:
    """One point of selective-int8's search curve on this section's device."""

    k: int  # layers kept in float
    layers: str  # their short names
    map: float  # on the calibration split
    size_bytes: int | None
    p50_ms: float | None  # on this device (a short plan: compare points with each other)

    @property
    def cells(self) -> tuple[str, str, str, str, str]:
        """k, layers, calibration mAP, size MB, p50 ms."""
        size = f"{self.size_bytes / 1e6:.2f}" if self.size_bytes else "—"
        return str(self.k), self.layers or "—", f"{self.map:.3f}", size, fmt_ms(self.p50_ms)


def selective_curve(section: DeviceSection) -> list[CurvePoint]:
    """selective-int8's curve (k = 0 and each list the search kept), with
    this device's latency."""
    row = next((r for r in section.rows if r.variant == "selective-int8" and r.record.quantization), None)
    selection = row.record.quantization.selection if row and row.record.quantization else None
    points = (selection or {}).get("curve") or ()
    return [
        CurvePoint(int(p["k"]), ", ".join(dict.fromkeys(_short_layer(n) for n in p.get("layers") or ())), float(p["map"]),
                   p.get("size_bytes"), (p.get("latency_p50_ms") or {}).get(section.device))
        for p in points
    ]


def _short_layer(node: str) -> str:
    parts = [p for p in node.split(";")[0].split("/") if p]
    return parts[-2] if len(parts) >= 2 else node


def quantization_rows(section: DeviceSection) -> list[QuantCells]:
    """One row per variant that carries conversion facts (all, since this release)."""
    out: list[QuantCells] = []
    seen: set[str] = set()
    for row in section.rows:
        q = row.record.quantization
        # A swept run has each variant in several configurations: the file's facts are one.
        if q is None or row.variant in seen:
            continue
        seen.add(row.variant)
        versions = q.runtime_versions
        loads = {
            f"{label} {versions[rt]}" if rt in versions else label: load_word(q.loadability.get(rt))
            for rt, label in RUNTIME_LABELS.items()
        }
        c = cells(row)
        out.append(QuantCells(row.variant, c.size_mb, c.map, c.map_drop, loads, q.method or ""))
    return out


def runtime_headers(rows: Sequence[QuantCells]) -> list[str]:
    headers: list[str] = []
    for row in rows:
        for key in row.loads:
            if key not in headers:
                headers.append(key)
    return headers


def sensitive_layers(section: DeviceSection) -> list[SensitiveLayer]:
    """selective-int8's most sensitive layers, most sensitive first."""
    row = next((r for r in section.rows if r.variant == "selective-int8" and r.record.quantization), None)
    if row is None:
        return []
    q = row.record.quantization
    assert q is not None
    denied = set(q.denylist)
    return [
        SensitiveLayer(
            rank=i + 1,
            layer=layer.layer,
            op=layer.op_name,
            rmse_over_scale=f"{layer.rmse_over_scale:.3f}",
            mean_error=f"{layer.mean_error:+.2e}",
            in_float="yes" if layer.tensor_name in denied or layer.op_name in denied else "no",
            tensor_name=layer.tensor_name,
        )
        for i, layer in enumerate(q.top_layers)
    ]


def quantization_findings(section: DeviceSection) -> list[str]:
    """What quantization cost on this device and what the workbench bought back."""
    by_variant = {row.variant: row for row in section.rows if row.record.status == "ok"}
    lines: list[str] = []
    int8 = by_variant.get("int8")
    int8_drop = int8.map_drop if int8 else None
    if int8_drop is not None and int8_drop < NEGLIGIBLE_INT8_DROP:
        lines.append(
            f"int8 lost under 0.3 points ({fmt_drop(int8_drop)} against fp32): "
            "nothing for selective quantization to recover."
        )
    selective = by_variant.get("selective-int8")
    if selective is not None and selective.map_drop is not None and int8_drop is not None:
        kept = len(selective.record.quantization.denylist) if selective.record.quantization else 0
        if int8_drop >= NEGLIGIBLE_INT8_DROP:
            lines.append(f"{_recovered('selective-int8', selective.map_drop, int8_drop, f'keeping {kept} layer(s) in float, ')}.")
        else:
            lines.append(f"selective-int8 kept {kept} layer(s) in float: {fmt_drop(selective.map_drop)} against fp32.")
    qat = by_variant.get("qat-int8")
    if qat is not None and qat.map_drop is not None and int8_drop is not None:
        if int8_drop >= NEGLIGIBLE_INT8_DROP:
            lines.append(f"{_recovered('qat-int8 (quantization-aware fine-tuning)', qat.map_drop, int8_drop)}.")
        else:
            lines.append(
                f"qat-int8 (quantization-aware fine-tuning) is {fmt_drop(qat.map_drop)} against fp32, "
                f"int8 (post-training) {fmt_drop(int8_drop)}."
            )
    mixed = by_variant.get("mixed-int16")
    if mixed is not None and mixed.map_drop is not None and int8_drop is not None and int8_drop >= NEGLIGIBLE_INT8_DROP:
        lines.append(_mixed_finding(mixed, selective, int8_drop))
    for row in section.rows:
        q = row.record.quantization
        if q is None:
            continue
        for runtime, status in q.loadability.items():
            if load_word(status) == "FAILS":
                version = q.runtime_versions.get(runtime, "")
                lines.append(f"{row.variant} does not load in {runtime} {version}: {status}".replace("  ", " "))
    return lines


def _recovered(name: str, drop: float, int8_drop: float, how: str = "") -> str:
    """"NAME recovered 62% of the 6.7 points int8 lost (HOW-2.6 pt against fp32)"."""
    share = (int8_drop - drop) / int8_drop
    return f"{name} recovered {share:.0%} of the {int8_drop * 100:.1f} points int8 lost ({how}{fmt_drop(drop)} against fp32)"


def _mixed_finding(mixed: Any, selective: Any, int8_drop: float) -> str:
    """mixed-int16 against selective-int8: the accuracy each buys back, and
    what its int16 ops (reference kernels: no delegate here takes them) cost."""
    text = _recovered("mixed-int16", mixed.map_drop, int8_drop)
    mine, theirs = mixed.record.latency_ms, selective.record.latency_ms if selective is not None else None
    if mine is not None and theirs is not None and selective.map_drop is not None:
        text += f"; selective-int8 {fmt_drop(selective.map_drop)}. p90 {mine.p90:.3g} ms against selective-int8's {theirs.p90:.3g} ms"
        # The tables' own margin: 1.19 against 1.16 ms is noise, not the kernels.
        text += (": slower, its int16 ops run on the reference kernels, not XNNPACK"
                 if mine.p90 > theirs.p90 * (1 + TONE_MARGIN)
                 else ": its int16 ops (reference kernels, not XNNPACK) cost nothing measurable here")
    return text + "."


def has_quantization(section: DeviceSection) -> bool:
    return any(row.record.quantization is not None for row in section.rows)


def short_commit(commit: str | None) -> str:
    """A full 40-hex SHA shortened the way git shows it; `git describe`
    output (tags, -dirty) kept whole. Tables only: json and csv keep it all."""
    if not commit:
        return "—"
    if len(commit) == 40 and all(c in "0123456789abcdef" for c in commit.lower()):
        return commit[:12]
    return commit
