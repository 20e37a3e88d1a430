"""`harness history --trend p90` answers from the store's summary columns:
its time must not grow with the raw samples stored. Two stores of 200 runs
each, written through the store's own API, differ only in samples per pair
(100 vs 20000); the same trend query is timed on both, interleaved in one
run, so a slow shared machine moves both numbers together."""

from __future__ import annotations

import statistics
import time

import pytest

from harness.report import history
from harness.results.store import RunInfo, SqliteStore
from tests.benchmarks.conftest import RATIOS
from tests.store_records import make_record

RUNS = 200
VARIANTS = ("fp32", "int8")
FEW, MANY = 100, 20_000
ROUNDS = 30
CALLS = 5
RECORD_ROUNDS = 10


def _store(path, samples_per_pair: int) -> SqliteStore:
    store = SqliteStore(path)
    # Only reading is timed here: the writes need not wait for the disk.
    store._db.execute("PRAGMA synchronous = OFF")
    samples = list(range(1_000_000, 1_000_000 + samples_per_pair))
    for n in range(RUNS):
        run_id = f"run-{n:03d}"
        run = RunInfo(run_id, f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}Z", "0.1.0", "finished", "run", "/r")
        store.import_run(run, [(make_record(run_id, v, p50_ms=1.0 + n / 1000), samples) for v in VARIANTS])
    return store


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    folder = tmp_path_factory.mktemp("history-trend")
    few, many = _store(folder / "few.sqlite", FEW), _store(folder / "many.sqlite", MANY)
    yield few, many
    few.close()
    many.close()


def _trend(store: SqliteStore) -> list[history.Trend]:
    return history.trends(store, "p90", device="local", model="demo", variant="int8")


def _timed(store: SqliteStore) -> float:
    """Seconds for CALLS queries: one query is ~2 ms, too close to a shared
    machine's scheduling noise to time alone."""
    start = time.perf_counter()
    for _ in range(CALLS):
        _trend(store)
    return time.perf_counter() - start


def test_trend_time_does_not_grow_with_the_samples_stored(benchmark, stores):
    few, many = stores
    assert _trend(few) == _trend(many) and len(_trend(few)[0].points) == RUNS  # the same answer from both
    times_s: dict[str, list[float]] = {"few": [], "many": []}
    order = [("few", few), ("many", many)]

    def one_round() -> None:
        for name, store in order:
            times_s[name].append(_timed(store))
        order.reverse()  # alternate which store goes first

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    few_s, many_s = (statistics.median(times_s[name]) / CALLS for name in ("few", "many"))
    ratio = many_s / few_s
    RATIOS[f"history --trend p90: {MANY} / {FEW} samples per pair"] = ratio
    benchmark.extra_info.update({"trend_few_ms": few_s * 1000, "trend_many_ms": many_s * 1000, "ratio": ratio})
    # Reading the samples would cost ~200x (their bytes); the columns cost the same on both.
    assert ratio < 1.5, f"the trend took {ratio:.2f}x longer with {MANY} samples per pair than with {FEW}"


def test_trend_costs_a_fraction_of_reading_every_record(benchmark, stores):
    """What `history --trend` did before: parse every record of every run."""
    few, _ = stores
    records_s: list[float] = []

    def every_record() -> None:
        start = time.perf_counter()
        for run in few.runs():
            few.records(run.run_id)
        records_s.append(time.perf_counter() - start)

    trend_s = [_timed(few) / CALLS for _ in range(3)]
    benchmark.pedantic(every_record, rounds=RECORD_ROUNDS, iterations=1)
    trend_s += [_timed(few) / CALLS for _ in range(3)]
    ratio = statistics.median(trend_s) / statistics.median(records_s)
    RATIOS["history --trend p90 / reading every record"] = ratio
    benchmark.extra_info.update({"ratio": ratio})
    # Measured here: ~0.05 (2-5 ms against 80 ms for 400 records).
    assert ratio < 0.5, f"the trend took {ratio:.2f}x the time of parsing every stored record"
