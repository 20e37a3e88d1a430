"""Run plans: datasets, conversion, then every (device, variant) pair.

Each measured pair is committed to the results database and the run folder
before the next pair starts. A pair that fails is recorded with its reason
and the run goes on; a device that is lost fails its remaining pairs, never
the other devices'. Devices run in parallel (a worker thread each), one
pair at a time per device under the device lock; only the main thread
writes results, so the store needs no locking (other controllers may
write other runs to the same store at once: each pair is one transaction).
"""

from __future__ import annotations

import platform
import queue
import sys
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from harness import __version__, paths
from harness.convert import loadability
from harness.results import provenance
from harness.model.adapters import AdapterSpec, adapter_spec
from harness.agent.client import AgentClient
from harness.fleet.capabilities import skip_record
from harness.convert.converter import Artifact, convert_variants, export_artifact
from harness.model.datasets import resolve_dataset
from harness.device import Device
from harness.fleet.lock import DeviceLock
from harness.edgetpu.compiler import add_edgetpu, needs_uint8
from harness.errors import AgentError, ConversionError, InfraError, InputError, StoreLost
from harness.measure.events import RunEvents
from harness.measure.pair import PairAccumulator, PairContext, failed_record, run_round, skipped_record
from harness.dataset.preprocess import prepared_inputs
from harness.fleet.profiles import load_profile, scaled_plan
from harness.model.recipe import Recipe
from harness.results.files import (
    make_run_dir,
    new_run_id,
    read_results,
    read_run_meta,
    read_samples,
    write_results,
    write_samples,
)
from harness.results.record import DeviceInfo, Record, utc_now_iso
from harness.results.store import ResultsStore, RunInfo
from harness.transport import open_transport


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


@dataclass
class RunOutcome:
    run_id: str
    run_dir: Path
    records: list[Record] = field(default_factory=list)
    infra_failures: list[str] = field(default_factory=list)
    transfers: dict[str, "Transfer"] = field(default_factory=dict)
    # On --resume: pairs the run folder had and the store lacked, stored now.
    recovered: list[Record] = field(default_factory=list)
    # Complete pairs measured again (gate --remeasure): their first record stays, superseded.
    to_supersede: set[tuple[str, str, str]] = field(default_factory=set)

    @property
    def results_json(self) -> Path:
        return self.run_dir / "results.json"


def execute(plan: RunPlan, store: ResultsStore, events: RunEvents | None = None, *, resume: str | None = None) -> RunOutcome:
    """Run the plan; with ``resume`` (a run id), measure only the pairs that
    run has no complete `ok` record for, into the same run."""
    events = events or RunEvents()
    cache = paths.cache_dir(plan.reports_dir)
    if resume is None:
        run_id = new_run_id()
        run_dir = make_run_dir(plan.reports_dir, run_id)
        meta = {
            "command": plan.command,
            "recipe": str(plan.recipe.path),
            "variants": list(plan.variants),
            "devices": [d.name for d in plan.devices],
            "inventory": str(plan.inventory) if plan.inventory else None,
            "created_at": utc_now_iso(),
            "source_commit": provenance.source_commit(),
            "host": {"name": provenance.controller_host(), "python": platform.python_version(),
                     "arch": platform.machine(), "argv": sys.argv[1:]},
        }
        store.begin_run(RunInfo(run_id, meta["created_at"], __version__, "running", plan.command, str(run_dir),
                                source_commit=meta["source_commit"], host=meta["host"]["name"]))
        outcome = RunOutcome(run_id, run_dir)
    else:
        run_id = resume
        info = store.run(run_id)
        assert info is not None, "resolve the run id with store.resolve_run first"
        run_dir = Path(info.run_dir)
        meta = read_run_meta(run_dir)
        meta.setdefault("resumed_at", []).append(utc_now_iso())
        store.reopen_run(run_id)
        outcome = RunOutcome(run_id, run_dir, records=store.records(run_id))
        outcome.recovered = recover_from_folder(store, run_dir, outcome.records)
        if outcome.recovered:
            outcome.records = store.records(run_id)
        outcome.to_supersede = {
            r.key for r in outcome.records if r.status == "ok" and (r.device.name, r.model.variant) in plan.remeasure
        }
    write_results(run_dir, run_id, outcome.records, meta)
    status = "failed"
    try:
        events.stage("dataset")
        calibration = resolve_dataset(plan.recipe, plan.recipe.calibration, cache)
        evaluation = resolve_dataset(plan.recipe, plan.recipe.eval, cache)
        category_ids = (
            evaluation.category_ids_for(plan.recipe.labels, source=plan.recipe.path)
            if evaluation is not None and plan.recipe.adapter != "none"
            else None
        )

        events.stage("convert", total=len(plan.variants))
        converted = convert_variants(
            plan.recipe,
            needs_uint8(plan.variants),
            calibration,
            cache,
            progress=lambda variant, message: events.advance("convert", f"{variant}: {message}", units=1)
            if message in ("done", "cached", "failed")
            else None,
        )
        converted = add_edgetpu(plan.variants, converted)
        artifacts = {v: _copy_into_run(a, run_dir) if isinstance(a, Artifact) else a for v, a in converted.items()}

        # Inputs depend on the variant, not the device: prepared once, here,
        # so device workers never write the cache concurrently.
        inputs = {
            v: prepared_inputs(evaluation, plan.recipe.input, a.input_quant, cache)
            if isinstance(a, Artifact) and evaluation is not None
            else None
            for v, a in artifacts.items()
        }
        jobs = [_device_job(plan, outcome, device, artifacts, inputs, evaluation, category_ids) for device in plan.devices]
        jobs = [job for job in (_only_missing(job, outcome.records, plan.remeasure) for job in jobs) if job.variants]
        events.stage("measure", total=sum(len(j.variants) * max(1, j.ctx.plan.rounds) for j in jobs))
        _measure_devices(plan, store, events, outcome, jobs, meta)
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        # Ctrl-C may land between a pair's commit and the file's rewrite:
        # the store is the truth, so results.json is rebuilt from it.
        write_results(run_dir, run_id, store.records(run_id), meta)
        raise
    except StoreLost as exc:
        # Every pair was written to the run folder before the store; the
        # store keeps the run as `running`, which --resume continues.
        exc.hint = _store_lost_hint(run_dir, run_id)
        raise
    finally:
        _finish(store, run_id, status, run_dir)
    return outcome


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


