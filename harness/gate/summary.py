"""The gate's verdict for people: a rich table on the terminal and Markdown
for a CI step summary or a pull-request comment."""

from __future__ import annotations

from typing import Sequence

from harness.gate.checks import Check
from harness.gate.evaluate import GateResult
from harness.report.view import md_cell as _md

_ORDER = {"fail": 0, "inconclusive": 1, "pass": 2, "skipped": 3}
_WORD = {"fail": "FAIL", "inconclusive": "INCONCLUSIVE", "pass": "pass", "skipped": "skipped"}


def verdict_line(result: GateResult, *, budgets: str, inconclusive_fails: bool = True) -> str:
    failed = result.failed(inconclusive_fails=inconclusive_fails)
    counts = ", ".join(
        f"{result.count(o)} {o}" for o in ("fail", "inconclusive", "pass", "skipped") if result.count(o)
    ) or "no checks"
    idle = f", {len(result.unmatched)} rule(s) matched nothing" if result.unmatched else ""
    idle += f", {len(result.unchecked)} rule(s) checked nothing" if result.unchecked else ""
    against = f" against baseline {result.baseline_run}" if result.baseline_run else ""
    return f"gate {'FAILED' if failed else 'passed'}: {counts}{idle} (run {result.run_id}{against}, budgets {budgets})"


def ordered(checks: Sequence[Check]) -> list[Check]:
    return sorted(checks, key=lambda c: (_ORDER[c.outcome], c.rule, c.pair, c.metric))



def render_gate_markdown(result: GateResult, *, budgets: str, inconclusive_fails: bool = True) -> str:
    failed = result.failed(inconclusive_fails=inconclusive_fails)
    lines = [f"## {'❌' if failed else '✅'} Edge Harness gate", "", _md(verdict_line(result, budgets=budgets, inconclusive_fails=inconclusive_fails)), ""]
    for missing in result.vacuous:
        lines.append(f"- **{_md(missing.rule)}**: {_md(missing.message)}")
    lines += [f"- {_md(note)}" for note in result.notes]
    if result.vacuous or result.notes:
        lines.append("")
    attention = [c for c in ordered(result.checks) if c.outcome in ("fail", "inconclusive")]
    if attention:
        lines += _table(attention)
        lines.append("")
    rest = [c for c in ordered(result.checks) if c.outcome not in ("fail", "inconclusive")]
    if rest:
        lines += ["<details><summary>" + f"{len(rest)} other check(s)" + "</summary>", ""]
        lines += _table(rest)
        lines += ["", "</details>", ""]
    lines.append(
        "Latency bounds are judged on the 95% confidence interval of the quantile: fail when it lies wholly above "
        "the bound, pass when wholly below, inconclusive otherwise. Regressions fail only when slower by more than "
        "the allowed percentage and significant (Mann–Whitney)."
    )
    return "\n".join(lines) + "\n"


def _table(checks: Sequence[Check]) -> list[str]:
    out = ["| outcome | rule | device | model | variant | bound | measured |", "|---|---|---|---|---|---|---|"]
    for c in checks:
        out.append(
            f"| {_WORD[c.outcome]} | {_md(c.rule)} | {_md(c.device)} | {_md(c.model)} | {_md(c.variant)} "
            f"| {_md(c.metric)} {_md(c.bound)} | {_md(c.measured)} |"
        )
    return out


# Names never break; the pair, the bound and the measurement wrap at their
# spaces, so the table fits 80 columns without cutting a name in two.
GATE_COLUMNS = ("outcome", "rule", "pair", "bound", "measured")


def render_gate_terminal(result: GateResult, console: object, *, budgets: str, inconclusive_fails: bool = True) -> None:
    from rich.markup import escape
    from rich.text import Text

    from harness.report import fit

    checks = ordered(result.checks)
    models = sorted({c.model for c in checks})
    title = f"gate: run {result.run_id}" + (f" · model {models[0]}" if len(models) == 1 else "")
    columns = [fit.Column(key, key, wrap=key not in ("outcome", "rule")) for key in GATE_COLUMNS]
    style = {"fail": "bold red", "inconclusive": "yellow", "pass": "green", "skipped": "dim"}
    rows = [{"outcome": Text(_WORD[c.outcome], style=style[c.outcome]), "rule": c.rule,
             "pair": " / ".join((c.device, c.variant) if len(models) == 1 else (c.device, c.model, c.variant)),
             "bound": f"{c.metric} {c.bound}", "measured": c.measured}
            for c in checks]
    console.print(fit.table(columns, rows, console.width, title=title))  # type: ignore[attr-defined]
    for c in checks:
        if c.outcome in ("fail", "inconclusive"):
            console.print(escape(c.message), style=style[c.outcome], soft_wrap=True)  # type: ignore[attr-defined]
    for missing in result.vacuous:
        console.print(escape(missing.message), style="bold red", soft_wrap=True)  # type: ignore[attr-defined]
    for note in result.notes:
        console.print(escape(note), soft_wrap=True)  # type: ignore[attr-defined]
    failed = result.failed(inconclusive_fails=inconclusive_fails)
    console.print(escape(verdict_line(result, budgets=budgets, inconclusive_fails=inconclusive_fails)),  # type: ignore[attr-defined]
                  style="bold red" if failed else "bold green", soft_wrap=True)
