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
from typing import TYPE_CHECKING, Any, Callable, Sequence

from harness import __version__
from harness.errors import EXIT_INFRA, EXIT_INPUT, EXIT_OK, HarnessError, InputError

if TYPE_CHECKING:
    from harness.results.store import ResultsStore

# Kept here (not imported from harness.report) so `--help` stays fast.
REPORT_FORMATS = ("table", "md", "html", "json", "csv", "benchmark-json")
TREND_METRICS = ("p50", "p90", "p99", "mean", "peak_mb", "size_mb", "map", "map50", "load_ms")


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
    store_help = (
        "results store: sqlite:///PATH or postgresql://USER@HOST/DB (default: $HARNESS_STORE, else "
        "sqlite:///<reports>/results.sqlite); a password belongs in $HARNESS_STORE or a libpq service file"
    )

    demo = sub.add_parser("demo", help="the whole pipeline on the bundled demo detector and this machine")
    demo.add_argument(
        "--variants", help="comma list (default: fp32,fp16,dynamic-int8,int8,uint8,int16x8,qat-int8,selective-int8)"
    )
    demo.add_argument("--out", type=Path, help=out_help)
    demo.add_argument("--store", metavar="URL", help=store_help)
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
    run.add_argument("--store", metavar="URL", help=store_help)
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

    report = sub.add_parser("report", help="render a stored run, or compare runs, variants or devices")
    report.add_argument("run", nargs="?", default="latest", metavar="RUN_ID|latest")
    report.add_argument("--baseline", metavar="RUN_ID", help="compare with this run (statistical test per pair)")
    report.add_argument(
        "--versus", choices=("variants", "devices"),
        help="inside the run: every variant against --reference (default fp32) on the same device, "
        "or every device against --reference (default: the run's first device) for the same variant",
    )
    report.add_argument("--reference", metavar="NAME", help="the variant or device --versus compares with")
    report.add_argument("--format", choices=REPORT_FORMATS, default="table",
                        help="benchmark-json: pytest-benchmark's format (`pytest-benchmark compare FILE`)")
    report.add_argument("--out", type=Path, help="write to this file instead of the terminal")
    report.add_argument("--reports", type=Path, help=out_help)
    report.add_argument("--store", metavar="URL", help=store_help)
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
    gate.add_argument("--store", metavar="URL", help=store_help)
    gate.set_defaults(handler=_cmd_gate)

    store = sub.add_parser("store", help="move runs between results stores (a laptop's SQLite into the team database)")
    store_actions = store.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser, required=True)
    export = store_actions.add_parser("export", help="write runs to a JSON-lines file")
    export.add_argument("runs", nargs="*", metavar="RUN_ID", help="runs to export ('latest' works; default: every run)")
    export.add_argument("--out", required=True, metavar="FILE", help="the export file ('-' for standard output)")
    export.add_argument("--reports", type=Path, help=out_help)
    export.add_argument("--store", metavar="URL", help=store_help)
    export.set_defaults(handler=_cmd_store)
    imp = store_actions.add_parser("import", help="merge an export file into the store (runs already there are not duplicated)")
    imp.add_argument("file", type=Path, metavar="FILE", help="a file written by `harness store export`")
    imp.add_argument("--reports", type=Path, help=out_help)
    imp.add_argument("--store", metavar="URL", help=store_help)
    imp.set_defaults(handler=_cmd_store)

    history = sub.add_parser("history", help="list stored runs, or one metric's trend across runs")
    history.add_argument("--trend", choices=TREND_METRICS, metavar="METRIC",
                         help=f"show this metric per run: {', '.join(TREND_METRICS)}")
    history.add_argument("--model", default="*", help="model name or glob (default: all)")
    history.add_argument("--variant", default="*", help="variant name or glob (default: all)")
    history.add_argument("--device", default="*", help="device name or glob (default: all)")
    history.add_argument("--format", choices=("table", "md", "json", "csv"), default="table")
    history.add_argument("--reports", type=Path, help=out_help)
    history.add_argument("--store", metavar="URL", help=store_help)
    history.set_defaults(handler=_cmd_history)
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

    return _run_pipeline(
        paths.demo_recipe_path(), args.variants, "local", _reports_dir(args.out), command="demo", store_url=args.store
    )


def _cmd_run(args: argparse.Namespace) -> int:
    from harness import paths

    reports = _reports_dir(args.out)
    if args.resume:
        return _resume(args, reports)
    recipe = args.model or paths.demo_recipe_path()
    return _run_pipeline(
        recipe, args.variants, args.devices or "local", reports,
        command="run", inventory_path=args.inventory, lock_wait_s=args.lock_wait, store_url=args.store,
    )


