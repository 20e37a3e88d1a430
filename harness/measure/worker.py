"""One device's share of a run, in its own thread: connect, decide what
cannot run (preflight), then rounds of interleaved variants, each call
retried by the plan's policy.

A job's `variants` are slots: the variant names themselves, or, when the
run sweeps configurations, `variant@configuration` (harness/measure/
configs.py), each with its own context (threads, runtime, XNNPACK) and,
for a runtime on another interpreter of the device, its own agent client.

The worker never touches the store, the run folder or the display: it
sends messages to the runner's main thread, which alone does.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Callable, TypeVar

from harness.agent.client import AgentClient
from harness.convert import loadability
from harness.convert.converter import Artifact
from harness.dataset.preprocess import EvalInputs
from harness.device import Device
from harness.errors import AgentError, ConversionError, InfraError
from harness.fleet.capabilities import skip_reason
from harness.fleet.lock import DeviceLock, HeldByLabgrid
from harness.fleet.profiles import MeasurementPlan
from harness.measure import curve
from harness.measure.pair import PairAccumulator, PairContext, run_round, unmeasured_record
from harness.model.adapters import AdapterSpec
from harness.model.recipe import Recipe
from harness.results.record import Configuration, ErrorInfo, Record
from harness.transport import open_transport
from harness.transport.base import Transport

T = TypeVar("T")


@dataclass(frozen=True)
class DeviceJob:
    """Everything one device's worker needs; shared inputs are read-only."""

    device: Device
    ctx: PairContext
    recipe: Recipe
    variants: tuple[str, ...]
    artifacts: dict[str, Any]  # variant -> Artifact | ConversionError | Unavailable
    inputs: dict[str, EvalInputs | None]  # variant -> its eval pixels and feed
    evaluation: Any
    category_ids: Any
    lock_wait_s: float
    command: str
    adapter: AdapterSpec = AdapterSpec("none")
    # Pairs an interrupted run stored part of (record, raw samples): their
    # remaining rounds continue them.
    earlier: dict[str, tuple[Record, list[int]]] = field(default_factory=dict)
    # slot -> (variant, configuration) when the run sweeps configurations;
    # empty: every slot is a variant, measured in the device's one setting.
    slots: dict[str, tuple[str, Configuration | None]] = field(default_factory=dict)

    def variant_of(self, slot: str) -> str:
        return self.slots[slot][0] if slot in self.slots else slot

    def artifact(self, slot: str) -> Any:
        return self.artifacts[self.variant_of(slot)]

    def ctx_for(self, slot: str) -> PairContext:
        """The slot's context: the device's, with its configuration's threads,
        runtime and XNNPACK setting where it names them."""
        config = self.slots[slot][1] if slot in self.slots else None
        if config is None:
            return self.ctx
        return replace(
            self.ctx, configuration=config, xnnpack=config.xnnpack,
            threads=config.threads if config.threads is not None else self.ctx.threads,
            runtime=config.runtime or self.ctx.runtime,
        )

    def runtimes(self) -> tuple[str | None, ...]:
        """Every runtime the job's slots ask for (None: the device's default)."""
        return tuple(dict.fromkeys(self.ctx_for(slot).runtime for slot in self.variants))

    @property
    def rounds(self) -> int:
        return max(1, self.ctx.plan.rounds)

    def rounds_done(self, variant: str) -> int:
        earlier = self.earlier.get(variant)
        return earlier[0].latency_ms.rounds if earlier and earlier[0].latency_ms else 0

    @property
    def units(self) -> int:
        """Progress units (rounds) this job has left to measure."""
        return sum(self.rounds - self.rounds_done(v) for v in self.variants)


@dataclass(frozen=True)
class Transfer:
    """What deployment sent to one device during the run."""

    bytes_uploaded: int = 0
    files_uploaded: int = 0


# Messages from device workers to the main thread.
@dataclass(frozen=True)
class Status:
    device: str
    label: str


