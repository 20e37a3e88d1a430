"""Parsing `edgetpu_compiler` output (compiler version 16, as documented at
coral.ai/docs/edgetpu/compiler): the summary it prints, and the operation
log (`<model>_edgetpu.log`, or the table `-s` prints) that lists, per
operator, how many ran where and why:

    Operator                       Count      Status

    CONV_2D                        13         Mapped to Edge TPU
    DEQUANTIZE                     1          Operation is working on an unsupported data type

Pure text in, frozen data out: tested on logs written in that format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAPPED = "Mapped to Edge TPU"

_VERSION = re.compile(r"Edge TPU Compiler version\s+(\S+)")
_ROW = re.compile(r"^([A-Z][A-Z0-9_]*)\s+(\d+)\s+(\S.*?)\s*$")
_COUNTS = {
    "total": re.compile(r"Total number of operations:\s*(\d+)"),
    "tpu": re.compile(r"Number of operations that will run on Edge TPU:\s*(\d+)"),
    "cpu": re.compile(r"Number of operations that will run on CPU:\s*(\d+)"),
    "subgraphs": re.compile(r"Number of Edge TPU subgraphs:\s*(\d+)"),
}


@dataclass(frozen=True)
class OpRow:
    op: str
    count: int
    status: str

    @property
    def on_tpu(self) -> bool:
        return self.status == MAPPED


@dataclass(frozen=True)
class CompilerLog:
    version: str | None
    succeeded: bool
    ops: tuple[OpRow, ...]
    total_ops: int | None
    ops_on_tpu: int
    ops_on_cpu: int
    subgraphs: int | None
    error: str | None = None

    @property
    def cpu_rows(self) -> tuple[OpRow, ...]:
        return tuple(r for r in self.ops if not r.on_tpu)


def parse_op_table(text: str) -> tuple[OpRow, ...]:
    """The rows under the `Operator  Count  Status` header (log file or -s)."""
    rows: list[OpRow] = []
    in_table = False
    for line in text.splitlines():
        stripped = line.strip()
        if re.match(r"^Operator\s+Count\s+Status$", stripped):
            in_table = True
            continue
        if not in_table or not stripped:
            continue
        match = _ROW.match(stripped)
        if match is None:
            in_table = False  # the table ended
            continue
        rows.append(OpRow(match.group(1), int(match.group(2)), match.group(3)))
    return tuple(rows)


def parse_compiler_log(stdout: str, op_log: str | None = None) -> CompilerLog:
    """The compiler's stdout (and its operation log, when written). Counts
    come from the summary lines; when the compiler omits the CPU lines
    (every op mapped) they are derived from the table or the total."""
    text = stdout + "\n" + (op_log or "")
    version = _VERSION.search(text)
    counts = {key: (int(m.group(1)) if (m := rx.search(stdout)) else None) for key, rx in _COUNTS.items()}
    rows = parse_op_table(op_log) if op_log else ()
    rows = rows or parse_op_table(stdout)
    table_tpu = sum(r.count for r in rows if r.on_tpu)
    table_cpu = sum(r.count for r in rows if not r.on_tpu)
    total = counts["total"] if counts["total"] is not None else (table_tpu + table_cpu if rows else None)
    tpu = counts["tpu"] if counts["tpu"] is not None else (table_tpu if rows else total or 0)
    cpu = counts["cpu"] if counts["cpu"] is not None else (table_cpu if rows else max(0, (total or 0) - tpu))
    succeeded = bool(re.search(r"Model compiled successfully|Compilation succeeded", stdout))
    error = None
    if not succeeded:
        lines = [ln.strip() for ln in stdout.splitlines() if re.search(r"ERROR|[Ff]ailed|error:", ln)]
        error = lines[0] if lines else "the compiler did not report success"
    return CompilerLog(version.group(1) if version else None, succeeded, rows, total, tpu, cpu, counts["subgraphs"], error)
