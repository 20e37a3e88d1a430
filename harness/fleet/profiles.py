"""Device profiles (devices/profiles/*.yaml): a device family's habits.

A profile says how to measure a kind of device: threads and CPU affinity,
the runtime to prefer, what it can run (capabilities, matched against each
variant's `requires`), which delegate library a capability needs, where the
agent reads temperature, frequency and throttling, the CPU governor that
makes figures repeatable, the cool-down before each pair, and the
measurement plan. `extends: OTHER` starts from another profile and
overrides the keys given (the emulated Pi is a Pi 4 with a short plan).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from harness import paths
from harness.config import Fields, load_yaml_mapping
from harness.errors import InputError

FAMILIES = ("x86", "raspberry-pi", "coral")
FAMILY_TITLES = {"x86": "x86 CPU", "raspberry-pi": "Raspberry Pi", "coral": "Coral Edge TPU"}
RUNTIMES = ("ai-edge-litert", "tflite-runtime", "tensorflow")
# Where the agent may read each reading, in the order a profile lists them
# (the first that answers wins). See devices/agent.py `environment()`.
TELEMETRY_SOURCES: dict[str, tuple[str, ...]] = {
    "temperature": ("vcgencmd", "thermal"),
    "throttling": ("vcgencmd", "sysfs"),
    "frequency": ("vcgencmd", "cpufreq", "cpuinfo"),
    "accelerator_temperature": ("apex",),
}
KNOWN_CAPABILITIES = ("float", "int8", "int16x8", "edgetpu")
TOP_KEYS = (
    "name", "description", "extends", "family", "emulated", "threads", "affinity", "runtime", "runtimes", "capabilities",
    "delegates", "telemetry", "governor", "cooldown", "measurement",
)


@dataclass(frozen=True)
class MeasurementPlan:
    """How long to measure one pair. These defaults are the only ones: the
    agent has none and refuses a benchmark request that lacks a field of
    ``round_request()``."""

    warmup_runs: int = 10
    warmup_seconds: float = 0.5
    min_runs: int = 100
    min_seconds: float = 2.0
    max_seconds: float = 20.0
    ci_rel_tol: float = 0.01
    # Variants are interleaved in rounds (A B C A B C ...) so drift spreads
    # evenly; each round is a fresh process with its share of the runs.
    rounds: int = 2
    # A device that drops off is retried this many times, with backoff.
    retries: int = 2
    retry_backoff_s: float = 1.0
    # Eval images scored per pair (None: all); an emulated device runs ~50x
    # slower and scores a few.
    max_eval_images: int | None = None
    # Longest one agent call may take before the pair fails: a device that
    # goes silent mid-command (packets dropped, no RST) is noticed here, not
    # after TCP's own ~15-minute give-up.
    command_timeout_s: float = 600.0
    # The per-operator profile's own pass after the timed samples (runs 0:
    # none): at least this many runs and seconds, like the timed loop, so
    # its median sees the host load the samples saw; fewer runs once the cap
    # has passed (int16x8 on CPU kernels). The timed samples never run under
    # the profiler.
    op_profile_runs: int = 50
    op_profile_min_seconds: float = 1.0
    op_profile_max_seconds: float = 3.0

    def op_profile_request(self) -> dict[str, int | float]:
        """The per-operator profile's pass, for the first round's request
        (nothing where it is off)."""
        if not self.op_profile_runs:
            return {}
        return {"op_profile_runs": self.op_profile_runs, "op_profile_min_seconds": self.op_profile_min_seconds,
                "op_profile_max_seconds": self.op_profile_max_seconds}

    def round_request(self) -> dict[str, int | float]:
        """The plan fields of one round's agent request: every warm-up, and
        each round's share of the minimums and of the cap."""
        rounds = max(1, self.rounds)
        return {
            "warmup_runs": self.warmup_runs,
            "warmup_seconds": self.warmup_seconds,
            "min_runs": math.ceil(self.min_runs / rounds),
            "min_seconds": self.min_seconds / rounds,
            "max_seconds": self.max_seconds / rounds,
            "ci_rel_tol": self.ci_rel_tol,
        }


def scaled_plan(plan: MeasurementPlan, scale: float) -> MeasurementPlan:
    """The same plan measuring `scale` times longer (more runs, more seconds),
    for a pair whose interval was too wide to decide a budget."""
    if scale == 1.0:
        return plan
    # The minimums grow (that is what narrows the interval); the early stop
    # and the cap stay, so a re-measurement costs about `scale` times the
    # minimum, not `scale` times the cap.
    min_seconds = plan.min_seconds * scale
    return replace(
        plan,
        min_runs=int(plan.min_runs * scale),
        min_seconds=min_seconds,
        max_seconds=max(plan.max_seconds, min_seconds),
    )


