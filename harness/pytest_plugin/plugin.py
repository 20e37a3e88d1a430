"""The pytest hooks and fixtures (entry point `pytest11`: edge-harness).

    --harness-inventory FILE   devices (default $HARNESS_INVENTORY; none: only `local`)
    --harness-devices a,b      the fleet tests run on (default: local + every inventory device)
    --harness-results DIR      results store and run folder (default $HARNESS_REPORTS or ./reports)

    @pytest.mark.harness_device("pi-1", tag="arm64")   which devices a test needs
    harness_device      the device of this test instance (one instance per device)
    harness_measure     measure(model, variant="fp32", device=None, threads=, runtime=, xnnpack=, **plan) -> Record
    harness_budget      budget(record, p90_ms=45, ...): the gate's checks as assertions

Only pytest and the standard library are imported here; the harness loads
when a test first needs a device.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

_SESSION = pytest.StashKey["Any"]()
MARKER = "harness_device"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("edge-harness", "Edge Harness: measure models on devices")
    group.addoption(
        "--harness-inventory", metavar="FILE", default=None,
        help="device inventory YAML (default: $HARNESS_INVENTORY; without one only `local` exists)",
    )
    group.addoption(
        "--harness-devices", metavar="a,b", default=None,
        help="comma list of the devices device tests run on (default: local and every inventory device)",
    )
    group.addoption(
        "--harness-results", metavar="DIR", default=None,
        help="where records go: DIR/results.sqlite and one run folder per session "
        "(default: $HARNESS_REPORTS or ./reports)",
    )


def pytest_configure(config: pytest.Config) -> None:
    from harness.pytest_plugin.session import HarnessSession, Options

    config.addinivalue_line(
        "markers",
        f"{MARKER}(*names, tag=None): the devices a test using `harness_device` runs on "
        "(by name, or every selected device with the tag); missing ones are skipped with the reason",
    )
    here = config.invocation_params.dir
    inventory = config.getoption("harness_inventory")
    devices = config.getoption("harness_devices")
    results = config.getoption("harness_results")
    from harness import paths

    config.stash[_SESSION] = HarnessSession(
        Options(
            inventory=(here / inventory) if inventory else None,
            devices=tuple(n.strip() for n in devices.split(",") if n.strip()) if devices else None,
            results_dir=here / (results or paths.reports_dir()),
        )
    )


def _session(config: pytest.Config) -> Any:
    return config.stash[_SESSION]


def _input_error_exits(action: Callable[[], Any]) -> Any:
    """A bad inventory or --harness-devices is the whole session's input
    error: exit 2 with the file, place and fix (DESIGN.md), not a traceback."""
    from harness.errors import InputError

    try:
        return action()
    except InputError as exc:
        pytest.exit(f"edge-harness: error: {exc.render()}", returncode=2)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "harness_device" not in metafunc.fixturenames:
        return
    from harness.pytest_plugin.fleet import device_params

    session = _session(metafunc.config)
    names: list[str] = []
    tag = None
    for marker in metafunc.definition.iter_markers(MARKER):
        names.extend(marker.args)
        tag = tag or marker.kwargs.get("tag")
    params = _input_error_exits(lambda: device_params(session.inventory, session.selected, names, tag))
    metafunc.parametrize(
        "harness_device",
        [
            pytest.param(p.device, id=p.id, marks=() if p.device else pytest.mark.skip(reason=p.skip_reason))
            for p in params
        ],
        indirect=True,
    )


@pytest.fixture
def harness_device(request: pytest.FixtureRequest) -> Any:
    """The device (harness.device.Device) this test instance runs on: one
    instance per selected device, or per device named or tagged by
    @pytest.mark.harness_device."""
    return request.param


@pytest.fixture
def harness_measure(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """measure(model, variant="fp32", *, device=None, threads=None, runtime=None, xnnpack=None, **plan) -> Record.

    `model`: a recipe (model.yaml) or a bare .tflite (benchmark-only).
    `device`: a name or Device; default this test's `harness_device`, else `local`.
    `threads`, `runtime`, `xnnpack`: the configuration to measure in (as
    `harness run --threads/--runtimes/--xnnpack`); each one a pair of its own.
    `plan`: MeasurementPlan settings for this pair (min_runs, min_seconds,
    max_seconds, rounds, ...; default the device profile's).
    The record is the one `harness run` stores, saved before it is returned.
    A device the fleet lacks, or that cannot run the pair, skips the test; a
    device that fails fails it with the device's error. With pytest-benchmark,
    the first measurement of a test that asks for `benchmark` is reported
    through it with the device's own samples.
    """
    from harness.errors import HarnessError
    from harness.pytest_plugin.session import DeviceFailed, PairSkipped

    session = _session(request.config)
    default = request.getfixturevalue("harness_device") if "harness_device" in request.fixturenames else None
    benchmark = request.getfixturevalue("benchmark") if "benchmark" in request.fixturenames else None
    here = request.config.invocation_params.dir
    reported: list[Any] = []

    def measure(model: str | Path, variant: str = "fp32", *, device: Any = None, threads: int | None = None,
                runtime: str | None = None, xnnpack: bool | None = None, **plan: Any) -> Any:
        skipped = failed = None
        try:
            target = device if device is not None and not isinstance(device, str) else None
            if target is None:
                name = device or (default.name if default is not None else "local")
                target = _input_error_exits(lambda: session.device(name))
            measured = session.measure(here / model, variant, target, plan, configuration=(threads, runtime, xnnpack))
        except PairSkipped as exc:
            skipped = str(exc)
        except DeviceFailed as exc:
            failed = str(exc)
        except HarnessError as exc:
            failed = exc.render()
        # Outside the except blocks: the reason alone, without a chained traceback.
        if skipped is not None:
            pytest.skip(skipped)
        if failed is not None:
            pytest.fail(failed, pytrace=False)
        if benchmark is not None and not reported:
            from harness.pytest_plugin.benchmark import report_samples

            report_samples(benchmark, measured.record, measured.samples_ns)
            reported.append(measured.record)
        return measured.record

    return measure


@pytest.fixture
def harness_budget(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """budget(record, *, name=None, baseline=None, **bounds) -> list of gate checks.

    `bounds` are the budgets file's keys (p50_ms, p90_ms, p99_ms,
    peak_memory_mb, size_mb, min_map, max_map_drop, max_regression_pct),
    decided by `harness gate`'s own checks: max_map_drop against fp32 of the
    same model on the same device measured in this session, max_regression_pct
    against the `baseline` run id. A failed or inconclusive check fails the
    test with the gate's message; `name` is the rule name in it (default:
    this test's name).
    """
    from harness.errors import InputError
    from harness.pytest_plugin.budget import check_budget, failures

    session = _session(request.config)

    def budget(record: Any, *, name: str | None = None, baseline: str | None = None, **bounds: float) -> list[Any]:
        problem = None
        try:
            store = session.store()
            baseline_run = store.resolve_run(baseline) if baseline else None
            checks = check_budget(store, record, name or request.node.name, request.node.nodeid, bounds, baseline_run)
        except InputError as exc:
            problem = exc.render()
        if problem is not None:
            pytest.fail(problem, pytrace=False)
        failed = failures(checks)
        if failed:
            pytest.fail("\n".join(c.message for c in failed), pytrace=False)
        return checks

    return budget


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    session = _session(config)
    if session.run_id is None:
        return
    records = session.store().records(session.run_id)
    counts = {s: sum(r.status == s for r in records) for s in ("ok", "failed", "skipped")}
    terminalreporter.write_sep("-", "edge-harness")
    terminalreporter.write_line(
        f"run {session.run_id}: {len(records)} record(s), "
        + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        + f", in {session.store_path}"
    )
    terminalreporter.write_line(f"report: harness report {session.run_id} --reports {session.options.results_dir}")


def pytest_unconfigure(config: pytest.Config) -> None:
    if _SESSION in config.stash:
        _session(config).close()
