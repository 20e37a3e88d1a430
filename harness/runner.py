"""Run plans: datasets, conversion, then every (device, variant) pair.

Everything a run reads is prepared before the run exists, so a bad input
(exit 2) leaves no run behind. Each measured pair is committed to the
results database and the run folder before the next pair starts. A pair
that fails is recorded with its reason and the run goes on; a device that
is lost fails its remaining pairs, never the other devices'. Devices run in
parallel (measure.worker, a thread each), one pair at a time per device
under the device lock; only the main thread writes results, so the store
needs no locking (other controllers may write other runs to the same store
at once: each pair is one transaction).
"""

from __future__ import annotations

import contextlib
import platform
import queue
import sys
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

from harness import __version__, paths
from harness.convert.build import Built, build_variants
from harness.convert.converter import Artifact, export_artifact
from harness.dataset.coco import CocoDataset
from harness.dataset.preprocess import EvalInputs, prepared_inputs
from harness.heap import release_free_memory
from harness.device import Device, local_device
from harness.errors import EXIT_INFRA, EXIT_INPUT, EXIT_OK, InputError, RunInterrupted, StoreLost
from harness.fleet.command import inventory_from
from harness.fleet.labgrid import LabgridPool
from harness.fleet.profiles import load_profile, scaled_plan
from harness.measure.configs import Sweep, device_sweep, slots
from harness.measure.curve import merge_into_report
from harness.measure.events import RunEvents
from harness.measure.pair import PairContext
from harness.measure.worker import DeviceJob, Finished, PairMessage, Status, Transfer, device_worker
from harness.model.adapters import adapter_spec
from harness.model.datasets import resolve_dataset
from harness.model.bare import plan_recipe
from harness.model.feed import eval_feed
from harness.model.labels import ClassMap, recipe_class_map
from harness.model.recipe import Recipe
from harness.model.variants import parse_variant_names
from harness.results import provenance
from harness.results.files import (
    make_run_dir,
    new_run_id,
    read_results,
    read_run_meta,
    read_samples,
    write_results,
    write_samples,
)
from harness.results.open import open_store
from harness.results.record import DeviceInfo, Record, utc_now_iso
from harness.results.store import ResultsStore, RunInfo

__all__ = ["RunPlan", "RunOutcome", "execute", "make_plan", "remeasure", "exit_code", "Transfer"]


@dataclass(frozen=True)
class RunPlan:
    recipe: Recipe
    variants: tuple[str, ...]
    devices: tuple[Device, ...]
    reports_dir: Path
    command: str = "run"
    inventory: Path | None = None
    # How long to wait for another controller's device lock (0: fail at once).
    lock_wait_s: float = 0.0
    # MeasurementPlan fields that override every device profile's plan (the
    # pytest plugin lets a test ask for more samples or a shorter run).
    measurement: dict[str, Any] = field(default_factory=dict)
    # (device, variant) pairs to measure again on resume even though they are
    # complete (`harness gate --remeasure`), and how much longer than the
    # profile's plan to measure them.
    remeasure: frozenset[tuple[str, str]] = frozenset()
    measure_scale: float = 1.0
    # `--dataset` / `--split`: kept so --resume rebuilds the same plan.
    dataset: Path | None = None
    split: str | None = None
    # `--threads/--runtimes/--xnnpack`: the configurations every pair is
    # measured in (each device adds its inventory's and profile's lists).
    sweep: Sweep = Sweep()
    # `--devices labgrid`: places held from the coordinator once the
    # variants are built, added to `devices` for the run, released after.
    pool: LabgridPool | None = None


@dataclass
class RunOutcome:
    run_id: str
    run_dir: Path
    records: list[Record] = field(default_factory=list)
    infra_failures: list[str] = field(default_factory=list)
    transfers: dict[str, Transfer] = field(default_factory=dict)
    # On --resume: pairs the run folder had and the store lacked, stored now.
    recovered: list[Record] = field(default_factory=list)
    # Set by measure_and_write: "run <id> · commit <sha>", report.md, report.html.
    name: str = ""
    report_files: tuple[Path, ...] = ()
    # Complete pairs measured again (gate --remeasure): their first record stays, superseded.
    to_supersede: set[tuple[str, str, str]] = field(default_factory=set)

    @property
    def results_json(self) -> Path:
        return self.run_dir / "results.json"