@dataclass(frozen=True)
class Cooldown:
    """Before each pair: rest `seconds`, then wait (at most `max_wait_s`)
    until the temperature is at or below `max_temperature_c`, if set."""

    seconds: float = 0.0
    max_temperature_c: float | None = None
    max_wait_s: float = 120.0


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    threads: int | None
    runtime: str | None
    capabilities: frozenset[str]
    measurement: MeasurementPlan
    family: str = "x86"
    emulated: bool = False
    affinity: tuple[int, ...] | None = None
    # capability -> delegate library loaded through the runtime's load_delegate
    delegates: dict[str, str] = field(default_factory=dict, hash=False)
    telemetry: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    # The governor that keeps the clock fixed; anything else is warned about.
    governor: str | None = "performance"
    cooldown: Cooldown = Cooldown()
    # A sweep the profile asks for (`threads: [1, 2, 4]`, `runtimes: [...]`):
    # each value a configuration of every pair (harness/measure/configs.py).
    sweep_threads: tuple[int, ...] = ()
    runtimes: tuple[str, ...] = ()

    @property
    def family_title(self) -> str:
        return FAMILY_TITLES.get(self.family, self.family)

    def telemetry_request(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self.telemetry.items()}


def available_profiles() -> list[str]:
    return sorted(p.stem for p in paths.profiles_dir().glob("*.yaml"))


def load_profile(name: str, *, _seen: tuple[str, ...] = ()) -> Profile:
    path = paths.profiles_dir() / f"{name}.yaml"
    if not path.is_file():
        raise InputError(f"unknown device profile {name!r}", hint=f"known profiles: {', '.join(available_profiles())}")
    data = load_yaml_mapping(path, what="device profile")
    base = None
    parent = data.get("extends")
    if parent is not None:
        if not isinstance(parent, str) or parent in _seen or parent == name:
            raise InputError(
                f"extends {parent!r} is not another profile's name (or makes a cycle)", source=path, place="extends",
                hint=f"known profiles: {', '.join(available_profiles())}",
            )
        if parent not in available_profiles():
            raise InputError(f"extends unknown profile {parent!r}", source=path, place="extends",
                             hint=f"known profiles: {', '.join(available_profiles())}")
        base = load_profile(parent, _seen=(*_seen, name))
    return parse_profile(data, path, base=base)


def parse_profile(data: dict, path: Path, *, base: Profile | None = None) -> Profile:
    top = Fields(data, source=path, place="")
    top.reject_unknown(TOP_KEYS)
    b = base or Profile("", "", None, None, frozenset({"float"}), MeasurementPlan(), telemetry=_default_telemetry())
    capabilities = frozenset(top.str_list("capabilities", tuple(sorted(b.capabilities))))
    for cap in capabilities:
        if cap not in KNOWN_CAPABILITIES:
            raise InputError(f"unknown capability {cap!r}", source=path, place="capabilities",
                             hint=f"use some of: {', '.join(KNOWN_CAPABILITIES)}")
    delegates = _delegates(top, b.delegates)
    for cap in delegates:
        if cap not in capabilities:
            raise InputError(f"delegate for {cap!r}, which the profile does not offer", source=path,
                             place=f"delegates.{cap}", hint=f"add {cap} to capabilities or remove the delegate")
    if "edgetpu" in capabilities and "edgetpu" not in delegates:
        raise InputError("an Edge TPU profile needs its delegate library", source=path, place="delegates",
                         hint="delegates: {edgetpu: libedgetpu.so.1}")
    threads, sweep_threads = threads_setting(top, b.threads, b.sweep_threads)
    return Profile(
        name=top.str("name", required=True),
        description=top.str("description", b.description),
        threads=threads,
        sweep_threads=sweep_threads,
        runtimes=runtime_list(top, b.runtimes),
        runtime=top.choice("runtime", RUNTIMES, b.runtime),
        capabilities=capabilities,
        measurement=_plan(top.sub("measurement"), b.measurement),
        family=top.choice("family", FAMILIES, b.family),
        emulated=top.bool("emulated", b.emulated),
        affinity=_affinity(top, b.affinity),
        delegates=delegates,
        telemetry=_telemetry(top.sub("telemetry"), b.telemetry),
        governor=top.str("governor", b.governor),
        cooldown=_cooldown(top.sub("cooldown"), b.cooldown),
    )


