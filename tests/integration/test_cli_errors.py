"""The CLI's contract for bad input: exit 2, file + place + fix, no traceback."""

import json
import subprocess
import sys

import pytest

from tests.cli_checks import assert_clean_input_error
from tests.recipes import write_recipe


def test_unknown_variant(run_cli):
    result = run_cli("run", "--variants", "fp32,int9")
    assert_clean_input_error(result, "--variants", "int9", "did you mean 'int8'")


def test_missing_recipe(run_cli, tmp_path):
    result = run_cli("convert", str(tmp_path / "nope.yaml"))
    assert_clean_input_error(result, "nope.yaml", "not found")


def test_corrupt_model_file(run_cli, tmp_path):
    recipe = write_recipe(tmp_path)
    result = run_cli("convert", str(recipe))
    assert_clean_input_error(result, "model.h5", "cannot load the float model", "fix:")


def test_dataset_json_that_is_not_coco(run_cli, tmp_path):
    (tmp_path / "val").mkdir()
    (tmp_path / "val" / "a.png").write_bytes(b"")
    (tmp_path / "val.json").write_text(json.dumps({"images": "oops"}))
    recipe = write_recipe(tmp_path, dataset={"eval": {"annotations": "val.json", "images": "val"}})
    result = run_cli("run", "--model", str(recipe))
    assert_clean_input_error(result, "val.json", "images", "COCO")


def test_unwritable_output_folder(run_cli, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")  # root can write anywhere, but not below a file
    result = run_cli("run", "--out", str(blocker / "reports"))
    assert result.exit_code == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "a-file" in result.stderr and "--out" in result.stderr


def test_unknown_device(run_cli):
    assert_clean_input_error(run_cli("run", "--devices", "pi-9"), "--devices", "pi-9")


def test_report_without_runs(run_cli):
    assert_clean_input_error(run_cli("report"), "results.sqlite", "harness demo")


def test_no_command_prints_help_and_exits_2(run_cli):
    result = run_cli()
    assert result.exit_code == 2
    assert "demo" in result.stdout


def test_help_does_not_import_heavy_modules():
    code = (
        "import sys; from harness.cli import build_parser; build_parser().format_help();"
        "print(sorted(m for m in ('tensorflow', 'numpy', 'rich', 'yaml', 'PIL', 'paramiko') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["--version"]])
def test_help_and_version_exit_0(run_cli, args):
    assert run_cli(*args).exit_code == 0


@pytest.mark.parametrize(
    ("case", "needles"),
    [
        ("corrupt-tflite", ("m.tflite", "not a loadable .tflite")),
        ("label-mismatch", ("labels", "are not categories of")),
        ("no-calibration", ("no calibration dataset",)),
    ],
)
def test_a_run_refused_for_its_input_leaves_no_run_behind(run_cli, tmp_path, case, needles):
    if case == "corrupt-tflite":
        model = tmp_path / "m.tflite"
        model.write_bytes(b"not a flatbuffer")
    elif case == "label-mismatch":  # the synthetic dataset's categories are shapes
        model = write_recipe(tmp_path, dataset={"generator": "synthetic", "seed": 3, "splits": {"calib": 2, "val": 2}})
    else:
        model = write_recipe(tmp_path, variants=["int8"])
    assert_clean_input_error(run_cli("run", "--model", str(model)), *needles)
    reports = tmp_path / "reports"
    assert not [p for p in reports.glob("*") if p.is_dir() and not p.name.startswith(".")]
    # `latest` still means the last real run (here: none), and no hint lists junk.
    latest = run_cli("report", "latest")
    assert_clean_input_error(latest, "no runs recorded yet")