# -- plans --------------------------------------------------------------------


def make_plan(
    recipe_path: Path,
    variants_arg: str | None,
    devices_arg: str,
    reports: Path,
    *,
    command: str,
    inventory_path: Path | None = None,
    lock_wait_s: float = 600.0,
    remeasure: frozenset[tuple[str, str]] = frozenset(),
    measure_scale: float = 1.0,
    dataset: Path | None = None,
    split: str | None = None,
    sweep: Sweep = Sweep(),
) -> RunPlan:
    """The plan the command line asks for, every flag and file checked."""
    # Flags first: they are cheap to check and the user's most likely typo.
    asked_variants = parse_variant_names(variants_arg) if variants_arg else None
    names = [n.strip() for n in devices_arg.split(",") if n.strip()]
    if not names:
        raise InputError("no device named", source="--devices", hint="name at least one device, e.g. --devices local")
    inventory = inventory_from(inventory_path)
    # The local device keeps its "device cache" inside the harness cache.
    local = local_device(paths.cache_dir(reports).resolve() / "local-device")
    devices = inventory.select(names, local=local)
    recipe = plan_recipe(recipe_path, dataset, split)
    variants = asked_variants or recipe.variants
    recipe.check_variants(variants)
    pool = inventory.pool(names)
    if pool is not None:
        from harness.fleet.labgrid import check_pool

        check_pool(pool)  # unknown place or tag: exit 2 now, not after converting
    return RunPlan(
        recipe, variants, devices, reports, command=command, lock_wait_s=lock_wait_s, pool=pool,
        inventory=inventory_path.resolve() if inventory_path else None,
        remeasure=remeasure, measure_scale=measure_scale,
        dataset=Path(dataset).resolve() if dataset else None, split=split, sweep=sweep,
    )


def stored_meta(store: ResultsStore, run_id: str) -> dict[str, Any]:
    """The plan a stored run was started with (its results.json's `run`)."""
    info = store.run(run_id)
    assert info is not None, "resolve the run id with store.resolve_run first"
    return read_run_meta(Path(info.run_dir))


def plan_from_meta(
    meta: dict[str, Any],
    reports: Path,
    inventory: Path | None = None,
    *,
    only: set[tuple[str, str]] | None = None,
    lock_wait_s: float = 600.0,
    measure_scale: float = 1.0,
) -> RunPlan:
    """A stored run's plan again (a resumed run keeps the plan it was started
    with); with `only`, just those (device, variant) pairs, measured again."""
    inventory = inventory or (Path(meta["inventory"]) if meta.get("inventory") else None)
    devices = sorted({d for d, _ in only}) if only else meta["devices"]
    # A swept pair's name is `variant@configuration`: the plan asks for the variant.
    variants = sorted({v.split("@")[0] for _, v in only}) if only else meta["variants"]
    return make_plan(
        Path(meta["recipe"]), ",".join(variants), ",".join(devices), reports, command="run",
        inventory_path=inventory, lock_wait_s=lock_wait_s, remeasure=frozenset(only or ()), measure_scale=measure_scale,
        dataset=Path(meta["dataset"]) if meta.get("dataset") else None, split=meta.get("split"),
        sweep=Sweep.from_meta(meta.get("sweep")),
    )


# -- a run -------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """What every device's share of the run reads, made before the run exists."""

    artifacts: dict[str, Built]  # in the cache
    inputs: dict[str, EvalInputs | None]  # variant -> its eval pixels and feed
    evaluation: CocoDataset | None
    category_ids: ClassMap | None


def execute(plan: RunPlan, store: ResultsStore, events: RunEvents | None = None, *, resume: str | None = None) -> RunOutcome:
    """Run the plan; with ``resume`` (a run id), measure only the pairs that
    run has no complete `ok` record for, into the same run, continuing the
    pairs an interruption left part-measured. Ctrl-C raises RunInterrupted
    once every pair measured is saved."""
    events = events or RunEvents()
    prepared = prepare(plan, events)  # bad input fails here, before a run exists
    with _held(plan, events) as plan:
        return _execute_prepared(plan, store, events, prepared, resume)