def _resume(args: argparse.Namespace, reports: Path) -> int:
    """A resumed run keeps the plan it was started with."""
    from harness.results.files import read_run_meta
    from harness.results.open import open_store

    for flag, value in (("--model", args.model), ("--variants", args.variants), ("--devices", args.devices)):
        if value:
            raise InputError(
                "a resumed run keeps the plan it was started with", source=flag, hint=f"drop {flag}, or start a new run"
            )
    with open_store(args.store, reports, must_exist=True, missing_hint="pass the --out folder the run was written to") as store:
        run_id = store.resolve_run(args.resume)
        run_dir = Path(store.run(run_id).run_dir)  # type: ignore[union-attr]
    meta = read_run_meta(run_dir)
    inventory = args.inventory or (Path(meta["inventory"]) if meta.get("inventory") else None)
    return _run_pipeline(
        Path(meta["recipe"]), ",".join(meta["variants"]), ",".join(meta["devices"]), reports,
        command="run", inventory_path=inventory, lock_wait_s=args.lock_wait, resume=run_id, store_url=args.store,
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
    store_url: str | None = None,
) -> int:
    from rich.console import Console

    from harness.device import local_device
    from harness.model.recipe import bare_tflite_recipe, load_recipe
    from harness.report.terminal import render_terminal
    from harness.report.write import write_run_reports
    from harness.results.open import open_store
    from harness.runner import RunPlan, execute
    from harness.report.progress import ProgressEvents
    from harness.model.variants import parse_variant_names

    # Flags first: they are cheap to check and the user's most likely typo.
    asked_variants = parse_variant_names(variants_arg) if variants_arg else None
    names = [n.strip() for n in devices_arg.split(",") if n.strip()]
    if not names:
        raise InputError("no device named", source="--devices", hint="name at least one device, e.g. --devices local")
    from harness.fleet.command import inventory_from

    inventory = inventory_from(inventory_path)
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
    from harness.report.context import load_context

    console = Console(stderr=True)
    with open_store(store_url, reports) as store:
        with ProgressEvents(console) as events:
            outcome = execute(plan, store, events, resume=resume)
        context = load_context(store, outcome.run_id, outcome.records)
        name = _run_name(store, outcome.run_id)
    # Re-measuring for the gate prints the gate's table, not the run's.
    out = Console() if show else Console(stderr=True, quiet=True)
    render_terminal(outcome.records, out, title=name)
    md, html = write_run_reports(outcome.records, outcome.run_dir, title=f"Edge Harness {name}", context=context)
    out.print(f"\nresults: {outcome.results_json}\nreport:  {md}\n         {html}")
    if outcome.recovered:
        pairs = ", ".join(f"{r.device.name}/{r.model.variant}" for r in outcome.recovered)
        out.print(f"recovered from the run folder (not measured again): {pairs}")
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


def _cmd_devices(args: argparse.Namespace) -> int:
    from harness.fleet.command import run_devices

    return run_devices(args, _reports_dir(None))


def _cmd_convert(args: argparse.Namespace) -> int:
    from rich.console import Console

    from harness.convert.converter import Artifact, convert_variants, export_artifact
    from harness.model.datasets import resolve_dataset
    from harness.model.recipe import load_recipe
    from harness.model.variants import parse_variant_names

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


def _open_store(args: argparse.Namespace) -> Any:
    """The results store a reading command uses (--store, $HARNESS_STORE, or
    <reports>/results.sqlite), which must already exist."""
    from harness.results.open import open_store

    return open_store(args.store, _reports_dir(args.reports), must_exist=True)


def _emit(text: str, out: Path | None) -> None:
    from harness.report.write import write_text

    if out:
        write_text(out, text)
        sys.stderr.write(f"wrote {out}\n")
    else:
        sys.stdout.write(text)


def _run_name(store: ResultsStore, run_id: str) -> str:
    """`run <id>`, with the commit it measured when that is known."""
    from harness.report.view import short_commit

    info = store.run(run_id)
    commit = info.source_commit if info else None
    return f"run {run_id} · commit {short_commit(commit)}" if commit else f"run {run_id}"


def _cmd_report(args: argparse.Namespace) -> int:
    from harness.report.context import load_context
    from harness.report.write import render

    if args.baseline and args.versus:
        raise InputError("--baseline compares two runs, --versus compares inside one run", source="--versus",
                         hint="pass one of them")
    if args.reference and not args.versus:
        raise InputError("--reference names what --versus compares with", source="--reference",
                         hint="add --versus variants or --versus devices")
    with _open_store(args) as store:
        run_id = store.resolve_run(args.run)
        if args.baseline or args.versus:
            return _report_comparison(store, run_id, args)
        records = store.records(run_id)
        context = load_context(store, run_id, records)
        name = _run_name(store, run_id)
    title = f"Edge Harness {name}"
    if args.format == "table":
        from rich.console import Console

        from harness.report.terminal import render_terminal

        if args.out:
            with open(args.out, "w", encoding="utf-8") as handle:
                render_terminal(records, Console(file=handle, width=200), title=name)
        else:
            render_terminal(records, Console(), title=name)
        return EXIT_OK
    _emit(render(records, args.format, title=title, context=context), args.out)
    return EXIT_OK


