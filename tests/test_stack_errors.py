"""Malformed stack files: each gives one precise line (file, line, field, found, expected) and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import STACK as VALID
from support import aios_env, refusal, run_aios, write_stack

# (test id, stack text, expected error line without the "error: <file>" prefix)
CASES = [
    ("yaml-syntax", "name: x\ndata: [unclosed\n", ":3: invalid YAML"),
    ("not-a-mapping", "- a\n- b\n", ":1: found a list, expected a mapping of sections"),
    ("empty-file", "", ":1: found an empty file, expected a mapping"),
    ("missing-name", VALID.replace("name: digits\n", ""), ": name: required field is missing"),
    ("bad-name", VALID.replace("name: digits", "name: 'my stack!'"), ":1: name: found 'my stack!', expected a string matching the pattern"),
    ("seed-not-int", VALID.replace("seed: 1", "seed: one"), ":2: seed: found 'one', expected a valid integer"),
    ("negative-seed", VALID.replace("seed: 1", "seed: -4"), ":2: seed: found -4, expected greater than or equal to 0"),
    ("unknown-top-field", VALID + "trainr:\n  epochs: 3\n", ":15: trainr: unknown field; expected one of: name, description, seed, threads, data, model, trainer, tuner, compressors, evaluate, deployer, monitors, orchestrator; did you mean 'trainer'?"),
    ("missing-data", VALID.replace("data:\n  plugin: sklearn\n  dataset: digits\n", ""), ": data: required field is missing"),
    ("data-without-plugin", VALID.replace("  plugin: sklearn\n", ""), ":3: data.plugin: required field is missing"),
    ("unknown-datastore", VALID.replace("plugin: sklearn", "plugin: sklern"), ":4: data.plugin: found 'sklern': no datastore named 'sklern' is installed; did you mean 'sklearn'?"),
    ("unknown-dataset", VALID.replace("dataset: digits", "dataset: mnist"), ":5: data.dataset: found 'mnist', expected 'digits', 'iris', 'wine', 'breast_cancer' or 'diabetes'"),
    ("unknown-framework", VALID.replace("framework: torch", "framework: jax"), ":7: model.framework: found 'jax': no framework named 'jax' is installed"),
    ("bad-architecture", VALID.replace("architecture: cnn", "architecture: resnet 50"), ":8: model.architecture: found 'resnet 50', expected a string matching the pattern"),
    ("unknown-model-field", VALID.replace("architecture: cnn", "architecture: cnn\n  hiden_units: [64]"), ":9: model.hiden_units: unknown field; expected one of: architecture, hidden_units, conv_channels, kernel_size, activation, dropout, options; did you mean 'hidden_units'?"),
    ("dropout-range", VALID.replace("architecture: cnn", "architecture: cnn\n  dropout: 1.5"), ":9: model.dropout: found 1.5, expected less than 1"),
    ("hidden-units-zero", VALID.replace("architecture: cnn", "architecture: cnn\n  hidden_units: [64, 0]"), ":9: model.hidden_units.1: found 0, expected greater than 0"),
    ("epochs-string", VALID.replace("epochs: 2", "epochs: ten"), ":11: trainer.epochs: found 'ten', expected a valid integer"),
    ("epochs-zero", VALID.replace("epochs: 2", "epochs: 0"), ":11: trainer.epochs: found 0, expected greater than or equal to 1"),
    ("unknown-trainer-field", VALID.replace("epochs: 2", "epoch: 2"), ":11: trainer.epoch: unknown field; expected one of:"),
    ("bad-optimizer", VALID.replace("epochs: 2", "epochs: 2\n  optimizer: adamw"), ":12: trainer.optimizer: found 'adamw', expected 'adam' or 'sgd'"),
    ("unknown-trainer", VALID.replace("plugin: torch", "plugin: troch"), ":10: trainer.plugin: found 'troch': no trainer named 'troch' is installed; did you mean 'torch'?"),
    ("compressors-not-list", VALID.replace("compressors:\n  - plugin: onnx-quant\n    mode: static\n", "compressors: onnx-quant\n"), ":12: compressors: found 'onnx-quant', expected a valid list"),
    ("bad-quant-mode", VALID.replace("mode: static", "mode: fast"), ":14: compressors.0.mode: found 'fast', expected 'dynamic', 'static' or 'auto'"),
    ("unknown-compressor", VALID.replace("plugin: onnx-quant", "plugin: prune"), ":13: compressors.0.plugin: found 'prune': no compressor named 'prune' is installed"),
    ("unset-env", VALID.replace("epochs: 2", "epochs: ${AIOS_TEST_UNSET_EPOCHS}"), ":11: trainer.epochs: found '${AIOS_TEST_UNSET_EPOCHS}', but environment variable AIOS_TEST_UNSET_EPOCHS is not set; set it or write ${AIOS_TEST_UNSET_EPOCHS:-default}"),
    ("threads-zero", VALID.replace("seed: 1", "seed: 1\nthreads: 0"), ":3: threads: found 0, expected greater than 0"),
    ("evaluate-gate-range", VALID + "evaluate:\n  min_accuracy: 2\n", ":16: evaluate.min_accuracy: found 2, expected less than or equal to 1"),
    ("monitor-unknown-field", VALID + "monitors:\n  - plugin: console\n    progres: bar\n", ":17: monitors.0.progres: unknown field; expected one of: progress; did you mean 'progress'?"),
    ("lock-in-plain-stack", VALID + "lock:\n  distributions: {}\n", ":15: lock: unknown field; this is a lock file: run it with aios run --lock FILE"),
]


@pytest.mark.parametrize("text, expected", [pytest.param(t, e, id=i) for i, t, e in CASES])
def test_malformed_stack_gives_one_precise_line(tmp_path: Path, text: str, expected: str) -> None:
    line = refusal(tmp_path, text)
    assert line.startswith(":") and expected in line, line  # ":" right after the file name


def test_every_problem_is_listed_one_per_line(tmp_path: Path) -> None:
    stack = write_stack(tmp_path, VALID.replace("epochs: 2", "epochs: 0\n  batch_size: -1").replace("mode: static",
                                                                                                  "mode: fast"))
    result = run_aios("validate", str(stack))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert [line.split(": ")[2] for line in lines] == ["trainer.epochs", "trainer.batch_size", "compressors.0.mode"]


def test_missing_stack_file(tmp_path: Path) -> None:
    result = run_aios("validate", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'nope.yaml'}: no such stack file"


def test_set_override_errors_name_the_option(tmp_path: Path) -> None:
    stack = write_stack(tmp_path, VALID)
    result = run_aios("validate", str(stack), "--set", "trainer.epochs=zero")
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: --set: trainer.epochs: found 'zero', expected a valid integer, "
                                     "unable to parse string as an integer")
    result = run_aios("validate", str(stack), "--set", "trainer.epochs")
    assert "expected FIELD.PATH=VALUE" in result.stderr


def test_overrides_and_env_defaults_apply(tmp_path: Path) -> None:
    stack = write_stack(tmp_path, VALID.replace("epochs: 2", "epochs: ${AIOS_TEST_EPOCHS:-4}"))
    from aios_core.stack import load_stack

    assert load_stack(stack).resolved["trainer"]["epochs"] == 4
    loaded = load_stack(stack, ["trainer.epochs=7", "compressors.0.mode=dynamic", "model.hidden_units=[32, 16]"])
    assert loaded.resolved["trainer"]["epochs"] == 7
    assert loaded.resolved["compressors"][0]["mode"] == "dynamic"
    assert loaded.resolved["model"]["hidden_units"] == [32, 16]


def test_trainer_defaults_to_the_frameworks_own(tmp_path: Path) -> None:
    from aios_core.stack import load_stack

    stack = write_stack(tmp_path, VALID.replace("trainer:\n  plugin: torch\n", "trainer:\n"))
    assert load_stack(stack).components["trainer"].name == "torch"


def test_uninstalled_component_of_a_known_plugin_names_the_pip_command(tmp_path: Path) -> None:
    index = tmp_path / "index.json"
    index.write_text('{"plugins": [{"distribution": "aios-jax", "components": {"framework": ["jax"]}}]}')
    stack = write_stack(tmp_path, VALID.replace("framework: torch", "framework: jax"))
    result = run_aios("validate", str(stack), env=aios_env(AIOS_INDEX=str(index)))
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        "model.framework: found 'jax': no framework named 'jax' is installed; "
        "it is provided by aios-jax: aios plugins install aios-jax")


def test_components_that_do_not_fit_are_named(tmp_path: Path, site: Path) -> None:
    from support import make_distribution

    make_distribution(site, "aios-fit", {
        "aios.trainers": {"other": "aios_fit:OtherTrainer"},
        "aios.compressors": {"prune-native": "aios_fit:NativeOnly"},
    }, modules={"aios_fit": """
        from aios_core import Compressor, Trainer
        class OtherTrainer(Trainer):
            frameworks = ("keras",)
        class NativeOnly(Compressor):
            input_formats = ("keras",)
            output_format = "keras"
    """})
    stack = write_stack(tmp_path, VALID.replace("  epochs: 2\n", "").replace("    mode: static\n", "").replace("plugin: torch", "plugin: other").replace("plugin: onnx-quant", "plugin: prune-native"))
    result = run_aios("validate", str(stack), env=aios_env(site))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"error: {stack}:10: trainer.plugin: trainer 'other' cannot train models of framework 'torch' "
        f"(model.framework); it trains: keras",
        f"error: {stack}:12: compressors.0.plugin: compressor 'prune-native' takes keras models, "
        f"but framework 'torch' produces onnx, torch",
    ]


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    stack = write_stack(tmp_path, VALID.replace("epochs: 2", "epochs: 0"))
    result = run_aios("--debug", "validate", str(stack))
    assert result.returncode != 0
    assert "Traceback" in result.stderr
