"""The `harness` command line.

Only argparse and the error types are imported here; each command imports
what it needs when it runs, so `harness --help` answers without loading
numpy, rich or TensorFlow.

Exit codes (DESIGN.md): 0 success, 1 a gate or budget failed, 2 invalid
input, 3 infrastructure failure after saving every result obtained.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from harness import __version__
from harness.errors import HarnessError, InputError

EXIT_OK, EXIT_GATE, EXIT_INPUT, EXIT_INFRA = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own exit 2, with a fix
        self.print_usage(sys.stderr)
        self.exit(EXIT_INPUT, f"{self.prog}: error: {message}\n  fix: see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="harness",
        description="Convert a TensorFlow detector into TFLite variants and measure latency, "
        "memory and COCO mAP on edge devices.",
        epilog="Exit codes: 0 ok, 1 gate failed, 2 invalid input, 3 device/infrastructure failure.",
    )
    parser.add_argument("--version", action="version", version=f"edge-harness {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    inventory_help = "device inventory YAML (default: $HARNESS_INVENTORY; without one only `local` exists)"
    out_help = "output folder for runs, reports and the results database (default: $HARNESS_REPORTS or ./reports)"

    demo = sub.add_parser("demo", help="the whole pipeline on the bundled demo detector and this machine")
    demo.add_argument(
        "--variants", help="comma list (default: fp32,fp16,dynamic-int8,int8,uint8,int16x8,qat-int8,selective-int8)"
    )
    demo.add_argument("--out", type=Path, help=out_help)
    demo.set_defaults(handler=_cmd_demo)

    convert = sub.add_parser("convert", help="convert a model recipe into its TFLite variants")
    convert.add_argument("recipe", type=Path, metavar="MODEL.yaml")
    convert.add_argument("--variants", help="comma list (default: the recipe's)")
    convert.add_argument("--out", type=Path, help="where to write <model>-<variant>.tflite (default: reports/variants/<model>)")
    convert.set_defaults(handler=_cmd_convert)

    run = sub.add_parser("run", help="benchmark a recipe's variants on devices")
    run.add_argument(
        "--model", type=Path,
        help="model recipe (default: the bundled demo detector), or a float .tflite to benchmark as it is (no mAP)",
    )
    run.add_argument("--devices", help="comma list of device names (default: local)")
    run.add_argument("--inventory", type=Path, help=inventory_help)
    run.add_argument(
        "--lock-wait", type=float, default=600.0, metavar="SECONDS",
        help="how long to wait for a device another controller is benchmarking (default: 600)",
    )
    run.add_argument("--variants", help="comma list (default: the recipe's)")
    run.add_argument("--out", type=Path, help=out_help)
    run.add_argument(
        "--resume",
        metavar="RUN_ID",
        help="finish an interrupted run: measure only the pairs it has no complete result for ('latest' works)",
    )
    run.set_defaults(handler=_cmd_run)

    devices = sub.add_parser("devices", help="the device inventory: list, check, trust, bootstrap, clean")
    actions = devices.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser, required=True)
    for action, help_text in (
        ("list", "the inventory as a table (no connection)"),
        ("check", "probe devices in parallel: reachable, platform, runtime, resources"),
        ("trust", "show each device's host key fingerprint and record it in known_hosts"),
        ("bootstrap", "install the runtime on devices without internet: wheels fetched here, pushed, installed in a venv"),
        ("clean", "remove the device cache (agent, models, inputs)"),
    ):
        p = actions.add_parser(action, help=help_text, description=help_text)
        p.add_argument("names", nargs="*", metavar="NAMES", help="devices (default: every device in the inventory)")
        p.add_argument("--inventory", type=Path, help=inventory_help)
        if action == "trust":
            p.add_argument("--yes", action="store_true", help="accept the shown host keys without asking")
        p.set_defaults(handler=_cmd_devices)

    report = sub.add_parser("report", help="render a stored run")
    report.add_argument("run", nargs="?", default="latest", metavar="RUN_ID|latest")
    report.add_argument("--baseline", metavar="RUN_ID", help="compare with this run (statistical test per pair)")
    report.add_argument("--format", choices=("table", "md", "html", "json", "csv"), default="table")
    report.add_argument("--out", type=Path, help="write to this file instead of the terminal")
    report.add_argument("--reports", type=Path, help=out_help)
    report.set_defaults(handler=_cmd_report)

    gate = sub.add_parser(
        "gate", help="check a stored run against latency/memory/accuracy budgets (exit 1 when one fails)",
        description="Check a stored run against a budgets file. A latency bound fails only when the confidence "
        "interval of the quantile is wholly above it, passes when wholly below, and is inconclusive otherwise.",
    )
    gate.add_argument("run", nargs="?", default="latest", metavar="RUN_ID|latest")
    gate.add_argument("--budgets", type=Path, required=True, metavar="FILE", help="budgets YAML (README: Budgets)")
    gate.add_argument("--baseline", metavar="RUN_ID", help="check max_regression_pct rules against this run")
    gate.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML: one test case per rule and pair")
    gate.add_argument("--markdown", type=Path, metavar="FILE",
                      help="write the Markdown summary here (also appended to $GITHUB_STEP_SUMMARY when set)")
    gate.add_argument("--format", choices=("table", "json"), default="table", help="what to print (default: table)")
    gate.add_argument(
        "--remeasure", action="store_true",
        help="measure inconclusive pairs again, 4x longer, on the run's devices, then decide",
    )
    gate.add_argument("--allow-inconclusive", action="store_true",
                      help="let inconclusive checks pass (default: they fail the gate)")
    gate.add_argument("--inventory", type=Path, help=inventory_help + " (for --remeasure)")
    gate.add_argument("--reports", type=Path, help=out_help)
    gate.set_defaults(handler=_cmd_gate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_INPUT
    try:
        return handler(args)
    except HarnessError as exc:
        sys.stderr.write(f"harness {args.command}: error: {exc.render()}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write(f"harness {args.command}: interrupted; every pair measured so far is saved\n")
        return 130


# -- commands -------------------------------------------------------------


def _reports_dir(out: Path | None) -> Path:
    from harness import paths

    return out if out is not None else paths.reports_dir()


def _cmd_demo(args: argparse.Namespace) -> int:
    from harness import paths

    return _run_pipeline(paths.demo_recipe_path(), args.variants, "local", _reports_dir(args.out), command="demo")


def _cmd_run(args: argparse.Namespace) -> int:
    from harness import paths

    reports = _reports_dir(args.out)
    if args.resume:
        return _resume(args, reports)
    recipe = args.model or paths.demo_recipe_path()
    return _run_pipeline(
        recipe, args.variants, args.devices or "local", reports,
        command="run", inventory_path=args.inventory, lock_wait_s=args.lock_wait,
    )


def _resume(args: argparse.Namespace, reports: Path) -> int:
    """A resumed run keeps the plan it was started with."""
    from harness.results.files import read_run_meta
    from harness.results.store import SqliteStore

    for flag, value in (("--model", args.model), ("--variants", args.variants), ("--devices", args.devices)):
        if value:
            raise InputError(
                "a resumed run keeps the plan it was started with", source=flag, hint=f"drop {flag}, or start a new run"
            )
    db = reports / "results.sqlite"
    if not db.is_file():
        raise InputError("no results database", source=db, hint="pass the --out folder the run was written to")
    with SqliteStore(db) as store:
        run_id = store.resolve_run(args.resume)
        run_dir = Path(store.run(run_id).run_dir)  # type: ignore[union-attr]
    meta = read_run_meta(run_dir)
    inventory = args.inventory or (Path(meta["inventory"]) if meta.get("inventory") else None)
    return _run_pipeline(
        Path(meta["recipe"]), ",".join(meta["variants"]), ",".join(meta["devices"]), reports,
        command="run", inventory_path=inventory, lock_wait_s=args.lock_wait, resume=run_id,
    )


def _run_pipeline(
    recipe_path: Path,
    variants_arg: str | None,
    devices_arg: str,
    reports: Path,
    *,
    command: str,
    inventory_path: Path | None = None,
    lock_wait_s: float = 600.0,
    resume: str | None = None,
    remeasure: frozenset[tuple[str, str]] = frozenset(),
    measure_scale: float = 1.0,
    show: bool = True,
) -> int:
    from rich.console import Console

    from harness.device import local_device
    from harness.recipe import bare_tflite_recipe, load_recipe
    from harness.report.terminal import render_terminal
    from harness.report.write import write_run_reports
    from harness.results.store import SqliteStore
    from harness.runner import RunPlan, execute
    from harness.ui import ProgressEvents
    from harness.variants import parse_variant_names

    # Flags first: they are cheap to check and the user's most likely typo.
    asked_variants = parse_variant_names(variants_arg) if variants_arg else None
    names = [n.strip() for n in devices_arg.split(",") if n.strip()]
    if not names:
        raise InputError("no device named", source="--devices", hint="name at least one device, e.g. --devices local")
    inventory = _inventory(inventory_path)
    from harness import paths

    # The local device keeps its "device cache" inside the harness cache.
    local = local_device(paths.cache_dir(reports).resolve() / "local-device")
    devices = inventory.select(names, local=local)
    recipe = bare_tflite_recipe(recipe_path) if recipe_path.suffix == ".tflite" else load_recipe(recipe_path)
    variants = asked_variants or recipe.variants
    recipe.check_variants(variants)
    plan = RunPlan(
        recipe, variants, devices, reports, command=command, lock_wait_s=lock_wait_s,
        inventory=inventory_path.resolve() if inventory_path else None,
        remeasure=remeasure, measure_scale=measure_scale,
    )
    console = Console(stderr=True)
    with SqliteStore(reports / "results.sqlite") as store:
        with ProgressEvents(console) as events:
            outcome = execute(plan, store, events, resume=resume)
    # Re-measuring for the gate prints the gate's table, not the run's.
    out = Console() if show else Console(stderr=True, quiet=True)
    render_terminal(outcome.records, out, title=f"run {outcome.run_id}")
    md, html = write_run_reports(outcome.records, outcome.run_dir, title=f"Edge Harness run {outcome.run_id}")
    out.print(f"\nresults: {outcome.results_json}\nreport:  {md}\n         {html}")
    for device in plan.devices:
        transfer = outcome.transfers.get(device.name)
        if transfer is not None:
            out.print(f"{device.name}: sent {transfer.bytes_uploaded / 1e6:.2f} MB ({transfer.files_uploaded} files)")
    for failure in outcome.infra_failures:
        sys.stderr.write(f"harness {command}: device failure: {failure}\n")
    if outcome.infra_failures:
        return EXIT_INFRA
    failed = [r for r in outcome.records if r.status == "failed"]
    if any(r.error and r.error.kind in ("agent", "device") for r in failed):
        return EXIT_INFRA
    if failed:
        return EXIT_INPUT
    return EXIT_OK


def _inventory(path: Path | None):
    from harness.inventory import INVENTORY_ENV, empty_inventory, load_inventory

    path = path or (Path(os.environ[INVENTORY_ENV]) if os.environ.get(INVENTORY_ENV) else None)
    return load_inventory(path) if path is not None else empty_inventory()


def _cmd_devices(args: argparse.Namespace) -> int:
    from rich.console import Console

    from harness import fleet, paths
    from harness.device import local_device

    inventory = _inventory(args.inventory)
    local = local_device(paths.cache_dir(_reports_dir(None)).resolve() / "local-device")
    if args.names:
        devices = inventory.select(args.names, local=local, flag="NAMES")
    elif args.action in ("list", "check"):
        devices = (local, *inventory.devices)
    else:
        devices = inventory.devices
    out = Console()
    if args.action == "list":
        from harness.report.devices import render_inventory

        render_inventory(devices, out, source=str(inventory.source or "no inventory: pass --inventory FILE"))
        return EXIT_OK
    if args.action == "trust":
        return _trust(devices, yes=args.yes, console=out)
    if args.action == "clean":
        failed = False
        for result in fleet.fan_out(devices, fleet.clean):
            if result.error:
                failed = True
                out.print(f"[red]✗[/red] {result.device.name}: not cleaned: {result.error}")
            else:
                out.print(f"[green]✓[/green] {result.device.name}: removed {result.path}")
        return EXIT_INFRA if failed else EXIT_OK
    if args.action == "bootstrap":
        return _bootstrap(devices, out)
    from harness.report.devices import render_probes

    probes = fleet.fan_out(devices, fleet.probe)
    render_probes(probes, out, title=f"devices {args.action}")
    unusable = [p for p in probes if not p.reachable or p.untrusted]
    return EXIT_INFRA if unusable else EXIT_OK


def _bootstrap(devices, out) -> int:
    from harness import fleet, paths
    from harness.bootstrap import bootstrap

    cache = paths.cache_dir(_reports_dir(None))
    remote = [d for d in devices if d.kind == "ssh"]
    for device in devices:
        if device.kind != "ssh":
            out.print(f"{device.name}: this machine; its runtime comes with `pip install edge-harness[runtime]`")
    failed = False
    for result in fleet.fan_out(remote, lambda d: bootstrap(d, cache)):
        for step in result.steps:
            out.print(f"  {result.device.name}: {step}")
        if result.ok:
            out.print(f"[green]✓[/green] {result.device.name}: agent runs with {result.runtime} "
                      f"({result.python}); sent {result.bytes_uploaded / 1e6:.1f} MB in {result.seconds:.1f} s")
        else:
            failed = True
            hint = f"\n    fix: {result.hint}" if result.hint else ""
            out.print(f"[red]✗[/red] {result.device.name}: {result.error}{hint}")
    return EXIT_INFRA if failed else EXIT_OK


def _trust(devices, *, yes: bool, console) -> int:
    from harness.errors import HarnessError
    from harness.trust import changed_key_error, fetch_host_key, record_host_key

    failed = False
    for device in devices:
        if device.kind != "ssh":
            console.print(f"{device.name}: this machine, nothing to trust")
            continue
        try:
            check = fetch_host_key(device)
            if check.state == "trusted":
                console.print(f"[green]✓[/green] {device.name} ({check.name}): already trusted, {check.key_type} {check.fingerprint}")
                continue
            if check.state == "changed":
                raise changed_key_error(check)
            console.print(f"{device.name} ({check.name}) offers {check.key_type} key {check.fingerprint}")
            if not yes and not _confirm(f"Trust this key for {device.name}? [y/N] "):
                console.print(f"[yellow]![/yellow] {device.name}: not trusted (pass --yes to accept without asking)")
                failed = True
                continue
            record_host_key(check)
            console.print(f"[green]✓[/green] {device.name}: recorded in {check.known_hosts}")
        except HarnessError as exc:
            failed = True
            sys.stderr.write(f"harness devices trust: error: {exc.render()}\n")
    return EXIT_INFRA if failed else EXIT_OK


def _confirm(question: str) -> bool:
    try:
        answer = input(question)
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def _cmd_convert(args: argparse.Namespace) -> int:
    from rich.console import Console

    from harness.convert.converter import Artifact, convert_variants, export_artifact
    from harness.dataset.resolve import resolve_dataset
    from harness.recipe import load_recipe
    from harness.variants import parse_variant_names

    recipe = load_recipe(args.recipe)
    variants = parse_variant_names(args.variants) if args.variants else recipe.variants
    recipe.check_variants(variants)
    from harness import paths

    reports = _reports_dir(None)
    out_dir = args.out or reports / "variants" / recipe.name
    console = Console(stderr=True)
    cache = paths.cache_dir(reports)
    calibration = resolve_dataset(recipe, recipe.calibration, cache)
    from harness.edgetpu.compiler import Unavailable, add_edgetpu, needs_uint8

    with console.status("converting…") as status:
        results = convert_variants(
            recipe,
            needs_uint8(variants),
            calibration,
            cache,
            progress=lambda variant, message: status.update(f"{variant}: {message}"),
        )
        results = add_edgetpu(variants, results)
    exit_code = EXIT_OK
    out = Console()
    for variant, result in results.items():
        if isinstance(result, Unavailable):
            console.print(f"[yellow]{variant:>13}  skipped: {result.message}[/yellow]")
            if result.edgetpu is not None:
                r = result.edgetpu
                console.print(f"{'':>15}pre-check: {r.ops_on_tpu} ops on the Edge TPU, {r.ops_on_cpu} on the CPU: "
                              + "; ".join(f"{op} x{n} ({why})" for op, n, why in r.cpu_ops))
        elif isinstance(result, Artifact):
            target = export_artifact(result, out_dir)
            how = "cached" if result.cached else "converted"
            loads = ", ".join(
                f"{runtime} {'ok' if status == 'ok' else 'n/a' if status.startswith('unavailable') else 'FAILS'}"
                for runtime, status in result.loadability.items()
            )
            out.print(f"{variant:>14}  {result.size_bytes / 1e6:6.2f} MB  {how:9}  {target}  ({loads})", soft_wrap=True, markup=False)
        else:
            console.print(f"[red]{variant:>14}  failed: {result.render()}[/red]")
            exit_code = EXIT_INPUT
    artifacts = [r for r in results.values() if isinstance(r, Artifact)]
    converted = [a.variant for a in artifacts if not a.cached]
    if artifacts and not converted:
        out.print(f"nothing converted: all {len(artifacts)} variant(s) were already in the cache ({paths.cache_dir(reports)})")
    else:
        out.print(f"converted {len(converted)}, reused {len(artifacts) - len(converted)} from the cache")
    return exit_code


def _cmd_report(args: argparse.Namespace) -> int:
    from rich.console import Console

    from harness.report.write import render, write_text
    from harness.results.store import SqliteStore

    reports = _reports_dir(args.reports)
    db = reports / "results.sqlite"
    if not db.is_file():
        raise InputError("no results database", source=db, hint="run `harness demo` first, or pass --reports DIR")
    with SqliteStore(db) as store:
        run_id = store.resolve_run(args.run)
        records = store.records(run_id)
        if args.baseline:
            return _report_comparison(store, store.resolve_run(args.baseline), run_id, args)
    title = f"Edge Harness run {run_id}"
    if args.format == "table":
        from harness.report.terminal import render_terminal

        if args.out:
            console = Console(file=open(args.out, "w", encoding="utf-8"), width=200)  # noqa: SIM115
            render_terminal(records, console, title=f"run {run_id}")
            console.file.close()
        else:
            render_terminal(records, Console(), title=f"run {run_id}")
        return EXIT_OK
    text = render(records, args.format, title=title)
    if args.out:
        write_text(args.out, text)
        Console(stderr=True).print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _cmd_gate(args: argparse.Namespace) -> int:
    from harness.gate.command import run_gate

    reports = _reports_dir(args.reports)

    def remeasure(run_id: str, pairs: set[tuple[str, str, str]], scale: float) -> None:
        _remeasure(args, reports, run_id, pairs, scale)

    return run_gate(args, reports, remeasure)


def _remeasure(args: argparse.Namespace, reports: Path, run_id: str, pairs: set[tuple[str, str, str]], scale: float) -> None:
    """Measure the given pairs of a stored run again, longer, into that run."""
    from harness.results.files import read_run_meta
    from harness.results.store import SqliteStore

    with SqliteStore(reports / "results.sqlite") as store:
        run_dir = Path(store.run(run_id).run_dir)  # type: ignore[union-attr]
    meta = read_run_meta(run_dir)
    inventory = args.inventory or (Path(meta["inventory"]) if meta.get("inventory") else None)
    devices = sorted({device for device, _, _ in pairs})
    variants = sorted({variant for _, _, variant in pairs})
    code = _run_pipeline(
        Path(meta["recipe"]), ",".join(variants), ",".join(devices), reports, command="run",
        inventory_path=inventory, resume=run_id, remeasure=frozenset((d, v) for d, _, v in pairs),
        measure_scale=scale, show=False,
    )
    if code != EXIT_OK:
        sys.stderr.write(f"harness gate: re-measurement ended with exit {code}; deciding on what is stored\n")


def _report_comparison(store: Any, baseline: str, candidate: str, args: argparse.Namespace) -> int:
    import json

    from rich import box
    from rich.console import Console
    from rich.table import Table

    from harness.report.compare import compare_runs
    from harness.report.write import write_text

    rows = compare_runs(store, baseline, candidate)
    if args.format == "json":
        text = json.dumps({"baseline": baseline, "candidate": candidate, "pairs": [r.to_dict() for r in rows]}, indent=1) + "\n"
        if args.out:
            write_text(args.out, text)
        else:
            sys.stdout.write(text)
        return EXIT_OK
    if args.format != "table":
        raise InputError("comparisons render as table or json for now", source="--format", hint="use --format table or json")
    table = Table(title=f"{candidate} vs baseline {baseline}", title_justify="left", box=box.SIMPLE_HEAD)
    for header in ("device", "model", "variant", "base p50 ms", "cand p50 ms", "ratio", "p-value", "effect", "verdict"):
        table.add_column(header, justify="left" if header in ("device", "model", "variant", "verdict") else "right")
    for r in rows:
        num = (lambda v, f: "—" if v is None else format(v, f))  # noqa: E731
        style = {"slower": "red", "faster": "green"}.get(r.verdict, "")
        table.add_row(
            r.device, r.model, r.variant, num(r.baseline_p50_ms, ".3f"), num(r.candidate_p50_ms, ".3f"),
            num(r.ratio, ".3f"), num(r.p_value, ".2g"), num(r.effect, "+.2f"), f"[{style}]{r.verdict}[/{style}]" if style else r.verdict,
        )
    Console().print(table)
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