def _device_job(
    plan: RunPlan,
    outcome: RunOutcome,
    device: Device,
    artifacts: dict[str, Artifact | ConversionError],
    inputs: dict[str, Path | None],
    evaluation: Any,
    category_ids: Any,
) -> DeviceJob:
    profile = load_profile(device.profile)
    if plan.measurement:
        profile = replace(profile, measurement=replace(profile.measurement, **plan.measurement))
    threads = device.threads or profile.threads
    ctx = PairContext(
        run_id=outcome.run_id,
        run_dir=outcome.run_dir,
        device_info=DeviceInfo(name=device.name, profile=device.profile, family=profile.family, emulated=profile.emulated, tags=tuple(device.tags)),
        threads=threads,
        plan=scaled_plan(profile.measurement, plan.measure_scale),
        runtime=profile.runtime,
        cpus=device.cpus,
        profile=profile,
    )
    return DeviceJob(
        device, ctx, plan.recipe, plan.variants, artifacts, inputs, evaluation, category_ids, plan.lock_wait_s, plan.command,
        adapter_spec(plan.recipe),
    )


def _only_missing(job: DeviceJob, records: list[Record], remeasure: frozenset[tuple[str, str]] = frozenset()) -> DeviceJob:
    """Drop the variants this device already has a complete `ok` record of,
    unless they are to be measured again."""
    rounds = max(1, job.ctx.plan.rounds)
    complete = {
        r.model.variant
        for r in records
        if r.device.name == job.device.name
        and r.model.name == job.recipe.name
        and r.status == "ok"
        and r.latency_ms is not None
        and r.latency_ms.rounds >= rounds
        and (r.device.name, r.model.variant) not in remeasure
    }
    return replace(job, variants=tuple(v for v in job.variants if v not in complete))


def _copy_into_run(artifact: Artifact, run_dir: Path) -> Artifact:
    """What was measured stays with the run, even after the cache is cleared."""
    return replace(artifact, path=export_artifact(artifact, run_dir / "artifacts"))


@dataclass(frozen=True)
class DeviceJob:
    """Everything one device's worker needs; shared inputs are read-only."""

    device: Device
    ctx: PairContext
    recipe: Recipe
    variants: tuple[str, ...]
    artifacts: dict[str, Artifact | ConversionError]
    inputs: dict[str, Path | None]
    evaluation: Any
    category_ids: Any
    lock_wait_s: float
    command: str
    adapter: AdapterSpec = AdapterSpec("none")


@dataclass(frozen=True)
class Transfer:
    """What deployment sent to one device during the run."""

    bytes_uploaded: int = 0
    files_uploaded: int = 0


# Messages from device workers to the main thread, which alone touches the
# store, the run folder and the display.
@dataclass(frozen=True)
class _Status:
    device: str
    label: str


@dataclass(frozen=True)
class _Pair:
    """A pair's record so far (after each round) or its final one."""

    record: Record
    samples: list[int]
    infra_failure: str | None = None
    final: bool = True
    units: int = 1  # progress units (rounds) this message completes


