"""Streamed data end to end: the same splits, training and test metrics as in memory; whole-array components refused.

A Parquet table that fits in memory is loaded both ways by the ``files`` datastore with the
hash split and the same seed (``split.method: hash`` in memory, ``streaming: true``). With a
shuffle window as large as the train split, ``Dataset.batches`` orders both alike, so the
torch trainer sees the same batches and must produce the same history (to 1e-6, since the
scaling statistics are merged over other blocks in the two modes; here they come out equal)
and the streamed evaluation the same test metrics. The same holds through ``aios run`` for the
whole stack (torch ``mlp`` -> ONNX -> ``onnx-quant`` -> evaluate -> the ``oip`` smoke test), run
from a fresh directory with the default ``runs/`` over a directory of Parquet files; with a
small window (several windows per split) the run completes with sane figures.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from aios_core import ModelParams, RunContext
from aios_core.evaluation import evaluate
from aios_core.inference import onnx_predictor
from aios_core.stack import EvaluateSettings
from aios_core.testing import plugin_manager

from .support import refusal, run_aios

pytest.importorskip("aios_data")
pytest.importorskip("aios_torch")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def _table(path: Path, rows: int = 3000, features: int = 8, group_rows: int = 400) -> Path:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(rows, features)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 0.8).astype(np.int64)
    columns = {f"f{i}": x[:, i] for i in range(features)} | {"label": y}
    pq.write_table(pa.table(columns), path, row_group_size=group_rows)
    return path


def _load(tmp_path: Path, **params: object):
    from aios_data import FilesDatastore

    pm = plugin_manager(FilesDatastore(FilesDatastore.Params(**params)))
    run = RunContext(name="t", seed=11, threads=1, dir=tmp_path, stack={}, hook=pm.hook)
    return pm.hook.aios_load_dataset(run=run)


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory):
    tmp_path = tmp_path_factory.mktemp("streaming")
    path = _table(tmp_path / "table.parquet")
    held = _load(tmp_path, path=path, target="label", split={"method": "hash"})
    streamed = _load(tmp_path, path=path, target="label", streaming=True, window_rows=100_000, sample_rows=50)
    return tmp_path, held, streamed


def test_streaming_and_in_memory_give_the_same_split_rows(both) -> None:
    _, held, streamed = both
    assert streamed.streaming and not held.streaming
    assert len(streamed.y_train) == 50  # the arrays hold a sample; the splits stream
    for split in ("train", "val", "test"):
        rows = [np.concatenate(part) for part in zip(*streamed.batches(split, 256))]
        assert streamed.rows(split) == held.rows(split) == len(rows[1])
        np.testing.assert_array_equal(rows[0], getattr(held, f"x_{split}"))
        np.testing.assert_array_equal(rows[1], getattr(held, f"y_{split}"))


def test_streaming_and_in_memory_train_and_evaluate_alike(both) -> None:
    from aios_torch import TorchFramework, TorchTrainer, TorchTrainerParams

    tmp_path, held, streamed = both
    outcomes = []
    for dataset in (held, streamed):
        framework = TorchFramework(ModelParams(architecture="mlp", hidden_units=[16]))
        trainer = TorchTrainer(TorchTrainerParams(epochs=3, batch_size=64, checkpoint_interval_s=1e9))
        pm = plugin_manager(framework, trainer)
        run_dir = tmp_path / ("streamed" if dataset.streaming else "held")
        run = RunContext(name="t", seed=11, threads=1, dir=run_dir, stack={}, hook=pm.hook,
                         checkpoint_dir=run_dir / "checkpoints")
        model = pm.hook.aios_build_model(dataset=dataset, run=run, overrides={})
        result = pm.hook.aios_train(model=model, dataset=dataset, run=run, overrides={})
        artifact = pm.hook.aios_export_model(model=result.model, fmt="onnx", path=run_dir / "model.onnx",
                                             dataset=dataset)
        report = evaluate([artifact], dataset, lambda a: onnx_predictor(a.path, 1),
                          EvaluateSettings(batch_sizes=[1], latency_runs=5), result.history, run_dir / "report")
        outcomes.append((result.history, report))
    (held_history, held_report), (streamed_history, streamed_report) = outcomes
    for held_epoch, streamed_epoch in zip(held_history, streamed_history, strict=True):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert streamed_epoch[key] == pytest.approx(held_epoch[key], rel=1e-6), key
    assert streamed_report["test_rows"] == held_report["test_rows"] == held.rows("test")
    assert streamed_report["test_accuracy"] == pytest.approx(held_report["test_accuracy"], abs=1e-6)
    assert streamed_report["artifacts"][0]["confusion_matrix"] == held_report["artifacts"][0]["confusion_matrix"]


def test_validate_refuses_a_trainer_that_reads_whole_arrays_on_streamed_data(tmp_path: Path) -> None:
    pytest.importorskip("aios_tf")
    path = _table(tmp_path / "table.parquet", rows=200)
    stack = (f"name: s\ndata:\n  plugin: files\n  path: {path}\n  target: label\n  streaming: true\n"
             "model:\n  framework: keras\ntrainer:\n  plugin: keras\n  epochs: 1\n")
    line = refusal(tmp_path, stack)
    assert line == (":9: trainer: trainer 'keras' reads whole arrays, but the data is streamed (it does not fit in "
                    "memory as one); choose a trainer that streams (the torch trainer does) or load the data in "
                    "memory (data.streaming: false)"), line


# ------------------------------------------------------------------ the whole stack through `aios run`
_RUN_STACK = """\
name: {name}
seed: 7
data:
  plugin: files
  target: label
{data}
model: {{framework: torch, architecture: mlp, hidden_units: [32]}}
trainer: {{plugin: torch, epochs: 4, batch_size: 32}}
compressors:
  - {{plugin: onnx-quant, mode: static, calibration_samples: 64}}