@dataclass(frozen=True)
class PairMessage:
    """A pair's record so far (after each round) or its final one."""

    record: Record
    samples: list[int]
    infra_failure: str | None = None
    final: bool = True
    units: int = 1  # progress units (rounds) this message completes


@dataclass(frozen=True)
class Finished:
    device: str
    transfer: Transfer
    crash: BaseException | None = None


def with_fix(exc: InfraError) -> str:
    """Recorded with the pair, so the fix travels into results and reports."""
    return f"{exc.message} (fix: {exc.hint})" if exc.hint else exc.message


# -- retry policy ------------------------------------------------------------


def retrying(
    action: Callable[[], T], plan: MeasurementPlan, cancel: threading.Event, on_retry: Callable[[str], None]
) -> T:
    """`action`, again after an infrastructure failure (device dropped off),
    up to `plan.retries` times with doubling backoff; an agent's own failure
    is final at once, and so is any failure once the run is cancelled."""
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
            on_retry(f"{exc.message}; retry {attempt + 1}/{plan.retries} in {wait_s:.0f} s")
            cancel.wait(wait_s)
    raise AssertionError("unreachable")


# -- connect ---------------------------------------------------------------


@dataclass
class Session:
    """An open connection to the device, its lock held."""

    transport: Transport
    client: AgentClient
    lock: DeviceLock | HeldByLabgrid
    runtime: tuple[str, str] | None  # (name, version) the agent will use
    # Per runtime a sweep asks for: (name, version), or why the device lacks it,
    # and the client whose interpreter has it (the device's own when absent).
    runtimes: dict[str | None, tuple[str, str] | str] = field(default_factory=dict)
    clients: dict[str | None, AgentClient] = field(default_factory=dict)

    def runtime_for(self, ctx: PairContext) -> tuple[str, str] | str | None:
        return self.runtimes.get(ctx.runtime, self.runtime)

    def client_for(self, ctx: PairContext) -> AgentClient:
        return self.clients.get(ctx.runtime, self.client)

    def close(self) -> Transfer:
        self.lock.release()
        transfer = Transfer(self.transport.bytes_uploaded, self.transport.files_uploaded)
        self.transport.close()
        return transfer


def connect(job: DeviceJob, say: Callable[[str], None]) -> Session:
    say("connecting")
    transport = open_transport(job.device)
    try:
        client = AgentClient(transport, timeout_s=job.ctx.plan.command_timeout_s)
        lock: DeviceLock | HeldByLabgrid
        if "labgrid_place" in job.device.extra:
            lock = HeldByLabgrid()  # the coordinator gave this run the place: it is the lock
        else:
            lock = DeviceLock(client, wait_s=job.lock_wait_s, command=job.command)
        lock.acquire(on_wait=lambda why: say(f"waiting for lock: {why}"))
    except BaseException:
        transport.close()
        raise
    try:
        session = Session(transport, client, lock, device_runtime(client, job.ctx.runtime))
        if job.slots:
            for runtime in job.runtimes():
                session.clients[runtime], session.runtimes[runtime] = runtime_client(job, transport, client, runtime)
        return session
    except BaseException:
        Session(transport, client, lock, None).close()
        raise


def runtime_client(job: DeviceJob, transport: Transport, client: AgentClient, runtime: str | None) -> tuple[AgentClient, tuple[str, str] | str]:
    """The client that runs `runtime` on this device and its (name, version),
    or, when the device has it nowhere, why (its pairs are then skipped)."""
    other = job.device.runtime_pythons.get(runtime or "")
    if other:
        client = AgentClient(transport, timeout_s=job.ctx.plan.command_timeout_s)
        client.use_python(other)
    try:
        reply = client.call({"command": "info", "runtime": runtime, "path": client.cache_root}, timeout_s=120)
    except AgentError as exc:
        return client, f"{client.python} cannot run the agent: {exc.message}"
    except InfraError as exc:
        if not other:
            raise
        # The device answered its own python a moment ago: this interpreter
        # is missing or broken (exit 127, no reply), not the device lost.
        return client, (f"runtime_pythons names {other} for {runtime}, which cannot run the agent: "
                        f"{exc.message.splitlines()[0]} (fix: point runtime_pythons at an interpreter that has {runtime})")
    found = reply.get("runtime") or {}
    if found.get("name"):
        return client, (found["name"], found.get("version", "?"))
    where = f"{client.python}" + (" (runtime_pythons)" if other else "")
    return client, (
        f"this device has no {runtime} for {where}: {reply.get('runtime_error') or 'not importable'} "
        f"(fix: install it there, or name an interpreter that has it under the device's runtime_pythons: in the inventory)"
    )


