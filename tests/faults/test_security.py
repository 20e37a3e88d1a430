"""Security as tests: hostile paths and names never reach a shell
unquoted, secrets stay out of every output, user strings are escaped in the
HTML report, and the agent is only ever asked for files in its own cache.
(A changed host key is refused: tests/integration/test_fleet_cli.py.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.faults.checks import assert_outcome

HOSTILE = "q 'x\" $(touch {canary}) `touch {canary}`; touch {canary} <b>&amp;"


def test_hostile_paths_names_and_secrets(fault_lab, faults_run, tiny_tflite, tmp_path):
    canary = tmp_path / "PWNED"
    hostile = HOSTILE.format(canary=canary)
    requests = tmp_path / "requests.jsonl"
    # The device logs every request its agent receives (tee), then runs it.
    logging_python = f'#!/bin/sh\ntee -a "{requests}" | "$0.real" "$@"\n'
    setup = fault_lab(1, extra={"lab-a": {"cache_dir": f"/tmp/{tmp_path.name}/cache {hostile}"}})
    device = setup.device("lab-a")
    real = device.bin_dir / "python3.real"
    shutil.copy(device.bin_dir / "python3", real)
    (device.bin_dir / "python3").write_text(logging_python)
    model = tmp_path / f"model {HOSTILE.format(canary='PWNED')}.tflite"  # a file name has no '/'
    shutil.copy(tiny_tflite, model)
    secret = "s3cr3t-canary-7f1d"
    faults_run.env_extra = {"AWS_SECRET_ACCESS_KEY": secret, "HARNESS_DB_PASSWORD": secret}
    stored = faults_run.run("run", "--model", str(model), "--inventory", str(setup.inventory), "--devices", "lab-a")
    assert stored.exit_code == 0, stored.stderr[-2000:]
    assert_outcome(stored, ok={("lab-a", "fp32")}, failed={})
    for place in (canary, device.home / "PWNED", tmp_path / "PWNED"):
        assert not place.exists(), "a hostile path reached a shell unquoted"
    cache = f"/tmp/{tmp_path.name}/cache {hostile}"
    assert Path(cache, "blobs").is_dir(), "the cache folder was not created under its literal name"

    # Secrets and the private key never appear in any output.
    key_body = "".join(setup.lab.client_key.read_text().splitlines()[1:-1])
    outputs = [stored.stdout, stored.stderr] + [p.read_text(errors="replace") for p in stored.reports.rglob("*")
                                                 if p.is_file() and p.suffix in (".json", ".md", ".html", ".csv")]
    for text in outputs:
        assert secret not in text and key_body[:40] not in text

    # The hostile model name is escaped in the HTML report.
    (html,) = stored.reports.glob("*/report.html")
    page = html.read_text()
    assert "<b>&amp;" not in page and "&lt;b&gt;&amp;amp;" in page

    # The agent was asked only for files inside its cache folder.
    asked, text, decoder = [], requests.read_text(), json.JSONDecoder()
    while text.strip():  # requests are written back to back, without newlines
        request, end = decoder.raw_decode(text.lstrip())
        asked.append(request)
        text = text.lstrip()[end:]
    assert {r["command"] for r in asked} >= {"info", "hash", "lock", "benchmark"}
    paths = [p for r in asked for p in (r.get("model"), r.get("inputs"), r.get("path"), *(r.get("paths") or [])) if p]
    assert paths and all(p.startswith(cache + "/") or p == cache for p in paths), paths
