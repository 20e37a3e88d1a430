"""Moving runs between stores: `harness store export` / `harness store import`.

The export file is JSON lines, streamed one record at a time:

    {"format": "edge-harness-runs", "version": 2}
    {"run": {run_id, created_at, ...}}
    {"run_id": ..., "record": {...}, "samples_ns": [...], "superseded_at": ...}   one per record
    {"run": {...}}                                          the next run ...

A run's superseded records (measured again by `harness gate --remeasure`)
come first, with the time they were superseded; its current records follow
with "superseded_at": null. Version 1 files (no superseded records) still
import; a harness that reads only version 1 refuses version 2 files rather
than mistake a superseded record for the current one.

Importing is idempotent: a run already in the target is merged record by
record, and a record already there unchanged is not written again.
"""

from __future__ import annotations

import dataclasses
import json
from array import array
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from harness.errors import InputError
from harness.results.record import Record
from harness.results.store import ResultsStore, RunInfo

FORMAT = "edge-harness-runs"
FORMAT_VERSION = 2
_READS_VERSIONS = (1, 2)


@dataclass(frozen=True)
class ImportSummary:
    runs_new: int = 0
    runs_updated: int = 0
    runs_unchanged: int = 0
    records_written: int = 0


def export_runs(store: ResultsStore, run_ids: Iterable[str], out: IO[str]) -> int:
    """Write the runs to ``out``; returns how many records were written."""
    out.write(json.dumps({"format": FORMAT, "version": FORMAT_VERSION}) + "\n")
    count = 0
    for run_id in run_ids:
        info = store.run(run_id)
        if info is None:
            continue
        out.write(json.dumps({"run": dataclasses.asdict(info)}) + "\n")
        stored = [(s.record, s.superseded_at) for s in store.superseded(run_id)]
        for record, superseded_at in [*stored, *((r, None) for r in store.records(run_id))]:
            samples = array("q")
            for blob in _sample_batches(store, record, superseded_at):
                samples.frombytes(blob)
            line = {"run_id": run_id, "record": record.to_dict(), "samples_ns": samples.tolist(),
                    "superseded_at": superseded_at}
            out.write(json.dumps(line) + "\n")
            count += 1
    return count


def _sample_batches(store: ResultsStore, record: Record, superseded_at: str | None) -> Iterator[bytes]:
    batches = getattr(store, "iter_sample_batches", None)
    if batches is not None:
        yield from batches(record.run_id, *record.key, superseded_at=superseded_at)
    else:
        yield array("q", store.samples_ns(record.run_id, *record.key, superseded_at=superseded_at)).tobytes()


def import_runs(store: ResultsStore, path: Path, lines: Iterable[str]) -> ImportSummary:
    """Merge every run of an export file into ``store``, one transaction per run."""
    summary = ImportSummary()
    entries = _entries(path, lines)
    for run_id, group in groupby(entries, key=lambda entry: entry[1]):
        line_no, _, first = next(group)
        if "run" not in first:
            raise InputError("a record comes before its run", source=path, place=f"line {line_no}",
                             hint="export the file again with `harness store export`")
        info = _run_info(path, line_no, first["run"])
        existed = store.run(run_id) is not None
        written = store.import_run(info, (_record(path, n, entry) for n, _, entry in group))
        summary = dataclasses.replace(
            summary,
            runs_new=summary.runs_new + (not existed),
            runs_updated=summary.runs_updated + (existed and written > 0),
            runs_unchanged=summary.runs_unchanged + (existed and written == 0),
            records_written=summary.records_written + written,
        )
    return summary


def _entries(path: Path, lines: Iterable[str]) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(line number, run id, parsed line) for every line after the header."""
    header_seen = False
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"not JSON: {exc.msg}", source=path, place=f"line {line_no}",
                             hint="pass a file written by `harness store export`") from None
        if not header_seen:
            if not isinstance(entry, dict) or entry.get("format") != FORMAT:
                raise InputError("not an export of edge-harness runs", source=path, place="line 1",
                                 hint="pass a file written by `harness store export`")
            if entry.get("version") not in _READS_VERSIONS:
                raise InputError(f"export format version {entry.get('version')} is not {' or '.join(map(str, _READS_VERSIONS))}",
                                 source=path, place="line 1", hint="import it with the harness version that wrote it")
            header_seen = True
            continue
        run_id = entry.get("run", {}).get("run_id") if isinstance(entry, dict) and "run" in entry else None
        run_id = run_id or (entry.get("run_id") if isinstance(entry, dict) else None)
        if not isinstance(run_id, str):
            raise InputError("no run_id in this line", source=path, place=f"line {line_no}",
                             hint="pass a file written by `harness store export`")
        yield line_no, run_id, entry
    if not header_seen:
        raise InputError("empty export file", source=path, hint="pass a file written by `harness store export`")


def _run_info(path: Path, line_no: int, data: Any) -> RunInfo:
    try:
        return RunInfo(**data)
    except TypeError as exc:
        raise InputError(f"bad run entry: {exc}", source=path, place=f"line {line_no}",
                         hint="export the file again with `harness store export`") from None


def _record(path: Path, line_no: int, entry: dict[str, Any]) -> tuple[Record, list[int], str | None]:
    """(record, samples, superseded_at): superseded_at None for a current record."""
    try:
        record = Record.from_dict(entry["record"])
        samples = [int(v) for v in entry.get("samples_ns") or []]
        superseded_at = entry.get("superseded_at")
        if superseded_at is not None and not isinstance(superseded_at, str):
            raise TypeError(f"superseded_at is {superseded_at!r}, not a UTC time or null")
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"bad record entry: {exc!r}", source=path, place=f"line {line_no}",
                         hint="export the file again with `harness store export`") from None
    if record.run_id != entry.get("run_id"):
        raise InputError("record's run_id differs from its line's", source=path, place=f"line {line_no}",
                         hint="export the file again with `harness store export`")
    return record, samples, superseded_at
