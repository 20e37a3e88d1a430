"""Which tests share a pytest-xdist worker, and which groups go out first.

A module's tests run on one worker, so its module fixtures (a trained model,
a lab) are built once; every module that reads the session's one real
`harness demo` (the `demo_run` fixture) joins one group, so the demo runs
once. Groups are handed out longest first (GROUP_COST_S), so the last
minutes of a run are the short modules on both workers, not one long module
on one while the other idles.

The grouping is computed on the controller from node ids and the modules'
source, not from `xdist_group` marks: pytest 9.2 keeps a node's id in
`Node._id`, and pytest-xdist 3.8's loadgroup still rewrites `_nodeid`, so
marks set by a hook no longer reach its scheduler (every module's tests were
spread over both workers and their module fixtures built twice).
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

DEMO_RUN_GROUP = "demo-run"
DEMO_RUN_FIXTURE = "demo_run"
# Seconds of one worker's time per group on a 2-core host under the whole
# suite (the timing run of 2026-12-02; test_export and test_yolo_exports
# scaled by their CPU time measured alone after the variables_holder
# conversions and the committed YOLO heads: 178 -> 65 and 273 -> 186
# CPU-s; with RECORDS_ONLY_PLAN (tests/conftest.py) the workbench scaled by
# its CPU time, 357 -> 229-264 CPU-s, and the demo run and the emulated Pi's
# local pairs less the ~85 CPU-s the demo's 8 pairs saved, 145 -> ~60).
# Only the order matters: refresh the figures when a module gets much
# slower or faster. A group not listed costs DEFAULT_COST_S.
GROUP_COST_S: dict[str, float] = {
    DEMO_RUN_GROUP: 315,
    "tests/integration/test_workbench.py": 260,
    "tests/integration/test_agent.py": 250,
    "tests/integration/test_yolo_exports.py": 210,
    "tests/integration/test_emulated_pi.py": 200,
    "tests/integration/test_litert_quant.py": 150,
    # The configuration matrix (16 pairs on local + a lab device, killed and resumed): 134 s alone.
    "tests/integration/test_configurations.py": 140,
    "tests/integration/test_inspect.py": 150,
    "tests/integration/test_fleet_cli.py": 145,
    "tests/integration/test_workbench_errors.py": 120,
    "tests/integration/test_shapes_yolo.py": 120,
    "tests/integration/test_export.py": 110,
    "tests/integration/test_pytest_plugin.py": 75,
    "tests/integration/test_resume.py": 65,
    "tests/integration/test_gateway.py": 15,
    "tests/integration/test_labgrid.py": 150,
    "tests/integration/test_one_board_two_names.py": 60,
    "tests/integration/test_gate.py": 50,
    "tests/integration/test_progress.py": 50,
}
DEFAULT_COST_S = 5.0


def module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


@lru_cache(maxsize=None)
def reads_demo_run(module_path: str) -> bool:
    """Whether a test module asks for the demo_run fixture: a test or a
    fixture of its own with a parameter of that name. The workers check
    this against the fixtures pytest resolved (check_demo_run_groups)."""
    try:
        tree = ast.parse(Path(module_path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return False
    return any(
        arg.arg == DEMO_RUN_FIXTURE
        for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for arg in node.args.args + node.args.kwonlyargs
    )


def group_of(nodeid: str, rootdir: Path) -> str:
    module = module_of(nodeid)
    return DEMO_RUN_GROUP if reads_demo_run(str(rootdir / module)) else module


def by_cost(groups: list[str]) -> list[str]:
    """The groups, costliest first (ties and unlisted groups in the order given)."""
    return sorted(groups, key=lambda group: -GROUP_COST_S.get(group, DEFAULT_COST_S))


def check_demo_run_groups(items: list, rootdir: Path) -> list[str]:
    """Tests that resolve demo_run in a module the source scan missed (they
    would run the demo a second time, on another worker)."""
    return [item.nodeid for item in items
            if DEMO_RUN_FIXTURE in getattr(item, "fixturenames", ()) and group_of(item.nodeid, rootdir) != DEMO_RUN_GROUP]


def make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    rootdir = Path(config.rootpath)

    class GroupScheduling(LoadScopeScheduling):
        """pytest-xdist's scope scheduling with our groups, costliest first."""

        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid, rootdir)

        def _assign_work_unit(self, node) -> None:
            # schedule() fills the queue in collection order; reorder it
            # once, before the first unit goes out.
            if not getattr(self, "_ordered", False):
                units = dict(self.workqueue)
                self.workqueue.clear()
                for group in by_cost(list(units)):
                    self.workqueue[group] = units[group]
                self._ordered = True
            super()._assign_work_unit(node)

    return GroupScheduling(config, log)
