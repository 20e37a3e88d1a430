"""--resume first stores what the run folder has and the store lacks (the
folder is written before the store, so a lost store leaves it ahead)."""

from __future__ import annotations

from dataclasses import replace

from harness.results.files import write_results, write_samples
from harness.results.record import utc_now_iso
from harness.results.store import RunInfo, SqliteStore
from harness.runner import recover_from_folder
from tests.store_records import make_record


def test_folder_records_the_store_lacks_are_stored_once_and_only_with_their_samples(tmp_path):
    run_dir = tmp_path / "r1"
    stored, newer, no_samples = make_record("r1", "fp32"), make_record("r1", "int8"), make_record("r1", "fp16")
    newer_in_folder = replace(newer, created_at="2999-01-01T00:00:00Z", load_ms=9.0)
    with SqliteStore(tmp_path / "results.sqlite") as store:
        store.begin_run(RunInfo("r1", utc_now_iso(), "0.1.0", "running", "run", str(run_dir)))
        store.add_record(stored, [5])
        store.add_record(newer, [6])
        write_results(run_dir, "r1", [stored, newer_in_folder, no_samples], {})
        write_samples(run_dir, "local", "demo", "int8", [7, 8])
        recovered = recover_from_folder(store, run_dir, store.records("r1"))
        assert [r.model.variant for r in recovered] == ["int8"]  # fp32: same as stored; fp16: no samples file
        by_variant = {r.model.variant: r for r in store.records("r1")}
        assert by_variant["int8"].load_ms == 9.0 and store.samples_ns("r1", "local", "demo", "int8") == [7, 8]
        assert set(by_variant) == {"fp32", "int8"}
        assert recover_from_folder(store, run_dir, store.records("r1")) == []  # nothing twice
