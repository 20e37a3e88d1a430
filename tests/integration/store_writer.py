"""One controller writing one run the way harness/runner.py does: begin the
run, one transaction per measured pair (record + raw samples), finish.

    python -m tests.integration.store_writer RUN_ID PAIRS SAMPLES   (store from $HARNESS_STORE)

It prints `ready` once imported and waits for a line on stdin, so a test can
release several writers at the same moment (the schema migration included).
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

from harness.results.open import open_store
from harness.results.record import utc_now_iso
from harness.results.store import RunInfo
from tests.store_records import make_record


def expected_samples(run_id: str, pair: int, count: int) -> list[int]:
    """Samples that say which run and pair they belong to."""
    base = (zlib.crc32(run_id.encode()) % 10_000) * 10_000_000 + pair * 10_000
    return [base + i for i in range(count)]


def main(run_id: str, pairs: int, samples: int) -> None:
    print("ready", flush=True)
    sys.stdin.readline()
    with open_store(None, Path("unused-reports")) as store:
        store.begin_run(RunInfo(run_id, utc_now_iso(), "0.1.0", "running", "run", f"/runs/{run_id}"))
        for pair in range(pairs):
            record = make_record(run_id, f"v{pair}", p50_ms=float(pair))
            store.add_record(record, iter(expected_samples(run_id, pair, samples)))
        store.finish_run(run_id, "finished")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
