"""Which TFLite runtimes can load each variant.

A 2.21 converter can emit ops, or op versions, that an older runtime cannot
prepare although the file's metadata claims otherwise (docs/quantization.md: a
dynamic-range TRANSPOSE_CONV fails in tflite-runtime 2.14). So each variant
is checked for real: the agent's `load` command loads it, allocates its
tensors and invokes it once, under each runtime on this host:

    ai-edge-litert    the main virtualenv's interpreter
    tflite-runtime    2.14, in a side virtualenv (it needs numpy < 2; see
                      harness.paths.tflite214_python and `make .venv-tflite214`)
    tensorflow        tf.lite in the main virtualenv

A status is ``ok``, ``unavailable: <why>`` (the runtime is not installed
here: no verdict), or the runtime's error message.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from harness import paths
from harness.model.adapters import AdapterSpec
from harness.device import Device
from harness.errors import AgentError, InfraError

RUNTIMES: tuple[str, ...] = ("ai-edge-litert", "tflite-runtime", "tensorflow")
OK = "ok"
UNAVAILABLE = "unavailable"


def status_kind(status: str | None) -> str:
    """ok | unavailable | error (anything else is the runtime's message)."""
    if status is None or status.startswith(UNAVAILABLE):
        return UNAVAILABLE
    return OK if status == OK else "error"


@dataclass(frozen=True)
class RuntimeReport:
    runtime: str
    version: str | None
    statuses: dict[str, str]  # model path -> status
    adapter_errors: dict[str, str]  # model path -> why the adapter finds no outputs


def _python_for(runtime: str) -> Path | None:
    if runtime == "tflite-runtime":
        return paths.tflite214_python()
    return Path(sys.executable)


def check_runtime(runtime: str, models: Sequence[Path], cache_dir: Path, adapter: AdapterSpec | None = None) -> RuntimeReport:
    from harness.agent.client import AgentClient
    from harness.transport.local import LocalTransport

    keys = [str(m) for m in models]
    python = _python_for(runtime)
    if python is None or not python.exists():
        why = f"{UNAVAILABLE}: no tflite-runtime 2.14 interpreter (run `make {paths.TFLITE214_VENV}` or set {paths.TFLITE214_ENV})"
        return RuntimeReport(runtime, None, {k: why for k in keys}, {})
    device = Device(
        name=f"host-{runtime}", profile="x86-cpu", kind="local", python=str(python), cache_dir=str(cache_dir / "host-agent")
    )
    client = AgentClient(LocalTransport(device), timeout_s=600, confined=False)
    request = {"command": "load", "models": keys, "runtime": runtime, **(adapter.request() if adapter else {})}
    try:
        reply = client.call(request)
    except InfraError as exc:
        if isinstance(exc, AgentError) and exc.exit_status in (0, 1):  # the agent answered
            if "runtime-missing" in exc.message:
                return RuntimeReport(runtime, None, {k: f"{UNAVAILABLE}: {runtime} is not installed here" for k in keys}, {})
            return RuntimeReport(runtime, None, {k: exc.message for k in keys}, {})
        if len(keys) > 1:  # one model crashed the runtime: find which, one at a time
            parts = [check_runtime(runtime, [m], cache_dir, adapter) for m in models]
            return RuntimeReport(
                runtime,
                next((p.version for p in parts if p.version), None),
                {k: v for p in parts for k, v in p.statuses.items()},
                {k: v for p in parts for k, v in p.adapter_errors.items()},
            )
        return RuntimeReport(runtime, None, {keys[0]: f"the runtime crashed loading it: {exc.message.splitlines()[0]}"}, {})
    results = reply.get("results") or {}
    statuses = {k: OK if (results.get(k) or {}).get("ok") else (results.get(k) or {}).get("error", "no result") for k in keys}
    adapter_errors = {k: r["adapter_error"] for k, r in results.items() if r.get("adapter_error")}
    return RuntimeReport(runtime, (reply.get("runtime") or {}).get("version"), statuses, adapter_errors)