def device_runtime(client: AgentClient, preferred: str | None) -> tuple[str, str] | None:
    """(name, version) of the runtime the agent will use on this device."""
    try:
        reply = client.call({"command": "info", "runtime": preferred, "path": client.cache_root}, timeout_s=120)
    except AgentError:
        return None  # the benchmark itself will report what is wrong
    runtime = reply.get("runtime") or {}
    return (runtime["name"], runtime.get("version", "?")) if runtime.get("name") else None


# -- preflight (pure) -----------------------------------------------------------


def preflight(job: DeviceJob, runtime: tuple[str, str] | None, lost: str | None, session: "Session | None" = None) -> dict[str, Record]:
    """The record of each pair this device will not measure, decided before
    measuring: it cannot run here, its conversion failed, or this device's
    runtime cannot load it (known once connected)."""
    return {
        slot: record
        for slot in job.variants
        if (record := preflight_record(
            job.ctx_for(slot), job.recipe.name, job.variant_of(slot), job.artifact(slot),
            session.runtime_for(job.ctx_for(slot)) if session else runtime, lost,
        )) is not None
    }


def preflight_record(
    ctx: PairContext, model: str, variant: str, artifact: Any, runtime: tuple[str, str] | str | None, lost: str | None
) -> Record | None:
    if isinstance(runtime, str) and lost is None:  # a swept runtime this device does not have
        return unmeasured_record(ctx, model, variant, "skipped", ErrorInfo("runtime-missing", runtime),
                                 artifact if isinstance(artifact, Artifact) else None)
    runtime = None if isinstance(runtime, str) else runtime
    skip = skip_reason(ctx.profile, variant, artifact)
    if skip is not None:
        return unmeasured_record(ctx, model, variant, "skipped", ErrorInfo(skip.kind, skip.message), edgetpu=skip.edgetpu)
    if isinstance(artifact, ConversionError):
        return unmeasured_record(ctx, model, variant, "failed", ErrorInfo("conversion", artifact.render()))
    if lost is None and (reason := cannot_load(artifact, runtime)) is not None:
        return unmeasured_record(ctx, model, variant, "skipped", ErrorInfo("unloadable", reason), artifact)
    return None


def cannot_load(artifact: Artifact, runtime: tuple[str, str] | None) -> str | None:
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


# -- the worker ------------------------------------------------------------------


def device_worker(job: DeviceJob, inbox: queue.Queue, cancel: threading.Event) -> None:
    """The thread's body: every variant of the job ends in a final message,
    then `Finished`; a bug here fails this device's pairs, never another's."""
    name = job.device.name
    session: Session | None = None
    crash: BaseException | None = None
    finished: set[str] = set()

    def say(label: str) -> None:
        inbox.put(Status(name, label))

    try:
        lost: str | None = None
        try:
            session = retrying(lambda: connect(job, say), job.ctx.plan, cancel, lambda why: say(f"connect: {why}"))
        except InfraError as exc:
            lost = with_fix(exc)
        for variant, record in preflight(job, session.runtime if session else None, lost, session).items():
            inbox.put(PairMessage(record, [], None, final=True, units=job.rounds - job.rounds_done(variant)))
            finished.add(variant)
        _Rounds(job, session, lost, inbox, cancel, finished).run()
    except Exception as exc:  # a bug: keep the other devices going, re-raised at the end
        crash = exc
        for variant in job.variants:
            if variant not in finished:
                message = f"internal error on this device's worker: {type(exc).__name__}: {exc}"
                record = unmeasured_record(job.ctx_for(variant), job.recipe.name, job.variant_of(variant), "failed", ErrorInfo("internal", message))
                inbox.put(PairMessage(record, [], final=True, units=0))
    finally:
        inbox.put(Finished(name, session.close() if session is not None else Transfer(), crash))


