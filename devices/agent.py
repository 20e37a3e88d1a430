"""Edge Harness on-device agent: one file, stdlib + numpy + a TFLite runtime.

The host copies this file to the device (under a name built from its hash)
and runs ``python3 agent.py`` with one JSON request on stdin. The agent
writes exactly one JSON reply line to stdout; everything else (runtime logs,
progress, tracebacks) goes to stderr. Native code that prints to fd 1 cannot
corrupt the reply: main() points fd 1 at stderr before it reads the request
(so before any runtime is imported) and the reply goes to a private duplicate
of the original stdout. Importing this file changes nothing, so the unit tests
load it as a module and call its pure functions.

Commands
  {"command": "info"}                      what this device offers
  {"command": "hash", "paths": [...]}       sha256 of files in the device cache
  {"command": "benchmark", "model": ...}    load, eval pass, timed loop
  {"command": "detect", "model": ..., "inputs": ...}   eval pass only (detections)

benchmark and detect take "inputs", a .npy batch [N, ...], and optionally
"feed": {"mean": [...], "std": [...], "dtype", "scale", "zero_point"}: then
the batch holds uint8 pixels [N, H, W, C] and each image is fed as
quantise((pixels - mean) / std) (float32, or int8/uint8 with the given scale
and zero point), made right before it is set. Without "feed" the batch's
samples are fed as stored (requests from hosts before the feed).
With "detections_to": PATH (a .npy in the device cache), the eval pass
writes its detections there, one row per box (see DetectionsWriter), and the
reply names the file and the image count instead of listing every image's
detections (a long eval set's reply would grow the host's memory with it).
  {"command": "load", "models": [...]}      can this runtime load, allocate and invoke each model?
  {"command": "lock", "action": ..., ...}   the device lock (acquire/release)

Exit status 0 with ``"ok": true``; 1 with ``"ok": false`` and an
``error {kind, message}``; anything else (a signal, -1 over SSH) means the
agent itself died, which the host reports as a device failure.
"""

from __future__ import annotations

import gc
import glob
import itertools
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback

PROTOCOL_VERSION = 1
AGENT_VERSION = "0.6.1"

RUNTIME_MODULES = (
    ("ai-edge-litert", "ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite-runtime", "tflite_runtime.interpreter", "tflite-runtime"),
    ("tensorflow", "tensorflow.lite", "tensorflow"),
)

# Random-input seed, so a benchmark-only run feeds the same tensors each time.
RANDOM_INPUT_SEED = 1234
# How many inputs the timed loop cycles through, held in memory.
TIMED_INPUT_RING = 16
# TEST ONLY, never set on a real device: the harness's fault suite
# (tests/faults) sets it to "COMMAND" or "COMMAND:TEXT" to make the agent
# abort (SIGABRT, a real crash like a segfaulting delegate's) on that command,
# and with TEXT only when the request's model path contains it.
TEST_ONLY_ABORT_ENV = "EDGE_HARNESS_TEST_ONLY_AGENT_ABORT"
# The controller's process that started this agent. If it goes away (the SSH
# session dropped, the controller was killed), this agent is reparented and
# stops instead of measuring on for nobody.
PARENT_PID = os.getppid()