@contextlib.contextmanager
def _held(plan: RunPlan, events: RunEvents) -> Iterator[RunPlan]:
    """The plan with its labgrid places held (and released however the run
    ends); the plan itself when it has none."""
    if plan.pool is None:
        yield plan
        return
    from harness.fleet.labgrid import hold

    events.stage("labgrid")
    with hold(plan.pool, wait_s=plan.lock_wait_s, on_wait=lambda why: events.advance("labgrid", f"waiting: {why}")) as held:
        yield replace(plan, devices=(*plan.devices, *held))


def _execute_prepared(plan: RunPlan, store: ResultsStore, events: RunEvents, prepared: Prepared, resume: str | None) -> RunOutcome:
    outcome, meta, stopped = _start(plan, store) if resume is None else _reopen(store, resume, plan.remeasure)
    status = "failed"
    try:
        jobs = _jobs(plan, store, outcome, prepared, continue_partials=stopped)
        events.stage("measure", total=sum(job.units for job in jobs))
        _measure_devices(store, events, outcome, jobs, meta)
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        # Ctrl-C may land between a pair's commit and the file's rewrite:
        # the store is the truth, so results.json is rebuilt from it.
        write_results(outcome.run_dir, outcome.run_id, store.records(outcome.run_id), meta)
        raise RunInterrupted(outcome.run_id) from None
    except StoreLost as exc:
        # Every pair was written to the run folder before the store; the
        # store keeps the run as `running`, which --resume continues.
        exc.hint = _store_lost_hint(outcome.run_dir, outcome.run_id)
        raise
    finally:
        _finish(store, outcome.run_id, status, outcome.run_dir)
    return outcome


def prepare(plan: RunPlan, events: RunEvents) -> Prepared:
    """Datasets, variants (converted or cached) and each variant's inputs."""
    recipe, cache = plan.recipe, paths.cache_dir(plan.reports_dir)
    events.stage("dataset")
    calibration = resolve_dataset(recipe, recipe.calibration, cache)
    evaluation = resolve_dataset(recipe, recipe.eval, cache)
    category_ids = recipe_class_map(recipe, evaluation) if evaluation is not None and recipe.adapter != "none" else None
    artifacts = build_variants(recipe, plan.variants, calibration, cache, events)
    # Inputs depend on the variant, not the device: prepared once, here,
    # so device workers never write the cache concurrently.
    inputs = {
        v: prepared_inputs(evaluation, *eval_feed(recipe, a.input_quant), cache) if isinstance(a, Artifact) and evaluation else None
        for v, a in artifacts.items()
    }
    release_free_memory()  # the split's generation and the pixels' preparation were transient
    return Prepared(artifacts, inputs, evaluation, category_ids)


def _start(plan: RunPlan, store: ResultsStore) -> tuple[RunOutcome, dict[str, Any], bool]:
    run_id = new_run_id()
    run_dir = make_run_dir(plan.reports_dir, run_id)
    meta = {
        "command": plan.command,
        "recipe": str(plan.recipe.path),
        "variants": list(plan.variants),
        # A pool is stored by its name, so --resume holds places again.
        "devices": [d.name for d in plan.devices if "labgrid_place" not in d.extra] + ([plan.pool.name] if plan.pool else []),
        "inventory": str(plan.inventory) if plan.inventory else None,
        "dataset": str(plan.dataset) if plan.dataset else None,
        "split": plan.split,
        **({"sweep": plan.sweep.to_meta()} if plan.sweep else {}),
        "created_at": utc_now_iso(),
        "source_commit": provenance.source_commit(plan.recipe.path, plan.recipe.source),
        "host": {"name": provenance.controller_host(), "python": platform.python_version(),
                 "arch": platform.machine(), "argv": sys.argv[1:]},
    }
    store.begin_run(RunInfo(run_id, meta["created_at"], __version__, "running", plan.command, str(run_dir),
                            source_commit=meta["source_commit"], host=meta["host"]["name"]))
    outcome = RunOutcome(run_id, run_dir)
    write_results(run_dir, run_id, outcome.records, meta)
    return outcome, meta, False


