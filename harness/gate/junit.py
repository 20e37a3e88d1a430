"""JUnit XML for CI test-report views: one test case per (rule, pair).

ElementTree escapes every attribute and text node, so device and model names
cannot break the XML.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from itertools import groupby
from pathlib import Path

from harness.gate.checks import Check
from harness.gate.evaluate import GateResult


def render_junit(result: GateResult, *, inconclusive_fails: bool = True) -> str:
    suite = ET.Element("testsuite", name="harness gate")
    failures = skipped = 0
    cases = 0
    ordered = sorted(result.checks, key=lambda c: (c.rule, c.pair))
    for (rule, pair), group in groupby(ordered, key=lambda c: (c.rule, c.pair)):
        checks = list(group)
        case = ET.SubElement(suite, "testcase", classname=f"budgets.{rule}", name=pair)
        cases += 1
        bad = [c for c in checks if c.outcome == "fail" or (c.outcome == "inconclusive" and inconclusive_fails)]
        if bad:
            failures += 1
            kinds = sorted({c.outcome for c in bad})
            failure = ET.SubElement(case, "failure", message=bad[0].message, type="+".join(kinds))
            failure.text = "\n".join(c.message for c in bad)
        elif all(c.outcome == "skipped" for c in checks):
            skipped += 1
            ET.SubElement(case, "skipped", message=checks[0].message)
        ET.SubElement(case, "system-out").text = "\n".join(_line(c) for c in checks)
    for missing in result.vacuous:
        name = "(no pair matched)" if missing.kind == "unmatched" else "(nothing checked)"
        case = ET.SubElement(suite, "testcase", classname=f"budgets.{missing.rule}", name=name)
        cases += 1
        failures += 1
        ET.SubElement(case, "failure", message=missing.message, type=missing.kind).text = missing.message
    suite.set("tests", str(cases))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    suite.set("skipped", str(skipped))
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def _line(check: Check) -> str:
    return f"{check.outcome:>12}  {check.metric}: {check.bound}; measured {check.measured}"


def write_junit(path: Path, result: GateResult, *, inconclusive_fails: bool = True) -> None:
    from harness.report.write import write_text

    write_text(path, render_junit(result, inconclusive_fails=inconclusive_fails), flag="--junit")