class AgentFailure(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def log(message: str) -> None:
    sys.stderr.write("agent: " + message + "\n")
    sys.stderr.flush()


def guard_stdout() -> int:
    """Point fd 1 (and sys.stdout) at stderr, so a stray print from Python or
    native code cannot corrupt the protocol; return a private duplicate of
    the real stdout, the reply's channel."""
    reply_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return reply_fd


def reply(reply_fd: int, payload: dict) -> None:
    payload = dict(payload)
    payload["protocol"] = PROTOCOL_VERSION
    payload["agent_version"] = AGENT_VERSION
    data = (json.dumps(payload, separators=(",", ":")) + "\n").encode()
    view = memoryview(data)
    while view:
        written = os.write(reply_fd, view)
        view = view[written:]


# --------------------------------------------------------------------------
# Runtime


def import_runtime(preferred: str | None):
    """Return (module, name, version) of the first runtime that imports."""
    import importlib

    candidates = [m for m in RUNTIME_MODULES if preferred in (None, m[0])]
    if not candidates:
        raise AgentFailure("bad-request", "unknown runtime %r" % preferred)
    problems = []
    for name, module_name, dist in candidates:
        try:
            module = importlib.import_module(module_name)
            if name == "tensorflow":
                # `tf.lite` is an API alias: the package tensorflow.lite itself has no Interpreter.
                module = importlib.import_module("tensorflow").lite
        except Exception as exc:  # ImportError, or a broken install
            problems.append("%s: %s" % (module_name, exc))
            continue
        return module, name, dist_version(dist)
    raise AgentFailure(
        "runtime-missing",
        "no TFLite runtime importable (%s); install ai-edge-litert on the device"
        % "; ".join(problems),
    )


def dist_version(dist: str) -> str:
    try:
        from importlib import metadata

        return metadata.version(dist)
    except Exception:
        return "unknown"


def numpy_version() -> str | None:
    try:
        import numpy

        return numpy.__version__
    except Exception:
        return None


# --------------------------------------------------------------------------
# Environment and memory (Linux /proc and /sys; absent fields are null)


def read_text(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return None


def proc_status_kib(field: str) -> int | None:
    text = read_text("/proc/self/status")
    if text is None:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (kernel >= 4.0, writable clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def mib(kib: int | None) -> float | None:
    return None if kib is None else round(kib / 1024.0, 3)


def thermal_temperature_c() -> float | None:
    readings = []
    for zone in sorted(glob.glob("/sys/class/thermal/thermal_zone*/temp")):
        text = read_text(zone)
        if text and text.lstrip("-").isdigit():
            readings.append(int(text) / 1000.0)
    return max(readings) if readings else None


def vcgencmd(*args: str) -> str | None:
    """Raspberry Pi firmware query; None where there is no vcgencmd."""
    if shutil.which("vcgencmd") is None:
        return None
    try:
        result = subprocess.run(["vcgencmd"] + list(args), capture_output=True, text=True, timeout=5)
    except Exception:
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def vcgencmd_temperature_c() -> float | None:
    out = vcgencmd("measure_temp")  # temp=47.2'C
    try:
        return float(out.split("=")[1].split("'")[0]) if out else None
    except (IndexError, ValueError):
        return None


def cpu_mhz(sources) -> tuple:
    for source in sources:
        if source == "vcgencmd":
            out = vcgencmd("measure_clock", "arm")  # frequency(48)=1500345728
            try:
                if out:
                    return round(int(out.split("=")[1]) / 1e6, 1), source
            except (IndexError, ValueError):
                pass
        elif source == "cpufreq":
            text = read_text("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")
            if text and text.isdigit():
                return int(text) / 1000.0, source
        elif source == "cpuinfo":
            info = read_text("/proc/cpuinfo") or ""
            values = [float(line.split(":")[1]) for line in info.splitlines() if line.startswith("cpu MHz")]
            if values:
                return round(sum(values) / len(values), 1), source
    return None, None


# `vcgencmd get_throttled` bits: 0-3 are "now", 16-19 "since boot".
THROTTLE_BITS = (
    (0, "under-voltage"), (1, "arm frequency capped"), (2, "throttled"), (3, "soft temperature limit"),
    (16, "under-voltage occurred"), (17, "arm frequency capping occurred"), (18, "throttling occurred"),
    (19, "soft temperature limit occurred"),
)


def decode_throttled(flags: int) -> list:
    return [name for bit, name in THROTTLE_BITS if flags & (1 << bit)]


def sysfs_throttling(temperature_c):
    """Without vcgencmd: the clock held below its maximum by the kernel, or
    a passive (throttling) trip point reached. None when neither is readable."""
    reasons = []
    readable = False
    max_khz = read_text("/sys/devices/system/cpu/cpu0/cpufreq/scaling_max_freq")
    hw_khz = read_text("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if max_khz and hw_khz and max_khz.isdigit() and hw_khz.isdigit():
        readable = True
        if int(max_khz) < int(hw_khz):
            reasons.append("frequency capped at %d of %d MHz" % (int(max_khz) // 1000, int(hw_khz) // 1000))
    if temperature_c is not None:
        for trip in glob.glob("/sys/class/thermal/thermal_zone*/trip_point_*_type"):
            if read_text(trip) != "passive":
                continue
            limit = read_text(trip[: -len("type")] + "temp")
            if limit and limit.isdigit():
                readable = True
                if temperature_c * 1000 >= int(limit):
                    reasons.append("passive trip point %.0f C reached" % (int(limit) / 1000.0))
    return (bool(reasons), reasons) if readable else (None, [])


DEFAULT_TELEMETRY = {
    "temperature": ["thermal"],
    "throttling": ["sysfs"],
    "frequency": ["cpufreq", "cpuinfo"],
}


def environment(telemetry=None) -> dict:
    """Temperature, governor, clock and throttling, each read from the
    sources the device's profile lists, first that answers wins; the
    source is recorded with the reading."""
    sources = dict(DEFAULT_TELEMETRY)
    sources.update(telemetry or {})
    temperature, temperature_source = None, None
    for source in sources.get("temperature", []):
        temperature = vcgencmd_temperature_c() if source == "vcgencmd" else thermal_temperature_c()
        if temperature is not None:
            temperature_source = source
            break
    throttled, reasons, flags, throttling_source = None, [], None, None
    for source in sources.get("throttling", []):
        if source == "vcgencmd":
            out = vcgencmd("get_throttled")  # throttled=0x50000
            try:
                flags = int(out.split("=")[1], 16) if out else None
            except (IndexError, ValueError):
                flags = None
            if flags is not None:
                throttled, reasons = bool(flags & 0xF), decode_throttled(flags)
        else:
            throttled, reasons = sysfs_throttling(temperature)
        if throttled is not None:
            throttling_source = source
            break
    mhz, mhz_source = cpu_mhz(sources.get("frequency", []))
    accelerator = None
    if "apex" in sources.get("accelerator_temperature", []):
        text = read_text("/sys/class/apex/apex_0/temp")
        accelerator = int(text) / 1000.0 if text and text.isdigit() else None
    try:
        load_1m = os.getloadavg()[0]
    except OSError:
        load_1m = None
    return {
        "temperature_c": temperature,
        "temperature_source": temperature_source,
        "accelerator_temperature_c": accelerator,
        "governor": read_text("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "cpu_mhz": mhz,
        "cpu_mhz_source": mhz_source,
        "throttled": throttled,
        "throttled_flags": flags,
        "throttle_reasons": reasons,
        "throttling_source": throttling_source,
        "load_1m": load_1m,
    }


def cool_down(request: dict, telemetry) -> dict | None:
    """Rest, then wait for the temperature to fall to the profile's limit."""
    plan = request.get("cooldown") or {}
    rest_s = float(plan.get("seconds") or 0)
    limit = plan.get("max_temperature_c")
    if rest_s <= 0 and limit is None:
        return None
    start = time.perf_counter()
    time.sleep(rest_s)
    temperature = environment(telemetry)["temperature_c"]
    deadline = start + rest_s + float(plan.get("max_wait_s") or 0)
    while limit is not None and temperature is not None and temperature > float(limit) and time.perf_counter() < deadline:
        time.sleep(2.0)
        temperature = environment(telemetry)["temperature_c"]
    return {
        "waited_s": round(time.perf_counter() - start, 2),
        "temperature_c": temperature,
        "reached": limit is None or temperature is None or temperature <= float(limit),
    }


def platform_info() -> dict:
    uname = platform.uname()
    return {
        "arch": uname.machine,
        "os": "%s %s" % (uname.system, uname.release),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "numpy": numpy_version(),
    }


# --------------------------------------------------------------------------
# Inputs


FEED_DTYPES = ("float32", "int8", "uint8")


def feed_numbers(feed: dict, name: str, channels: int) -> list:
    values = feed.get(name)
    if (
        not isinstance(values, list) or len(values) != channels
        or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in values)
    ):
        raise AgentFailure("bad-request", "feed.%s must be %d finite numbers (one per channel), got %r" % (name, channels, values))
    return [float(v) for v in values]


class Feed:
    """How a uint8 pixel image becomes the model's input: normalised with
    the recipe's mean/std, then quantised with the variant's input scale
    and zero point, as the host's quantise(normalise(...)) does."""

    def __init__(self, feed, np) -> None:
        if not isinstance(feed, dict):
            raise AgentFailure("bad-request", "feed must be an object {mean, std, dtype, scale, zero_point}, got %r" % (feed,))
        mean = feed.get("mean")
        channels = len(mean) if isinstance(mean, list) and mean else 3
        self.np = np
        self.mean = np.asarray(feed_numbers(feed, "mean", channels), dtype=np.float32)
        std = feed_numbers(feed, "std", channels)
        if any(v == 0 for v in std):
            raise AgentFailure("bad-request", "feed.std must not contain 0, got %r" % (std,))
        self.std = np.asarray(std, dtype=np.float32)
        self.channels = channels
        self.dtype = feed.get("dtype")
        if self.dtype not in FEED_DTYPES:
            raise AgentFailure("bad-request", "feed.dtype must be one of %s, got %r" % (", ".join(FEED_DTYPES), self.dtype))
        scale, zero_point = feed.get("scale", 0.0), feed.get("zero_point", 0)
        if self.dtype != "float32":
            if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
                raise AgentFailure("bad-request", "feed.scale must be a positive number for %s input, got %r" % (self.dtype, scale))
            info = np.iinfo(self.dtype)
            if isinstance(zero_point, bool) or not isinstance(zero_point, int) or not info.min <= zero_point <= info.max:
                raise AgentFailure("bad-request", "feed.zero_point must be a whole number in %s's range, got %r" % (self.dtype, zero_point))
        self.scale, self.zero_point = float(scale), zero_point

    def apply(self, pixels):
        np = self.np
        values = (np.asarray(pixels, dtype=np.float32) - self.mean) / self.std
        if self.dtype == "float32":
            return values
        info = np.iinfo(self.dtype)
        quantised = np.round(values / self.scale) + self.zero_point
        return np.clip(quantised, info.min, info.max).astype(self.dtype)


def request_feed(request: dict, np):
    """The request's Feed, or None when its inputs are fed as stored."""
    return Feed(request["feed"], np) if request.get("feed") is not None else None


class InputFile:
    """Reads one sample at a time from a .npy batch, so the batch never
    sits in this process's RSS (it would inflate the memory figures). With
    a feed, the batch is uint8 pixels and each sample is made into the
    model's input as it is read."""

    def __init__(self, path: str, np, feed=None) -> None:
        self.np = np
        self.feed = feed
        self.handle = open(path, "rb")
        try:
            version = np.lib.format.read_magic(self.handle)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(self.handle)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(self.handle)
        except Exception as exc:
            raise AgentFailure("bad-input", "%s is not a .npy array: %s" % (path, exc))
        if fortran or len(shape) < 2:
            raise AgentFailure("bad-input", "%s: expected a C-ordered batch, got shape %s" % (path, shape))
        self.offset = self.handle.tell()
        self.shape = tuple(shape)
        self.dtype = dtype
        self.count = shape[0]
        self.sample_shape = (1,) + tuple(shape[1:])
        self.sample_bytes = int(np.prod(shape[1:])) * dtype.itemsize
        self.stored_dtype = dtype
        if feed is not None:
            if dtype != np.dtype("uint8") or len(shape) != 4 or shape[-1] != feed.channels:
                raise AgentFailure(
                    "bad-input",
                    "%s: a feed needs uint8 pixels [N, H, W, %d], got %s %s" % (path, feed.channels, dtype, tuple(shape)),
                )
            self.dtype = np.dtype(feed.dtype)

    def read(self, index: int):
        buffer = self.np.empty(self.sample_shape, dtype=self.stored_dtype)
        self.handle.seek(self.offset + index * self.sample_bytes)
        got = self.handle.readinto(memoryview(buffer).cast("B"))
        if got != self.sample_bytes:
            raise AgentFailure("bad-input", "input file is truncated at sample %d" % index)
        return buffer if self.feed is None else self.feed.apply(buffer)


def random_inputs(detail: dict, np, count: int) -> list:
    rng = np.random.default_rng(RANDOM_INPUT_SEED)
    shape = tuple(int(d) for d in detail["shape"])
    dtype = np.dtype(detail["dtype"])
    samples = []
    for _ in range(count):
        if dtype.kind == "f":
            samples.append(rng.standard_normal(shape).astype(dtype))
        else:
            info = np.iinfo(dtype)
            samples.append(rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype))
    return samples


# --------------------------------------------------------------------------
# Output adapters: outputs are found by name or shape, never by position.


def ssd_output_indices(interpreter) -> dict:
    """Map TFLite_Detection_PostProcess outputs by name, never by position."""
    wanted = ("boxes", "classes", "scores", "num_detections")
    by_key = signature_outputs(interpreter, wanted)
    if by_key is not None:
        return by_key
    by_op = postprocess_op_outputs(interpreter, wanted)
    if by_op is not None:
        return by_op
    by_name = {d["name"]: d["index"] for d in interpreter.get_output_details()}
    suffixes = {"boxes": "", "classes": ":1", "scores": ":2", "num_detections": ":3"}
    base = "TFLite_Detection_PostProcess"
    if all(base + s in by_name for s in suffixes.values()):
        return {k: by_name[base + s] for k, s in suffixes.items()}
    raise AgentFailure(
        "bad-model",
        "adapter ssd-postprocess: outputs boxes/classes/scores/num_detections not found "
        "by signature name, as the TFLite_Detection_PostProcess op's outputs or by its tensor name (outputs: %s)"
        % ", ".join(sorted(by_name)),
    )


def postprocess_op_outputs(interpreter, wanted) -> dict | None:
    """The post-process op's own output tensors, in the op's order (boxes,
    classes, scores, count): what TF2 exports (TF OD API, Model Maker) need,
    whose signature keys are output_0..3 and whose tensor names follow the
    exporter's reversed tuple, not the op."""
    try:
        ops = interpreter._get_ops_details()
    except Exception:
        return None
    model_outputs = {int(d["index"]) for d in interpreter.get_output_details()}
    for op in ops:
        outputs = [int(i) for i in op.get("outputs", [])]
        if op.get("op_name") == "TFLite_Detection_PostProcess" and len(outputs) == 4:
            if all(i in model_outputs for i in outputs):
                return dict(zip(wanted, outputs))
    return None


def signature_outputs(interpreter, wanted) -> dict | None:
    """{key: tensor index} from the first signature that has every wanted key."""
    try:
        signatures = interpreter.get_signature_list()
    except Exception:
        signatures = {}
    for key in signatures:
        try:
            details = interpreter.get_signature_runner(key).get_output_details()
        except Exception:
            continue
        if all(name in details for name in wanted):
            return {name: details[name]["index"] for name in wanted}
    return None


def read_ssd_detections(interpreter, indices: dict) -> dict:
    count = int(round(float(interpreter.get_tensor(indices["num_detections"]).reshape(-1)[0])))
    # Only the first `count` rows are valid; the rest is uninitialised memory.
    boxes = interpreter.get_tensor(indices["boxes"]).reshape(-1, 4)[:count]
    classes = interpreter.get_tensor(indices["classes"]).reshape(-1)[:count]
    scores = interpreter.get_tensor(indices["scores"]).reshape(-1)[:count]
    return detections_payload(boxes, classes, scores)


def detections_payload(boxes, classes, scores) -> dict:
    return {
        "boxes": [[round(float(v), 6) for v in row] for row in boxes],
        "classes": [int(round(float(c))) for c in classes],
        "scores": [round(float(s), 6) for s in scores],
    }


def boxes_scores_indices(interpreter) -> dict:
    """Find the raw `boxes` [1, N, 4] and per-class `scores` [1, N, C] outputs:
    by signature key, then by tensor name, then by shape."""
    by_key = signature_outputs(interpreter, ("boxes", "scores"))
    if by_key is not None:
        return by_key
    details = interpreter.get_output_details()
    boxes = [d for d in details if "box" in d["name"].lower()]
    scores = [d for d in details if any(w in d["name"].lower() for w in ("score", "class", "logit"))]
    if len(boxes) == 1 and len(scores) == 1 and boxes[0]["index"] != scores[0]["index"]:
        return {"boxes": boxes[0]["index"], "scores": scores[0]["index"]}
    shaped = [d for d in details if len(d["shape"]) == 3 and int(d["shape"][0]) == 1]
    box_like = [d for d in shaped if int(d["shape"][2]) == 4]
    for box in box_like:
        partners = [
            d for d in shaped
            if d["index"] != box["index"] and int(d["shape"][1]) == int(box["shape"][1]) and int(d["shape"][2]) != 4
        ]
        if len(box_like) == 1 and len(partners) == 1:
            return {"boxes": box["index"], "scores": partners[0]["index"]}
    raise AgentFailure(
        "bad-model",
        "adapter boxes-scores: no boxes [1, N, 4] and scores [1, N, C] outputs found by signature key "
        "(boxes, scores), tensor name or an unambiguous shape (outputs: %s)"
        % ", ".join("%s %s" % (d["name"], list(int(v) for v in d["shape"])) for d in details),
    )


def output_float(interpreter, index: int, np):
    """An output as float32, dequantised when the model left it integer."""
    value = interpreter.get_tensor(index)
    if value.dtype.kind in "iu":
        detail = next(d for d in interpreter.get_output_details() if d["index"] == index)
        scale, zero_point = detail.get("quantization", (0.0, 0))
        if scale:
            return (value.astype(np.float32) - zero_point) * scale
    return value.astype(np.float32)


def decode_boxes(encodings, anchors, scales, np):
    """SSD centre-size decoding (the TFLite_Detection_PostProcess formula):
    encodings [N, 4] (ty, tx, th, tw), anchors [N, 4] (cy, cx, h, w)."""
    ty, tx, th, tw = encodings.T
    ay, ax, ah, aw = anchors.T
    cy = ty / scales["y"] * ah + ay
    cx = tx / scales["x"] * aw + ax
    half_h = 0.5 * np.exp(th / scales["h"]) * ah
    half_w = 0.5 * np.exp(tw / scales["w"]) * aw
    return np.stack([cy - half_h, cx - half_w, cy + half_h, cx + half_w], axis=1)


def nms(boxes, scores, iou_threshold: float, max_out: int, np) -> list:
    """Greedy non-maximum suppression; returns kept indices, best first."""
    order = np.argsort(-scores, kind="stable")
    y0, x0, y1, x1 = boxes.T
    areas = np.clip(y1 - y0, 0, None) * np.clip(x1 - x0, 0, None)
    keep = []
    while order.size and len(keep) < max_out:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        inter = np.clip(np.minimum(y1[best], y1[rest]) - np.maximum(y0[best], y0[rest]), 0, None) * np.clip(
            np.minimum(x1[best], x1[rest]) - np.maximum(x0[best], x0[rest]), 0, None
        )
        iou = inter / np.maximum(areas[best] + areas[rest] - inter, 1e-12)
        order = rest[iou <= iou_threshold]
    return keep


# Candidates kept per class before NMS, as TF's and the SSD op's NMS do.
NMS_MAX_CANDIDATES = 1000


class BoxesScoresReader:
    """Adapter boxes-scores: decode (with anchors when given), then class-aware
    NMS in numpy. Options: anchors (path of a .npy), scales, scores
    (sigmoid | logits), nms_score_threshold, nms_iou_threshold, max_detections."""

    def __init__(self, interpreter, options: dict, np) -> None:
        self.np = np
        self.indices = boxes_scores_indices(interpreter)
        self.anchors = None
        if options.get("anchors"):
            self.anchors = np.load(os.path.expanduser(options["anchors"])).astype(np.float32)
        self.scales = options.get("scales") or {"y": 10.0, "x": 10.0, "h": 5.0, "w": 5.0}
        self.logits = options.get("scores") == "logits"
        self.score_threshold = float(options.get("nms_score_threshold", 0.05))
        self.iou_threshold = float(options.get("nms_iou_threshold", 0.5))
        self.max_detections = int(options.get("max_detections", 100))

    def read(self, interpreter) -> dict:
        np = self.np
        boxes = output_float(interpreter, self.indices["boxes"], np).reshape(-1, 4)
        scores = output_float(interpreter, self.indices["scores"], np)
        scores = scores.reshape(boxes.shape[0], -1)
        if self.logits:
            scores = 1.0 / (1.0 + np.exp(-scores))
        if self.anchors is not None:
            if self.anchors.shape[0] != boxes.shape[0]:
                raise AgentFailure(
                    "bad-model", "%d anchors for %d boxes: the recipe's anchors do not match the model"
                    % (self.anchors.shape[0], boxes.shape[0])
                )
            boxes = decode_boxes(boxes, self.anchors, self.scales, np)
        anchor_idx, class_idx = np.nonzero(scores > self.score_threshold)
        kept_boxes, kept_classes, kept_scores = [], [], []
        for cls in np.unique(class_idx):
            members = anchor_idx[class_idx == cls]
            cls_scores = scores[members, cls]
            if members.size > NMS_MAX_CANDIDATES:
                top = np.argsort(-cls_scores, kind="stable")[:NMS_MAX_CANDIDATES]
                members, cls_scores = members[top], cls_scores[top]
            for i in nms(boxes[members], cls_scores, self.iou_threshold, self.max_detections, np):
                kept_boxes.append(boxes[members[i]])
                kept_classes.append(int(cls))
                kept_scores.append(float(cls_scores[i]))
        order = sorted(range(len(kept_scores)), key=lambda i: -kept_scores[i])[: self.max_detections]
        return detections_payload(
            [kept_boxes[i] for i in order], [kept_classes[i] for i in order], [kept_scores[i] for i in order]
        )


# YOLO heads as Ultralytics exports them (facts from its sources:
# ultralytics/nn/modules/head.py Detect._inference concatenates xywh boxes and
# sigmoid class scores into one [1, 4+nc, N] tensor; utils/export/litert.py
# divides the boxes by the input width/height so one int8 scale fits both;
# nn/backends/litert.py dequantises int8 outputs with their scale/zero-point and
# multiplies the boxes back; end-to-end heads give [1, max_det, 6] = x1, y1, x2,
# y2, score, class, normalised in onnx2tf files and in pixels in litert-torch
# ones). Boxes leave the reader as every adapter's do: normalised (ymin, xmin,
# ymax, xmax) of the model input; the host undoes the letterbox.

# A head whose typical box coordinate is above this cannot be normalised: it
# is in pixels. Judged on the median of the candidates' coordinates, not the
# largest one: a normalised head's low-score boxes may reach past the image
# (cx 0.9, w 1.4 gives x1 1.6), and one such box must not turn every box of
# the image into pixels (divided by the input size, they all miss).
YOLO_PIXEL_RANGE = 1.5
# Candidates kept before NMS, as Ultralytics' non_max_suppression (max_nms).
YOLO_MAX_NMS = 30000


def yolo_output(interpreter, rows_per_box: str):
    """The one [1, a, b] output of a YOLO head (rows_per_box names which
    axis holds the values of one box, for the error message)."""
    shaped = [d for d in interpreter.get_output_details() if len(d["shape"]) == 3 and int(d["shape"][0]) == 1]
    if len(shaped) != 1:
        raise AgentFailure(
            "bad-model",
            "adapter yolo: expected one [1, %s] output, found %s" % (rows_per_box, ", ".join(
                "%s %s" % (d["name"], list(int(v) for v in d["shape"])) for d in interpreter.get_output_details()
            )),
        )
    return shaped[0]


def input_size(interpreter, options: dict) -> tuple:
    """(height, width) of the model input: the recipe's, else the tensor's
    (NHWC, or NCHW when its second axis holds 3 channels)."""
    if options.get("input_size"):
        height, width = options["input_size"]
        return float(height), float(width)
    shape = [int(v) for v in interpreter.get_input_details()[0]["shape"]]
    if len(shape) == 4 and shape[1] in (1, 3) and shape[3] not in (1, 3):
        return float(shape[2]), float(shape[3])
    return float(shape[1]), float(shape[2])


def normalised_corners(x0, y0, x1, y1, units: str, size: tuple, np):
    """(ymin, xmin, ymax, xmax) in [0, 1] of the input; `units` is normalised,
    pixels, or auto (pixels when the median coordinate is beyond YOLO_PIXEL_RANGE)."""
    if units == "pixels" or (units == "auto" and x0.size and float(np.median(np.abs(
        np.concatenate([x0, y0, x1, y1])))) > YOLO_PIXEL_RANGE):
        height, width = size
        x0, x1, y0, y1 = x0 / width, x1 / width, y0 / height, y1 / height
    return np.stack([y0, x0, y1, x1], axis=1)


def class_aware_nms(boxes, scores, classes, iou_threshold: float, max_out: int, np) -> list:
    """One greedy NMS for every class at once: each class's boxes are moved
    to their own region (offset by class x span), so boxes of two classes
    never overlap (Ultralytics' max_wh trick)."""
    if not scores.size:
        return []
    span = float(np.max(boxes) - np.min(boxes)) + 1.0
    return nms(boxes + (classes.astype(boxes.dtype) * span)[:, None], scores, iou_threshold, max_out, np)


class YoloReader:
    """Adapter yolo: one raw head, decoded, thresholded and suppressed here.
    Options: layout (v8: [1, 4+nc, N]; v5: [1, N, 5+nc] with objectness),
    score_threshold, iou_threshold, max_detections, boxes (auto | normalised
    | pixels), input_size [height, width]."""

    def __init__(self, interpreter, options: dict, np) -> None:
        self.np = np
        self.layout = options.get("layout", "v8")
        if self.layout not in ("v8", "v5"):
            raise AgentFailure("bad-request", "adapter yolo: unknown layout %r (v8 or v5)" % self.layout)
        self.index = yolo_output(interpreter, "4+nc, N" if self.layout == "v8" else "N, 5+nc")["index"]
        self.size = input_size(interpreter, options)
        self.units = options.get("boxes", "auto")
        self.score_threshold = float(options.get("score_threshold", 0.001))
        self.iou_threshold = float(options.get("iou_threshold", 0.7))
        self.max_detections = int(options.get("max_detections", 300))

    def candidates(self, interpreter) -> tuple:
        """(xywh [N, 4], per-class scores [N, nc]) of every anchor."""
        head = output_float(interpreter, self.index, self.np)[0]
        if self.layout == "v8":
            head = head.T
            return head[:, :4], head[:, 4:]
        # YOLOv5: conf = objectness x class probability (its non_max_suppression).
        return head[:, :4], head[:, 5:] * head[:, 4:5]

    def read(self, interpreter) -> dict:
        np = self.np
        xywh, scores = self.candidates(interpreter)
        anchor_idx, class_idx = np.nonzero(scores > self.score_threshold)
        cand_scores = scores[anchor_idx, class_idx]
        if cand_scores.size > YOLO_MAX_NMS:
            top = np.argsort(-cand_scores, kind="stable")[:YOLO_MAX_NMS]
            anchor_idx, class_idx, cand_scores = anchor_idx[top], class_idx[top], cand_scores[top]
        cx, cy, w, h = (xywh[anchor_idx, i] for i in range(4))
        boxes = normalised_corners(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, self.units, self.size, np)
        keep = class_aware_nms(boxes, cand_scores, class_idx, self.iou_threshold, self.max_detections, np)
        return detections_payload(boxes[keep], class_idx[keep], cand_scores[keep])


class YoloEnd2EndReader:
    """Adapter yolo-end2end: [1, N, 6] rows of x1, y1, x2, y2, score, class,
    already suppressed in the graph; only the score threshold and the count
    apply here. Options: score_threshold, max_detections, boxes, input_size."""

    def __init__(self, interpreter, options: dict, np) -> None:
        self.np = np
        self.index = yolo_output(interpreter, "N, 6")["index"]
        self.size = input_size(interpreter, options)
        self.units = options.get("boxes", "auto")
        self.score_threshold = float(options.get("score_threshold", 0.001))
        self.max_detections = int(options.get("max_detections", 300))

    def read(self, interpreter) -> dict:
        np = self.np
        rows = output_float(interpreter, self.index, np)[0]
        if rows.shape[-1] < 6:
            raise AgentFailure("bad-model", "adapter yolo-end2end: rows of %d values, expected 6" % rows.shape[-1])
        rows = rows[rows[:, 4] > self.score_threshold]
        rows = rows[np.argsort(-rows[:, 4], kind="stable")[: self.max_detections]]
        boxes = normalised_corners(rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3], self.units, self.size, np)
        return detections_payload(boxes, np.round(rows[:, 5]).astype(np.int64), rows[:, 4])


class SsdReader:
    def __init__(self, interpreter) -> None:
        self.indices = ssd_output_indices(interpreter)

    def read(self, interpreter) -> dict:
        return read_ssd_detections(interpreter, self.indices)


def detection_reader(interpreter, adapter: str, options: dict, np):
    """The adapter's reader, or None for `none` (latency only)."""
    if adapter == "ssd-postprocess":
        return SsdReader(interpreter)
    if adapter == "boxes-scores":
        return BoxesScoresReader(interpreter, options or {}, np)
    if adapter == "yolo":
        return YoloReader(interpreter, options or {}, np)
    if adapter == "yolo-end2end":
        return YoloEnd2EndReader(interpreter, options or {}, np)
    if adapter in (None, "none"):
        return None
    raise AgentFailure("bad-request", "unknown adapter %r" % adapter)


# --------------------------------------------------------------------------
# Loading and running a model


def load_delegate(runtime, runtime_name: str, spec):
    """The delegate a variant needs (the Edge TPU's libedgetpu.so.1), loaded
    through the runtime's own load_delegate. A missing library is this
    device's problem, reported as such, never a crash."""
    if not spec:
        return None
    library = spec.get("library")
    loader = getattr(runtime, "load_delegate", None)
    if loader is None:
        experimental = getattr(runtime, "experimental", None)
        loader = getattr(experimental, "load_delegate", None)
    if loader is None:
        raise AgentFailure("delegate-missing", "%s has no load_delegate: cannot use %s" % (runtime_name, library))
    try:
        return loader(library, spec.get("options") or {})
    except Exception as exc:  # ValueError from the runtime when dlopen fails
        raise AgentFailure(
            "delegate-missing",
            "cannot load the %s delegate %s: %s (install it on the device: for the Edge TPU, "
            "libedgetpu1-std from Coral's apt repository, and plug the accelerator in)"
            % (spec.get("name", "?"), library, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__),
        )


def make_interpreter(runtime, runtime_name: str, model: str, threads: int | None, delegate=None, xnnpack=None):
    kwargs = {"model_path": model}
    if threads:
        kwargs["num_threads"] = int(threads)
    if delegate is not None:
        kwargs["experimental_delegates"] = [delegate]
    if xnnpack is False:  # a sweep's `--xnnpack off`: the built-in kernels without default delegates
        kwargs["experimental_op_resolver_type"] = op_resolver_without_delegates(runtime, runtime_name)
    cls = runtime.Interpreter
    try:
        interpreter = cls(**kwargs)
        interpreter.allocate_tensors()
    except Exception as exc:
        raise AgentFailure("model-load", "%s cannot load %s: %s" % (runtime_name, model, exc))
    return interpreter


def op_resolver_without_delegates(runtime, runtime_name: str):
    """OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES of this runtime
    (tf.lite keeps it under `experimental`)."""
    holder = runtime if hasattr(runtime, "OpResolverType") else getattr(runtime, "experimental", None)
    resolver = getattr(holder, "OpResolverType", None)
    if resolver is None:
        raise AgentFailure("bad-request", "%s cannot switch XNNPACK off (no OpResolverType)" % runtime_name)
    return resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES


def pin_cpus(cpus) -> list | None:
    """The profile's CPU affinity for this process (and the runtime's threads)."""
    if not cpus:
        return None
    try:
        os.sched_setaffinity(0, [int(c) for c in cpus])
    except (AttributeError, OSError, ValueError) as exc:
        raise AgentFailure("bad-request", "cannot pin to CPUs %s: %s" % (cpus, exc))
    return sorted(os.sched_getaffinity(0))


# One row per detected box of the eval pass, in image order. float64 keeps
# the reply's rounded values exactly, so a file scores as the JSON list did.
DETECTIONS_FIELDS = (("image", "<i4"), ("box", "<f8", (4,)), ("class", "<i4"), ("score", "<f8"))
# The .npy header is written first with room for any row count and rewritten
# with the real one at the end (the count is unknown until the pass is over).
DETECTIONS_HEADER_BYTES = 256


class DetectionsWriter:
    """Appends each image's detections to a .npy of DETECTIONS_FIELDS rows,
    written to PATH.partial and renamed when complete."""

    def __init__(self, path: str, np) -> None:
        self.np = np
        self.dtype = np.dtype(list(DETECTIONS_FIELDS))
        self.path = path
        self.images = 0
        self.rows = 0
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        self.handle = open(path + ".partial", "wb")
        self.handle.write(self.header(0))

    def header(self, rows: int) -> bytes:
        text = "{'descr': %r, 'fortran_order': False, 'shape': (%d,), }" % (self.np.lib.format.dtype_to_descr(self.dtype), rows)
        room = DETECTIONS_HEADER_BYTES - 10 - 1  # magic (6), version (2), length (2); the closing newline
        return b"\x93NUMPY\x01\x00" + (room + 1).to_bytes(2, "little") + text.ljust(room).encode("latin1") + b"\n"

    def append(self, found: dict) -> None:
        rows = self.np.zeros(len(found["scores"]), dtype=self.dtype)
        if len(rows):
            rows["image"] = self.images
            rows["box"] = self.np.asarray(found["boxes"], dtype=self.np.float64).reshape(-1, 4)
            rows["class"] = found["classes"]
            rows["score"] = found["scores"]
            self.handle.write(rows.tobytes())
        self.images += 1
        self.rows += len(rows)

    def close(self) -> dict:
        self.handle.seek(0)
        self.handle.write(self.header(self.rows))
        self.handle.close()
        os.replace(self.path + ".partial", self.path)
        return {"detections_file": self.path, "detections_images": self.images, "detections_rows": self.rows}


def eval_pass(interpreter, input_index: int, inputs, reader, limit=None, sink=None) -> list:
    """Every image's detections, in a list or, with a sink, appended to it
    (the list then stays empty)."""
    count = inputs.count if limit is None else min(inputs.count, int(limit))
    detections = []
    for i in range(count):
        if i % 16 == 0:
            stop_if_orphaned()
        interpreter.set_tensor(input_index, inputs.read(i))
        interpreter.invoke()
        found = reader.read(interpreter)
        if sink is None:
            detections.append(found)
        else:
            sink.append(found)
    log("eval pass: %d images" % count)
    return detections


def eval_reply(interpreter, input_index: int, inputs, reader, request: dict, np) -> dict:
    """The eval pass's part of a reply: `detections`, or with `detections_to`
    the file they were written to and how many images it covers."""
    limit = request.get("max_eval_images")
    target = request.get("detections_to")
    if not target:
        return {"detections": eval_pass(interpreter, input_index, inputs, reader, limit)}
    if not isinstance(target, str):
        raise AgentFailure("bad-request", "detections_to must be a path, got %r" % (target,))
    writer = DetectionsWriter(target, np)
    try:
        eval_pass(interpreter, input_index, inputs, reader, limit, sink=writer)
    except BaseException:
        writer.handle.close()
        os.unlink(target + ".partial")
        raise
    return writer.close()


def single_input(interpreter, np, inputs):
    """(index, shape, dtype) of the model's one input, checked against the batch."""
    input_details = interpreter.get_input_details()
    if len(input_details) != 1:
        raise AgentFailure("bad-model", "expected one input tensor, found %d" % len(input_details))
    detail = input_details[0]
    want_shape = tuple(int(d) for d in detail["shape"])
    want_dtype = np.dtype(detail["dtype"])
    if inputs is not None and (inputs.sample_shape != want_shape or inputs.dtype != want_dtype):
        raise AgentFailure(
            "bad-input",
            "inputs are %s %s per sample but the model wants %s %s"
            % (inputs.dtype, inputs.sample_shape, want_dtype, want_shape),
        )
    return detail, want_shape, want_dtype


def detect(request: dict) -> dict:
    """The eval pass alone: detections for every input (host-side scoring
    during conversion, e.g. selective quantization's mAP search)."""
    import numpy as np

    model = request.get("model")
    if not model or not os.path.isfile(model) or not request.get("inputs"):
        raise AgentFailure("bad-request", "detect needs an existing model and an inputs .npy")
    runtime, runtime_name, runtime_version = import_runtime(request.get("runtime"))
    inputs = InputFile(request["inputs"], np, request_feed(request, np))
    interpreter = make_interpreter(runtime, runtime_name, model, request.get("threads"))
    detail, _, _ = single_input(interpreter, np, inputs)
    reader = detection_reader(interpreter, request.get("adapter", "none"), request.get("adapter_options") or {}, np)
    if reader is None:
        raise AgentFailure("bad-request", "detect needs an adapter that reads detections")
    return {
        "ok": True,
        "runtime": {"name": runtime_name, "version": runtime_version},
        **eval_reply(interpreter, detail["index"], inputs, reader, dict(request, max_eval_images=None), np),
    }


def load_check(request: dict) -> dict:
    """Per model: can this runtime load it, allocate its tensors and invoke it
    once? A 2.21 converter can emit ops (or op versions) an older runtime
    cannot prepare, although the file's metadata claims otherwise. With an
    adapter, also whether its outputs are found."""
    import numpy as np

    runtime, runtime_name, runtime_version = import_runtime(request.get("runtime"))
    results = {}
    for model in request.get("models") or []:
        try:
            if not os.path.isfile(model):
                raise AgentFailure("bad-request", "model file %r not found on the device" % model)
            try:
                interpreter = runtime.Interpreter(model_path=model, num_threads=1)
                interpreter.allocate_tensors()
            except Exception as exc:
                raise AgentFailure("model-load", " ".join(str(exc).split()))
            detail, _, _ = single_input(interpreter, np, None)
            interpreter.set_tensor(detail["index"], random_inputs(detail, np, 1)[0])
            try:
                interpreter.invoke()
            except Exception as exc:
                raise AgentFailure("invoke", "invoke failed: %s" % " ".join(str(exc).split()))
            result = {"ok": True}
            try:
                detection_reader(interpreter, request.get("adapter", "none"), request.get("adapter_options") or {}, np)
            except AgentFailure as exc:
                result["adapter_error"] = exc.message
            results[model] = result
        except AgentFailure as exc:
            results[model] = {"ok": False, "error": exc.message}
        except Exception as exc:
            results[model] = {"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)}
    return {"ok": True, "runtime": {"name": runtime_name, "version": runtime_version}, "results": results}


# --------------------------------------------------------------------------
# The early stop: the host's rule (harness/measure/stats.py
# `interval_is_tight`), written again because this file cannot import the
# harness; tests/unit/test_agent_units.py holds both to the same ranks and
# the same decisions on the same samples.

# Each side of the 95% interval may miss with this probability.
CI_TAIL = (1.0 - 0.95) / 2.0
# Binomial terms below e**-60 are left out of the CDF, as the host does.
NEGLIGIBLE_LOG_TERM = -60.0


def order_statistic_ranks(n: int, q: float) -> tuple:
    """1-based ranks (l, u) of the sorted samples that bound the q-quantile
    with 95% confidence, distribution-free; None for a side that n samples
    cannot bound. The count B of samples below the quantile is
    Binomial(n, q): l is the largest rank with P(B < l) <= CI_TAIL, u the
    smallest with P(B >= u) <= CI_TAIL."""
    log_q, log_rest, log_n_fact = math.log(q), math.log1p(-q), math.lgamma(n + 1)

    def log_term(k: int) -> float:  # log P(B == k)
        return log_n_fact - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_q + (n - k) * log_rest

    start = first_term_that_counts(log_term, min(n, int(n * q)))
    lower = start if start >= 1 else None
    cumulative = itertools.accumulate(math.exp(log_term(k)) for k in range(start, n))
    for rank, below in enumerate(cumulative, start + 1):  # below = P(B < rank)
        below = min(1.0, below)
        if below <= CI_TAIL:
            lower = rank
        if 1.0 - below <= CI_TAIL:
            return lower, rank
    return lower, None


def first_term_that_counts(log_term, mode_or_below: int) -> int:
    """The smallest k whose binomial term is not negligible (the terms rise
    up to the mode, so a bisection over [0, mode] finds it)."""
    low, high = 0, mode_or_below
    while low < high:
        k = (low + high) // 2
        low, high = (k + 1, high) if log_term(k) < NEGLIGIBLE_LOG_TERM else (low, k)
    return low


def type7_quantile(sorted_values: list, q: float) -> float:
    """Linear interpolation between order statistics (numpy's default)."""
    h = (len(sorted_values) - 1) * q
    below = math.floor(h)
    above = min(below + 1, len(sorted_values) - 1)
    return sorted_values[below] + (h - below) * (sorted_values[above] - sorted_values[below])


def p90_interval_tight(sorted_ns: list, rel_tol: float) -> bool:
    """The p90's 95% interval is at most rel_tol of the p90 to either side."""
    lower, upper = order_statistic_ranks(len(sorted_ns), 0.9)
    if lower is None or upper is None:
        return False
    p90 = type7_quantile(sorted_ns, 0.9)
    return p90 > 0 and (sorted_ns[upper - 1] - sorted_ns[lower - 1]) / 2.0 <= rel_tol * p90


# --------------------------------------------------------------------------
# Benchmark: parse, set up, warm up, timed loop, reply

# The measurement plan every benchmark request carries, with its types. The
# host owns the defaults (harness/fleet/profiles.py MeasurementPlan); a
# request without one of these is refused, never filled in here.
PLAN_FIELDS = (
    ("warmup_runs", int), ("warmup_seconds", float), ("min_runs", int),
    ("min_seconds", float), ("max_seconds", float), ("ci_rel_tol", float),
)
# The most samples one reply carries (a request may ask for fewer): a bound
# on the reply's size, not a plan; max_seconds ends a loop long before it.
MAX_RUNS = 100000
# The p90 interval is looked at every this many samples (sorting them costs).
CI_CHECK_EVERY = 32
# The controller is looked for every this many invokes (a cheap syscall).
ORPHAN_CHECK_EVERY = 64


def parse_benchmark(request: dict) -> dict:
    """The benchmark's plan from its request: an existing model, every plan
    field, the sample cap and the input ring."""
    model = request.get("model")
    if not model or not os.path.isfile(model):
        raise AgentFailure("bad-request", "model file %r not found on the device" % model)
    missing = [name for name, _ in PLAN_FIELDS if name not in request]
    if missing:
        raise AgentFailure(
            "bad-request",
            "benchmark request lacks the measurement plan's %s: the host sends its whole plan, "
            "this agent has no defaults" % ", ".join(missing),
        )
    plan = {name: plan_number(request, name, kind) for name, kind in PLAN_FIELDS}
    plan["max_runs"] = plan_number(request, "max_runs", int) if "max_runs" in request else MAX_RUNS
    if not 1 <= plan["max_runs"] <= MAX_RUNS:
        raise AgentFailure("bad-request", "max_runs must be 1..%d, got %d" % (MAX_RUNS, plan["max_runs"]))
    # How many different inputs the timed loop cycles through. The default
    # feeds fresh data each invoke, as a camera does; 1 re-invokes one input,
    # as benchmark tools do (on the demo detector that is 2-5% faster: the
    # fresh input no longer evicts cache lines the model uses).
    plan["input_ring"] = plan_number(request, "input_ring", int) if "input_ring" in request else TIMED_INPUT_RING
    if not 1 <= plan["input_ring"] <= 1024:
        raise AgentFailure("bad-request", "input_ring must be 1..1024, got %d" % plan["input_ring"])
    plan["model"] = model
    return plan


def plan_number(request: dict, name: str, kind: type):
    """A non-negative finite number (a whole one for an int field)."""
    value = request[name]
    if (
        isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
        or value < 0 or (kind is int and value != int(value))
    ):
        raise AgentFailure("bad-request", "%s must be a non-negative %s, got %r" % (name, kind.__name__, value))
    return kind(value)


def prepare_device(request: dict) -> dict:
    """Runtime, CPU pinning, delegate, cool-down: everything before the
    memory baseline."""
    runtime, runtime_name, runtime_version = import_runtime(request.get("runtime"))
    telemetry = request.get("telemetry")
    cpus = pin_cpus(request.get("affinity"))
    delegate_spec = request.get("delegate")
    delegate = load_delegate(runtime, runtime_name, delegate_spec)
    cooldown = cool_down(request, telemetry)
    return {
        "runtime": runtime, "runtime_name": runtime_name, "runtime_version": runtime_version,
        "telemetry": telemetry, "affinity": cpus, "delegate_spec": delegate_spec, "delegate": delegate,
        "cooldown": cooldown, "env_before": environment(telemetry),
    }


class LoadedModel:
    """The model loaded for timing, its input ring, and what loading cost."""

    def __init__(self, request: dict, plan: dict, device: dict, np) -> None:
        self.inputs = InputFile(request["inputs"], np, request_feed(request, np)) if request.get("inputs") else None
        gc.collect()
        self.memory_method = "vmhwm-reset" if reset_peak_rss() else "vmhwm"
        self.baseline_kib = proc_status_kib("VmRSS")
        t0 = time.perf_counter_ns()
        self.interpreter = make_interpreter(
            device["runtime"], device["runtime_name"], plan["model"], request.get("threads"), device["delegate"],
            request.get("xnnpack"),
        )
        self.load_ms = (time.perf_counter_ns() - t0) / 1e6
        self.after_load_kib = proc_status_kib("VmRSS")
        detail, self.shape, self.dtype = single_input(self.interpreter, np, self.inputs)
        self.input_index = detail["index"]
        self.reader = detection_reader(self.interpreter, request.get("adapter", "none"), request.get("adapter_options") or {}, np)
        ring_size = plan["input_ring"]
        if self.inputs is not None:
            self.ring = [self.inputs.read(i) for i in range(min(self.inputs.count, ring_size))]
        else:
            self.ring = random_inputs(detail, np, ring_size)
        self.first_invoke_ms = self.first_invoke()

    def first_invoke(self) -> float:
        self.interpreter.set_tensor(self.input_index, self.ring[0])
        t0 = time.perf_counter_ns()
        try:
            self.interpreter.invoke()
        except Exception as exc:
            raise AgentFailure("invoke", "first invoke failed: %s" % exc)
        return (time.perf_counter_ns() - t0) / 1e6

    def set_input(self, count: int) -> None:
        """The ring's next input; one input is set once, as benchmark tools do."""
        if len(self.ring) > 1:
            self.interpreter.set_tensor(self.input_index, self.ring[count % len(self.ring)])


def warm_up(model: LoadedModel, runs: int, seconds: float) -> dict:
    """Warm-up by count and by time."""
    done_runs = 0
    start = time.perf_counter()
    model.interpreter.set_tensor(model.input_index, model.ring[0])  # the eval pass left its last image there
    while done_runs < runs or time.perf_counter() - start < seconds:
        model.set_input(done_runs)
        model.interpreter.invoke()
        done_runs += 1
        if done_runs % ORPHAN_CHECK_EVERY == 0:
            stop_if_orphaned()
    return {"runs": done_runs, "seconds": round(time.perf_counter() - start, 4)}


def timed_loop(model: LoadedModel, plan: dict) -> tuple:
    """perf_counter_ns around invoke() only; every sample kept.
    Returns (samples_ns, stop_reason, loop seconds)."""
    samples_ns = []
    loop_start = time.perf_counter()
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection inside invoke() timing is noise, not the model
    try:
        while True:
            model.set_input(len(samples_ns))
            t0 = time.perf_counter_ns()
            model.interpreter.invoke()
            samples_ns.append(time.perf_counter_ns() - t0)
            elapsed_s = time.perf_counter() - loop_start
            if len(samples_ns) % ORPHAN_CHECK_EVERY == 0:  # outside the timed window
                stop_if_orphaned()
            stop_reason = stop_reason_after(samples_ns, elapsed_s, plan)
            if stop_reason is not None:
                return samples_ns, stop_reason, time.perf_counter() - loop_start
    finally:
        if gc_was_enabled:
            gc.enable()


def stop_reason_after(samples_ns: list, elapsed_s: float, plan: dict):
    """Why the timed loop ends after this sample, or None to go on: the time
    cap, the p90 interval tight once the minimums are met, the sample cap."""
    n = len(samples_ns)
    if elapsed_s >= plan["max_seconds"]:
        return "max-seconds"
    if n >= plan["min_runs"] and elapsed_s >= plan["min_seconds"] and n % CI_CHECK_EVERY == 0:
        if p90_interval_tight(sorted(samples_ns), plan["ci_rel_tol"]):
            return "ci-tight"
    return "max-runs" if n >= plan["max_runs"] else None


def benchmark(request: dict) -> dict:
    import numpy as np

    plan = parse_benchmark(request)
    device = prepare_device(request)
    model = LoadedModel(request, plan, device, np)
    # Accuracy pass over every eval image (doubles as warm-up of the caches).
    # An emulated device may score only the first few images (its profile says).
    evaluated = {"detections": []}
    if model.inputs is not None and request.get("eval", True) and model.reader is not None:
        evaluated = eval_reply(model.interpreter, model.input_index, model.inputs, model.reader, request, np)
    log("loaded %s in %.1f ms; warming up" % (os.path.basename(plan["model"]), model.load_ms))
    warmup = warm_up(model, plan["warmup_runs"], plan["warmup_seconds"])
    samples_ns, stop_reason, loop_s = timed_loop(model, plan)
    peak_kib = proc_status_kib("VmHWM")
    profiled = op_profile(request, device, model)  # after the peak memory reading: its own model is not the pair's
    return benchmark_reply(request, device, model, {
        "warmup": warmup, "samples_ns": samples_ns, "loop_seconds": round(loop_s, 4), "stop_reason": stop_reason,
        "memory_mb": {"baseline": mib(model.baseline_kib), "after_load": mib(model.after_load_kib), "peak": mib(peak_kib)},
        **evaluated, **({"op_profile": profiled} if profiled is not None else {}),
    })


def benchmark_reply(request: dict, device: dict, model: LoadedModel, measured: dict) -> dict:
    spec = device["delegate_spec"]
    inputs = model.inputs
    return {
        "ok": True,
        "runtime": {"name": device["runtime_name"], "version": device["runtime_version"]},
        # The runtime's default CPU delegates (XNNPACK) apply unless a
        # delegate library was asked for.
        "delegate": {"name": spec.get("name"), "library": spec.get("library")} if spec else {"name": "cpu", "library": None},
        "platform": platform_info(),
        "threads": request.get("threads"),
        "xnnpack": request.get("xnnpack"),
        "affinity": device["affinity"],
        "cooldown": device["cooldown"],
        "load_ms": round(model.load_ms, 4),
        "first_invoke_ms": round(model.first_invoke_ms, 4),
        "memory_method": model.memory_method,
        "input": {
            "source": "eval-images" if inputs is not None else "random",
            "count": inputs.count if inputs is not None else len(model.ring),
            "dtype": str(model.dtype),
            "shape": list(model.shape),
        },
        **measured,
        "env_before": device["env_before"],
        "env_after": environment(device["telemetry"]),
    }


# --------------------------------------------------------------------------
# Per-operator profile (issue 20): a separate pass after the timed loop,
# through the runtime's own C API (ctypes against ai_edge_litert's
# libLiteRt.so), so the timed samples stay unprofiled. The struct layouts
# and calls below were checked against the LiteRT headers and the 2.3.0
# wheel's binary (docs/per-op-profile.md); any other version is refused.

OP_PROFILE_VERSIONS = ("2.3.0",)
OP_PROFILE_MAX_RUNS = 1000
# The profiled pass's own interpreter touches fresh memory on its first run.
OP_PROFILE_WARMUP_RUNS = 1
# ProfiledEventData.event_type values (litert/c/litert_profiler_event.h).
EVENT_DEFAULT = 1
EVENT_OPERATOR = 2  # a TFLite kernel: metadata1 = node index, metadata2 = subgraph
EVENT_DELEGATE_OPERATOR = 4
EVENT_DELEGATE_PROFILED_OPERATOR = 8  # a delegate's operator: metadata1 = its index in the delegate
OPERATOR_EVENTS = (EVENT_OPERATOR, EVENT_DELEGATE_OPERATOR, EVENT_DELEGATE_PROFILED_OPERATOR)
# The event LiteRT opens at the start of every LiteRtRunCompiledModel.
RUN_START_TAG = "LiteRT::Run[buffer registration]"
LITERT_STATUS_OK = 0
LITERT_HW_CPU = 1
LITERT_LOCK_WRITE = 1
LITERT_PROFILER_SYMBOLS = (
    "LiteRtCreateEnvironment", "LiteRtCreateModelFromFile", "LiteRtCreateOptions",
    "LiteRtSetOptionsHardwareAccelerators", "LiteRtCreateOpaqueOptions", "LiteRtAddOpaqueOptions",
    "LiteRtCreateCompiledModel", "LiteRtGetModelSignature", "LiteRtGetNumSignatureInputs",
    "LiteRtGetNumSignatureOutputs", "LiteRtGetSignatureInputTensorByIndex", "LiteRtGetSignatureOutputTensorByIndex",
    "LiteRtGetRankedTensorType", "LiteRtGetCompiledModelInputBufferRequirements",
    "LiteRtGetCompiledModelOutputBufferRequirements", "LiteRtCreateManagedTensorBufferFromRequirements",
    "LiteRtGetTensorBufferSize", "LiteRtLockTensorBuffer", "LiteRtUnlockTensorBuffer", "LiteRtRunCompiledModel",
    "LiteRtCompiledModelGetProfiler", "LiteRtStartProfiler", "LiteRtStopProfiler", "LiteRtGetNumProfilerEvents",
    "LiteRtGetProfilerEvents", "LiteRtGetMainModelSubgraphIndex", "LiteRtGetModelSubgraph", "LiteRtGetNumSubgraphOps",
    "LiteRtGetSubgraphOp", "LiteRtGetOpOutput", "LiteRtGetTensorName", "LiteRtDestroyTensorBuffer",
    "LiteRtDestroyCompiledModel", "LiteRtDestroyOptions", "LiteRtDestroyModel", "LiteRtDestroyEnvironment",
)


def op_profile_unavailable(reason: str) -> dict:
    return {"status": "unavailable", "reason": reason}


def op_profile_route(device: dict) -> tuple:
    """(path of libLiteRt.so, None) where the checked route applies, else
    (None, why not)."""
    name, version = device["runtime_name"], device["runtime_version"]
    if name != "ai-edge-litert":
        return None, "%s %s has no per-operator profiler API (only ai-edge-litert's libLiteRt.so has one)" % (name, version)
    if version not in OP_PROFILE_VERSIONS:
        return None, ("ai-edge-litert %s: the profiler's C structs were checked for %s only"
                      % (version, ", ".join(OP_PROFILE_VERSIONS)))
    if device["delegate"] is not None:
        return None, "the %s delegate cannot be attached to the profiled pass" % (device["delegate_spec"] or {}).get("name")
    import struct

    if struct.calcsize("P") != 8:
        return None, "a 32-bit python: the structs were checked for 64-bit (LP64) only"
    package = os.path.dirname(os.path.abspath(device["runtime"].__file__))  # ai_edge_litert/interpreter.py
    library = os.path.join(package, "libLiteRt.so")
    if not os.path.isfile(library):
        return None, "%s not found" % library
    return library, None


def op_profile_structs(ctypes) -> tuple:
    """ProfiledEventData and LiteRtRankedTensorType as declared in the
    headers; the sizes are the ones the headers assert (and the 2.3.0
    binary copies)."""

    class MemoryUsage(ctypes.Structure):
        _fields_ = [("total_allocated_bytes", ctypes.c_size_t), ("in_use_allocated_bytes", ctypes.c_size_t),
                    ("private_footprint_bytes", ctypes.c_size_t)]

    class ProfiledEventData(ctypes.Structure):
        _fields_ = [("tag", ctypes.c_char_p), ("event_type", ctypes.c_int), ("start_timestamp_us", ctypes.c_uint64),
                    ("elapsed_time_us", ctypes.c_uint64), ("begin_mem_usage", MemoryUsage),
                    ("end_mem_usage", MemoryUsage), ("event_metadata1", ctypes.c_uint64),
                    ("event_metadata2", ctypes.c_uint64), ("event_source", ctypes.c_int)]

    class Layout(ctypes.Structure):  # rank:7 and has_strides:1 share the first unsigned int
        _fields_ = [("rank_bits", ctypes.c_uint32), ("dimensions", ctypes.c_int32 * 8), ("strides", ctypes.c_uint32 * 8)]

    class RankedTensorType(ctypes.Structure):
        _fields_ = [("element_type", ctypes.c_int), ("layout", Layout)]

    sizes = (ctypes.sizeof(ProfiledEventData), ctypes.sizeof(Layout), ctypes.sizeof(RankedTensorType))
    if sizes != (104, 68, 72):
        raise AgentFailure("op-profile", "struct sizes %s differ from the headers' (104, 68, 72)" % (sizes,))
    return ProfiledEventData, RankedTensorType


class LiteRtCall:
    """The library's functions, each checked for kLiteRtStatusOk."""

    def __init__(self, ctypes, library: str) -> None:
        self.ctypes = ctypes
        self.lib = ctypes.CDLL(library)
        missing = [name for name in LITERT_PROFILER_SYMBOLS if not hasattr(self.lib, name)]
        if missing:
            raise AgentFailure("op-profile", "%s lacks %s" % (library, ", ".join(missing)))
        run = self.lib.LiteRtRunCompiledModel
        run.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]

    def __call__(self, name: str, *args) -> None:
        status = getattr(self.lib, name)(*args)
        if status != LITERT_STATUS_OK:
            raise AgentFailure("op-profile", "%s returned LiteRtStatus %d" % (name, status))

    def handle(self, name: str, *args):
        out = self.ctypes.c_void_p()
        self(name, *args, self.ctypes.byref(out))
        return out

    def count(self, name: str, *args) -> int:
        out = self.ctypes.c_size_t()
        self(name, *args, self.ctypes.byref(out))
        return out.value


def op_profile_options(call: LiteRtCall, threads, keep: list):  # -> a LiteRtOptions handle
    """CPU accelerator options with profiling on: the runtime reads its
    options from opaque payloads that are TOML C strings
    (litert/runtime/litert_runtime_options.cc, litert_cpu_options.cc)."""
    ctypes = call.ctypes
    options = call.handle("LiteRtCreateOptions")
    call("LiteRtSetOptionsHardwareAccelerators", options, LITERT_HW_CPU)
    payloads = [("runtime_options_string", "enable_profiling = true\n")]
    if threads:
        payloads.append(("xnnpack", "num_threads = %d\n" % int(threads)))
    # The payloads belong to this process; the destructor the API insists on does nothing.
    destructor = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda _payload: None)
    keep.append(destructor)
    for identifier, toml in payloads:
        text = ctypes.create_string_buffer(toml.encode())
        keep.append(text)
        opaque = call.handle("LiteRtCreateOpaqueOptions", identifier.encode(), ctypes.cast(text, ctypes.c_void_p), destructor)
        call("LiteRtAddOpaqueOptions", options, opaque)
    return options


def op_profile_buffers(call: LiteRtCall, ranked_type, env, model, compiled, kind: str) -> list:
    """A managed buffer per input (`kind` "Input") or output ("Output") of
    the first signature, as the compiled model requires it."""
    signature = call.handle("LiteRtGetModelSignature", model, ctypes_size(call, 0))
    count = call.count("LiteRtGetNumSignature%ss" % kind, signature)
    buffers = []
    for index in range(count):
        tensor = call.handle("LiteRtGetSignature%sTensorByIndex" % kind, signature, ctypes_size(call, index))
        tensor_type = ranked_type()
        call("LiteRtGetRankedTensorType", tensor, call.ctypes.byref(tensor_type))
        requirements = call.handle("LiteRtGetCompiledModel%sBufferRequirements" % kind, compiled, ctypes_size(call, 0),
                                   ctypes_size(call, index))
        buffers.append(call.handle("LiteRtCreateManagedTensorBufferFromRequirements", env,
                                   call.ctypes.byref(tensor_type), requirements))
    return buffers


def ctypes_size(call: LiteRtCall, value: int):
    return call.ctypes.c_size_t(value)


def op_profile_fill(call: LiteRtCall, buffer, data: bytes) -> None:
    """One of the timed loop's inputs (its bytes, as set_tensor got them)
    into the profiled pass's input buffer."""
    ctypes = call.ctypes
    size = call.count("LiteRtGetTensorBufferSize", buffer)
    host = ctypes.c_void_p()
    call("LiteRtLockTensorBuffer", buffer, ctypes.byref(host), LITERT_LOCK_WRITE)
    try:
        ctypes.memmove(host, data, min(size, len(data)))
    finally:
        call("LiteRtUnlockTensorBuffer", buffer)


def op_output_names(call: LiteRtCall, model) -> dict:
    """(subgraph, TFLite node index) -> the node's first output tensor's
    name, for the main subgraph (the one a signature runs)."""
    ctypes = call.ctypes
    names = {}
    main = call.count("LiteRtGetMainModelSubgraphIndex", model)
    subgraph = call.handle("LiteRtGetModelSubgraph", model, ctypes_size(call, main))
    for index in range(call.count("LiteRtGetNumSubgraphOps", subgraph)):
        op = call.handle("LiteRtGetSubgraphOp", subgraph, ctypes_size(call, index))
        name = ctypes.c_char_p()
        try:
            tensor = call.handle("LiteRtGetOpOutput", op, ctypes_size(call, 0))
            call("LiteRtGetTensorName", tensor, ctypes.byref(name))
        except AgentFailure:
            continue  # an op without outputs has no name to show
        names[(main, index)] = (name.value or b"").decode("utf-8", "replace") or None
    return names


def profiled_runs(call: LiteRtCall, structs, model_path: str, threads, ring: list, plan: dict) -> tuple:
    """Load, compile, run under the profiler as the timed loop runs (at
    least `runs` times and `min_seconds`, at most `max_seconds`, once at
    least), cycling through its input ring: (events as (tag, type,
    elapsed µs, metadata1, metadata2), node names, wall µs). A pass as long
    as the timed loop's rounds sees the same kind of host load they saw."""
    ctypes = call.ctypes
    event_type, ranked_type = structs
    keep: list = []
    env = call.handle("LiteRtCreateEnvironment", 0, None)
    model = options = compiled = None
    buffers: list = []
    try:
        model = call.handle("LiteRtCreateModelFromFile", env, model_path.encode())
        options = op_profile_options(call, threads, keep)
        compiled = call.handle("LiteRtCreateCompiledModel", env, model, options)
        inputs = op_profile_buffers(call, ranked_type, env, model, compiled, "Input")
        outputs = op_profile_buffers(call, ranked_type, env, model, compiled, "Output")
        buffers = inputs + outputs
        if len(inputs) != 1:
            raise AgentFailure("op-profile", "%d signature inputs; the profiled pass feeds one" % len(inputs))
        op_profile_fill(call, inputs[0], ring[0])
        in_array = (ctypes.c_void_p * len(inputs))(*[b.value for b in inputs])
        out_array = (ctypes.c_void_p * len(outputs))(*[b.value for b in outputs])
        profiler = call.handle("LiteRtCompiledModelGetProfiler", compiled)
        for _ in range(OP_PROFILE_WARMUP_RUNS):  # before StartProfiler: not recorded
            call("LiteRtRunCompiledModel", compiled, 0, len(inputs), in_array, len(outputs), out_array)
        call("LiteRtStartProfiler", profiler)
        wall_us = []
        started = time.perf_counter()
        for run in range(OP_PROFILE_MAX_RUNS):
            elapsed_s = time.perf_counter() - started
            if run and (elapsed_s >= plan["max_seconds"] or (run >= plan["runs"] and elapsed_s >= plan["min_seconds"])):
                break
            if len(ring) > 1:  # outside the run and its events, as set_tensor is outside the timed invoke
                op_profile_fill(call, inputs[0], ring[run % len(ring)])
            t0 = time.perf_counter_ns()
            call("LiteRtRunCompiledModel", compiled, 0, len(inputs), in_array, len(outputs), out_array)
            wall_us.append((time.perf_counter_ns() - t0) / 1000.0)
        call("LiteRtStopProfiler", profiler)
        count = ctypes.c_int()
        call("LiteRtGetNumProfilerEvents", profiler, ctypes.byref(count))
        raw = (event_type * count.value)()
        call("LiteRtGetProfilerEvents", profiler, count, raw)
        events = [((e.tag or b"").decode("utf-8", "replace"), e.event_type, e.elapsed_time_us, e.event_metadata1,
                   e.event_metadata2) for e in raw]
        return events, op_output_names(call, model), wall_us
    finally:
        for buffer in buffers:
            call.lib.LiteRtDestroyTensorBuffer(buffer)
        if compiled is not None:
            call.lib.LiteRtDestroyCompiledModel(compiled)
        if options is not None:
            call.lib.LiteRtDestroyOptions(options)
        if model is not None:
            call.lib.LiteRtDestroyModel(model)
        call.lib.LiteRtDestroyEnvironment(env)


def op_backend(event_type: int, delegate: str) -> str:
    return "CPU kernels" if event_type == EVENT_OPERATOR else delegate


def summarise_op_events(events: list, names: dict, delegate: str = "XNNPACK") -> dict:
    """The profiled runs as one entry per operator with its time in each run
    (µs, 0 where a run did not call it) and how often it was called; the
    host computes the statistics, over every round's pass. A run starts at
    LiteRT's buffer-registration event; an operator is keyed by its
    backend, its index there and its name."""
    per_run = []
    for tag, kind, elapsed_us, meta1, meta2 in events:
        if kind == EVENT_DEFAULT and tag == RUN_START_TAG:
            per_run.append([])
        elif kind in OPERATOR_EVENTS and per_run:
            per_run[-1].append((tag, kind, elapsed_us, meta1, meta2))
    if not per_run or not any(per_run):
        raise AgentFailure("op-profile", "the profiler recorded no operator events (%d events)" % len(events))
    ops = {}
    for run_index, run in enumerate(per_run):
        for tag, kind, elapsed_us, meta1, meta2 in run:
            backend, index = op_backend(kind, delegate), int(meta1)
            key = (backend, index, tag)
            if key not in ops:  # dicts keep the run order
                kernel = backend == "CPU kernels"
                ops[key] = {"op_type": tag, "backend": backend, "node": index if kernel else None,
                            "delegate_index": None if kernel else index,
                            "tensor": names.get((int(meta2), index)) if kernel else None,
                            "times_called": 0, "runs_us": [0] * len(per_run)}
            ops[key]["times_called"] += 1
            ops[key]["runs_us"][run_index] += int(elapsed_us)
    return {"status": "ok", "runs": len(per_run), "ops": list(ops.values())}


def op_profile(request: dict, device: dict, model: "LoadedModel") -> dict | None:
    """The profiled pass the host asked for (`op_profile_runs`), or None.
    Any failure of the pass is the profile's, never the pair's."""
    runs = request.get("op_profile_runs")
    if not runs:
        return None
    if isinstance(runs, bool) or not isinstance(runs, int) or not 1 <= runs <= OP_PROFILE_MAX_RUNS:
        raise AgentFailure("bad-request", "op_profile_runs must be 1..%d, got %r" % (OP_PROFILE_MAX_RUNS, runs))
    missing = [name for name in ("op_profile_min_seconds", "op_profile_max_seconds") if name not in request]
    if missing:
        raise AgentFailure("bad-request", "op_profile_runs comes with %s: the host sends its plan" % " and ".join(missing))
    plan = {"runs": runs, "min_seconds": plan_number(request, "op_profile_min_seconds", float),
            "max_seconds": plan_number(request, "op_profile_max_seconds", float)}
    library, why_not = op_profile_route(device)
    if library is None:
        return op_profile_unavailable(why_not)
    import ctypes

    try:
        call = LiteRtCall(ctypes, library)
        ring = [item.tobytes() for item in model.ring]
        events, names, wall_us = profiled_runs(call, op_profile_structs(ctypes), request["model"],
                                               request.get("threads"), ring, plan)
        profile = summarise_op_events(events, names)
    except AgentFailure as exc:
        return op_profile_unavailable(exc.message)
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        return op_profile_unavailable("%s: %s" % (type(exc).__name__, exc))
    profile.update(library=library, threads=request.get("threads"),
                   wall_us={"p50": type7_quantile(sorted(wall_us), 0.5)})
    return profile


def meminfo_mb() -> dict:
    text = read_text("/proc/meminfo") or ""
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("MemTotal", "MemAvailable") and rest.split():
            values[key] = mib(int(rest.split()[0]))
    return {"total": values.get("MemTotal"), "available": values.get("MemAvailable")}


def disk_free_mb(path: str | None) -> float | None:
    """Free space where the cache lives (its nearest existing parent)."""
    path = os.path.expanduser(path or "~")
    while path and not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    try:
        return round(shutil.disk_usage(path).free / (1024.0 * 1024.0), 1)
    except OSError:
        return None


def os_name() -> str | None:
    text = read_text("/etc/os-release") or ""
    for line in text.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return None


# Coral USB accelerator: unflashed (Global Unichip) and running (Google) ids.
EDGETPU_USB_IDS = (("1a6e", "089a"), ("18d1", "9302"))


def edgetpu_presence() -> dict:
    usb = False
    for device in glob.glob("/sys/bus/usb/devices/*"):
        ids = (read_text(device + "/idVendor"), read_text(device + "/idProduct"))
        if ids in EDGETPU_USB_IDS:
            usb = True
    library = None
    try:
        import ctypes.util

        library = ctypes.util.find_library("edgetpu")
    except Exception:
        library = None
    if library is None:
        found = glob.glob("/usr/lib/*/libedgetpu.so.1") + glob.glob("/usr/lib/libedgetpu.so.1")
        library = found[0] if found else None
    pcie = bool(glob.glob("/dev/apex_*"))
    return {"present": pcie or usb, "pcie": pcie, "usb": usb, "library": library}


def info(request: dict) -> dict:
    details = platform_info()
    details.update(
        {
            "kernel": platform.release(),
            "os_name": os_name(),
            "python_executable": sys.executable,
            "memory_mb": meminfo_mb(),
            "disk_free_mb": disk_free_mb(request.get("path")),
        }
    )
    payload = {"ok": True, "platform": details, "env": environment(request.get("telemetry")), "edgetpu": edgetpu_presence()}
    try:
        _, name, version = import_runtime(request.get("runtime"))
        payload["runtime"] = {"name": name, "version": version}
    except AgentFailure as exc:
        payload["runtime"] = None
        payload["runtime_error"] = exc.message
    return payload


def read_lock(path: str):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None  # absent, or torn by a crash mid-write: free


def lock(request: dict) -> dict:
    """The device lock: one lock file with an owner and an expiry, read and
    written under flock(2) on a guard file, so two controllers racing for an
    expired lock cannot both win. Expiry is judged by this device's clock,
    the one clock every controller shares."""
    import fcntl

    path = os.path.expanduser(request.get("path") or "")
    token = request.get("token")
    action = request.get("action")
    if not path or not token or action not in ("acquire", "release"):
        raise AgentFailure("bad-request", "lock needs path, token and action acquire|release")
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path + ".guard", "a") as guard:
        fcntl.flock(guard.fileno(), fcntl.LOCK_EX)
        now = time.time()
        current = read_lock(path)
        if action == "release":
            mine = current is not None and current.get("token") == token
            if mine:
                os.unlink(path)
            return {"ok": True, "released": mine}
        held = (
            current is not None
            and current.get("token") not in (token, request.get("steal"))
            and float(current.get("expires_at", 0)) > now
        )
        if held:
            current["expires_in_s"] = round(float(current["expires_at"]) - now, 1)
            return {"ok": True, "acquired": False, "holder": current}
        renewing = current is not None and current.get("token") == token
        content = {
            "token": token,
            "owner": request.get("owner") or {},
            "acquired_at": current.get("acquired_at", now) if renewing else now,
            "expires_at": now + float(request.get("expiry_s", 600)),
        }
        tmp = "%s.%d.tmp" % (path, os.getpid())
        with open(tmp, "w") as handle:
            json.dump(content, handle)
        os.replace(tmp, path)
        return {"ok": True, "acquired": True, "replaced": None if renewing else current}


def hash_files(request: dict) -> dict:
    """sha256 of each path that exists (null otherwise): the host's cache check."""
    import hashlib

    digests = {}
    for path in request.get("paths", []):
        path = os.path.expanduser(path)
        try:
            digest = hashlib.sha256()
            with open(path, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
            digests[path] = digest.hexdigest()
        except OSError:
            digests[path] = None
    return {"ok": True, "sha256": digests}


def orphaned() -> bool:
    return os.getppid() != PARENT_PID


def stop_if_orphaned() -> None:
    if orphaned():
        log("the controller that started this agent is gone: stopping")
        raise AgentFailure("orphaned", "the controller disconnected; nothing to report to")


def request_paths(request: dict) -> list:
    """Every file path a request names (the agent reads or writes only these)."""
    found = [request.get(key) for key in ("model", "inputs", "path", "detections_to")]
    found += list(request.get("models") or []) + list(request.get("paths") or [])
    options = request.get("adapter_options")
    if isinstance(options, dict):
        found.append(options.get("anchors"))
    return [p for p in found if p]


def confine(request: dict, root) -> None:
    """With --root (how the host starts it on a device), refuse any path
    outside the agent's own cache directory, symlinks resolved: a request
    cannot make it read or lock files elsewhere on the device."""
    if root is None:
        return
    base = os.path.realpath(os.path.expanduser(root))
    for path in request_paths(request):
        if not isinstance(path, str):
            raise AgentFailure("bad-request", "a path must be a string, got %r" % (path,))
        real = os.path.realpath(os.path.expanduser(path))
        if real != base and not real.startswith(base.rstrip(os.sep) + os.sep):
            raise AgentFailure("outside-cache", "refusing %r: outside the agent's cache directory %s" % (path, base))


def cache_root_arg(argv: list):
    """`--root DIR` from the command line, or None (the host's own uses)."""
    if "--root" in argv:
        index = argv.index("--root")
        if index + 1 < len(argv):
            return argv[index + 1]
        raise AgentFailure("bad-request", "--root needs a directory")
    return None


def test_only_abort(request: dict) -> None:
    spec = os.environ.get(TEST_ONLY_ABORT_ENV)
    if not spec:
        return
    command, _, text = spec.partition(":")
    if request.get("command") == command and text in str(request.get("model") or ""):
        log("aborting on purpose: %s=%s (test-only fault injection)" % (TEST_ONLY_ABORT_ENV, spec))
        os.abort()


def parse_request(raw: str) -> dict:
    """One JSON object in this agent's protocol version, or AgentFailure."""
    try:
        request = json.loads(raw)
    except ValueError as exc:
        raise AgentFailure("bad-request", "request is not JSON: %s" % exc)
    if not isinstance(request, dict):
        raise AgentFailure("bad-request", "request must be a JSON object")
    if request.get("protocol") != PROTOCOL_VERSION:
        raise AgentFailure(
            "protocol",
            "host speaks protocol %r, this agent speaks %d" % (request.get("protocol"), PROTOCOL_VERSION),
        )
    return request


COMMANDS = {
    "info": info,
    "hash": hash_files,
    "benchmark": benchmark,
    "lock": lock,
    "detect": detect,
    "load": load_check,
}


def run_command(request: dict, root) -> dict:
    confine(request, root)
    test_only_abort(request)
    command = request.get("command")
    if not isinstance(command, str) or command not in COMMANDS:
        raise AgentFailure("bad-request", "unknown command %r" % command)
    return COMMANDS[command](request)


def main() -> int:
    reply_fd = guard_stdout()  # before anything can print: the runtimes are imported later
    try:
        reply(reply_fd, run_command(parse_request(sys.stdin.read()), cache_root_arg(sys.argv[1:])))
        return 0
    except AgentFailure as exc:
        reply(reply_fd, {"ok": False, "error": {"kind": exc.kind, "message": exc.message}})
        return 1
    except Exception as exc:
        traceback.print_exc()
        reply(reply_fd, {"ok": False, "error": {"kind": "agent-crash", "message": "%s: %s" % (type(exc).__name__, exc)}})
        return 1


if __name__ == "__main__":
    sys.exit(main())
