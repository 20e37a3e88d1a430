"""`harness demo`: which bundled models and variants it runs, and its bad input."""

import pytest

from harness.errors import InputError
from harness.model.bundled import DEMO_MODELS, demo_models
from harness.model.recipe import load_recipe


def test_the_demo_runs_both_bundled_models_with_variants_their_recipes_have():
    assert [m.name for m in demo_models(None)] == ["demo-detector", "shapes-yolo"]
    for model in DEMO_MODELS:
        recipe = load_recipe(model.recipe_path)
        chosen = model.variants or tuple(recipe.variants)
        recipe.check_variants(list(chosen))
        assert set(chosen) <= set(recipe.variants), model.name
    # shapes-yolo's story is the workbench: it must show what int8 loses and
    # what selective quantization wins back.
    yolo = load_recipe(DEMO_MODELS[1].recipe_path)
    assert {"fp32", "int8", "selective-int8"} <= set(yolo.variants)


def test_models_keep_the_order_asked():
    assert [m.name for m in demo_models("shapes-yolo, demo-detector")] == ["shapes-yolo", "demo-detector"]


def test_an_unknown_model_suggests_the_close_name():
    with pytest.raises(InputError) as err:
        demo_models("shapes-yolo,shape-yolo2")
    text = err.value.render()
    assert "--models" in text and "'shape-yolo2'" in text and "did you mean shapes-yolo" in text


def test_a_bad_variant_stops_the_demo_before_any_run(run_cli, tmp_path):
    result = run_cli("demo", "--variants", "fp32,int9")
    assert result.exit_code == 2, result.stderr
    assert "int9" in result.stderr and "Traceback" not in result.stderr
    # Checked before the first model ran: no run folder was made.
    reports = tmp_path / "reports"
    assert not reports.exists() or not [p for p in reports.iterdir() if not p.name.startswith(".")]