evaluate: {{batch_sizes: [1], latency_runs: 10, min_accuracy: 0.8}}
{deployer}"""


def _write_digits(directory: Path) -> None:
    """scikit-learn's digits (float32 pixels) in ``directory``: as ``digits/``, three Parquet files of row groups of
    100 rows (what streaming reads), and the same table as one file, ``digits.parquet`` (what the in-memory mode reads)."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    table = pa.table({f"p{i}": x[:, i].astype(np.float32) for i in range(x.shape[1])} | {"label": y})
    (directory / "digits").mkdir(parents=True)
    pq.write_table(table, directory / "digits.parquet")
    for part, start in enumerate(range(0, len(y), 600)):
        pq.write_table(table.slice(start, 600), directory / "digits" / f"part-{part}.parquet", row_group_size=100)


def _aios_run(tmp_path: Path, name: str, data: str, deployer: str = "") -> Path:
    """``aios run stack.yaml`` in a fresh directory holding the data, runs in the default ``runs/``: the run directory."""
    directory = tmp_path / name
    _write_digits(directory)
    (directory / "stack.yaml").write_text(_RUN_STACK.format(name=name, data=data, deployer=deployer))
    result = run_aios("run", "stack.yaml", cwd=directory)
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = (directory / "runs").iterdir()
    return run_dir


def _state(run_dir: Path) -> dict:
    return json.loads((run_dir / "state.json").read_text())


@pytest.mark.slow
def test_aios_run_streams_the_whole_stack_in_small_windows(tmp_path: Path) -> None:
    run_dir = _aios_run(tmp_path, "windows", "  path: digits/\n  streaming: true\n  window_rows: 300\n  sample_rows: 120",
                        "deployer: {plugin: oip, port: 0, smoke_requests: 50}")
    state, evaluation = _state(run_dir), json.loads((run_dir / "report" / "evaluation.json").read_text())
    assert state["status"] == "completed"
    sizes = state["phases"]["data"]["sizes"]
    assert sum(sizes.values()) == 1797 and sizes["train"] > 1000
    assert evaluation["test_rows"] == sizes["test"] > 120  # every test row, not the 120 the sample holds
    for artifact in evaluation["artifacts"]:
        assert sum(map(sum, artifact["confusion_matrix"])) == sizes["test"]
        assert 0.8 < artifact["accuracy"] <= 1.0
    assert [gate["passed"] for gate in evaluation["gates"]] == [True]
    assert state["phases"]["deploy"]["smoke_test"]["passed"]


@pytest.mark.slow
def test_aios_run_streamed_in_one_window_equals_the_run_in_memory(tmp_path: Path) -> None:
    streamed = _state(_aios_run(tmp_path, "streamed", "  path: digits/\n  streaming: true\n  window_rows: 4096"))
    held = _state(_aios_run(tmp_path, "held", "  path: digits.parquet\n  split: {method: hash}"))
    assert streamed["phases"]["data"]["streaming"]
    for key in ("sizes", "class_names", "num_features"):  # not the content hash: it covers streaming: true
        assert streamed["phases"]["data"][key] == held["phases"]["data"][key], key
    for streamed_epoch, held_epoch in zip(streamed["phases"]["train"]["history"], held["phases"]["train"]["history"],
                                          strict=True):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert streamed_epoch[key] == pytest.approx(held_epoch[key], rel=1e-6), key
    for streamed_model, held_model in zip(streamed["phases"]["evaluate"]["artifacts"],
                                          held["phases"]["evaluate"]["artifacts"], strict=True):
        assert streamed_model["name"] == held_model["name"]
        for key in ("accuracy", "per_class_recall", "confusion_matrix"):
            assert streamed_model[key] == held_model[key], (streamed_model["name"], key)