def _reopen(store: ResultsStore, run_id: str, remeasure: frozenset[tuple[str, str]] = frozenset()) -> tuple[RunOutcome, dict[str, Any], bool]:
    """The run again, and whether it stopped before it finished (Ctrl-C, a
    crash, a lost store): only then are its part-measured pairs a sitting
    to continue; in a finished run (the pytest plugin adds pairs to one)
    they were measured to another plan's rounds."""
    meta = stored_meta(store, run_id)
    info = store.run(run_id)
    assert info is not None
    run_dir, stopped = Path(info.run_dir), info.status != "finished"
    meta.setdefault("resumed_at", []).append(utc_now_iso())
    store.reopen_run(run_id)
    outcome = RunOutcome(run_id, run_dir, records=store.records(run_id))
    outcome.recovered = recover_from_folder(store, run_dir, outcome.records)
    if outcome.recovered:
        outcome.records = store.records(run_id)
    # Complete pairs measured again (gate --remeasure) keep their first record, superseded.
    outcome.to_supersede = {r.key for r in outcome.records if r.status == "ok" and (r.key[0], r.key[2]) in remeasure}
    write_results(run_dir, run_id, outcome.records, meta)
    return outcome, meta, stopped


def recover_from_folder(store: ResultsStore, run_dir: Path, stored: list[Record]) -> list[Record]:
    """Records the run folder has and the store lacks go into the store.

    Each pair is written to the run folder before the store, so when the
    store was lost mid-run the folder holds the pair in hand (and, with a
    store restored from an older backup, more). Those are stored now
    instead of being measured again; an `ok` record whose raw samples file
    is missing is left to be measured."""
    have = {r.key: r for r in stored}
    try:
        in_folder = read_results(run_dir / "results.json")
    except InputError:
        return []
    recovered = []
    for record in in_folder:
        known = have.get(record.key)
        if known is not None and known.created_at >= record.created_at:
            continue
        samples = read_samples(run_dir, *record.key) if record.status == "ok" else []
        if samples is None:
            continue
        store.add_record(record, samples)
        recovered.append(record)
    return recovered


def _store_lost_hint(run_dir: Path, run_id: str) -> str:
    return (f"every pair measured so far is in {run_dir / 'results.json'}; when the store is back, "
            f"`harness run --resume {run_id}` measures only the pairs it lacks")


def _finish(store: ResultsStore, run_id: str, status: str, run_dir: Path) -> None:
    try:
        store.finish_run(run_id, status)
    except StoreLost as exc:
        if status == "finished":  # the run itself went well: losing the store now is the news
            exc.hint = _store_lost_hint(run_dir, run_id)
            raise
        # Otherwise the error already in flight says more than this one.


# -- the devices' jobs ------------------------------------------------------------


def _jobs(plan: RunPlan, store: ResultsStore, outcome: RunOutcome, prepared: Prepared, *, continue_partials: bool) -> list[DeviceJob]:
    """One job per device, with what the run already has taken out."""
    artifacts = {v: _copy_into_run(a, outcome.run_dir) if isinstance(a, Artifact) else a for v, a in prepared.artifacts.items()}
    jobs = [_device_job(plan, outcome, device, artifacts, prepared) for device in plan.devices]

    def samples_of(record: Record) -> list[int]:
        return store.samples_ns(record.run_id, *record.key) if continue_partials else []

    jobs = [_remaining(job, outcome.records, plan.remeasure, samples_of) for job in jobs]
    return [job for job in jobs if job.variants]


def _device_job(plan: RunPlan, outcome: RunOutcome, device: Device, artifacts: dict[str, Built], prepared: Prepared) -> DeviceJob:
    profile = load_profile(device.profile)
    if plan.measurement:
        profile = replace(profile, measurement=replace(profile.measurement, **plan.measurement))
    ctx = PairContext(
        run_id=outcome.run_id,
        run_dir=outcome.run_dir,
        device_info=DeviceInfo(name=device.name, profile=device.profile, family=profile.family, emulated=profile.emulated,
                               tags=tuple(device.tags), labgrid=_labgrid_info(device)),
        threads=device.threads or profile.threads,
        plan=scaled_plan(profile.measurement, plan.measure_scale),
        runtime=profile.runtime,
        cpus=device.cpus,
        profile=profile,
    )
    configurations = device_sweep(plan.sweep, device, profile).configurations()
    # No sweep: each slot is a variant, and every record keeps its old identity.
    swept = slots(plan.variants, configurations) if configurations != (None,) else {}
    return DeviceJob(
        device, ctx, plan.recipe, tuple(swept) or plan.variants, artifacts, prepared.inputs, prepared.evaluation,
        prepared.category_ids, plan.lock_wait_s, plan.command, adapter_spec(plan.recipe), slots=swept,
    )


