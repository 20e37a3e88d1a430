"""The `edgetpu` variant: the uint8 variant compiled by `edgetpu_compiler`.

The compiler is x86-64 Debian software from Coral's own apt repository
(packages.cloud.google.com, package `edgetpu-compiler`); it is on neither
PyPI nor Debian. When it is on PATH (or EDGETPU_COMPILER names it) the
uint8 artifact is compiled, and its log is parsed and kept next to the
compiled model. When it is not, the variant is `Unavailable` with that
reason and the pre-check's prediction, and every device records it skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Mapping, Sequence

from harness.agent.client import file_sha256
from harness.convert.converter import Artifact
from harness.edgetpu.logparse import CompilerLog, parse_compiler_log
from harness.edgetpu.precheck import precheck_model
from harness.errors import ConversionError
from harness.results.record import EdgeTpuReport

COMPILER_ENV = "EDGETPU_COMPILER"
COMPILER = "edgetpu_compiler"
COMPILE_TIMEOUT_S = 600
INSTALL_HINT = (
    "install it on an x86-64 Debian/Ubuntu host from Coral's apt repository "
    "(https://coral.ai/docs/edgetpu/compiler: `apt-get install edgetpu-compiler`), "
    f"or set {COMPILER_ENV} to its path"
)


@dataclass(frozen=True)
class Unavailable:
    """A variant that cannot be produced on this host; every device records
    it `skipped` with `message`."""

    variant: str
    kind: str
    message: str
    edgetpu: EdgeTpuReport | None = None


def find_compiler() -> str | None:
    named = os.environ.get(COMPILER_ENV)
    if named:
        return named if os.access(named, os.X_OK) else None
    return shutil.which(COMPILER)


def report_from_log(log: CompilerLog, log_path: Path | None) -> EdgeTpuReport:
    return EdgeTpuReport(
        source="compiler",
        ops_on_tpu=log.ops_on_tpu,
        ops_on_cpu=log.ops_on_cpu,
        cpu_ops=tuple((r.op, r.count, r.status) for r in log.cpu_rows),
        compiler_version=log.version,
        log=str(log_path) if log_path else None,
    )


def edgetpu_variant(uint8: Artifact, *, compiler: str | None = None) -> Artifact | Unavailable | ConversionError:
    """Compile the uint8 artifact (cached next to it), or say why not."""
    compiler = compiler or find_compiler()
    if compiler is None:
        return Unavailable(
            "edgetpu", "compiler-missing",
            f"edgetpu_compiler is not installed on this host: {INSTALL_HINT}; "
            "the pre-check of the uint8 model below predicts what would run on the Edge TPU",
            precheck_model(uint8.path),
        )
    folder = uint8.path.parent / "edgetpu"
    if not (folder / "manifest.json").is_file():
        failure = _compile(uint8, compiler, folder)
        if failure is not None:
            return failure
    manifest = json.loads((folder / "manifest.json").read_text())
    return Artifact(
        model=uint8.model, variant="edgetpu", path=folder / "model.tflite", manifest_path=folder / "manifest.json",
        sha256=manifest["sha256"], size_bytes=manifest["size_bytes"], manifest=manifest, cached=uint8.cached,
    )


def _compile(uint8: Artifact, compiler: str, folder: Path) -> ConversionError | None:
    work = Path(tempfile.mkdtemp(prefix=".edgetpu-", dir=uint8.path.parent))
    try:
        source = work / "model.tflite"
        shutil.copyfile(uint8.path, source)
        try:
            result = subprocess.run(
                [compiler, "-s", "-o", str(work), str(source)],
                capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S, check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return ConversionError(f"{uint8.model}: edgetpu_compiler did not run: {exc}", hint=INSTALL_HINT)
        (work / "compiler.stdout.txt").write_text(result.stdout + result.stderr)
        op_log_path = work / "model_edgetpu.log"
        op_log = op_log_path.read_text() if op_log_path.is_file() else None
        log = parse_compiler_log(result.stdout, op_log)
        compiled = work / "model_edgetpu.tflite"
        if result.returncode != 0 or not log.succeeded or not compiled.is_file():
            return ConversionError(
                f"{uint8.model}: edgetpu_compiler failed: {log.error or result.stderr.strip()[-300:]}",
                hint=f"see {work / 'compiler.stdout.txt'}",
            )
        content = compiled.read_bytes()
        report = report_from_log(log, folder / "model_edgetpu.log")
        manifest = dict(uint8.manifest, variant="edgetpu", summary="uint8 compiled by edgetpu_compiler",
                        sha256=file_sha256(compiled), size_bytes=len(content), compiled_from=uint8.sha256,
                        edgetpu=_plain(asdict(report)))
        compiled.rename(work / "model.tflite.compiled")
        source.unlink()
        (work / "model.tflite.compiled").rename(work / "model.tflite")
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2))
        if folder.exists():
            shutil.rmtree(folder)
        work.rename(folder)
        return None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _plain(value: object) -> object:
    return json.loads(json.dumps(value))


def report_of(artifact: Artifact) -> EdgeTpuReport | None:
    """The compiler's report kept in a compiled variant's manifest."""
    data = artifact.manifest.get("edgetpu")
    if not data:
        return None
    return replace(EdgeTpuReport(**{k: v for k, v in data.items() if k != "cpu_ops"}),
                   cpu_ops=tuple(tuple(op) for op in data.get("cpu_ops") or ()))


def needs_uint8(variants: Sequence[str]) -> tuple[str, ...]:
    """What to ask the converter for: `edgetpu` is made from `uint8`."""
    wanted = [v for v in variants if v != "edgetpu"]
    if "edgetpu" in variants and "uint8" not in wanted:
        wanted.append("uint8")
    return tuple(wanted)


def add_edgetpu(
    variants: Sequence[str], converted: Mapping[str, Artifact | ConversionError]
) -> dict[str, Artifact | ConversionError | Unavailable]:
    """The converter's results plus `edgetpu`, in the asked order."""
    out: dict[str, Artifact | ConversionError | Unavailable] = {}
    for variant in variants:
        if variant != "edgetpu":
            out[variant] = converted[variant]
            continue
        base = converted.get("uint8")
        if isinstance(base, Artifact):
            out[variant] = edgetpu_variant(base)
        else:
            reason = base.render() if isinstance(base, ConversionError) else "no uint8 variant"
            out[variant] = ConversionError(f"edgetpu needs the uint8 variant, which failed: {reason}")
    return out
