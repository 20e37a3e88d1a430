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


# Appended to a copy of the page by `load(..., measure=True)`: after the
# report's own script ran, each wide table's container says whether the
# table fits it (data-overflow-px: how many pixels stick out; 0 = fits).
MEASURE = """<script>
document.querySelectorAll("div.scroll").forEach(function (box) {
  box.setAttribute("data-overflow-px", String(Math.max(0, box.scrollWidth - box.clientWidth)));
  box.setAttribute("data-right-px", String(Math.round(box.getBoundingClientRect().right)));
});
</script>"""


def load(html: Path, workdir: Path, fragment: str = "", *, width_px: int = 1400, measure: bool = False) -> PageLoad:
    """The page in a window `width_px` wide; with `measure`, a copy of it in
    `workdir` with MEASURE appended (a report is self-contained: it reads
    nothing beside itself)."""
    workdir.mkdir(parents=True, exist_ok=True)
    netlog = workdir / "netlog.json"
    if measure:
        copy = workdir / f"measured-{html.name}"
        copy.write_text(html.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"), encoding="utf-8")
        html = copy
    proc = subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={workdir / 'profile'}", f"--log-net-log={netlog}",
         f"--window-size={width_px},1000", "--dump-dom", html.resolve().as_uri() + fragment],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return PageLoad(proc.stdout, page_requests(netlog))


def screenshot(html: Path, png: Path, *, width_px: int = 1400, height_px: int = 3000) -> Path:
    """A picture of the page, for a person to look at (not asserted on)."""
    png.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={png.parent / 'profile'}", f"--window-size={width_px},{height_px}",
         f"--screenshot={png}", html.resolve().as_uri()],
        capture_output=True, text=True, timeout=60, check=True,
    )
    return png


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
