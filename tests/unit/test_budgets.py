"""The budgets file: strict loading with the file, rule and field named."""

from __future__ import annotations

import textwrap

import pytest

from harness.gate.budgets import Match, load_budgets
from harness.errors import InputError


def write(tmp_path, text: str):
    path = tmp_path / "budgets.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_design_example_loads_into_frozen_rules(tmp_path):
    path = write(tmp_path, """
        budgets:
          - name: int8-on-pis
            match: {model: "*", variant: int8, device: "pi-*"}
            p90_ms: 45
            peak_memory_mb: 150
            size_mb: 4
            min_map: 0.40
            max_map_drop: 0.015
            max_regression_pct: 5
          - name: arm-fleet
            match: {tags: [arm64], variant: [int8, uint8]}
            p99_ms: 80
    """)
    first, second = load_budgets(path)
    assert first.name == "int8-on-pis" and first.p90_ms == 45.0 and first.max_map_drop == 0.015
    assert first.bounds() == {
        "p90_ms": 45.0, "peak_memory_mb": 150.0, "size_mb": 4.0, "min_map": 0.4, "max_map_drop": 0.015,
        "max_regression_pct": 5.0,
    }
    assert first.match.matches("pi-lab-1", "det", "int8")
    assert not first.match.matches("x86-1", "det", "int8")
    assert not first.match.matches("pi-lab-1", "det", "uint8")
    assert second.match.matches("anything", "det", "uint8", ("arm64", "lab-a"))
    assert not second.match.matches("anything", "det", "uint8", ("lab-a",))
    assert "budgets[1] (arm-fleet)" in second.where


def test_missing_match_means_every_pair():
    assert Match().matches("d", "m", "v") and Match().describe() == "every pair"


@pytest.mark.parametrize(
    ("body", "place", "says"),
    [
        ("budgets:\n  - name: a\n    p90ms: 4\n", "budgets[0] (a).p90ms", "did you mean 'p90_ms'"),
        ("budgets:\n  - name: a\n    min_map: 40\n", "budgets[0] (a).min_map", "write 0.4, not 40"),
        ("budgets:\n  - name: a\n    p90_ms: -1\n", "budgets[0] (a).p90_ms", "positive"),
        ("budgets:\n  - name: a\n    p90_ms: fast\n", "budgets[0] (a).p90_ms", "a number"),
        ("budgets:\n  - name: a\n    match: {variant: int8}\n", "budgets[0] (a)", "bounds nothing"),
        ("budgets:\n  - name: a\n    p90_ms: 1\n  - name: a\n    p90_ms: 2\n", "budgets[1].name", "used twice"),
        ("budgets:\n  - name: a\n    p90_ms: 1\n    match: {devcie: x}\n", "budgets[0] (a).match.devcie", "did you mean 'device'"),
        ("budgets:\n  - name: a\n    p90_ms: 1\n    match: {variant: 8}\n", "budgets[0] (a).match.variant", "glob"),
        ("budgets:\n  - p90_ms: 1\n", "budgets[0].name", "missing required key"),
        ("budgets: []\n", "budgets", "non-empty list"),
        ("rules: []\n", "rules", "unknown key"),
        ("budgets:\n  - name: a\n    p90_ms: [1\n", "line", "not valid YAML"),
        ("budgets:\n  - name: a\n    ship: int9\n", "budgets[0] (a).ship", "did you mean 'int8'"),
        ("budgets:\n  - name: a\n    ship: best\n", "budgets[0] (a).ship", "variant names: fp32, fp16"),
        ("budgets:\n  - name: a\n    ship: 8\n", "budgets[0] (a).ship", "a string"),
        ("budgets:\n  - name: a\n    ship: int8\n    match: {variant: int8}\n", "budgets[0] (a).match.variant",
         "drop match.variant"),
    ],
)
def test_bad_budgets_name_file_rule_and_field(tmp_path, body, place, says):
    path = write(tmp_path, body)
    with pytest.raises(InputError) as caught:
        load_budgets(path)
    text = caught.value.render()
    assert str(path) in text and place in text and says in text
    assert caught.value.exit_code == 2


def test_a_ship_rule_needs_no_bound_and_may_carry_bounds(tmp_path):
    path = write(tmp_path, """
        budgets:
          - name: ship-on-pis
            match: {device: "pi-*"}
            ship: int8
          - name: fast-and-int8
            ship: uint8
            p90_ms: 5
            max_map_drop: 0.01
          - name: plain
            p90_ms: 9
    """)
    pis, fast, plain = load_budgets(path)
    assert (pis.ship, pis.bounds(), pis.match.device) == ("int8", {}, ("pi-*",))
    assert fast.ship == "uint8" and fast.bounds() == {"p90_ms": 5.0, "max_map_drop": 0.01}
    assert plain.ship is None and pis.source == str(path)