def _labgrid_info(device: Device) -> dict[str, Any] | None:
    """Place, exporter, coordinator and tags of a held labgrid place, so
    budgets and history can match on them from the record alone, and when
    the run acquired it (with the records' own times: who held it when)."""
    if "labgrid_place" not in device.extra:
        return None
    tags = dict(t.split("=", 1) for t in device.extra.get("labgrid_tags", "").split(",") if "=" in t)
    return {"place": device.extra["labgrid_place"], "exporter": device.extra.get("labgrid_exporter"),
            "coordinator": device.extra.get("labgrid_coordinator"), "tags": tags,
            "acquired_at": device.extra.get("labgrid_acquired_at")}


def _remaining(
    job: DeviceJob,
    records: list[Record],
    remeasure: frozenset[tuple[str, str]],
    samples_of: Callable[[Record], list[int]],
) -> DeviceJob:
    """The job without the variants this device already has a complete `ok`
    record of (unless they are to be measured again); a pair with fewer
    rounds than the plan's (the run was interrupted) continues where it
    stopped, when it is the same model file and `samples_of` gives its
    stored samples (an empty list: measure it anew)."""
    stored = {
        r.key[2]: r
        for r in records
        if r.device.name == job.device.name
        and r.model.name == job.recipe.name
        and r.status == "ok"
        and r.latency_ms is not None
        and (r.device.name, r.key[2]) not in remeasure
    }
    complete = {v for v, r in stored.items() if r.latency_ms.rounds >= job.rounds}  # type: ignore[union-attr]
    earlier: dict[str, tuple[Record, list[int]]] = {}
    for variant in job.variants:
        record, artifact = stored.get(variant), job.artifacts.get(job.variant_of(variant))
        if variant in complete or record is None or not isinstance(artifact, Artifact) or record.model.sha256 != artifact.sha256:
            continue
        samples = samples_of(record)
        if samples:
            earlier[variant] = (record, samples)
    return replace(job, variants=tuple(v for v in job.variants if v not in complete), earlier=earlier)


def _copy_into_run(artifact: Artifact, run_dir: Path) -> Artifact:
    """What was measured stays with the run, even after the cache is cleared."""
    return replace(artifact, path=export_artifact(artifact, run_dir / "artifacts"))


# -- the main thread: messages in, results out -----------------------------------------


def _measure_devices(store: ResultsStore, events: RunEvents, outcome: RunOutcome, jobs: list[DeviceJob], meta: dict) -> None:
    """One worker thread per device, one pair at a time on each; a device
    that fails never stops the others."""
    inbox: queue.Queue = queue.Queue()
    cancel = threading.Event()
    progress = _Progress(events, jobs)
    for job in jobs:
        progress.status(job.device.name, "waiting")
        threading.Thread(target=device_worker, args=(job, inbox, cancel), name=f"device-{job.device.name}", daemon=True).start()
    running = len(jobs)
    crashes: list[BaseException] = []
    try:
        while running:
            message = inbox.get()
            if isinstance(message, Status):
                progress.status(message.device, message.label)
                events.advance("measure", f"{message.device} · {message.label}")
            elif isinstance(message, PairMessage):
                if message.infra_failure and message.infra_failure not in outcome.infra_failures:
                    outcome.infra_failures.append(message.infra_failure)
                _save(store, outcome, message.record, message.samples, meta)
                if message.final:  # selective-int8's curve: this device's latencies into the run's sensitivity.json
                    merge_into_report(message.record, outcome.run_dir)
                progress.pair(message)
            elif isinstance(message, Finished):
                running -= 1
                outcome.transfers[message.device] = message.transfer
                meta["transfers"] = {k: asdict(v) for k, v in outcome.transfers.items()}
                if message.crash is not None:
                    crashes.append(message.crash)
                progress.finished(message)
    except BaseException:
        cancel.set()  # workers stop after their current pair; their locks expire
        raise
    write_results(outcome.run_dir, outcome.run_id, outcome.records, meta)
    if crashes:
        raise crashes[0]  # a bug, not a device problem: every result is saved first