@dataclass(frozen=True)
class _Finished:
    device: str
    transfer: Transfer
    crash: BaseException | None = None


def _measure_devices(plan: RunPlan, store: ResultsStore, events: RunEvents, outcome: RunOutcome, jobs: list[DeviceJob], meta: dict) -> None:
    """One worker thread per device, one pair at a time on each; a device
    that fails never stops the others."""
    inbox: queue.Queue = queue.Queue()
    cancel = threading.Event()
    for job in jobs:
        events.device_status(job.device.name, "waiting", 0, len(job.variants))
        threading.Thread(target=_device_worker, args=(job, inbox, cancel), name=f"device-{job.device.name}", daemon=True).start()
    done_pairs = {job.device.name: 0 for job in jobs}
    totals = {job.device.name: len(job.variants) * max(1, job.ctx.plan.rounds) for job in jobs}
    running = len(jobs)
    crashes: list[BaseException] = []
    try:
        while running:
            message = inbox.get()
            if isinstance(message, _Status):
                events.device_status(message.device, message.label, done_pairs[message.device], totals[message.device])
                events.advance("measure", f"{message.device} · {message.label}")
            elif isinstance(message, _Pair):
                name = message.record.device.name
                if message.infra_failure and message.infra_failure not in outcome.infra_failures:
                    outcome.infra_failures.append(message.infra_failure)
                _save(store, outcome, message.record, message.samples, meta)
                done_pairs[name] += message.units
                events.advance("measure", f"{name} · {message.record.model.variant}", units=message.units)
                if message.final:
                    events.pair_done(message.record)
                events.device_status(name, message.record.model.variant, done_pairs[name], totals[name])
            elif isinstance(message, _Finished):
                running -= 1
                outcome.transfers[message.device] = message.transfer
                meta["transfers"] = {k: asdict(v) for k, v in outcome.transfers.items()}
                if message.crash is not None:
                    crashes.append(message.crash)
                sent_mb = message.transfer.bytes_uploaded / 1e6
                events.device_status(message.device, f"done, sent {sent_mb:.2f} MB", done_pairs[message.device], totals[message.device])
    except BaseException:
        cancel.set()  # workers stop after their current pair; their locks expire
        raise
    write_results(outcome.run_dir, outcome.run_id, outcome.records, meta)
    if crashes:
        raise crashes[0]  # a bug, not a device problem: every result is saved first


def _with_fix(exc: InfraError) -> str:
    """Recorded with the pair, so the fix travels into results and reports."""
    return f"{exc.message} (fix: {exc.hint})" if exc.hint else exc.message


