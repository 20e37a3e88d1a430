"""Strict YAML loading shared by recipes, profiles and (later) inventories.

Every problem becomes one :class:`InputError` naming the file, the place in
it (``devices.pi-1.port``) and a fix; unknown keys are errors with a
did-you-mean, because a misspelt key silently ignored is a wrong benchmark.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from harness.errors import InputError


def load_yaml_mapping(path: Path, *, what: str) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{what} not found", source=path, hint="check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {what}: {exc}", source=path, hint="check the file") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        place = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError(f"not valid YAML: {problem}", source=path, place=place, hint="fix the YAML syntax") from None
    if not isinstance(data, dict):
        raise InputError(
            f"{what} must be a YAML mapping, got {type(data).__name__}", source=path, hint="see the examples in README.md"
        )
    return data


class Fields:
    """Typed, strict access to one mapping inside a config file."""

    def __init__(self, data: Any, *, source: Path | str, place: str) -> None:
        if not isinstance(data, Mapping):
            raise InputError(f"expected a mapping, got {type(data).__name__}", source=source, place=place or None)
        self.data = data
        self.source = source
        self.place = place

    def _where(self, key: str) -> str:
        return f"{self.place}.{key}" if self.place else key

    def reject_unknown(self, allowed: Iterable[str]) -> None:
        allowed = list(allowed)
        for key in self.data:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"allowed keys: {', '.join(allowed)}"
                raise InputError(f"unknown key {key!r}", source=self.source, place=self._where(str(key)), hint=hint)

    def _get(self, key: str, default: Any, required: bool) -> Any:
        if key not in self.data or self.data[key] is None:
            if required:
                raise InputError("missing required key", source=self.source, place=self._where(key), hint=f"add '{key}:'")
            return default
        return self.data[key]

    def _fail(self, key: str, expected: str, value: Any) -> InputError:
        return InputError(
            f"expected {expected}, got {value!r}", source=self.source, place=self._where(key), hint=f"set {key} to {expected}"
        )

    def str(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self._get(key, default, required)
        if value is not None and not isinstance(value, str):
            raise self._fail(key, "a string", value)
        return value

    def int(self, key: str, default: int | None = None, *, required: bool = False, minimum: int | None = None) -> int | None:
        value = self._get(key, default, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(key, "a whole number", value)
        if minimum is not None and value < minimum:
            raise self._fail(key, f"a whole number >= {minimum}", value)
        return value

    def float(self, key: str, default: float | None = None, *, required: bool = False, minimum: float | None = None) -> float | None:
        value = self._get(key, default, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._fail(key, "a number", value)
        if minimum is not None and value < minimum:
            raise self._fail(key, f"a number >= {minimum}", value)
        return float(value)

    def bool(self, key: str, default: bool | None = None, *, required: bool = False) -> bool | None:
        value = self._get(key, default, required)
        if value is not None and not isinstance(value, bool):
            raise self._fail(key, "true or false", value)
        return value

    def str_list(self, key: str, default: Iterable[str] = (), *, required: bool = False) -> tuple[str, ...]:
        value = self._get(key, None, required)
        if value is None:
            return tuple(default)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._fail(key, "a list of strings", value)
        return tuple(value)

    def float_list(self, key: str, length: int, *, required: bool = False) -> tuple[float, ...] | None:
        value = self._get(key, None, required)
        if value is None:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return tuple(float(value) for _ in range(length))
        if (
            not isinstance(value, list)
            or len(value) != length
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        ):
            raise self._fail(key, f"a number or a list of {length} numbers", value)
        return tuple(float(v) for v in value)

    def choice(self, key: str, choices: Iterable[str], default: str | None = None, *, required: bool = False) -> str | None:
        choices = list(choices)
        value = self.str(key, default, required=required)
        if value is not None and value not in choices:
            close = difflib.get_close_matches(value, choices, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"one of: {', '.join(choices)}"
            raise InputError(f"unknown value {value!r}", source=self.source, place=self._where(key), hint=hint)
        return value

    def sub(self, key: str, *, required: bool = False) -> "Fields":
        value = self._get(key, {}, required)
        return Fields(value, source=self.source, place=self._where(key))
