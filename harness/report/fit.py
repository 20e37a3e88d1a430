"""Terminal tables that fit the terminal, as the run report's table does.

A table that is too wide for the console loses whole columns, in the order
its caller gives (the least needed first), instead of letting rich cut cells
to `finis…` or split names into fragments. Names and numbers never wrap;
a column marked `wrap` (an interval, a bound) may break at its spaces. What
was dropped is returned, so the caller can fold it under the table or say
where the full table is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

from rich import box
from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

Cell = str | Text  # a str is shown as it is (no rich markup: names are user input)


@dataclass(frozen=True)
class Column:
    key: str
    header: str  # "\n" makes a two-line header
    justify: Literal["left", "right", "center"] = "left"
    wrap: bool = False  # may break at spaces; other columns never wrap


def plain(cell: Cell) -> str:
    return cell.plain if isinstance(cell, Text) else cell


def _as_text(cell: Cell) -> Text:
    return cell if isinstance(cell, Text) else Text(cell)


def _widest(column: Column, rows: Sequence[Mapping[str, Cell]], *, words: bool) -> int:
    texts = [column.header, *(plain(row.get(column.key, "")) for row in rows)]
    parts = [p for t in texts for p in (t.split() if words else t.split("\n"))]
    return max((cell_len(p) for p in parts), default=0)


def _need(column: Column, rows: Sequence[Mapping[str, Cell]]) -> int:
    """Columns this one needs: its widest line, or its widest word if it wraps."""
    return _widest(column, rows, words=column.wrap)


def _extra(n_columns: int) -> int:
    """One space of padding each side between columns and one box character
    per column boundary and edge (box.SIMPLE_HEAD, pad_edge=False)."""
    return 3 * (n_columns - 1) + 2 if n_columns else 0


def table_width(columns: Sequence[Column], rows: Sequence[Mapping[str, Cell]]) -> int:
    """The narrowest `table()` these columns make without cutting a word."""
    return sum(_need(c, rows) for c in columns) + _extra(len(columns))


def _wrap_widths(columns: Sequence[Column], rows: Sequence[Mapping[str, Cell]], width: int) -> list[int | None]:
    """Explicit widths for the wrapping columns when the table must wrap:
    rich would squeeze them below their longest word; here each gets at
    least that, and the room left is shared by what each still lacks."""
    longest = [_widest(c, rows, words=False) for c in columns]
    least = [_need(c, rows) for c in columns]
    room = width - _extra(len(columns)) - sum(least)
    lacking = [lo - mi if c.wrap else 0 for c, lo, mi in zip(columns, longest, least)]
    if sum(longest) + _extra(len(columns)) <= width or room < 0 or not sum(lacking):
        return [None] * len(columns)
    share = [mi + room * lack // sum(lacking) for mi, lack in zip(least, lacking)]
    return [w if c.wrap else None for c, w in zip(columns, share)]


def fit(
    columns: Sequence[Column], rows: Sequence[Mapping[str, Cell]], width: int, drop_order: Sequence[str]
) -> tuple[list[Column], list[Column]]:
    """(the columns kept, the columns dropped): drop_order's keys are dropped
    one by one, first to last, until the table is at most `width` wide."""
    kept = list(columns)
    dropped: list[Column] = []
    for key in drop_order:
        if table_width(kept, rows) <= width:
            break
        column = next((c for c in kept if c.key == key), None)
        if column is not None:
            kept.remove(column)
            dropped.append(column)
    return kept, dropped


def table(columns: Sequence[Column], rows: Sequence[Mapping[str, Cell]], width: int, *, title: str | None = None) -> Table:
    out = Table(title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    for c, fixed in zip(columns, _wrap_widths(columns, rows, width)):
        # fold, not "…", if even the narrowest table is wider than the terminal
        out.add_column(c.header, justify=c.justify, no_wrap=not c.wrap, overflow="fold", width=fixed)
    for row in rows:
        out.add_row(*(_as_text(row.get(c.key, "")) for c in columns))
    return out


def fitted(
    columns: Sequence[Column], rows: Sequence[Mapping[str, Cell]], width: int, drop_order: Sequence[str],
    *, title: str | None = None,
) -> tuple[Table, list[Column]]:
    """The table fitted to `width`, and the columns it had to drop."""
    kept, dropped = fit(columns, rows, width, drop_order)
    return table(kept, rows, width, title=title), dropped


def headers(columns: Sequence[Column]) -> str:
    """Column headers as prose: 'baseline p50 ms, effect'."""
    return ", ".join(c.header.replace("\n", " ") for c in columns)