def _device_worker(job: DeviceJob, inbox: queue.Queue, cancel: threading.Event) -> None:
    """Rounds of interleaved variants on one device (A B C A B C ...), so
    drift and heat spread over every variant alike."""
    name = job.device.name
    recipe = job.recipe
    plan = job.ctx.plan
    rounds = max(1, plan.rounds)
    transport = None
    client: AgentClient | None = None
    lock: DeviceLock | None = None
    lost: str | None = None
    runtime: tuple[str, str] | None = None
    crash: BaseException | None = None
    finished: set[str] = set()
    progress: dict[str, PairAccumulator] = {}

    def emit_failure(variant: str, kind: str, message: str, artifact: Artifact | None, round_index: int) -> None:
        record = failed_record(job.ctx, recipe.name, variant, kind, message, artifact)
        infra = message if kind == "device" else None
        inbox.put(_Pair(record, [], infra, final=True, units=rounds - round_index))
        finished.add(variant)

    def retrying(what: str, action: Any) -> Any:
        first: InfraError | None = None
        for attempt in range(plan.retries + 1):
            try:
                return action()
            except AgentError:
                raise
            except InfraError as exc:
                first = first or exc
                if attempt == plan.retries or cancel.is_set():
                    # What went wrong first (lost mid-upload) is the useful
                    # part; the retries' own failure (cannot connect) follows.
                    if first is not exc and first.message != exc.message:
                        exc.message = f"{first.message}; then, after {attempt} retr{'y' if attempt == 1 else 'ies'}: {exc.message}"
                    raise
                wait_s = plan.retry_backoff_s * 2**attempt
                inbox.put(_Status(name, f"{what}: {exc.message}; retry {attempt + 1}/{plan.retries} in {wait_s:.0f} s"))
                cancel.wait(wait_s)
        raise AssertionError("unreachable")

    def connect() -> None:
        nonlocal transport, client, lock, runtime
        inbox.put(_Status(name, "connecting"))
        transport = open_transport(job.device)
        client = AgentClient(transport, timeout_s=plan.command_timeout_s)
        lock = DeviceLock(client, wait_s=job.lock_wait_s, command=job.command)
        lock.acquire(on_wait=lambda why: inbox.put(_Status(name, f"waiting for lock: {why}")))
        runtime = _device_runtime(client, job.ctx.runtime)

    try:
        try:
            retrying("connect", connect)
        except InfraError as exc:
            lost = _with_fix(exc)
        for variant in job.variants:
            artifact = job.artifacts[variant]
            # A pair this device cannot run is recorded with the reason, once.
            skipped = skip_record(job.ctx, recipe.name, variant, artifact)
            if skipped is not None:
                inbox.put(_Pair(skipped, [], None, final=True, units=rounds))
                finished.add(variant)
            elif isinstance(artifact, ConversionError):
                emit_failure(variant, "conversion", artifact.render(), None, 0)
            elif lost is None and (reason := _cannot_load(artifact, runtime)) is not None:
                inbox.put(_Pair(skipped_record(job.ctx, artifact, reason), [], None, final=True, units=rounds))
                finished.add(variant)
        for round_index in range(rounds):
            for variant in job.variants:
                if variant in finished or cancel.is_set():
                    continue
                artifact = job.artifacts[variant]
                assert isinstance(artifact, Artifact)
                if lost is not None:
                    emit_failure(variant, "device", lost, artifact, round_index)
                    continue
                inbox.put(_Status(name, f"{variant} · round {round_index + 1}/{rounds}"))
                try:
                    assert lock is not None and client is not None
                    lock.renew()
                    reply = retrying(
                        variant,
                        lambda: run_round(job.ctx, client, artifact, job.inputs[variant], job.adapter, round_index=round_index),
                    )
                except AgentError as exc:
                    emit_failure(variant, "agent", _with_fix(exc), artifact, round_index)
                    continue
                except InfraError as exc:
                    lost = _with_fix(exc)
                    emit_failure(variant, "device", lost, artifact, round_index)
                    continue
                pair = progress.setdefault(variant, PairAccumulator(artifact))
                pair.add(reply, job.ctx, job.evaluation, job.category_ids)
                record, samples = pair.record(job.ctx)
                final = round_index == rounds - 1
                if final:  # its raw samples are in the store now: free them
                    del progress[variant]
                inbox.put(_Pair(record, samples, None, final=final, units=1))
    except Exception as exc:  # a bug: keep the other devices going, re-raised at the end
        crash = exc
        for variant in job.variants:
            if variant not in finished:
                message = f"internal error on this device's worker: {type(exc).__name__}: {exc}"
                inbox.put(_Pair(failed_record(job.ctx, recipe.name, variant, "internal", message), [], final=True, units=0))
    finally:
        if lock is not None:
            lock.release()
        transfer = Transfer()
        if transport is not None:
            transfer = Transfer(transport.bytes_uploaded, transport.files_uploaded)
            transport.close()
        inbox.put(_Finished(name, transfer, crash))


def _device_runtime(client: AgentClient, preferred: str | None) -> tuple[str, str] | None:
    """(name, version) of the runtime the agent will use on this device."""
    try:
        reply = client.call({"command": "info", "runtime": preferred, "path": client.cache_root}, timeout_s=120)
    except AgentError:
        return None  # the benchmark itself will report what is wrong
    runtime = reply.get("runtime") or {}
    return (runtime["name"], runtime.get("version", "?")) if runtime.get("name") else None


def _cannot_load(artifact: Artifact, runtime: tuple[str, str] | None) -> str | None:
    """Why this device's runtime cannot load the variant (checked on the host), or None."""
    if runtime is None:
        return None
    name, version = runtime
    status = artifact.loadability.get(name)
    if loadability.status_kind(status) != "error":
        return None
    checked = artifact.manifest.get("runtime_versions", {}).get(name, "?")
    return (
        f"this device runs {name} {version}, which cannot load {artifact.variant} "
        f"(checked on the host with {name} {checked}: {status})"
    )


def _save(store: ResultsStore, outcome: RunOutcome, record: Record, samples: list[int], meta: dict) -> None:
    # The run folder first: if a shared store (PostgreSQL) is lost mid-run,
    # the pair in hand is still saved before the run stops with exit 3.
    if samples:
        write_samples(outcome.run_dir, record.device.name, record.model.name, record.model.variant, samples)
    # A pair measured again (next round, or --resume) replaces its record.
    outcome.records[:] = [r for r in outcome.records if r.key != record.key] + [record]
    write_results(outcome.run_dir, outcome.run_id, outcome.records, meta)
    store.add_record(record, samples, supersede=record.key in outcome.to_supersede)
    outcome.to_supersede.discard(record.key)  # its later rounds replace the new record
