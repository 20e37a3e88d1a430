"""Run plans: datasets, conversion, then every (device, variant) pair.

Each measured pair is committed to the results database and the run folder
before the next pair starts. A pair that fails is recorded with its reason
and the run goes on; a device that is lost fails its remaining pairs, never
the other devices'. Devices run in parallel (a worker thread each), one
pair at a time per device under the device lock; only the main thread
writes results, so the store needs no locking.
"""

from __future__ import annotations

import platform
import queue
import sys
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from harness import __version__, loadability, paths
from harness.adapters import AdapterSpec, adapter_spec
from harness.agent_client import AgentClient
from harness.convert.converter import Artifact, convert_variants, export_artifact
from harness.dataset.resolve import resolve_dataset
from harness.device import Device
from harness.device_lock import DeviceLock
from harness.errors import AgentError, ConversionError, InfraError
from harness.measure.pair import PairContext, failed_record, measure_pair, skipped_record
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

    def device_status(self, device: str, label: str, done: int, total: int) -> None: ...


@dataclass(frozen=True)
class RunPlan:
    recipe: Recipe
    variants: tuple[str, ...]
    devices: tuple[Device, ...]
    reports_dir: Path
    command: str = "run"
    # How long to wait for another controller's device lock (0: fail at once).
    lock_wait_s: float = 0.0


@dataclass
class RunOutcome:
    run_id: str
    run_dir: Path
    records: list[Record] = field(default_factory=list)
    infra_failures: list[str] = field(default_factory=list)
    transfers: dict[str, "Transfer"] = field(default_factory=dict)

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
            if evaluation is not None and plan.recipe.adapter != "none"
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

        # Inputs depend on the variant, not the device: prepared once, here,
        # so device workers never write the cache concurrently.
        inputs = {
            v: prepared_inputs(evaluation, plan.recipe.input, a.input_quant, cache)
            if isinstance(a, Artifact) and evaluation is not None
            else None
            for v, a in artifacts.items()
        }
        events.stage("measure", total=len(plan.variants) * len(plan.devices))
        jobs = [_device_job(plan, outcome, device, artifacts, inputs, evaluation, category_ids) for device in plan.devices]
        _measure_devices(plan, store, events, outcome, jobs, meta)
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        store.finish_run(run_id, status)
    return outcome


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
    threads = device.threads or profile.threads
    ctx = PairContext(
        run_id=outcome.run_id,
        run_dir=outcome.run_dir,
        device_info=DeviceInfo(name=device.name, profile=device.profile),
        threads=threads,
        plan=profile.measurement,
        runtime=profile.runtime,
    )
    return DeviceJob(
        device, ctx, plan.recipe, plan.variants, artifacts, inputs, evaluation, category_ids, plan.lock_wait_s, plan.command,
        adapter_spec(plan.recipe),
    )


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
    record: Record
    samples: list[int]
    infra_failure: str | None = None


@dataclass(frozen=True)
class _Finished:
    device: str
    transfer: Transfer
    crash: BaseException | None = None


def _measure_devices(plan: RunPlan, store: SqliteStore, events: RunEvents, outcome: RunOutcome, jobs: list[DeviceJob], meta: dict) -> None:
    """One worker thread per device, one pair at a time on each; a device
    that fails never stops the others."""
    inbox: queue.Queue = queue.Queue()
    cancel = threading.Event()
    for job in jobs:
        events.device_status(job.device.name, "waiting", 0, len(job.variants))
        threading.Thread(target=_device_worker, args=(job, inbox, cancel), name=f"device-{job.device.name}", daemon=True).start()
    done_pairs = {job.device.name: 0 for job in jobs}
    totals = {job.device.name: len(job.variants) for job in jobs}
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
                done_pairs[name] += 1
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
    name = job.device.name
    recipe = job.recipe
    transport = None
    lock: DeviceLock | None = None
    lost: str | None = None
    runtime: tuple[str, str] | None = None
    crash: BaseException | None = None
    remaining = list(job.variants)
    try:
        try:
            inbox.put(_Status(name, "connecting"))
            transport = open_transport(job.device)
            client = AgentClient(transport)
            lock = DeviceLock(client, wait_s=job.lock_wait_s, command=job.command)
            lock.acquire(on_wait=lambda why: inbox.put(_Status(name, f"waiting for lock: {why}")))
            runtime = _device_runtime(client, job.ctx.runtime)
        except InfraError as exc:
            lost = _with_fix(exc)
        first = True
        while remaining and not cancel.is_set():
            variant = remaining.pop(0)
            artifact = job.artifacts[variant]
            failure: str | None = None
            if isinstance(artifact, ConversionError):
                record = failed_record(job.ctx, recipe.name, variant, "conversion", artifact.render())
                samples: list[int] = []
            elif lost is not None:
                record, samples, failure = failed_record(job.ctx, recipe.name, variant, "device", lost, artifact), [], lost
            elif (reason := _cannot_load(artifact, runtime)) is not None:
                record, samples = skipped_record(job.ctx, artifact, reason), []
            else:
                inbox.put(_Status(name, f"{variant} · measuring"))
                try:
                    assert lock is not None
                    if not first:
                        lock.renew()
                    first = False
                    record, samples = measure_pair(
                        job.ctx, client, artifact, job.inputs[variant], job.evaluation, job.category_ids, job.adapter
                    )
                except AgentError as exc:
                    record, samples = failed_record(job.ctx, recipe.name, variant, "agent", exc.message, artifact), []
                except InfraError as exc:
                    lost = failure = _with_fix(exc)
                    record, samples = failed_record(job.ctx, recipe.name, variant, "device", lost, artifact), []
            inbox.put(_Pair(record, samples, failure))
    except Exception as exc:  # a bug: keep the other devices going, re-raised at the end
        crash = exc
        for variant in remaining:
            message = f"internal error on this device's worker: {type(exc).__name__}: {exc}"
            inbox.put(_Pair(failed_record(job.ctx, recipe.name, variant, "internal", message), []))
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


def _save(store: SqliteStore, outcome: RunOutcome, record: Record, samples: list[int], meta: dict) -> None:
    store.add_record(record, samples)
    if samples:
        write_samples(outcome.run_dir, record.device.name, record.model.name, record.model.variant, samples)
    outcome.records.append(record)
    write_results(outcome.run_dir, outcome.run_id, outcome.records, meta)
