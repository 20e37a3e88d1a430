"""The test suite's own layout: helpers shared between test files live in
helper modules or conftest fixtures, never imported from another test file
(importing a test module runs its collection side effects twice and makes
its tests depend on a neighbour's internals)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            names.append(module)
            names += [f"{module}.{alias.name}" for alias in node.names]  # from tests.unit import test_x
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return names


def test_no_test_file_imports_another():
    offenders = [
        f"{path.relative_to(TESTS)} imports {name}"
        for path in sorted(TESTS.rglob("*.py"))
        for name in imported_modules(path)
        if name.rsplit(".", 1)[-1].startswith("test_")
    ]
    assert not offenders, "move the shared helper into tests/conftest.py or a helper module:\n" + "\n".join(offenders)


# --- which tests share an xdist worker (tests/xdist_groups.py) ---------------


def test_demo_run_modules_share_one_group_and_others_keep_their_own():
    from tests.xdist_groups import DEMO_RUN_GROUP, group_of

    root = TESTS.parent
    assert group_of("tests/integration/test_demo.py::test_x[fp32]", root) == DEMO_RUN_GROUP
    assert group_of("tests/integration/test_reports.py::test_y", root) == DEMO_RUN_GROUP
    assert group_of("tests/integration/test_gate.py::test_z", root) == "tests/integration/test_gate.py"
    assert group_of("tests/unit/test_stats.py::Test::test_w", root) == "tests/unit/test_stats.py"


def test_groups_go_out_costliest_first_and_the_cost_table_names_real_modules():
    from tests.xdist_groups import DEMO_RUN_GROUP, GROUP_COST_S, by_cost

    cheap = ["tests/unit/test_a.py", "tests/unit/test_b.py"]
    ordered = by_cost([*cheap, "tests/integration/test_gate.py", "tests/integration/test_workbench.py"])
    assert ordered == ["tests/integration/test_workbench.py", "tests/integration/test_gate.py", *cheap]
    stale = [group for group in GROUP_COST_S if group != DEMO_RUN_GROUP and not (TESTS.parent / group).is_file()]
    assert not stale, f"GROUP_COST_S names modules that are gone: {stale}"


def test_a_fixture_reading_demo_run_outside_the_scanned_modules_is_reported():
    from types import SimpleNamespace

    from tests.xdist_groups import check_demo_run_groups

    items = [SimpleNamespace(nodeid="tests/integration/test_gate.py::test_q", fixturenames=["demo_run"]),
             SimpleNamespace(nodeid="tests/integration/test_demo.py::test_r", fixturenames=["demo_run"])]
    assert check_demo_run_groups(items, TESTS.parent) == ["tests/integration/test_gate.py::test_q"]


def test_a_module_that_only_names_demo_run_in_text_keeps_its_own_group(tmp_path):
    from tests.xdist_groups import DEMO_RUN_GROUP, group_of

    (tmp_path / "test_words.py").write_text('"""mentions demo_run"""\ndef test_a(tmp_path):\n    assert "demo_run"\n')
    (tmp_path / "test_reads.py").write_text("def test_b(tmp_path, demo_run):\n    pass\n")
    assert group_of("test_words.py::test_a", tmp_path) == "test_words.py"
    assert group_of("test_reads.py::test_b", tmp_path) == DEMO_RUN_GROUP
