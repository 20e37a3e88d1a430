"""Run plans: datasets, conversion, then every (device, variant) pair.

Each measured pair is committed to the results database and the run folder
before the next pair starts. A pair that fails is recorded with its reason
and the run goes on; a device that is lost fails its remaining pairs, never
the other devices' (fan-out across devices arrives with the SSH fleet).
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from harness import __version__, paths
from harness.agent_client import AgentClient
from harness.convert.converter import Artifact, convert_variants, export_artifact
from harness.dataset.resolve import resolve_dataset
from harness.device import Device
from harness.errors import AgentError, ConversionError, InfraError
from harness.measure.pair import PairContext, failed_record, measure_pair
from harness.preprocess import prepared_inputs
from harness.profiles import load_profile
from harness.recipe import Recipe
from harness.results.files import make_run_dir, new_run_id, write_results, write_samples
from harness.results.record import DeviceInfo, Record, utc_now_iso
from harness.results.store import RunInfo, SqliteStore
from harness.transport import open_transport


class RunEvents:
    """Progress hooks; the CLI renders them, tests ignore them."""

    def stage(self, name: str, total: int | None = None) -> None: ...

    def advance(self, name: str, label: str) -> None: ...

    def pair_done(self, record: Record) -> None: ...


@dataclass(frozen=True)
class RunPlan:
    recipe: Recipe
    variants: tuple[str, ...]
    devices: tuple[Device, ...]
    reports_dir: Path
    command: str = "run"


@dataclass
class RunOutcome:
    run_id: str
    run_dir: Path
    records: list[Record] = field(default_factory=list)
    infra_failures: list[str] = field(default_factory=list)

    @property
    def results_json(self) -> Path:
        return self.run_dir / "results.json"


def execute(plan: RunPlan, store: SqliteStore, events: RunEvents | None = None) -> RunOutcome:
    events = events or RunEvents()
    run_id = new_run_id()
    run_dir = make_run_dir(plan.reports_dir, run_id)
    cache = paths.cache_dir(plan.reports_dir)
    outcome = RunOutcome(run_id, run_dir)
    meta = {
        "command": plan.command,
        "recipe": str(plan.recipe.path),
        "variants": list(plan.variants),
        "devices": [d.name for d in plan.devices],
        "created_at": utc_now_iso(),
        "host": {"python": platform.python_version(), "arch": platform.machine(), "argv": sys.argv[1:]},
    }
    store.begin_run(RunInfo(run_id, meta["created_at"], __version__, "running", plan.command, str(run_dir)))
    write_results(run_dir, run_id, [], meta)
    status = "failed"
    try:
        events.stage("dataset")
        calibration = resolve_dataset(plan.recipe, plan.recipe.calibration, cache)
        evaluation = resolve_dataset(plan.recipe, plan.recipe.eval, cache)
        category_ids = (
            evaluation.category_ids_for(plan.recipe.labels, source=plan.recipe.path)
            if evaluation is not None and plan.recipe.adapter == "ssd-postprocess"
            else None
        )

        events.stage("convert", total=len(plan.variants))
        converted = convert_variants(
            plan.recipe,
            plan.variants,
            calibration,
            cache,
            progress=lambda variant, message: events.advance("convert", f"{variant}: {message}")
            if message in ("done", "cached", "failed")
            else None,
        )
        artifacts = {v: _copy_into_run(a, run_dir) if isinstance(a, Artifact) else a for v, a in converted.items()}

        events.stage("measure", total=len(plan.variants) * len(plan.devices))
        for device in plan.devices:
            _measure_device(plan, store, events, outcome, device, artifacts, evaluation, category_ids, cache, meta)
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        store.finish_run(run_id, status)
    return outcome


def _copy_into_run(artifact: Artifact, run_dir: Path) -> Artifact:
    """What was measured stays with the run, even after the cache is cleared."""
    return replace(artifact, path=export_artifact(artifact, run_dir / "artifacts"))


def _measure_device(
    plan: RunPlan,
    store: SqliteStore,
    events: RunEvents,
    outcome: RunOutcome,
    device: Device,
    artifacts: dict[str, Artifact | ConversionError],
    evaluation,
    category_ids,
    cache: Path,
    meta: dict,
) -> None:
    profile = load_profile(device.profile)
    threads = device.threads or profile.threads
    ctx = PairContext(
        run_id=outcome.run_id,
        run_dir=outcome.run_dir,
        device_info=DeviceInfo(name=device.name, profile=device.profile),
        threads=threads,
        plan=profile.measurement,
        runtime=profile.runtime,
    )
    transport = open_transport(device)
    client = AgentClient(transport)
    lost: str | None = None
    try:
        for variant in plan.variants:
            artifact = artifacts[variant]
            events.advance("measure", f"{device.name} · {variant}")
            if isinstance(artifact, ConversionError):
                record, samples = failed_record(ctx, plan.recipe.name, variant, "conversion", artifact.render()), []
            elif lost is not None:
                record, samples = failed_record(ctx, plan.recipe.name, variant, "device-lost", lost, artifact), []
            else:
                try:
                    inputs = (
                        prepared_inputs(evaluation, plan.recipe.input, artifact.input_quant, cache)
                        if evaluation is not None
                        else None
                    )
                    record, samples = measure_pair(ctx, client, artifact, inputs, evaluation, category_ids, plan.recipe.adapter)
                except AgentError as exc:
                    record, samples = failed_record(ctx, plan.recipe.name, variant, "agent", exc.message, artifact), []
                except InfraError as exc:
                    lost = exc.message
                    outcome.infra_failures.append(exc.message)
                    record, samples = failed_record(ctx, plan.recipe.name, variant, "device", exc.message, artifact), []
            _save(store, outcome, record, samples, meta)
            events.pair_done(record)
    finally:
        transport.close()


def _save(store: SqliteStore, outcome: RunOutcome, record: Record, samples: list[int], meta: dict) -> None:
    store.add_record(record, samples)
    if samples:
        write_samples(outcome.run_dir, record.device.name, record.model.name, record.model.variant, samples)
    outcome.records.append(record)
    write_results(outcome.run_dir, outcome.run_id, outcome.records, meta)