class _Rounds:
    """Rounds of interleaved variants on one device (A B C A B C ...), so
    drift and heat spread over every variant alike."""

    def __init__(self, job: DeviceJob, session: Session | None, lost: str | None, inbox: queue.Queue,
                 cancel: threading.Event, finished: set[str]) -> None:
        self.job, self.session, self.lost = job, session, lost
        self.inbox, self.cancel, self.finished = inbox, cancel, finished
        self.pairs: dict[str, PairAccumulator] = {}

    def run(self) -> None:
        for round_index in range(self.job.rounds):
            for variant in self.job.variants:
                if variant in self.finished or self.cancel.is_set() or round_index < self.job.rounds_done(variant):
                    continue
                artifact = self.job.artifact(variant)
                assert isinstance(artifact, Artifact)  # preflight finished every other kind
                self._measure(variant, artifact, round_index)

    def _fail(self, variant: str, kind: str, message: str, artifact: Artifact, round_index: int) -> None:
        record = unmeasured_record(self.job.ctx_for(variant), self.job.recipe.name, self.job.variant_of(variant), "failed",
                                   ErrorInfo(kind, message), artifact)
        infra = message if kind == "device" else None
        self.inbox.put(PairMessage(record, [], infra, final=True, units=self.job.rounds - round_index))
        self.finished.add(variant)

    def _measure(self, variant: str, artifact: Artifact, round_index: int) -> None:
        job, name = self.job, self.job.device.name
        if self.lost is not None or self.session is None:
            self._fail(variant, "device", self.lost or "not connected", artifact, round_index)
            return
        self.inbox.put(Status(name, f"{variant} · round {round_index + 1}/{job.rounds}"))
        session, ctx = self.session, job.ctx_for(variant)
        try:
            session.lock.renew()
            reply = retrying(
                lambda: run_round(ctx, session.client_for(ctx), artifact, job.inputs[job.variant_of(variant)], job.adapter,
                                  round_index=round_index),
                job.ctx.plan, self.cancel, lambda why: self.inbox.put(Status(name, f"{variant}: {why}")),
            )
        except AgentError as exc:
            self._fail(variant, "agent", with_fix(exc), artifact, round_index)
            return
        except InfraError as exc:
            self.lost = with_fix(exc)
            self._fail(variant, "device", self.lost, artifact, round_index)
            return
        pair = self.pairs.setdefault(variant, PairAccumulator(artifact, earlier=job.earlier.get(variant)))
        pair.add(reply, ctx, job.evaluation, job.category_ids, job.recipe.input)
        record, samples = pair.record(ctx)
        final = round_index == job.rounds - 1
        if final and artifact.curve_files:
            record = self._with_curve(record, artifact)
        if final:  # its raw samples are in the store now: free them
            del self.pairs[variant]
        self.inbox.put(PairMessage(record, samples, None, final=final, units=1))

    def _with_curve(self, record: Record, artifact: Artifact) -> Record:
        """selective-int8's curve models timed here (measure.curve); a
        failure leaves the curve without this device's latency, said."""
        job, session = self.job, self.session
        assert session is not None
        self.inbox.put(Status(job.device.name, f"{artifact.variant} · curve"))
        try:
            session.lock.renew()
            latencies = curve.time_points(job.ctx, session.client, artifact, job.inputs[artifact.variant], job.adapter)
        except (AgentError, InfraError) as exc:
            return curve.with_latencies(record, {}, error=with_fix(exc))
        return curve.with_latencies(record, latencies)
