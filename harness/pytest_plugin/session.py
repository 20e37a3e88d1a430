"""One pytest session = one harness run in the results store.

Every measurement a test asks for goes through the runner (`execute`), so
the record is exactly the one `harness run` stores, committed to the store
and the run folder before the test sees it. The first measurement starts the
run; later ones add their pairs to it (the runner's resume path, which
measures only what the run does not hold yet, so two tests asking for the
same pair share one measurement).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import Any

from harness.device import LOCAL_DEVICE_NAME, Device
from harness.errors import InputError
from harness.fleet.inventory import Inventory
from harness.results.record import Record


@dataclass(frozen=True)
class Options:
    inventory: Path | None
    devices: tuple[str, ...] | None
    results_dir: Path


class DeviceFailed(Exception):
    """The pair was measured and failed (device lost, agent error); the
    failed record is in the store."""


class PairSkipped(Exception):
    """The device cannot run the pair (capability, runtime cannot load it)."""


@dataclass(frozen=True)
class Measured:
    record: Record
    samples_ns: list[int]


class HarnessSession:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.run_id: str | None = None
        self._store: Any = None

    # -- the fleet -------------------------------------------------------

    @cached_property
    def inventory(self) -> Inventory:
        from harness.fleet.inventory import INVENTORY_ENV, empty_inventory, load_inventory

        path = self.options.inventory
        if path is None and os.environ.get(INVENTORY_ENV):
            path = Path(os.environ[INVENTORY_ENV])
        return load_inventory(path) if path is not None else empty_inventory()

    @cached_property
    def local(self) -> Device:
        from harness import paths
        from harness.device import local_device

        return local_device(paths.cache_dir(self.options.results_dir).resolve() / "local-device")

    @cached_property
    def selected(self) -> tuple[Device, ...]:
        """--harness-devices, else `local` and every inventory device."""
        names = self.options.devices or (LOCAL_DEVICE_NAME, *self.inventory.names())
        return self.inventory.select(names, local=self.local, flag="--harness-devices")

    def device(self, name: str) -> Device:
        """A selected device by name; PairSkipped when the fleet lacks it."""
        from harness.pytest_plugin.fleet import device_params

        (param,) = device_params(self.inventory, self.selected, names=(name,))
        if param.device is None:
            raise PairSkipped(param.skip_reason)
        return param.device

    # -- measuring -------------------------------------------------------

    @property
    def store_path(self) -> Path:
        return self.options.results_dir / "results.sqlite"

    def store(self) -> Any:
        if self._store is None:
            from harness.results.store import SqliteStore

            self._store = SqliteStore(self.store_path)
        return self._store

    def measure(self, model: str | Path, variant: str, device: Device, measurement: dict[str, Any],
                configuration: tuple[int | None, str | None, bool | None] = (None, None, None)) -> Measured:
        """Measure one pair on one device, in one configuration (threads,
        runtime, XNNPACK) when given; the record is stored before this returns."""
        from harness.measure.configs import Sweep, check_runtime
        from harness.model.recipe import bare_tflite_recipe, load_recipe
        from harness.results.record import Configuration, slot_name
        from harness.runner import RunPlan, execute

        threads, runtime, xnnpack = configuration
        if runtime is not None:
            check_runtime(runtime, "harness_measure(runtime=...)")
        sweep = Sweep(*(() if v is None else (v,) for v in configuration))  # type: ignore[arg-type]

        path = Path(model)
        recipe = bare_tflite_recipe(path) if path.suffix == ".tflite" else load_recipe(path)
        recipe.check_variants((variant,), source="variant")
        plan = RunPlan(
            recipe, (variant,), (device,), self.options.results_dir, command="pytest",
            inventory=self.inventory.source.resolve() if self.inventory.source else None,
            measurement=checked_measurement(measurement), sweep=sweep,
        )
        outcome = execute(plan, self.store(), resume=self.run_id)
        self.run_id = outcome.run_id
        key = (device.name, recipe.name, slot_name(variant, Configuration(threads, runtime, xnnpack) if sweep else None))
        record = next(r for r in outcome.records if r.key == key)
        if recipe.is_tflite:
            _check_same_model(record, path)
        if record.status == "skipped":
            raise PairSkipped(f"{device.name} cannot run {recipe.name} {variant}: {record.error.message}")  # type: ignore[union-attr]
        if record.status == "failed":
            error = record.error
            assert error is not None
            raise DeviceFailed(
                f"{recipe.name} {variant} on {device.name} ({device.address}) failed, {error.kind} error: {error.message}\n"
                f"(the failed record is saved: run {self.run_id} in {self.store_path})"
            )
        return Measured(record, self.store().samples_ns(record.run_id, *record.key))

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def checked_measurement(overrides: dict[str, Any]) -> dict[str, Any]:
    """Keyword overrides of the profile's measurement plan, checked by name
    and type here so a typo fails the test that made it, with the fix."""
    import difflib

    from harness.fleet.profiles import MeasurementPlan

    allowed = {f.name: f.type for f in fields(MeasurementPlan)}
    for key, value in overrides.items():
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known settings: {', '.join(allowed)}"
            raise InputError(f"unknown measurement setting {key!r}", source="harness_measure", place=key, hint=hint)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise InputError(
                f"{key} must be a number >= 0, got {value!r}", source="harness_measure", place=key,
                hint=f"e.g. {key}={getattr(MeasurementPlan(), key)!r} (the default plan's value)",
            )
        # A count cut silently to a smaller one would measure another plan; the
        # agent refuses a fractional count too, so say it here, at the call.
        if allowed[key].startswith("int") and not float(value).is_integer():
            raise InputError(
                f"{key} counts, so it takes a whole number, got {value!r}", source="harness_measure", place=key,
                hint=f"e.g. {key}={round(value)}",
            )
    return {k: int(v) if allowed[k].startswith("int") else v for k, v in overrides.items()}


def _check_same_model(record: Record, path: Path) -> None:
    """A bare .tflite is named after its file: a second, different file of
    the same name in one session would otherwise get the first one's record."""
    from harness.agent.client import file_sha256

    if record.model.sha256 is not None and record.model.sha256 != file_sha256(path):
        raise InputError(
            f"another model named {record.model.name!r} (sha256 {record.model.sha256[:12]}) was measured "
            f"on {record.device.name} earlier in this session",
            source=path,
            hint="give each .tflite a distinct file name within one pytest session",
        )
