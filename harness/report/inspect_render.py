"""`harness inspect`: a model's inputs, outputs, signatures, operators and
the adapter that reads it, as rich tables that fit 80 columns."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from harness.model.fit import AdapterChoice
from harness.model.layout import ModelLayout, TensorInfo


def _table(title: str, *headers: str) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
    for header in headers:
        table.add_column(header, overflow="fold")
    return table


def _quant(tensor: TensorInfo) -> str:
    return f"scale {tensor.scale:.6g}, zero point {tensor.zero_point}" if tensor.quantised else "-"


def _tensors(title: str, tensors: tuple[TensorInfo, ...], roles: dict[str, str]) -> Table:
    quantised = any(t.quantised for t in tensors)  # the column only when it says something
    headers = ["name", "shape", "dtype", *(["quantisation"] if quantised else []), *(["role"] if roles else [])]
    table = _table(title, *headers)
    for t in tensors:
        row = [t.name, str(list(t.shape)), t.dtype, *([_quant(t)] if quantised else [])]
        table.add_row(*row, *([roles.get(t.name, "")] if roles else []))
    return table


def _ops(layout: ModelLayout) -> Table:
    table = _table("operators", "op", "count", "kind")
    for name, count in layout.ops.items():
        table.add_row(name, str(count), "custom" if name in layout.custom_ops else "builtin")
    return table


def render_inspect(console: Console, layout: ModelLayout, choice: AdapterChoice | None) -> None:
    """Everything but the no-fit error, which the CLI prints as exit 2."""
    console.print(f"[bold]{layout.path}[/bold] ({layout.kind})")
    roles = {tensor: role for role, tensor in (choice.options.get("outputs", {}) if choice else {}).items()}
    console.print(_tensors("inputs", layout.inputs, {}))
    console.print(_tensors("outputs (in the file's order)", layout.outputs, roles))
    for key, outputs in layout.signatures.items():
        console.print(f"signature {key}: " + ", ".join(f"{k} = {v}" for k, v in outputs.items()), soft_wrap=False)
    if layout.ops:
        console.print(_ops(layout))
    elif layout.kind != "tflite":
        console.print("operators: known after conversion (harness convert)")
    if layout.postprocess_options:
        settings = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in layout.postprocess_options.items())
        console.print(f"post-process op settings: {settings}")
    if layout.labels:
        console.print(f"labels packed in the model: {', '.join(layout.labels)}")
    if choice is not None:
        console.print(f"[bold]adapter: {choice.name}[/bold]: {choice.reason}")
