"""The `harness` command line.

Only argparse and the error types are imported here; each command imports
what it needs when it runs, so `harness --help` answers without loading
numpy, rich or TensorFlow.

Exit codes (DESIGN.md): 0 success, 1 a gate or budget failed, 2 invalid
input, 3 infrastructure failure after saving every result obtained.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from harness import __version__
from harness.errors import EXIT_INFRA, EXIT_INPUT, EXIT_OK, HarnessError, InputError

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
    store_help = (
        "results store: sqlite:///PATH or postgresql://USER@HOST/DB (default: $HARNESS_STORE, else "
        "sqlite:///<reports>/results.sqlite); a password belongs in $HARNESS_STORE or a libpq service file"
    )

    demo = sub.add_parser(
        "demo", help="the whole pipeline on the bundled models (demo SSD, shapes-yolo) and this machine"
    )
    demo.add_argument(
        "--models", metavar="A,B", help="bundled models to run, in order (default: demo-detector,shapes-yolo)"
    )
    demo.add_argument(
        "--variants",
        help="comma list for every model (default: the variants that tell each model's story, see README)",
    )
    _reports_option(demo, out_alias=True)
    demo.add_argument("--store", metavar="URL", help=store_help)
    demo.set_defaults(handler=_cmd_demo)

    convert = sub.add_parser("convert", help="convert a model recipe into its TFLite variants")
    convert.add_argument("recipe", type=Path, metavar="MODEL.yaml")
    convert.add_argument("--variants", help="comma list (default: the recipe's)")
    convert.add_argument("--out", type=Path, help="where to write <model>-<variant>.tflite (default: <reports>/variants/<model>)")
    _reports_option(convert)
    convert.set_defaults(handler=_cmd_convert)

    inspect = sub.add_parser("inspect", help="a model's inputs, outputs, operators and the adapter that reads it")
    inspect.add_argument("model", type=Path, metavar="MODEL", help="a .tflite, a SavedModel directory or a Keras .h5/.keras file")
    inspect.add_argument("--write-recipe", type=Path, metavar="FILE", help="write a model.yaml for it that harness run --model runs")
    inspect.set_defaults(handler=_cmd_inspect)

    run = sub.add_parser("run", help="benchmark a recipe's variants on devices")
    run.add_argument(
        "--model", type=Path,
        help="model recipe (default: the bundled demo detector), or a .tflite: benchmark-only, or scored with --dataset",
    )
    run.add_argument(
        "--dataset", type=Path, metavar="DIR|data.yaml",
        help="score mAP on this dataset: a COCO root (annotations/instances_<split>.json beside <split>/) or an "
        "Ultralytics data.yaml; with a bare .tflite no recipe is needed",
    )
    run.add_argument("--split", metavar="S", help="the --dataset split to score (default: val; val2017 is found for val)")
    run.add_argument("--devices", help="comma list of device names (default: local)")
    run.add_argument("--inventory", type=Path, help=inventory_help)
    run.add_argument(
        "--lock-wait", type=float, default=600.0, metavar="SECONDS",
        help="how long to wait for a device another controller is benchmarking (default: 600)",
    )
    run.add_argument("--variants", help="comma list (default: the recipe's)")
    run.add_argument("--threads", metavar="N,N", help="measure every pair with each thread count, e.g. 1,2,4")
    run.add_argument("--runtimes", metavar="A,B",
                     help="measure every pair in each runtime the device has: ai-edge-litert,tflite-runtime,tensorflow")
    run.add_argument("--xnnpack", metavar="on,off", help="the runtime's default XNNPACK delegate: on, off, or on,off for both")
    _reports_option(run, out_alias=True)
    run.add_argument("--store", metavar="URL", help=store_help)
    run.add_argument(
        "--resume",
        metavar="RUN_ID",
        help="finish an interrupted run: measure only the pairs it has no complete result for, continuing "
        "part-measured ones ('latest' works)",
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
        _reports_option(p)
        p.set_defaults(handler=_cmd_devices)

    report = sub.add_parser("report", help="render a stored run, or compare runs, variants or devices")
    report.add_argument("run", nargs="?", default="latest", metavar="RUN_ID|latest")
    report.add_argument("--baseline", metavar="RUN_ID", help="compare with this run (statistical test per pair)")
    report.add_argument(
        "--versus", choices=("variants", "devices", "threads", "runtimes", "xnnpack"),
        help="inside the run: every variant against --reference (default fp32) on the same device, "
        "or every device against --reference (default: the run's first device) for the same variant; "
        "in a swept run, every thread count, runtime or XNNPACK setting against --reference (default: the "
        "fewest threads, the first runtime, on), the rest of the configuration the same",
    )
    report.add_argument("--reference", metavar="NAME", help="the variant or device --versus compares with")
    report.add_argument("--format", choices=REPORT_FORMATS, default="table",
                        help="benchmark-json: pytest-benchmark's format (`pytest-benchmark compare FILE`)")
    report.add_argument("--out", type=Path, help="write to this file instead of the terminal")
    report.add_argument("--budgets", type=Path, metavar="FILE",
                        help="decide what to ship with this budgets file's bounds (default: the recipe's max_map_drop)")
    _reports_option(report)
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
    _reports_option(gate)
    gate.add_argument("--store", metavar="URL", help=store_help)
    gate.set_defaults(handler=_cmd_gate)

    store = sub.add_parser("store", help="move runs between results stores (a laptop's SQLite into the team database)")
    store_actions = store.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser, required=True)
    export = store_actions.add_parser("export", help="write runs to a JSON-lines file")
    export.add_argument("runs", nargs="*", metavar="RUN_ID", help="runs to export ('latest' works; default: every run)")
    export.add_argument("--out", required=True, metavar="FILE", help="the export file ('-' for standard output)")
    _reports_option(export)
    export.add_argument("--store", metavar="URL", help=store_help)
    export.set_defaults(handler=_cmd_store)
    imp = store_actions.add_parser("import", help="merge an export file into the store (runs already there are not duplicated)")
    imp.add_argument("file", type=Path, metavar="FILE", help="a file written by `harness store export`")
    _reports_option(imp)
    imp.add_argument("--store", metavar="URL", help=store_help)
    imp.set_defaults(handler=_cmd_store)

    history = sub.add_parser("history", help="list stored runs, or one metric's trend across runs")
    history.add_argument("--trend", choices=TREND_METRICS, metavar="METRIC",
                         help=f"show this metric per run: {', '.join(TREND_METRICS)}")
    history.add_argument("--changes", action="store_true",
                         help="list the steps in each series (the --trend metric, default p90), with their commits")
    history.add_argument("--since", metavar="RUN",
                         help="with --changes: only the steps whose first run after is RUN or newer (a run id or latest)")
    history.add_argument("--model", default="*", help="model name or glob (default: all)")
    history.add_argument("--variant", default="*", help="variant name or glob (default: all)")
    history.add_argument("--device", default="*", help="device name or glob (default: all)")
    history.add_argument("--format", choices=("table", "md", "json", "csv"), default="table")
    _reports_option(history)
    history.add_argument("--store", metavar="URL", help=store_help)
    history.set_defaults(handler=_cmd_history)

    publish = sub.add_parser("publish", help="write a static site of every series' p90 history and its steps")
    publish.add_argument("dir", type=Path, metavar="DIR", help="the site folder (pages already current are kept)")
    _reports_option(publish)
    publish.add_argument("--store", metavar="URL", help=store_help)
    publish.set_defaults(handler=_cmd_publish)
    return parser


def _reports_option(parser: argparse.ArgumentParser, *, out_alias: bool = False) -> None:
    """`--reports DIR`, the same flag on every command that reads or writes
    the reports folder; `run` and `demo` also take their old `--out`."""
    names = ("--reports", "--out") if out_alias else ("--reports",)
    parser.add_argument(
        *names, dest="reports", type=Path, metavar="DIR",
        help="folder for runs, reports and the results database (default: $HARNESS_REPORTS or ./reports)",
    )


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
    except KeyboardInterrupt as exc:  # exit 3 like any stop after saving, never Python's 130
        sys.stderr.write(_interrupted(args, getattr(exc, "run_id", None)))
        return EXIT_INFRA


def _interrupted(args: argparse.Namespace, run_id: str | None) -> str:
    """What Ctrl-C leaves, and for a run the exact command that continues it."""
    if run_id is None:
        return f"harness {args.command}: interrupted\n"
    text = f"harness {args.command}: interrupted; every pair measured so far is saved in run {run_id}\n"
    if args.command == "gate":
        return text + "  the gate decided nothing: run it again\n"
    import shlex

    resume = ["harness", "run", "--resume", run_id]
    for flag, value in (("--reports", args.reports), ("--store", getattr(args, "store", None))):
        if value:
            resume += [flag, str(value)]
    return text + f"  continue it with: {shlex.join(resume)}\n"


# -- commands -------------------------------------------------------------


def _reports_dir(out: Path | None) -> Path:
    from harness import paths

    return out if out is not None else paths.reports_dir()


def _cmd_demo(args: argparse.Namespace) -> int:
    """One run per bundled model, on `local`; the worst exit code wins."""
    from harness.model.bundled import demo_models
    from harness.runner import make_plan

    reports = _reports_dir(args.reports)
    chosen = demo_models(args.models)
    # Every plan is checked before the first run starts: a typo in
    # --variants must not cost the first model's minutes.
    plans = [
        make_plan(
            model.recipe_path, args.variants or (",".join(model.variants) if model.variants else None),
            "local", reports, command="demo",
        )
        for model in chosen
    ]
    codes = [_run_pipeline(plan, args.store) for plan in plans]
    return max(codes)


def _cmd_run(args: argparse.Namespace) -> int:
    from harness import paths
    from harness.runner import make_plan

    from harness.measure.configs import cli_sweep

    reports = _reports_dir(args.reports)
    if args.resume:
        return _resume(args, reports)
    sweep = cli_sweep(args.threads, args.runtimes, args.xnnpack)
    plan = make_plan(
        args.model or paths.demo_recipe_path(), args.variants, args.devices or "local", reports,
        command="run", inventory_path=args.inventory, lock_wait_s=args.lock_wait,
        dataset=args.dataset, split=args.split, sweep=sweep,
    )
    return _run_pipeline(plan, args.store)


def _resume(args: argparse.Namespace, reports: Path) -> int:
    """A resumed run keeps the plan it was started with."""
    from harness.results.open import open_store
    from harness.runner import plan_from_meta, stored_meta

    for flag, value in (("--model", args.model), ("--variants", args.variants), ("--devices", args.devices),
                        ("--dataset", args.dataset), ("--split", args.split), ("--threads", args.threads),
                        ("--runtimes", args.runtimes), ("--xnnpack", args.xnnpack)):
        if value:
            raise InputError(
                "a resumed run keeps the plan it was started with", source=flag, hint=f"drop {flag}, or start a new run"
            )
    with open_store(args.store, reports, must_exist=True, missing_hint="pass the --reports folder the run was written to") as store:
        run_id = store.resolve_run(args.resume)
        meta = stored_meta(store, run_id)
    return _run_pipeline(plan_from_meta(meta, reports, args.inventory, lock_wait_s=args.lock_wait), args.store, resume=run_id)


def _run_pipeline(plan: Any, store_url: str | None, *, resume: str | None = None) -> int:
    """Measure the plan with the progress display, show the run, and
    answer its exit code."""
    from rich.console import Console

    from harness.report.progress import ProgressEvents
    from harness.report.terminal import render_terminal
    from harness.runner import exit_code, measure_and_write, transfer_note

    with ProgressEvents() as events:
        outcome = measure_and_write(plan, store_url, events, resume=resume)
    out = Console()
    render_terminal(outcome.records, out, title=outcome.name)
    md, html = outcome.report_files
    out.print(f"\nresults: {outcome.results_json}\nreport:  {md}\n         {html}")
    if outcome.recovered:
        pairs = ", ".join(f"{r.device.name}/{r.model.variant}" for r in outcome.recovered)
        out.print(f"recovered from the run folder (not measured again): {pairs}")
    for device in plan.devices:
        transfer = outcome.transfers.get(device.name)
        note = transfer_note(device, transfer) if transfer is not None else None
        if note:
            out.print(f"{device.name}: {note}")
    for failure in outcome.infra_failures:
        sys.stderr.write(f"harness {plan.command}: device failure: {failure}\n")
    return exit_code(outcome)


def _cmd_inspect(args: argparse.Namespace) -> int:
    from rich.console import Console

    from harness.convert.source_layout import read_model_layout
    from harness.model.fit import choose_adapter
    from harness.report.inspect_render import render_inspect

    layout = read_model_layout(args.model)
    try:
        choice = choose_adapter(layout)
    except InputError:
        render_inspect(Console(), layout, None)
        raise
    render_inspect(Console(), layout, choice)
    if args.write_recipe is not None:
        from harness.model.recipe_writer import recipe_text

        args.write_recipe.parent.mkdir(parents=True, exist_ok=True)
        args.write_recipe.write_text(recipe_text(layout, choice, args.write_recipe))
        Console().print(f"wrote {args.write_recipe}: harness run --model {args.write_recipe}")
    return EXIT_OK


def _cmd_devices(args: argparse.Namespace) -> int:
    from harness.fleet.command import run_devices

    return run_devices(args, _reports_dir(args.reports))


def _cmd_convert(args: argparse.Namespace) -> int:
    from harness import paths
    from harness.convert.build import build_variants
    from harness.model.datasets import resolve_dataset
    from harness.model.recipe import load_recipe
    from harness.model.variants import parse_variant_names
    from harness.report.progress import ProgressEvents

    recipe = load_recipe(args.recipe)
    variants = parse_variant_names(args.variants) if args.variants else recipe.variants
    recipe.check_variants(variants)
    reports = _reports_dir(args.reports)
    cache = paths.cache_dir(reports)
    with ProgressEvents() as events:
        events.stage("dataset")
        calibration = resolve_dataset(recipe, recipe.calibration, cache)
        results = build_variants(recipe, variants, calibration, cache, events)
    return _print_converted(results, args.out or reports / "variants" / recipe.name, cache)


def _print_converted(results: dict[str, Any], out_dir: Path, cache: Path) -> int:
    """Each variant exported to `out_dir` (stdout), or why it is not (stderr)."""
    from rich.console import Console

    from harness.convert.converter import Artifact, export_artifact
    from harness.edgetpu.compiler import Unavailable

    console = Console(stderr=True)
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
        out.print(f"nothing converted: all {len(artifacts)} variant(s) were already in the cache ({cache})")
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


def _cmd_report(args: argparse.Namespace) -> int:
    from harness.report.context import load_context
    from harness.report.write import render, run_title

    if args.baseline and args.versus:
        raise InputError("--baseline compares two runs, --versus compares inside one run", source="--versus",
                         hint="pass one of them")
    if args.reference and not args.versus:
        raise InputError("--reference names what --versus compares with", source="--reference",
                         hint="add --versus variants or --versus devices")
    if args.budgets and (args.baseline or args.versus):
        raise InputError("--budgets decides what to ship in one run's report; a comparison has no such answer",
                         source="--budgets", hint="drop --budgets, or --baseline/--versus")
    budgets = None
    if args.budgets:
        from harness.gate.budgets import load_budgets

        budgets = load_budgets(args.budgets)  # a bad file: exit 2 before touching the store
    with _open_store(args) as store:
        run_id = store.resolve_run(args.run)
        if args.baseline or args.versus:
            return _report_comparison(store, run_id, args)
        records = store.records(run_id)
        context = load_context(store, run_id, records, budgets)
        name = run_title(store, run_id)
    title = f"Edge Harness {name}"
    if args.format == "table":
        from rich.console import Console

        from harness.report.terminal import render_terminal

        if args.out:
            with open(args.out, "w", encoding="utf-8") as handle:
                render_terminal(records, Console(file=handle, width=200), title=name, context=context)
        else:
            render_terminal(records, Console(), title=name, context=context)
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
    elif args.versus in compare.DIMENSIONS:
        report = compare.compare_configurations(store, run_id, args.versus, args.reference)
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
        if args.changes:
            from harness.report import history_changes

            metric = args.trend or "p90"
            steps = history_changes.all_changes(store, metric, device=args.device, model=args.model, variant=args.variant,
                                                since_run=args.since)
            history.require_trends([s.trend for s in steps], store, device=args.device, model=args.model, variant=args.variant)
            if args.format == "table":
                _print(*history_changes.changes_tables(steps))
            else:
                sys.stdout.write(history_changes.render_changes(steps, args.format))
            return EXIT_OK
        if args.since is not None:
            raise InputError("--since selects which steps --changes lists", source="--since",
                             hint="add --changes (e.g. harness history --changes --since RUN)")
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


def _cmd_publish(args: argparse.Namespace) -> int:
    from harness.report.publish import publish

    with _open_store(args) as store:
        done = publish(store, args.dir)
    print(f"{args.dir / 'index.html'}: {done.series} series, {done.rendered} page(s) rendered, "
          f"{done.run_reports} new run report(s)")
    return EXIT_OK


def _print(*renderables: Any) -> None:
    from rich.console import Console

    Console().print(*renderables)


def _cmd_gate(args: argparse.Namespace) -> int:
    from harness.gate.command import run_gate

    reports = _reports_dir(args.reports)
    remeasure = None
    if args.remeasure:  # the runner (and numpy) load only when the gate may measure
        from functools import partial

        from harness.runner import remeasure as remeasure_run

        remeasure = partial(remeasure_run, store_url=args.store, reports=reports, inventory=args.inventory)
    return run_gate(args, reports, remeasure)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