def threads_setting(f: Fields, default: int | None = None, default_sweep: tuple[int, ...] = ()) -> tuple[int | None, tuple[int, ...]]:
    """`threads: 4` (the one setting) or `threads: [1, 2, 4]` (a sweep)."""
    value = f.data.get("threads")
    if not isinstance(value, list):
        return f.int("threads", default, minimum=1), (() if "threads" in f.data else default_sweep)
    if not value or len(set(value)) != len(value) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value):
        raise InputError(f"expected a thread count or a list of distinct ones, got {value!r}", source=f.source,
                         place=f._where("threads"), hint="threads: 4, or threads: [1, 2, 4] to measure each")
    return None, tuple(value)


def runtime_list(f: Fields, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    """`runtimes: [ai-edge-litert, tflite-runtime]`: each one a configuration."""
    names = f.str_list("runtimes", default)
    for name in names:
        if name not in RUNTIMES:
            raise InputError(f"unknown runtime {name!r}", source=f.source, place=f._where("runtimes"),
                             hint=f"runtimes: {', '.join(RUNTIMES)}")
    return names


def _default_telemetry() -> dict[str, tuple[str, ...]]:
    return {"temperature": ("thermal",), "throttling": ("sysfs",), "frequency": ("cpufreq", "cpuinfo")}


def _plan(m: Fields, d: MeasurementPlan) -> MeasurementPlan:
    m.reject_unknown([f.name for f in fields(MeasurementPlan)])
    return MeasurementPlan(
        warmup_runs=m.int("warmup_runs", d.warmup_runs, minimum=0),
        warmup_seconds=m.float("warmup_seconds", d.warmup_seconds, minimum=0),
        min_runs=m.int("min_runs", d.min_runs, minimum=1),
        min_seconds=m.float("min_seconds", d.min_seconds, minimum=0),
        max_seconds=m.float("max_seconds", d.max_seconds, minimum=0.001),
        ci_rel_tol=m.float("ci_rel_tol", d.ci_rel_tol, minimum=0),
        rounds=m.int("rounds", d.rounds, minimum=1),
        retries=m.int("retries", d.retries, minimum=0),
        retry_backoff_s=m.float("retry_backoff_s", d.retry_backoff_s, minimum=0),
        max_eval_images=m.int("max_eval_images", d.max_eval_images, minimum=1),
        command_timeout_s=m.float("command_timeout_s", d.command_timeout_s, minimum=1),
        op_profile_runs=m.int("op_profile_runs", d.op_profile_runs, minimum=0),
        op_profile_min_seconds=m.float("op_profile_min_seconds", d.op_profile_min_seconds, minimum=0),
        op_profile_max_seconds=m.float("op_profile_max_seconds", d.op_profile_max_seconds, minimum=0),
    )


def _cooldown(c: Fields, d: Cooldown) -> Cooldown:
    c.reject_unknown([f.name for f in fields(Cooldown)])
    return Cooldown(
        seconds=c.float("seconds", d.seconds, minimum=0),
        # An explicit null switches the inherited temperature wait off.
        max_temperature_c=None if ("max_temperature_c" in c.data and c.data["max_temperature_c"] is None)
        else c.float("max_temperature_c", d.max_temperature_c, minimum=0),
        max_wait_s=c.float("max_wait_s", d.max_wait_s, minimum=0),
    )


def _affinity(top: Fields, default: tuple[int, ...] | None) -> tuple[int, ...] | None:
    value: Any = top.data.get("affinity", default)
    if value is None:
        return None
    if isinstance(value, tuple):
        return value
    if not isinstance(value, list) or not value or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        raise InputError(f"expected a list of CPU numbers, got {value!r}", source=top.source, place="affinity",
                         hint="affinity: [2, 3] pins the benchmark to CPUs 2 and 3; leave it out for no pinning")
    return tuple(value)


def _delegates(top: Fields, default: dict[str, str]) -> dict[str, str]:
    d = top.sub("delegates")
    if not d.data:
        return dict(default)
    d.reject_unknown(KNOWN_CAPABILITIES)
    return {key: d.str(key, required=True) for key in d.data}


def _telemetry(t: Fields, default: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    t.reject_unknown(TELEMETRY_SOURCES)
    out = dict(default)
    for reading, known in TELEMETRY_SOURCES.items():
        if reading not in t.data:
            continue
        sources = t.str_list(reading)
        for source in sources:
            if source not in known:
                raise InputError(f"unknown source {source!r} for {reading}", source=t.source,
                                 place=f"telemetry.{reading}", hint=f"use some of: {', '.join(known)}")
        out[reading] = sources
    return out
