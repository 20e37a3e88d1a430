"""The run report's structure, decided once.

`run_report()` lists what a report shows and in what order: a heading per
device family, per (device, model) section its blocks (results table,
what to ship, findings, charts, a swept run's scaling and runtime views, the in-run variant comparison,
quantization, the per-operator profile, trend), then
the run-wide comparisons and the closing note. The terminal, Markdown and
HTML renderers each implement `Formatter` and only format the blocks they
are handed; none of them decides what a section holds. A renderer that
cannot show a block (the terminal draws no charts) says so in its method.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Iterator, Mapping, Protocol, Sequence, TypeVar, Union

from harness.gate.ship import ShipDecision, decide_all
from harness.report.compare import ComparisonReport
from harness.report.configs import ConfigViews, config_views
from harness.report.context import ReportContext
from harness.report.history import Key
from harness.report.op_profile import OpProfileBlock, op_profile_block
from harness.report.view import (
    Cells,
    CurvePoint,
    DeviceSection,
    QuantCells,
    Row,
    SensitiveLayer,
    SensitiveNode,
    cells,
    findings,
    has_quantization,
    quantization_findings,
    quantization_rows,
    runtime_headers,
    sections,
    selective_curve,
    sensitive_layers,
    sensitive_nodes,
)
from harness.results.record import Record

T = TypeVar("T", covariant=True)

# Said under every report that has files (Markdown, HTML); `backticks` mark code.
NOTE = (
    "Latency: `invoke()` only, every sample kept; the p90 interval is the distribution-free 95% "
    "order-statistic bound. Ratios compare with fp32 on the same device in the same run. "
    "mAP is COCO mAP@[.5:.95] on the device's own detections; its change against fp32 is in points "
    "(0.01 mAP; negative = lost)."
)
MANN_WHITNEY = "Mann–Whitney on the raw samples"


@dataclass(frozen=True)
class GroupHeading:
    title: str  # a device family: x86 CPU, Raspberry Pi (emulated), ...


@dataclass(frozen=True)
class SectionHeading:
    section: DeviceSection


@dataclass(frozen=True)
class ResultsTable:
    section: DeviceSection
    rows: tuple[tuple[Row, Cells], ...]  # each row with its display strings
    # Every row ran on the one runtime and delegate the heading names: a
    # renderer short of width may leave the runtime column out.
    runtime_in_heading: bool = False


@dataclass(frozen=True)
class Ship:
    """What to ship on this device: the variant, the runner-up and why every
    other variant was ruled out (harness/gate/ship.py decides)."""

    section: DeviceSection
    decision: ShipDecision


@dataclass(frozen=True)
class Findings:
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Charts:
    section: DeviceSection
    samples_ms: Mapping[Key, tuple[float, ...]]  # sorted raw samples, where the store has them


@dataclass(frozen=True)
class Comparison:
    heading: str
    report: ComparisonReport  # only the rows this place shows
    run_wide: bool  # after every section (device vs device), not inside one


@dataclass(frozen=True)
class Quantization:
    section: DeviceSection
    rows: tuple[QuantCells, ...]
    runtimes: tuple[str, ...]  # the load-check columns
    findings: tuple[str, ...]
    layers: tuple[SensitiveLayer, ...]  # most sensitive first
    curve: tuple[CurvePoint, ...] = ()
    nodes: tuple[SensitiveNode, ...] = ()  # the whole-model ranking, most harmful first  # selective-int8's search: k layers in float -> mAP, size, latency here


@dataclass(frozen=True)
class TrendPoint:
    run_id: str
    created_at: str
    commit: str | None
    value: float | None  # None: the run has the pair but did not measure it


@dataclass(frozen=True)
class TrendLine:
    variant: str
    points: tuple[TrendPoint, ...]  # oldest first


@dataclass(frozen=True)
class TrendBlock:
    section: DeviceSection
    metric: str  # a history metric name (p50)
    runs: tuple[str, ...]  # every run one of the lines is in, oldest first
    lines: tuple[TrendLine, ...]


@dataclass(frozen=True)
class Note:
    text: str


@dataclass(frozen=True)
class Configurations:
    """A swept run's scaling and runtime views of one (device, model)
    (harness/report/configs.py); only when it measured more than one
    configuration of a pair."""

    section: DeviceSection
    views: ConfigViews


Block = Union[
    GroupHeading, SectionHeading, ResultsTable, Ship, Findings, Charts, Comparison, Quantization, TrendBlock, Note,
    Configurations, OpProfileBlock,
]


class Formatter(Protocol[T]):
    """One method per block kind: what a renderer must say about each."""

    def group(self, block: GroupHeading) -> T: ...
    def section(self, block: SectionHeading) -> T: ...
    def results(self, block: ResultsTable) -> T: ...
    def ship(self, block: Ship) -> T: ...
    def findings(self, block: Findings) -> T: ...
    def charts(self, block: Charts) -> T: ...
    def comparison(self, block: Comparison) -> T: ...
    def quantization(self, block: Quantization) -> T: ...
    def trend(self, block: TrendBlock) -> T: ...
    def op_profile(self, block: OpProfileBlock) -> T: ...
    def note(self, block: Note) -> T: ...
    def configurations(self, block: Configurations) -> T: ...


@dataclass(frozen=True)
class SectionView:
    section: DeviceSection
    blocks: tuple[Block, ...]  # the results table first


@dataclass(frozen=True)
class RunReport:
    title: str
    variants: tuple[str, ...]  # every variant shown, in report order (the HTML toggles)
    sections: tuple[SectionView, ...]  # grouped by family, in order
    comparisons: tuple[Comparison, ...]  # run-wide
    note: Note

    def blocks(self) -> Iterator[Block]:
        group = None
        for view in self.sections:
            if view.section.group != group:
                group = view.section.group
                yield GroupHeading(group)
            yield SectionHeading(view.section)
            yield from view.blocks
        yield from self.comparisons
        yield self.note


# Which Formatter method says each block (tests/unit/test_reports.py checks
# that every block kind has one and every renderer implements it).
FORMATTER_METHODS: dict[type, str] = {
    GroupHeading: "group", SectionHeading: "section", ResultsTable: "results", Ship: "ship", Findings: "findings",
    Charts: "charts", Comparison: "comparison", Quantization: "quantization", TrendBlock: "trend", Note: "note",
    OpProfileBlock: "op_profile", Configurations: "configurations",
}


def format_block(block: Block, formatter: Formatter[T]) -> T:
    method: Callable[[Block], T] = getattr(formatter, FORMATTER_METHODS[type(block)])
    return method(block)


def render(report: RunReport, formatter: Formatter[T]) -> list[T]:
    """Every block of the report in order, as the formatter says it."""
    return [format_block(block, formatter) for block in report.blocks()]


def run_report(records: Sequence[Record], *, title: str, context: ReportContext | None = None) -> RunReport:
    context = context or ReportContext()
    ship = {(d.device, d.model): d for d in decide_all(records, context.budgets)}
    views = tuple(
        SectionView(s, tuple(_section_blocks(s, context, ship.get((s.device, s.model))))) for s in sections(records)
    )
    variants = tuple(dict.fromkeys(row.variant for view in views for row in view.section.rows))
    run_wide = tuple(
        Comparison(f"Device vs device (same variant, {MANN_WHITNEY})", report, run_wide=True)
        for report in context.comparisons if report.kind == "devices" and report.rows
    )
    return RunReport(title, variants, views, run_wide, Note(NOTE))


def _section_blocks(section: DeviceSection, context: ReportContext, ship: ShipDecision | None) -> Iterator[Block]:
    rows = tuple((row, cells(row)) for row in section.rows)
    runtimes = {c.runtime for _, c in rows}
    yield ResultsTable(section, rows, runtime_in_heading=len(runtimes) == 1 and "—" not in runtimes)
    if ship is not None:
        yield Ship(section, ship)
    notes = findings(section)
    if notes:
        yield Findings(tuple(notes))
    yield Charts(section, context.samples_ms)
    views = config_views([row.record for row in section.rows])
    if views:
        yield Configurations(section, views)
    comparison = _variant_comparison(section, context)
    if comparison is not None:
        yield comparison
    if has_quantization(section):
        quant = quantization_rows(section)
        yield Quantization(section, tuple(quant), tuple(runtime_headers(quant)), tuple(quantization_findings(section)),
                           tuple(sensitive_layers(section)), tuple(selective_curve(section)),
                           tuple(sensitive_nodes(section)))
    profile = op_profile_block(section)
    if profile is not None:
        yield profile
    trend = _trend(section, context)
    if trend is not None:
        yield trend


def _variant_comparison(section: DeviceSection, context: ReportContext) -> Comparison | None:
    """This section's rows of the run's variant-vs-reference comparison."""
    for report in context.comparisons:
        if report.kind == "variants":
            rows = tuple(r for r in report.rows if (r.device, r.model) == (section.device, section.model))
            if not rows:
                return None
            heading = f"Each variant vs {report.baseline} on {section.device} ({MANN_WHITNEY})"
            return Comparison(heading, replace(report, rows=rows), run_wide=False)
    return None


def _trend(section: DeviceSection, context: ReportContext) -> TrendBlock | None:
    """A metric (p50) of each variant in this run and the earlier runs that had it."""
    mine = [t for t in context.trends if t.key[:2] == (section.device, section.model)]
    if not mine:
        return None
    lines = tuple(
        TrendLine(t.key[2], tuple(TrendPoint(p.run_id, p.created_at, p.source_commit, p.value) for p in t.points))
        for t in mine
    )
    when = {p.run_id: p.created_at for line in lines for p in line.points}
    runs = tuple(sorted(when, key=lambda run_id: (when[run_id], run_id)))
    return TrendBlock(section, mine[0].metric, runs, lines)
