"""Headless Chromium for report tests: load a file, return the DOM after its
scripts ran and every http(s) request the page made (from Chromium's NetLog).

Chromium's own background services (component updater, network time,
account checks) also show up in the NetLog; they carry the initiator
"not an origin". Requests made by the page carry the page's origin ("null"
for a file://), and those are what a self-contained report must not make.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)


def chromium() -> str:
    """The browser, or skip; under CI (CI set) a missing browser fails instead."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    message = "the HTML report test needs Chromium (apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(message + "; CI must install it (.ci/run does)")
    pytest.skip(message)


@dataclass(frozen=True)
class PageLoad:
    dom: str
    page_requests: tuple[str, ...]  # http(s) URLs the page itself asked for


def load(html: Path, workdir: Path, fragment: str = "") -> PageLoad:
    workdir.mkdir(parents=True, exist_ok=True)
    netlog = workdir / "netlog.json"
    proc = subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={workdir / 'profile'}", f"--log-net-log={netlog}",
         "--dump-dom", html.resolve().as_uri() + fragment],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return PageLoad(proc.stdout, page_requests(netlog))


def page_requests(netlog: Path) -> tuple[str, ...]:
    data = json.loads(netlog.read_text())
    start_job = data["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in data["events"]:
        params = event.get("params") or {}
        url = params.get("url", "")
        if event["type"] == start_job and url.startswith(("http:", "https:")) and params.get("initiator") != "not an origin":
            urls.append(url)
    return tuple(urls)
