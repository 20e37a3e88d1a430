"""Device profiles (devices/profiles/*.yaml): a device family's habits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness import paths
from harness.config import Fields, load_yaml_mapping
from harness.errors import InputError


@dataclass(frozen=True)
class MeasurementPlan:
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
    # Wait between measurements so the device cools and settles.
    cooldown_seconds: float = 0.0


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    threads: int | None
    runtime: str | None
    capabilities: frozenset[str]
    measurement: MeasurementPlan


def available_profiles() -> list[str]:
    return sorted(p.stem for p in paths.profiles_dir().glob("*.yaml"))


def load_profile(name: str) -> Profile:
    path = paths.profiles_dir() / f"{name}.yaml"
    if not path.is_file():
        raise InputError(f"unknown device profile {name!r}", hint=f"known profiles: {', '.join(available_profiles())}")
    return parse_profile(load_yaml_mapping(path, what="device profile"), path)


def parse_profile(data: dict, path: Path) -> Profile:
    top = Fields(data, source=path, place="")
    top.reject_unknown(["name", "description", "threads", "runtime", "capabilities", "measurement"])
    m = top.sub("measurement")
    m.reject_unknown(MeasurementPlan.__dataclass_fields__)
    d = MeasurementPlan()
    plan = MeasurementPlan(
        warmup_runs=m.int("warmup_runs", d.warmup_runs, minimum=0),
        warmup_seconds=m.float("warmup_seconds", d.warmup_seconds, minimum=0),
        min_runs=m.int("min_runs", d.min_runs, minimum=1),
        min_seconds=m.float("min_seconds", d.min_seconds, minimum=0),
        max_seconds=m.float("max_seconds", d.max_seconds, minimum=0.001),
        ci_rel_tol=m.float("ci_rel_tol", d.ci_rel_tol, minimum=0),
        rounds=m.int("rounds", d.rounds, minimum=1),
        retries=m.int("retries", d.retries, minimum=0),
        retry_backoff_s=m.float("retry_backoff_s", d.retry_backoff_s, minimum=0),
        cooldown_seconds=m.float("cooldown_seconds", d.cooldown_seconds, minimum=0),
    )
    return Profile(
        name=top.str("name", required=True),
        description=top.str("description", ""),
        threads=top.int("threads", minimum=1),
        runtime=top.choice("runtime", ["ai-edge-litert", "tflite-runtime", "tensorflow"]),
        capabilities=frozenset(top.str_list("capabilities", ("float",))),
        measurement=plan,
    )
