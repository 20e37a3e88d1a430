"""The progress display of a real `harness run` on a terminal (a pty): it
keeps moving while TensorFlow converts (the converter points fd 2 at its
log meanwhile), shows each variant as it is ready, in order, and draws
nothing into the converter's log."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-progress")
    subprocess.run([sys.executable, str(HERE / "tiny_detector.py"), str(folder)], check=True, capture_output=True, timeout=300)
    return folder / "model.yaml"


def run_on_a_terminal(args: list[str], env: dict[str, str], columns: int = 120) -> tuple[int, str, str]:
    """(exit code, stdout, what the terminal on stderr received)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:  # a pty's reader must keep up or the writer blocks
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer has closed the terminal
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        out, _ = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=30)
    os.close(master)
    return proc.returncode, out.decode(), b"".join(chunks).decode(errors="replace")


def test_conversion_progress_moves_on_the_terminal_and_stays_out_of_the_log(tiny_model, tmp_path):
    cache = tmp_path / "cache"  # empty: both variants are really converted
    env = dict(os.environ, HARNESS_REPORTS=str(tmp_path / "reports"), HARNESS_CACHE=str(cache), COLUMNS="120",
               TERM="xterm-256color")
    env.pop("NO_COLOR", None)
    code, out, terminal = run_on_a_terminal(["run", "--model", str(tiny_model), "--variants", "fp32,fp16"], env)
    assert code == 0, terminal[-3000:]
    screen = ANSI.sub("", terminal)
    # One line per variant as it is ready, in the order they were converted.
    done = [m.group(1) for m in re.finditer(r"✓ (\S+): converted in \d+\.\d s", screen)]
    assert done == ["fp32", "fp16"], screen[-3000:]
    # The bar was redrawn between the two (it no longer jumps from 0/2 to 2/2).
    assert re.search(r"converting variants[^\n]*1/2", screen), screen[-3000:]
    log = (cache / "convert.log").read_text(errors="replace")
    assert log, "the converter's log is where TensorFlow's output goes"
    assert "converting variants" not in log and "━" not in log and "✓" not in log, log[-2000:]
