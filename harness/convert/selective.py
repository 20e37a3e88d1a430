"""Selective int8 (`selective-int8`): which layers to keep in float, and
the search's whole curve.

Two sensitivity measures are kept. The layer-wise one comes from TFLite's
QuantizationDebugger (or the LiteRT Quantizer's validate()): the RMSE
between a layer's quantised output and the float output it replaces,
divided by the quantisation scale of that output
(``sqrt(mean_squared_error) / scale``): an error of about 0.29 is what
rounding alone gives (a uniform error over one step has RMS 1/sqrt(12)),
and much more means the layer's range or distribution quantises badly.
The whole-model one (harness.convert.sensitivity) compares the int8 and
the float model tensor by tensor and finds where the error enters, with
the nodes that must stay float together; the TF path searches with it,
because the layer-wise measure cannot see a scale shared through
pass-through ops (that module's docstring says why).

The denylist is either the user's (node names, Keras layer names, or op
types such as ``CONV_2D``) or found automatically, scored by mAP on the
calibration split: with candidate groups, each group in order of the error
it adds is tried on top of the groups kept so far and kept only when it
raises the mAP by at least MIN_GAIN_MAP; with layer-wise rows, 0, 1, 2, ...
most sensitive layers are tried in turn. Either way the first list within
``max_map_drop`` of fp32 wins, no list exceeds ``max_layers`` nodes, and
otherwise the best list seen is kept. Every list on the way (k = 0 and each
kept step) is a point of the curve: k, its nodes, its calibration mAP and
its size, with each target device's latency added by the run
(harness.measure.curve).
"""

from __future__ import annotations

import csv
import difflib
import io
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from harness.errors import InputError
from harness.model.recipe import Recipe, SelectiveOptions

DENYLIST_PLACE = "variant_options.selective-int8.denylist"
# In the selective-int8 cache key: a new search makes new files (2: the
# whole-model groups and the curve's models).
SEARCH_VERSION = 2


@dataclass(frozen=True)
class LayerError:
    tensor_name: str
    op_name: str
    rmse_over_scale: float
    mean_error: float
    max_abs_error: float
    mean_squared_error: float
    scale: float
    num_elements: int

    @property
    def layer(self) -> str:
        """A short, readable name: the Keras layer of the op's first fused name."""
        first = self.tensor_name.split(";")[0]
        parts = [p for p in first.split("/") if p]
        return parts[-2] if len(parts) >= 2 else first


def parse_statistics(dump_csv: str) -> list[LayerError]:
    """QuantizationDebugger.layer_statistics_dump() CSV -> rows, most sensitive first."""
    rows: list[LayerError] = []
    for raw in csv.DictReader(io.StringIO(dump_csv)):
        mse = _number(raw.get("mean_squared_error"))
        scale = _number(raw.get("scale"))
        rows.append(
            LayerError(
                tensor_name=raw["tensor_name"],
                op_name=raw["op_name"],
                rmse_over_scale=math.sqrt(mse) / scale if scale > 0 and mse >= 0 else 0.0,
                mean_error=_number(raw.get("mean_error")),
                max_abs_error=_number(raw.get("max_abs_error")),
                mean_squared_error=mse,
                scale=scale,
                num_elements=int(_number(raw.get("num_elements"))),
            )
        )
    rows.sort(key=lambda r: -r.rmse_over_scale)
    return rows


def _number(text: str | None) -> float:
    try:
        value = float(text) if text not in (None, "") else 0.0
    except ValueError:
        return 0.0
    return value if math.isfinite(value) else 0.0


def _components(tensor_name: str) -> set[str]:
    return {part for part in re.split(r"[/;]", tensor_name) if part}


@dataclass(frozen=True)
class Denylist:
    nodes: tuple[str, ...] = ()
    ops: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return len(self.nodes) + len(self.ops)

    def entries(self) -> list[str]:
        return [*self.ops, *self.nodes]


def resolve_user_denylist(entries: Sequence[str], rows: Sequence[LayerError], *, recipe_path: Path) -> Denylist:
    """Each entry is an op type (CONV_2D), an exact tensor name, or a Keras
    layer name found in tensor names; anything else is an input error that
    lists the close matches."""
    op_types = sorted({r.op_name for r in rows})
    nodes: list[str] = []
    ops: list[str] = []
    for entry in entries:
        if entry in op_types:
            ops.append(entry)
            continue
        exact = [r.tensor_name for r in rows if r.tensor_name == entry]
        by_layer = exact or [r.tensor_name for r in rows if entry in _components(r.tensor_name)]
        if by_layer:
            nodes.extend(n for n in by_layer if n not in nodes)
            continue
        vocabulary = sorted(set(op_types) | {c for r in rows for c in _components(r.tensor_name)} | {r.layer for r in rows})
        close = difflib.get_close_matches(entry, vocabulary, n=5, cutoff=0.5)
        raise InputError(
            f"{entry!r} is not a layer, node or op type of the quantised model",
            source=recipe_path,
            place=DENYLIST_PLACE,
            hint=(f"close matches: {', '.join(close)}" if close else f"op types here: {', '.join(op_types)}")
            + "; every node is listed in the variant's sensitivity.json",
        )
    return Denylist(tuple(nodes), tuple(ops))


