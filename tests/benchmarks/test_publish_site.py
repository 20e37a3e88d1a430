"""`harness publish` of a 300-run store (4 series, 400 raw samples a pair),
written through the store's own API, against the issue's own targets: the
first publish under 30 s on 2 cores, one after an added run under 3 s. These
are absolute targets, so they are asserted as fractions of the target, with
a margin of an order of magnitude (measured: 2.7 s first, 0.05 s after an
added run; the first publish renders each of the 300 runs' own HTML report,
~9 ms a run, the series pages and the step fit ~0.04 s); the ratios beside
them (against parsing every stored record, and added-run against first) are
reported, not asserted: the added-run publish renders one run report and one
series page, so it stays near the query's cost however long the history."""

from __future__ import annotations

import shutil
import statistics
import time
from dataclasses import replace

import pytest

from harness.report.publish import publish
from harness.results.store import RunInfo, SqliteStore
from tests.benchmarks.conftest import RATIOS
from tests.change_series import history
from tests.store_records import make_record, samples_ns

RUNS = 300
PAIRS = (("pi5-1", "int8"), ("pi5-1", "fp32"), ("pi4-2", "int8"), ("pi4-2", "fp32"))
ROUNDS = 5
FIRST_TARGET_S, ADDED_TARGET_S = 30.0, 3.0  # issue 19's "done when"


def _add_run(store: SqliteStore, n: int, points, pairs=PAIRS) -> None:
    rid = f"run-{n:03d}"
    run = RunInfo(rid, f"2026-03-01T{n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z", "0.1.0", "finished", "run", "/r",
                  source_commit=f"{n:040x}")
    items = []
    for (device, variant), series in zip(pairs, points):
        record = make_record(rid, variant, device=device)
        latency = replace(record.latency_ms, p90=series[n].value, p90_ci=series[n].ci)
        items.append((replace(record, latency_ms=latency), samples_ns(series[n].value, seed=n % 7 + 1)))
    store.import_run(run, items)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = SqliteStore(tmp_path_factory.mktemp("publish") / "results.sqlite")
    s._db.execute("PRAGMA synchronous = OFF")  # only reading is timed
    points = [history(seed, step_pct=10 * (seed % 2), runs=RUNS + 1, step_at=200, samples=400) for seed in range(len(PAIRS))]
    for n in range(RUNS):
        _add_run(s, n, points)
    yield s, points
    s.close()


def test_publish_reads_columns_and_an_added_run_costs_a_fraction(benchmark, store, tmp_path):
    s, points = store
    site = tmp_path / "site"
    first_s, records_s = [], []

    def one_round() -> None:
        shutil.rmtree(site, ignore_errors=True)
        start = time.perf_counter()
        done = publish(s, site)
        first_s.append(time.perf_counter() - start)
        assert (done.series, done.rendered) == (len(PAIRS), len(PAIRS))
        start = time.perf_counter()
        for run in s.runs():
            s.records(run.run_id)
        records_s.append(time.perf_counter() - start)

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    _add_run(s, RUNS, points[:1], PAIRS[:1])  # one more run, of one series
    start = time.perf_counter()
    done = publish(s, site)
    added_s = time.perf_counter() - start
    assert done.rendered == 1
    first, records = statistics.median(first_s), statistics.median(records_s)
    RATIOS["publish 300 runs / parsing every record"] = first / records
    RATIOS["publish after one added run / first publish"] = added_s / first
    benchmark.extra_info.update({"first_s": first, "added_run_s": added_s, "every_record_s": records})
    print(f"first publish {first:.3f} s, after one run {added_s:.3f} s, parsing every record {records:.3f} s")
    RATIOS["publish 300 runs / 30 s target"] = first / FIRST_TARGET_S
    RATIOS["publish after one added run / 3 s target"] = added_s / ADDED_TARGET_S
    assert first < FIRST_TARGET_S and added_s < ADDED_TARGET_S, (first, added_s)
