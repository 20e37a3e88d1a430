"""Configurations as a dimension of a run (issue 17): threads, runtime and
the default XNNPACK delegate, swept like variants.

A sweep comes from the command line (`--threads 1,2 --runtimes
ai-edge-litert,tflite-runtime --xnnpack on,off`), else from the inventory's
or the profile's lists (`threads: [1, 2]`, `runtimes: [...]`), dimension by
dimension: the command line wins over the inventory, which wins over the
profile. A single number (`threads: 4`) is not a sweep: it is the device's
one setting, and its records keep the identity they always had.

Pure: no I/O; the runner asks it for each device's configurations.
"""

from __future__ import annotations

import difflib
import itertools
from dataclasses import dataclass

from harness.device import Device
from harness.errors import InputError
from harness.fleet.profiles import RUNTIMES, Profile
from harness.results.record import Configuration, slot_name

XNNPACK_WORDS = {"on": True, "off": False}


@dataclass(frozen=True)
class Sweep:
    """The values each dimension takes; an empty tuple: not swept."""

    threads: tuple[int, ...] = ()
    runtimes: tuple[str, ...] = ()
    xnnpack: tuple[bool, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.threads or self.runtimes or self.xnnpack)

    def over(self, fallback: "Sweep") -> "Sweep":
        """This sweep, each dimension it leaves out taken from `fallback`."""
        return Sweep(self.threads or fallback.threads, self.runtimes or fallback.runtimes, self.xnnpack or fallback.xnnpack)

    def configurations(self) -> tuple[Configuration | None, ...]:
        """Every combination, threads slowest; (None,) when nothing is swept,
        so a run without a sweep measures exactly what it always did."""
        if not self:
            return (None,)
        return tuple(
            Configuration(threads=t, runtime=r, xnnpack=x)
            for t, r, x in itertools.product(self.threads or (None,), self.runtimes or (None,), self.xnnpack or (None,))
        )

    def to_meta(self) -> dict[str, list]:
        """What a run's results.json keeps, so --resume sweeps the same."""
        return {"threads": list(self.threads), "runtimes": list(self.runtimes), "xnnpack": list(self.xnnpack)}

    @classmethod
    def from_meta(cls, data: dict | None) -> "Sweep":
        data = data or {}
        return cls(tuple(data.get("threads") or ()), tuple(data.get("runtimes") or ()), tuple(data.get("xnnpack") or ()))


def device_sweep(cli: Sweep, device: Device, profile: Profile) -> Sweep:
    """The sweep one device runs: the command line's, then its inventory
    entry's lists, then its profile's, dimension by dimension."""
    return cli.over(Sweep(device.sweep_threads, device.runtimes)).over(Sweep(profile.sweep_threads, profile.runtimes))


def slots(variants: tuple[str, ...], configurations: tuple[Configuration | None, ...]) -> dict[str, tuple[str, Configuration | None]]:
    """slot name -> (variant, configuration), configurations innermost, so a
    round goes fp32@t1 fp32@t2 int8@t1 int8@t2 and each variant's
    configurations are measured side by side."""
    return {slot_name(v, c): (v, c) for v in variants for c in configurations}


# -- the command line's flags -------------------------------------------------


def _items(text: str, flag: str, example: str) -> list[str]:
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise InputError(f"empty item in {text!r}", source=flag, hint=f"a comma-separated list, e.g. {flag} {example}")
    if len(set(items)) != len(items):
        raise InputError(f"{text!r} names a value twice", source=flag, hint="name each value once")
    return items


def _thread_count(item: str) -> int:
    if not item.isdigit() or int(item) < 1:
        raise InputError(f"{item!r} is not a thread count", source="--threads", hint="whole numbers from 1, e.g. --threads 1,2,4")
    return int(item)


def _xnnpack_word(item: str) -> bool:
    if item.lower() not in XNNPACK_WORDS:
        raise InputError(f"{item!r} is not on or off", source="--xnnpack", hint="--xnnpack on,off (or one of them)")
    return XNNPACK_WORDS[item.lower()]


def check_runtime(name: str, source: str = "--runtimes") -> str:
    if name not in RUNTIMES:
        close = difflib.get_close_matches(name, RUNTIMES, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"runtimes: {', '.join(RUNTIMES)}"
        raise InputError(f"unknown runtime {name!r}", source=source, hint=hint)
    return name


def parse_threads(text: str | None) -> tuple[int, ...]:
    return tuple(_thread_count(i) for i in _items(text, "--threads", "1,2,4")) if text is not None else ()


def parse_runtimes(text: str | None) -> tuple[str, ...]:
    return tuple(check_runtime(i) for i in _items(text, "--runtimes", "ai-edge-litert,tflite-runtime")) if text is not None else ()


def parse_xnnpack(text: str | None) -> tuple[bool, ...]:
    return tuple(_xnnpack_word(i) for i in _items(text, "--xnnpack", "on,off")) if text is not None else ()


def cli_sweep(threads: str | None, runtimes: str | None, xnnpack: str | None) -> Sweep:
    return Sweep(parse_threads(threads), parse_runtimes(runtimes), parse_xnnpack(xnnpack))