class _Progress:
    """Each device's line under the measure bar: rounds done of its total."""

    def __init__(self, events: RunEvents, jobs: list[DeviceJob]) -> None:
        self.events = events
        self.devices = {job.device.name: job.device for job in jobs}
        self.done = {job.device.name: 0 for job in jobs}
        self.totals = {job.device.name: job.units for job in jobs}

    def status(self, device: str, label: str) -> None:
        self.events.device_status(device, label, self.done[device], self.totals[device])

    def pair(self, message: PairMessage) -> None:
        name, variant = message.record.device.name, message.record.model.variant
        self.done[name] += message.units
        self.events.advance("measure", f"{name} · {variant}", units=message.units)
        if message.final:
            self.events.pair_done(message.record)
        self.status(name, variant)

    def finished(self, message: Finished) -> None:
        note = transfer_note(self.devices[message.device], message.transfer)
        self.status(message.device, f"done, {note}" if note else "done")


def transfer_note(device: Device, transfer: Transfer) -> str | None:
    """What deployment sent to a device, for the user; nothing for the local
    device, whose "upload" is a copy into its own cache on this machine."""
    if device.kind == "local":
        return None
    return f"sent {transfer.bytes_uploaded / 1e6:.2f} MB ({transfer.files_uploaded} files)"


def _save(store: ResultsStore, outcome: RunOutcome, record: Record, samples: list[int], meta: dict) -> None:
    # The run folder first: if a shared store (PostgreSQL) is lost mid-run,
    # the pair in hand is still saved before the run stops with exit 3.
    if samples:
        write_samples(outcome.run_dir, *record.key, samples)
    # A pair measured again (next round, or --resume) replaces its record.
    outcome.records[:] = [r for r in outcome.records if r.key != record.key] + [record]
    write_results(outcome.run_dir, outcome.run_id, outcome.records, meta)
    store.add_record(record, samples, supersede=record.key in outcome.to_supersede)
    outcome.to_supersede.discard(record.key)  # its later rounds replace the new record


# -- after a run ------------------------------------------------------------------


def measure_and_write(plan: RunPlan, store_url: str | None, events: RunEvents, *, resume: str | None = None) -> RunOutcome:
    """Execute the plan, then write the run's report files (report.md,
    report.html) from what the store holds."""
    from harness.report.context import load_context
    from harness.report.write import run_title, write_run_reports

    with open_store(store_url, plan.reports_dir) as store:
        outcome = execute(plan, store, events, resume=resume)
        context = load_context(store, outcome.run_id, outcome.records)
        outcome.name = run_title(store, outcome.run_id)
    outcome.report_files = write_run_reports(outcome.records, outcome.run_dir, title=f"Edge Harness {outcome.name}", context=context)
    return outcome


def exit_code(outcome: RunOutcome) -> int:
    """DESIGN.md's code for a run that ended: 3 when a device or an agent
    failed, 2 when a pair failed for its input (its conversion), else 0."""
    if outcome.infra_failures:
        return EXIT_INFRA
    failed = [r for r in outcome.records if r.status == "failed"]
    if any(r.error and r.error.kind in ("agent", "device") for r in failed):
        return EXIT_INFRA
    return EXIT_INPUT if failed else EXIT_OK


def remeasure(
    run_id: str,
    pairs: set[tuple[str, str, str]],
    scale: float,
    *,
    store_url: str | None,
    reports: Path,
    inventory: Path | None = None,
) -> int:
    """`harness gate --remeasure`: these (device, model, variant) pairs of a
    stored run measured again, `scale` times longer, into that run, on the
    devices it was measured on; returns the re-measurement's exit code."""
    from harness.report.progress import ProgressEvents

    with open_store(store_url, reports, must_exist=True) as store:
        meta = stored_meta(store, run_id)
    plan = plan_from_meta(meta, reports, inventory, only={(d, v) for d, _, v in pairs}, measure_scale=scale)
    with ProgressEvents() as events:
        outcome = measure_and_write(plan, store_url, events, resume=run_id)
    for failure in outcome.infra_failures:
        sys.stderr.write(f"harness gate: device failure: {failure}\n")
    return exit_code(outcome)
