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
    )
    return Profile(
        name=top.str("name", required=True),
        description=top.str("description", ""),
        threads=top.int("threads", minimum=1),
        runtime=top.choice("runtime", ["ai-edge-litert", "tflite-runtime", "tensorflow"]),
        capabilities=frozenset(top.str_list("capabilities", ("float",))),
        measurement=plan,
    )
