"""The eval set a device receives: one uint8 pixels .npy written a chunk at
a time, and the agent's per-image feed (devices/agent.py, imported as the
device runs it) that must equal the host's quantise(normalise(...))."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from harness.dataset.preprocess import (
    InputQuant,
    InputSpec,
    feed_request,
    normalise,
    pixels_uint8,
    prepare_batch,
    quantise,
    write_pixels,
)

SPEC = InputSpec(height=24, width=20, mean=(123.7, 116.3, 103.5), std=(58.4, 57.1, 57.4))


@pytest.fixture(scope="module")
def image_paths(tmp_path_factory) -> list:
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(7)
    paths = []
    for i in range(7):
        path = folder / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (31 + i, 45 - i, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.mark.parametrize("resize", ["bilinear", "nearest", "letterbox"])
def test_the_chunked_writer_gives_the_one_shot_array(image_paths, tmp_path, resize):
    spec = InputSpec(height=24, width=20, resize=resize)
    target = tmp_path / "pixels.npy"
    write_pixels(image_paths, spec, target, chunk_images=3)  # 3 + 3 + 1: a short last chunk
    written = np.load(target)
    assert written.dtype == np.uint8 and written.shape == (7, 24, 20, 3)
    np.testing.assert_array_equal(written, pixels_uint8(image_paths, spec))
    assert not target.with_name(target.name + ".tmp").exists()


QUANTS = [InputQuant("float32"), InputQuant("int8", 0.0186, -14), InputQuant("uint8", 0.0078125, 127)]


@pytest.mark.parametrize("quant", QUANTS, ids=lambda q: q.dtype)
def test_the_agents_feed_equals_the_hosts_quantise_normalise(agent, image_paths, quant):
    pixels = pixels_uint8(image_paths, SPEC)
    # The feed as the request carries it: through JSON, as it travels.
    feed = agent.Feed(json.loads(json.dumps(feed_request(SPEC, quant))), np)
    on_device = np.stack([feed.apply(pixels[i : i + 1])[0] for i in range(len(pixels))])
    on_host = quantise(normalise(pixels, SPEC), quant)
    assert on_device.dtype == on_host.dtype == np.dtype(quant.dtype)
    np.testing.assert_array_equal(on_device, on_host)
    np.testing.assert_array_equal(on_host, prepare_batch(image_paths, SPEC, quant))


def test_raw_pixels_reach_a_uint8_model_unchanged(agent, image_paths):
    """harness.model.feed's RAW_PIXELS feed (mean 0, std 1, scale 1, zero point 0)."""
    pixels = pixels_uint8(image_paths, SPEC)
    raw = InputSpec(height=24, width=20, mean=(0.0,) * 3, std=(1.0,) * 3)
    feed = agent.Feed(feed_request(raw, InputQuant("uint8", 1.0, 0)), np)
    np.testing.assert_array_equal(feed.apply(pixels), pixels)


def test_the_input_file_feeds_each_sample(agent, image_paths, tmp_path):
    target = tmp_path / "pixels.npy"
    write_pixels(image_paths, SPEC, target)
    quant = QUANTS[1]
    inputs = agent.InputFile(str(target), np, agent.Feed(feed_request(SPEC, quant), np))
    assert (inputs.count, inputs.sample_shape, inputs.dtype) == (7, (1, 24, 20, 3), np.dtype("int8"))
    np.testing.assert_array_equal(inputs.read(4)[0], prepare_batch(image_paths, SPEC, quant)[4])


def test_a_feed_needs_uint8_pixels(agent, tmp_path):
    target = tmp_path / "floats.npy"
    np.save(target, np.zeros((2, 4, 4, 3), np.float32))
    feed = agent.Feed(feed_request(SPEC, InputQuant("float32")), np)
    with pytest.raises(agent.AgentFailure, match=r"a feed needs uint8 pixels \[N, H, W, 3\], got float32"):
        agent.InputFile(str(target), np, feed)


def test_without_a_feed_the_batch_is_fed_as_stored(agent, tmp_path):
    """Requests from hosts before the feed keep working."""
    target = tmp_path / "floats.npy"
    batch = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
    np.save(target, batch)
    assert agent.request_feed({"inputs": str(target)}, np) is None
    np.testing.assert_array_equal(agent.InputFile(str(target), np).read(1)[0], batch[1])


GOOD = feed_request(SPEC, QUANTS[1])


@pytest.mark.parametrize(
    "change, message",
    [
        ({"mean": [1.0, 2.0]}, r"feed.std must be 2 finite numbers"),
        ({"mean": "imagenet"}, r"feed.mean must be 3 finite numbers"),
        ({"std": [1.0, 0.0, 1.0]}, r"feed.std must not contain 0"),
        ({"std": [1.0, True, 1.0]}, r"feed.std must be 3 finite numbers"),
        ({"dtype": "float16"}, r"feed.dtype must be one of float32, int8, uint8, got 'float16'"),
        ({"scale": 0.0}, r"feed.scale must be a positive number for int8 input"),
        ({"zero_point": 200}, r"feed.zero_point must be a whole number in int8's range"),
        ({"zero_point": 1.5}, r"feed.zero_point must be a whole number"),
    ],
)
def test_a_bad_feed_is_refused_with_what_is_wrong(agent, change, message):
    with pytest.raises(agent.AgentFailure, match=message) as caught:
        agent.Feed({**GOOD, **change}, np)
    assert caught.value.kind == "bad-request"


def test_a_feed_that_is_not_an_object_is_refused(agent):
    with pytest.raises(agent.AgentFailure, match="feed must be an object"):
        agent.request_feed({"feed": [1, 2]}, np)


def test_scoring_a_chunk_of_images_at_a_time_gives_pycocotools_own_numbers(tmp_path):
    """coco_scores evaluates a chunk of images at a time (its memory then
    does not grow with the eval set); the numbers are COCOeval's over all."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from harness.dataset.scoring import coco_scores

    rng = np.random.default_rng(3)
    images = [{"id": i, "file_name": f"{i}.png", "width": 100, "height": 100} for i in range(1, 12)]
    truth, results = [], []
    for image in images[:-1]:  # the last image has neither boxes nor detections
        for _ in range(int(rng.integers(1, 4))):
            x, y, w, h = (float(v) for v in rng.uniform(5, 40, 4))
            cat = int(rng.integers(1, 3))
            truth.append({"id": len(truth) + 1, "image_id": image["id"], "category_id": cat, "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
            jitter = [float(v) for v in rng.normal(0, 3, 4)]
            results.append({"image_id": image["id"], "category_id": cat, "score": float(rng.uniform(0.1, 1)),
                            "bbox": [x + jitter[0], y + jitter[1], max(1.0, w + jitter[2]), max(1.0, h + jitter[3])]})
    annotations = tmp_path / "instances.json"
    categories = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    annotations.write_text(json.dumps({"images": images, "annotations": truth, "categories": categories}))
    ids = [image["id"] for image in images]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(annotations))
        plain = COCOeval(gt, gt.loadRes([dict(r) for r in results]), iouType="bbox")
        plain.params.imgIds = ids
        plain.evaluate()
        plain.accumulate()
        plain.summarize()
    for chunk in (1, 4, 100):
        scores = coco_scores(annotations, results, ids, chunk_images=chunk)
        assert (scores.map, scores.map50, scores.map75) == tuple(float(v) for v in plain.stats[:3])
