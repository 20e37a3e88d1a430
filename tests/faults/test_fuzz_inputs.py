"""Hostile and malformed input, fuzzed with hypothesis: inventories,
recipes, COCO annotations and agent replies. Every example ends in an
InputError naming the file (exit 2), an InfraError for the pair, or a valid
result: never another exception (a traceback)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from harness.agent.client import AgentClient
from harness.dataset.coco import load_coco
from harness.device import Device
from harness.errors import InfraError, InputError
from harness.fleet.inventory import load_inventory
from harness.model.recipe import load_recipe
from harness.transport.base import CommandResult

EXAMPLES = 250
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                            HealthCheck.too_slow])

SCALARS = (st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats() | st.text(max_size=12)
           | st.sampled_from(["~", "../../etc/passwd", "$(id)", "a;b", "x\ny", "'\"", "*", "-1", "1e999", ""]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                      max_leaves=6)


@st.composite
def mutated(draw, base: dict) -> object:
    """`base` with one to three edits: a value replaced, a key dropped, an
    unknown key added; or the whole document replaced by a random value."""
    if draw(st.integers(0, 9)) == 0:
        return draw(VALUES)
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        node = doc
        while True:
            keys = sorted(node, key=str) if isinstance(node, dict) else list(range(len(node)))
            if not keys:
                break
            key = draw(st.sampled_from(keys))
            if isinstance(node[key], (dict, list)) and node[key] and draw(st.booleans()):
                node = node[key]
                continue
            action = draw(st.sampled_from(["set", "set", "delete", "add"]))
            if action == "set":
                node[key] = draw(VALUES)
            elif action == "delete":
                del node[key]
            elif isinstance(node, dict):
                node[draw(st.text(min_size=1, max_size=8))] = draw(VALUES)
            break
    return doc


def write_doc(path: Path, doc: object, as_json: bool = False) -> None:
    path.write_text(json.dumps(doc) if as_json else yaml.safe_dump(doc, allow_unicode=True))


def expect_input_error_or_value(load, path: Path):
    try:
        return load(path)
    except InputError as exc:
        text = exc.render()
        assert str(path) in text, f"the message does not name the file: {text!r}"
        return None


INVENTORY = {
    "devices": {
        "pi-1": {"host": "127.0.0.2", "user": "pi", "port": 2222, "profile": "raspberry-pi-4", "python": "python3",
                 "threads": 4, "cpus": [0, 1], "tags": ["arm64"], "cache_dir": "~/.cache/edge-harness"},
        "x86": {"host": "10.0.0.9", "profile": "x86-cpu"},
    }
}


LABGRID_INVENTORY = {
    "labgrid": {"coordinator": "127.0.0.1:20408", "tags": {"board": "rpi4"}, "count": 2, "profile": "x86-cpu",
                "python": "python3", "threads": 2, "gateway": "pi@lab-host:22", "name": "lab"},
}


@FUZZ
@given(doc=mutated(INVENTORY) | mutated(LABGRID_INVENTORY))
def test_fuzzed_inventory(doc, tmp_path):
    path = tmp_path / "inventory.yaml"
    write_doc(path, doc)
    expect_input_error_or_value(load_inventory, path)


@FUZZ
@given(text=st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_raw_text_inventory(text, tmp_path):
    path = tmp_path / "inventory.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    expect_input_error_or_value(load_inventory, path)


RECIPE = {
    "name": "tiny", "source": "model.h5", "input": {"height": 8, "width": 8, "channels": 3, "mean": [0, 0, 0], "std": [1, 1, 1]},
    "labels": ["a", "b"], "adapter": "ssd-postprocess",
    "postprocess": {"anchors": "anchors.npy", "max_detections": 10, "scales": {"y": 10.0, "x": 10.0, "h": 5.0, "w": 5.0}},
    "dataset": {"generator": "synthetic", "seed": 3, "splits": {"calib": 4, "val": 4}},
    "variants": ["fp32", "int8", "selective-int8"],
    "variant_options": {"selective-int8": {"denylist": ["CONV_2D"], "max_map_drop": 0.01, "max_layers": 2}},
}


@pytest.fixture(scope="module")
def recipe_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz-recipe")
    np.save(folder / "anchors.npy", np.zeros((4, 4), np.float32))
    (folder / "model.h5").write_bytes(b"not read by the loader")
    return folder


@FUZZ
@given(doc=mutated(RECIPE))
# Found by this test: `anchors:` with no value raised TypeError.
@example(doc=dict(RECIPE, postprocess=dict(RECIPE["postprocess"], anchors=None)))
def test_fuzzed_recipe(doc, recipe_folder):
    path = recipe_folder / "model.yaml"
    write_doc(path, doc)
    expect_input_error_or_value(load_recipe, path)


COCO = {
    "images": [{"id": 1, "file_name": "a.png", "width": 4, "height": 4}, {"id": 2, "file_name": "b.png", "width": 4, "height": 4}],
    "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2], "area": 4, "iscrowd": 0}],
    "categories": [{"id": 1, "name": "a"}],
}


@FUZZ
@given(doc=mutated(COCO), as_json=st.booleans())
# Found by this test: a list as category_id raised TypeError (unhashable).
@example(doc=dict(COCO, annotations=[dict(COCO["annotations"][0], category_id=[])]), as_json=True)
def test_fuzzed_coco_annotations(doc, as_json, tmp_path):
    path = tmp_path / "instances.json"
    write_doc(path, doc, as_json=True)
    if not as_json:  # truncated somewhere
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    expect_input_error_or_value(lambda p: load_coco(p, tmp_path), path)



BUDGETS = {
    "budgets": [
        {"name": "int8-on-pis", "match": {"model": "*", "variant": "int8", "device": "pi-*", "tags": ["arm64"]},
         "p90_ms": 45, "peak_memory_mb": 150, "size_mb": 4, "min_map": 0.4, "max_map_drop": 0.015,
         "max_regression_pct": 5},
        {"name": "any", "match": {"variant": ["fp32", "uint8"]}, "p99_ms": 80},
    ]
}


@FUZZ
@given(doc=mutated(BUDGETS))
def test_fuzzed_budgets(doc, tmp_path):
    from harness.gate.budgets import load_budgets

    path = tmp_path / "budgets.yaml"
    write_doc(path, doc)
    budgets = expect_input_error_or_value(load_budgets, path)
    for budget in budgets or []:  # what loads is usable: a rule bounds something and can match
        assert budget.bounds() and budget.match.matches("pi-1", "m", "int8", ("arm64",)) in (True, False)

REPLY = {"ok": True, "protocol": 1, "agent_version": "0.3.0", "runtime": {"name": "ai-edge-litert", "version": "2.3"},
         "samples_ns": [1000, 1200], "error": None}


def client() -> AgentClient:
    """A client only for its reply parser (no transport is touched)."""
    parser = AgentClient.__new__(AgentClient)
    parser.device = Device(name="fuzz", profile="x86-cpu", kind="local", python="python3")
    return parser


@FUZZ
@given(
    doc=mutated(REPLY) | mutated(dict(REPLY, ok=False, error={"kind": "invoke", "message": "x"})),
    cut=st.none() | st.integers(0, 200),
    noise=st.binary(max_size=40),
    status=st.sampled_from([0, 1, 2, 127, 134, 137, -1, -6, -256]),
)
# Found by this test: an `error` that is not a mapping raised AttributeError.
@example(doc={"ok": False, "protocol": 1, "error": "boom"}, cut=None, noise=b"", status=1)
@example(doc={"ok": False, "protocol": 1, "error": [1]}, cut=None, noise=b"", status=1)
def test_fuzzed_agent_reply(doc, cut, noise, status):
    stdout = json.dumps(doc).encode()
    stdout = noise + b"\n" + (stdout if cut is None else stdout[:cut])
    result = CommandResult(("python3", "agent.py"), status, stdout, b"some stderr\n", 0.1)
    try:
        reply = client()._parse(result, "benchmark")
    except InfraError as exc:
        assert exc.message and exc.device == "fuzz"
        return
    assert isinstance(reply, dict) and reply.get("ok") and reply.get("protocol") == 1


def test_oversized_agent_reply_is_refused(monkeypatch):
    import harness.agent.client as agent_client

    monkeypatch.setattr(agent_client, "MAX_REPLY_BYTES", 1000)
    stdout = json.dumps(dict(REPLY, samples_ns=list(range(1000)))).encode()
    with pytest.raises(InfraError, match="reply too large"):
        client()._parse(CommandResult(("x",), 0, stdout, b"", 0.1), "benchmark")


@pytest.fixture(scope="module")
def tflite_bytes(fault_models) -> bytes:
    (fp32,) = (fault_models / "variants").rglob("*fp32*.tflite")
    return fp32.read_bytes()


@settings(max_examples=1, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_tflite_files_fail_per_model(data, tflite_bytes, tmp_path, fault_models):
    """Truncated, bit-flipped and random files and a valid file of the wrong
    kind (a Keras .h5), all checked by one agent `load` call (one process:
    hundreds of examples in seconds). Each gets its own verdict; the agent
    itself never dies."""
    from harness.convert.loadability import check_runtime

    size = len(tflite_bytes)
    kinds = st.one_of(
        st.integers(0, size - 1).map(lambda n: tflite_bytes[:n]),
        st.tuples(st.integers(0, size - 1), st.integers(0, 255)).map(
            lambda flip: tflite_bytes[: flip[0]] + bytes([flip[1]]) + tflite_bytes[flip[0] + 1:]),
        st.binary(max_size=4096),
        st.binary(min_size=8, max_size=64).map(lambda b: tflite_bytes[:8] + b),
    )
    models = []
    for i, blob in enumerate(data.draw(st.lists(kinds, min_size=EXAMPLES, max_size=EXAMPLES))):
        models.append(tmp_path / f"m{i}.tflite")
        models[-1].write_bytes(blob)
    models.append(tmp_path / "keras.tflite")
    models[-1].write_bytes((fault_models / "tiny.h5").read_bytes())
    from harness.convert.loadability import OK

    statuses = check_runtime("ai-edge-litert", models, tmp_path / "agent-cache").statuses
    assert set(statuses) == {str(m) for m in models}
    assert all(status == OK or (isinstance(status, str) and status) for status in statuses.values())
    assert statuses[str(models[-1])] != OK  # the .h5 is refused with the runtime's reason
    assert sum(status != OK for status in statuses.values()) > EXAMPLES // 2
