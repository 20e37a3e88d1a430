"""An aarch64 CPython root for the emulated Raspberry Pi lab device.

docs/devices.md ("The emulated Raspberry Pi") has the facts; the recipe: the arm64 .debs of
Debian's python3.11 and the libraries it loads, unpacked with `dpkg -x`,
plus the aarch64 wheels of numpy and ai-edge-litert unpacked into its
dist-packages (no pip runs under emulation). The root is run by
`qemu-aarch64-static -cpu cortex-a72 -L ROOT ROOT/usr/bin/python3.11`.

Everything downloaded is cached outside git (EDGE_HARNESS_LAB_CACHE, default
~/.cache/edge-harness-lab/aarch64), so a rerun is offline and takes
milliseconds; the root is rebuilt only when this recipe changes.

`python -m tests.aarch64_root` builds it and prints the time and size.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

QEMU = "qemu-aarch64-static"
# A Cortex-A72 is the Raspberry Pi 4's core; qemu emulates its ISA (NEON,
# no dot-product), which is what XNNPACK picks kernels for.
QEMU_CPU = "cortex-a72"

DEBS = (
    "python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib",
    "libc6", "libgcc-s1", "libstdc++6", "zlib1g", "libexpat1", "libffi8", "libssl3",
    "libbz2-1.0", "liblzma5", "libsqlite3-0", "libtinfo6", "libncursesw6", "libuuid1",
    "libcrypt1", "libreadline8", "libnsl2", "libtirpc3", "libdb5.3",
)
WHEELS = ("numpy", "ai-edge-litert==2.3.0")
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_27_aarch64", "manylinux_2_28_aarch64")

# /proc/cpuinfo of a Raspberry Pi 4 (4x Cortex-A72, r0p3). XNNPACK reads it
# to pick kernels and crashes on the x86 host's file under qemu-user; the
# lab device's python3 sees this one instead (a bind mount in a private
# mount namespace), so the agent runs its normal code path, XNNPACK on.
_CORE = """processor\t: {n}
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd08
CPU revision\t: 3

"""
CPUINFO = "".join(_CORE.format(n=n) for n in range(4)) + (
    "Hardware\t: BCM2835\nRevision\t: c03112\nModel\t\t: Raspberry Pi 4 Model B Rev 1.2 (emulated)\n"
)


def cache_root() -> Path:
    default = Path.home() / ".cache" / "edge-harness-lab" / "aarch64"
    return Path(os.environ.get("EDGE_HARNESS_LAB_CACHE", default))


def _recipe_key() -> str:
    text = repr((DEBS, WHEELS, PLATFORMS, CPUINFO, sys.version_info[:2]))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def qemu_available() -> bool:
    return shutil.which(QEMU) is not None and shutil.which("dpkg") is not None


def _download_debs(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    have = {p.name.split("_")[0] for p in folder.glob("*_arm64.deb")}
    missing = [name for name in DEBS if name not in have]
    if missing:
        arches = subprocess.run(["dpkg", "--print-foreign-architectures"], capture_output=True, text=True).stdout.split()
        if "arm64" not in arches:
            subprocess.run(["dpkg", "--add-architecture", "arm64"], check=True)
            subprocess.run(["apt-get", "update", "-qq"], check=True)
        result = subprocess.run(
            ["apt-get", "download", "-qq", *(f"{name}:arm64" for name in missing)], cwd=folder, capture_output=True, text=True
        )
        if result.returncode != 0:  # the arm64 index may be stale: refresh once
            subprocess.run(["apt-get", "update", "-qq"], check=True)
            subprocess.run(["apt-get", "download", "-qq", *(f"{name}:arm64" for name in missing)], cwd=folder, check=True)
    return sorted(folder.glob("*_arm64.deb"))


def _download_wheels(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    if not list(folder.glob("ai_edge_litert-*.whl")):
        platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--only-binary=:all:",
             "--python-version", "3.11", "--implementation", "cp", *platforms, "--dest", str(folder), *WHEELS],
            check=True,
        )
    return sorted(folder.glob("*.whl"))


def build(cache: Path | None = None) -> Path:
    """The root folder, built once per recipe; safe to call from every test."""
    cache = cache or cache_root()
    root = cache / f"root-{_recipe_key()}"
    if (root / ".complete").is_file():
        return root
    debs = _download_debs(cache / "debs")
    wheels = _download_wheels(cache / "wheels")
    partial = cache / f"root-{_recipe_key()}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    for deb in debs:
        subprocess.run(["dpkg", "-x", str(deb), str(partial)], check=True)
    site = partial / "usr" / "lib" / "python3" / "dist-packages"
    site.mkdir(parents=True, exist_ok=True)
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site)
    for path in site.rglob("*.so*"):
        path.chmod(0o755)  # zip extraction drops the mode bits
    (partial / "cpuinfo").write_text(CPUINFO)
    (partial / ".complete").write_text(_recipe_key() + "\n")
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)
    return root


def python_wrapper(root: Path, path: Path) -> Path:
    """A `python3` that runs the aarch64 interpreter under qemu-user, with the
    Pi's /proc/cpuinfo bind-mounted over the host's in its own mount namespace."""
    python = root / "usr" / "bin" / "python3.11"
    inner = f'mount --bind {root / "cpuinfo"} /proc/cpuinfo && exec {QEMU} -cpu {QEMU_CPU} -L {root} {python} "$@"'
    path.write_text(f"#!/bin/sh\n# emulated Raspberry Pi python (tests/aarch64_root.py)\nexec unshare -m sh -c '{inner}' python3 \"$@\"\n")
    path.chmod(0o755)
    return path


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


if __name__ == "__main__":
    started = time.perf_counter()
    built = build()
    print(f"{built}: {_size_mb(built):.1f} MB in {time.perf_counter() - started:.1f} s")
    downloads = cache_root()
    print(f"downloads: debs {_size_mb(downloads / 'debs'):.1f} MB, wheels {_size_mb(downloads / 'wheels'):.1f} MB")