def _report_comparison(store: Any, run_id: str, args: argparse.Namespace) -> int:
    from harness.report import compare, compare_render

    if args.format == "benchmark-json":
        raise InputError("a comparison has no pytest-benchmark form", source="--format",
                         hint="export each run with --format benchmark-json and run `pytest-benchmark compare A B`")
    if args.baseline:
        report = compare.run_comparison(store, store.resolve_run(args.baseline), run_id)
    elif args.versus == "variants":
        report = compare.compare_variants(store, run_id, args.reference or "fp32")
    else:
        report = compare.compare_devices(store, run_id, args.reference)
    if args.format != "table":
        _emit(compare_render.render(report, args.format), args.out)
        return EXIT_OK
    from rich.console import Console

    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            compare_render.render_table(report, Console(file=handle, width=200))
    else:
        compare_render.render_table(report, Console())
    return EXIT_OK


def _cmd_store(args: argparse.Namespace) -> int:
    from rich.console import Console

    from harness.results.open import open_store

    console = Console(stderr=True)
    if args.action == "export":
        from harness.results.transfer import export_runs

        with open_store(args.store, _reports_dir(args.reports), must_exist=True) as store:
            run_ids = [store.resolve_run(ref) for ref in args.runs] or [r.run_id for r in store.runs()]
            if args.out == "-":
                count = export_runs(store, run_ids, sys.stdout)
            else:
                try:
                    with open(args.out, "w", encoding="utf-8") as out:
                        count = export_runs(store, run_ids, out)
                except OSError as exc:
                    raise InputError(f"cannot write: {exc.strerror or exc}", source=args.out,
                                     hint="choose a writable path for --out") from None
            console.print(f"exported {len(run_ids)} run(s), {count} record(s) from {store.location}")
        return EXIT_OK
    from harness.results.transfer import import_runs

    try:
        lines = open(args.file, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", source=args.file,
                         hint="pass a file written by `harness store export`") from None
    with lines, open_store(args.store, _reports_dir(args.reports)) as store:
        summary = import_runs(store, args.file, lines)
        console.print(
            f"imported into {store.location}: {summary.runs_new} new run(s), {summary.runs_updated} updated, "
            f"{summary.runs_unchanged} already present; {summary.records_written} record(s) written"
        )
    return EXIT_OK


def _cmd_history(args: argparse.Namespace) -> int:
    from harness.report import history, history_render

    with _open_store(args) as store:
        if not args.trend:
            for flag in ("model", "variant", "device"):
                if getattr(args, flag) != "*":
                    raise InputError(f"--{flag} selects what --trend shows", source=f"--{flag}",
                                     hint="add --trend METRIC (e.g. --trend p90), or drop the filter")
            runs = history.run_summaries(store)
            if not runs:
                raise InputError("no runs recorded yet", source=store.location, hint="run `harness demo` or `harness run` first")
            if args.format == "table":
                _print(history_render.runs_table(runs))
            else:
                sys.stdout.write(history_render.render_runs(runs, args.format))
            return EXIT_OK
        found = history.trends(store, args.trend, device=args.device, model=args.model, variant=args.variant)
        history.require_trends(found, store, device=args.device, model=args.model, variant=args.variant)
    if args.format == "table":
        _print(*history_render.trend_tables(found))
    else:
        sys.stdout.write(history_render.render_trends(found, args.format))
    return EXIT_OK


def _print(*renderables: Any) -> None:
    from rich.console import Console

    Console().print(*renderables)


def _cmd_gate(args: argparse.Namespace) -> int:
    from harness.gate.command import run_gate

    reports = _reports_dir(args.reports)

    def remeasure(run_id: str, pairs: set[tuple[str, str, str]], scale: float) -> None:
        _remeasure(args, reports, run_id, pairs, scale)

    return run_gate(args, reports, remeasure)


def _remeasure(args: argparse.Namespace, reports: Path, run_id: str, pairs: set[tuple[str, str, str]], scale: float) -> None:
    """Measure the given pairs of a stored run again, longer, into that run."""
    from harness.results.files import read_run_meta
    from harness.results.open import open_store

    with open_store(args.store, reports, must_exist=True) as store:
        run_dir = Path(store.run(run_id).run_dir)  # type: ignore[union-attr]
    meta = read_run_meta(run_dir)
    inventory = args.inventory or (Path(meta["inventory"]) if meta.get("inventory") else None)
    devices = sorted({device for device, _, _ in pairs})
    variants = sorted({variant for _, _, variant in pairs})
    code = _run_pipeline(
        Path(meta["recipe"]), ",".join(variants), ",".join(devices), reports, command="run",
        inventory_path=inventory, resume=run_id, remeasure=frozenset((d, v) for d, _, v in pairs),
        measure_scale=scale, show=False, store_url=args.store,
    )
    if code != EXIT_OK:
        sys.stderr.write(f"harness gate: re-measurement ended with exit {code}; deciding on what is stored\n")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
