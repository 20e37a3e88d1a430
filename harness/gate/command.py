"""`harness gate`: budgets against a stored run -> exit 0 pass, 1 fail.

Kept out of cli.py so the parser stays import-light; this module imports the
store, the checks and rich only when the command runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

from harness.gate.budgets import Budget, load_budgets
from harness.gate.evaluate import GateResult, evaluate

from harness.errors import EXIT_GATE as EXIT_FAIL
from harness.errors import EXIT_OK as EXIT_PASS
# How much longer a re-measurement of an inconclusive pair runs than the
# profile's plan: a quantile's interval narrows roughly with 1/sqrt(n).
REMEASURE_SCALE = 4.0


# (run id, inconclusive (device, model, variant) pairs, scale) -> the
# re-measurement's exit code; the CLI passes the runner's remeasure entry.
Remeasure = Callable[[str, set[tuple[str, str, str]], float], int]


def run_gate(args: argparse.Namespace, reports: Path, remeasure: Remeasure | None = None) -> int:
    from rich.console import Console

    from harness.results.open import open_store

    budgets = load_budgets(args.budgets)  # bad file: exit 2 before touching results
    inconclusive_fails = not args.allow_inconclusive
    with open_store(args.store, reports, must_exist=True) as store:
        run_id = store.resolve_run(args.run)
        baseline = store.resolve_run(args.baseline) if args.baseline else None
        result = evaluate(budgets, store, run_id, baseline)
        pending = {(c.device, c.model, c.variant) for c in result.checks if c.outcome == "inconclusive"}
    if pending and args.remeasure and remeasure is not None:
        err = Console(stderr=True)
        err.print(f"re-measuring {len(pending)} inconclusive pair(s) {REMEASURE_SCALE:g}x longer: "
                  + ", ".join("/".join(k) for k in sorted(pending)), markup=False, soft_wrap=True)
        code = remeasure(run_id, pending, REMEASURE_SCALE)
        if code != EXIT_PASS:
            err.print(f"harness gate: re-measurement ended with exit {code}; deciding on what is stored", markup=False)
        with open_store(args.store, reports, must_exist=True) as store:
            result = evaluate(budgets, store, run_id, baseline)
    _publish(args, result, budgets, inconclusive_fails)
    return EXIT_FAIL if result.failed(inconclusive_fails=inconclusive_fails) else EXIT_PASS


def _publish(args: argparse.Namespace, result: GateResult, budgets: list[Budget], inconclusive_fails: bool) -> None:
    from rich.console import Console

    from harness.gate.junit import write_junit
    from harness.gate.summary import render_gate_markdown, render_gate_terminal

    name = str(args.budgets)
    if args.format == "json":
        import json

        sys.stdout.write(json.dumps({**result.to_dict(), "passed": not result.failed(inconclusive_fails=inconclusive_fails)}, indent=1) + "\n")
    else:
        render_gate_terminal(result, Console(), budgets=name, inconclusive_fails=inconclusive_fails)
    if args.junit:
        write_junit(args.junit, result, inconclusive_fails=inconclusive_fails)
    markdown = render_gate_markdown(result, budgets=name, inconclusive_fails=inconclusive_fails)
    if args.markdown:
        from harness.report.write import write_text

        write_text(args.markdown, markdown, flag="--markdown")
    # GitHub Actions (and Gitea/Forgejo) show this file on the job's page.
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as handle:
            handle.write(markdown)
    if not args.baseline and any(b.max_regression_pct is not None for b in budgets):
        Console(stderr=True).print(
            "note: max_regression_pct rules need --baseline RUN_ID; they were not checked", markup=False
        )
