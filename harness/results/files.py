"""The per-run folder: reports/<run_id>/.

    results.json                              every record of the run, and `ship`: what to ship per device
    artifacts/<model>-<variant>.tflite         what was measured (+ manifest)
    devices/<device>/<model>-<variant>.detections.json   COCO results format
    devices/<device>/<model>-<variant>.samples.json      raw latency samples (ns)
"""

from __future__ import annotations

import json
import os
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from harness import __version__
from harness.errors import InputError
from harness.results.record import SCHEMA_VERSION, Record


def new_run_id() -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{secrets.token_hex(2)}"


def make_run_dir(reports: Path, run_id: str) -> Path:
    run_dir = reports / run_id
    try:
        run_dir.mkdir(parents=True, exist_ok=False)
        probe = run_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise InputError(
            f"output folder is not writable: {exc.strerror or exc}",
            source=reports,
            hint="choose a writable folder with --out or HARNESS_REPORTS",
        ) from None
    return run_dir


def pair_stem(model: str, variant: str) -> str:
    return f"{model}-{variant}"


def _safe(name: str) -> str:
    # Device names come from the inventory; keep them inside the run folder.
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).lstrip(".") or "_"


def device_dir(run_dir: Path, device: str) -> Path:
    return run_dir / "devices" / _safe(device)


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    tmp.replace(path)


def samples_path(run_dir: Path, device: str, model: str, variant: str) -> Path:
    return device_dir(run_dir, device) / f"{pair_stem(model, variant)}.samples.json"


def write_samples(run_dir: Path, device: str, model: str, variant: str, samples_ns: list[int]) -> Path:
    path = samples_path(run_dir, device, model, variant)
    write_json_atomic(path, {"unit": "ns", "samples": samples_ns})
    return path


def read_samples(run_dir: Path, device: str, model: str, variant: str) -> list[int] | None:
    """A pair's raw samples as written by write_samples; None when missing or unreadable."""
    try:
        data = json.loads(samples_path(run_dir, device, model, variant).read_text(encoding="utf-8"))
        return [int(v) for v in data["samples"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_results(run_dir: Path, run_id: str, records: Iterable[Record], meta: dict[str, Any]) -> Path:
    # The "what to ship" answer per (device, model) with the recipe's default
    # bounds, so a reader of the file alone gets it; derived from the records
    # (harness/gate/ship.py, pure), never read back.
    from harness.gate.ship import decide_all

    records = list(records)
    path = run_dir / "results.json"
    write_json_atomic(
        path,
        {
            "schema_version": SCHEMA_VERSION,
            "run_id": run_id,
            "harness_version": __version__,
            "run": meta,
            "records": [r.to_dict() for r in records],
            "ship": [d.to_dict() for d in decide_all(records)],
        },
    )
    return path


def read_run_meta(run_dir: Path) -> dict[str, Any]:
    """The plan a run was started with (recipe, variants, devices, inventory)."""
    path = Path(run_dir) / "results.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return dict(data["run"])
    except FileNotFoundError:
        raise InputError("the run's results.json is gone", source=path, hint="resume needs the run folder; start a new run") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"not a results.json of this harness: {exc}", source=path) from None


def read_results(path: Path) -> list[Record]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return [Record.from_dict(r) for r in data["records"]]
    except FileNotFoundError:
        raise InputError("results file not found", source=path, hint="run `harness run` first") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"not a results.json of this harness: {exc}", source=path) from None