# A candidate group is kept only when it raises the calibration mAP by at
# least this much: a smaller change is within what moving a few box
# coordinates by one rounding step does on 128 images.
MIN_GAIN_MAP = 0.002


@dataclass(frozen=True)
class SearchStep:
    layers: int  # nodes kept in float in the list tried
    calibration_map: float
    nodes: tuple[str, ...] = ()
    kept: bool = True  # the list went on to the next step (a group that did not help is dropped)


@dataclass(frozen=True)
class SearchResult:
    denylist: Denylist
    steps: tuple[SearchStep, ...]
    stop_reason: str


def search_denylist(
    rows: Sequence[LayerError],
    options: SelectiveOptions,
    fp32_map: float,
    score: Callable[[Denylist], float],
) -> SearchResult:
    """Greedy by layer-wise sensitivity: 0, 1, 2, ... most sensitive layers in float."""
    ranked = [r.tensor_name for r in rows]
    steps: list[SearchStep] = []
    best: tuple[float, Denylist] | None = None
    limit = min(options.max_layers, len(ranked))
    for k in range(limit + 1):
        candidate = Denylist(tuple(ranked[:k]))
        value = score(candidate)
        steps.append(SearchStep(k, round(value, 6), candidate.nodes))
        if best is None or value > best[0] + 1e-9:
            best = (value, candidate)
        if fp32_map - value <= options.max_map_drop:
            return SearchResult(candidate, tuple(steps), f"within max_map_drop {options.max_map_drop} of fp32 with {k} layer(s) in float")
    assert best is not None
    return SearchResult(
        best[1], tuple(steps), f"max_layers {options.max_layers} reached; kept the best list tried ({best[1].size} layer(s))"
    )


def search_groups(
    groups: Sequence[Sequence[str]],
    options: SelectiveOptions,
    fp32_map: float,
    score: Callable[[Denylist], float],
) -> SearchResult:
    """Forward selection over candidate groups (most harmful first): each
    group is tried on top of the kept ones and kept only if it gains
    MIN_GAIN_MAP; a group that would take the list past max_layers is not
    tried. At most max_layers groups are scored (each costs a conversion and
    an evaluation)."""
    kept: tuple[str, ...] = ()
    best = score(Denylist())
    steps = [SearchStep(0, round(best, 6))]
    tries = 0
    for group in groups:
        if fp32_map - best <= options.max_map_drop:
            break
        candidate = kept + tuple(n for n in group if n not in kept)
        if len(candidate) == len(kept) or len(candidate) > options.max_layers:
            continue
        if tries >= options.max_layers:
            return SearchResult(Denylist(kept), tuple(steps), f"{tries} groups tried; kept the best list ({len(kept)} node(s))")
        tries += 1
        value = score(Denylist(candidate))
        gained = value >= best + MIN_GAIN_MAP
        steps.append(SearchStep(len(candidate), round(value, 6), candidate, gained))
        if gained:
            kept, best = candidate, value
    if fp32_map - best <= options.max_map_drop:
        reason = f"within max_map_drop {options.max_map_drop} of fp32 with {len(kept)} node(s) in float"
    else:
        reason = f"no further group within max_layers {options.max_layers} gains {MIN_GAIN_MAP} mAP; kept the best list ({len(kept)} node(s))"
    return SearchResult(Denylist(kept), tuple(steps), reason)


@dataclass(frozen=True)
class Choice:
    denylist: Denylist
    source: str  # recipe | automatic
    fp32_map: float | None = None
    search: SearchResult | None = None
    # Each list the search scored, by its nodes: the curve's models.
    models: dict[tuple[str, ...], bytes] = field(default_factory=dict)


