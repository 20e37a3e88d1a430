"""The assertions every fault test makes on what the run stored."""

from __future__ import annotations

from tests.faults.conftest import Stored


def assert_outcome(stored: Stored, *, ok: set[tuple[str, str]], failed: dict[tuple[str, str], tuple[str, ...]],
                   kind: str | None = None) -> dict:
    """Exactly these pairs, `ok` ones measured, `failed` ones carrying a
    reason with each given phrase; nothing stored twice; no traceback."""
    stored.no_traceback()
    pairs = stored.by_pair()
    assert set(pairs) == ok | set(failed), sorted(pairs)
    for pair in ok:
        record = pairs[pair]
        assert record["status"] == "ok", (pair, record["error"])
        assert record["latency_ms"]["n"] >= 1 and record["latency_ms"]["p50"] > 0
    for pair, phrases in failed.items():
        record = pairs[pair]
        assert record["status"] == "failed", (pair, record["status"])
        message = record["error"]["message"]
        assert kind is None or record["error"]["kind"] == kind, record["error"]
        for phrase in phrases:
            assert phrase in message, f"{pair}: {phrase!r} not in {message!r}"
    stored.assert_no_duplicates()
    return pairs