def choose_denylist(
    rows: Sequence[LayerError],
    recipe: Recipe,
    calibration: Any,
    cache_dir: Path,
    fp32: Callable[[], bytes],
    quantised: Callable[[Denylist], bytes],
    say: Callable[[str], None],
    *,
    quant: Any = None,
    unit: str = "layer(s)",
    groups: Sequence[Sequence[str]] | None = None,
) -> Choice:
    """The recipe's denylist, or the search's: each candidate scored by its
    mAP on the calibration split, on this host (harness.convert.host_eval);
    over `groups` (whole-model sensitivity) when given, else over the
    layer-wise `rows`. Both converters (TFLiteConverter, LiteRT Quantizer)
    decide here."""
    options = recipe.selective
    if options.denylist:
        return Choice(resolve_user_denylist(options.denylist, rows, recipe_path=recipe.path), "recipe")
    from harness.convert.host_eval import HostEvaluator
    from harness.dataset.preprocess import InputQuant

    quant = quant or InputQuant("float32")
    assert calibration is not None
    evaluator = HostEvaluator(recipe, calibration, cache_dir)
    say("fp32 mAP on the calibration split")
    fp32_map = evaluator.map(fp32(), quant)
    models: dict[tuple[str, ...], bytes] = {}

    def score(candidate: Denylist) -> float:
        say(f"mAP with {candidate.size} {unit} in float")
        content = models[candidate.nodes] = quantised(candidate)
        return evaluator.map(content, quant)

    search = search_groups(groups, options, fp32_map, score) if groups is not None else search_denylist(rows, options, fp32_map, score)
    return Choice(search.denylist, "automatic", fp32_map, search, models)


def curve(search: SearchResult | None, models: dict[tuple[str, ...], bytes]) -> list[dict[str, Any]]:
    """The search's path as the report's curve: k = 0 and every list kept,
    each with its calibration mAP, size and model file (latency per device
    is added by the run)."""
    if search is None:
        return []
    points = []
    for step in search.steps:
        if not step.kept:
            continue
        content = models.get(step.nodes)
        points.append({
            "k": step.layers,
            "layers": list(step.nodes),
            "map": step.calibration_map,
            "size_bytes": len(content) if content is not None else None,
            "file": curve_file(step.layers) if content is not None else None,
            "latency_p50_ms": {},
        })
    return points


def curve_file(k: int) -> str:
    """The name of the curve point's model next to the variant's manifest."""
    return f"curve-k{k}.tflite"


def curve_files(points: Sequence[dict[str, Any]], models: dict[tuple[str, ...], bytes]) -> dict[str, bytes]:
    """The files to keep next to the variant: each curve point's model."""
    return {p["file"]: models[tuple(p["layers"])] for p in points if p.get("file")}


def report(
    rows: Sequence[LayerError],
    options: SelectiveOptions,
    denylist: Denylist,
    *,
    source: str,
    fp32_map: float | None = None,
    search: SearchResult | None = None,
    nodes: Sequence[Any] = (),
    curve_points: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The sensitivity report (sensitivity.json next to the variant's
    manifest). `nodes`: the whole-model ranking (sensitivity.NodeError),
    when the converter measured it; `curve_points`: curve()'s."""
    return {
        "metric": "rmse_over_scale = sqrt(mean_squared_error) / scale of the quantised output (rounding alone: ~0.29)",
        "denylist_source": source,
        "denylist": denylist.entries(),
        "denylisted_nodes": list(denylist.nodes),
        "denylisted_ops": list(denylist.ops),
        "max_map_drop": options.max_map_drop,
        "max_layers": options.max_layers,
        "fp32_calibration_map": fp32_map,
        "search": [asdict(s) for s in search.steps] if search else [],
        "stop_reason": search.stop_reason if search else None,
        "layers": [{**asdict(r), "layer": r.layer} for r in rows],
        "whole_model_metric": WHOLE_MODEL_METRIC if nodes else None,
        "nodes": [{**asdict(n), "layer": n.layer} for n in nodes],
        "curve": [dict(p) for p in curve_points],
    }


WHOLE_MODEL_METRIC = (
    "error = rmse / std of the int8 tensor (dequantised) against the float model's tensor on calibration images; "
    "added = error minus its inputs' largest; followers = the nodes kept float with it (they share its scale)"
)


def summary(full_report: dict[str, Any], top: int) -> dict[str, Any]:
    """What the manifest and results carry: the top layers and the decision."""
    return {
        "denylist": full_report["denylist"],
        "denylist_source": full_report["denylist_source"],
        "fp32_calibration_map": full_report["fp32_calibration_map"],
        "search": [{k: v for k, v in step.items() if k != "nodes"} for step in full_report["search"]],
        "stop_reason": full_report["stop_reason"],
        "curve": full_report.get("curve") or [],
        "top_nodes": [
            {k: node[k] for k in ("layer", "op_name", "error", "added", "node")} | {"followers": len(node["followers"])}
            for node in (full_report.get("nodes") or [])[:top]
        ],
        "max_map_drop": full_report["max_map_drop"],
        "top_layers": [
            {k: layer[k] for k in ("layer", "op_name", "rmse_over_scale", "mean_error", "tensor_name")}
            for layer in full_report["layers"][:top]
        ],
    }
