"""Which model a run directory serves: read through the run record, the newest ONNX artifact, wherever the run lies."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from aios_serve._repository import LoadedModel, RepositoryError, spec_from_run_dir
from aios_serve_test_helpers import CLASS_NAMES, MODEL, VERSION, make_run_dir, write_mlp

from aios_core import ModelArtifact, RunDirectory


def test_a_run_is_served_under_its_stack_name_and_timestamp(tmp_path: Path) -> None:
    spec = spec_from_run_dir(make_run_dir(tmp_path))
    assert (spec.name, spec.version, spec.class_names, spec.threads) == (MODEL, VERSION, CLASS_NAMES, 1)
    assert spec.preprocessing["scaling"] == "standardize"


def test_a_moved_run_directory_serves_its_own_model(tmp_path: Path) -> None:
    original = make_run_dir(tmp_path / "before")
    moved = Path(shutil.move(original, tmp_path / "after" / original.name))
    spec = spec_from_run_dir(moved)
    assert spec.path == moved / "artifacts" / "model.onnx"
    assert LoadedModel(spec).num_classes == len(CLASS_NAMES)


def test_the_final_model_is_the_newest_onnx_artifact(tmp_path: Path) -> None:
    run = RunDirectory(make_run_dir(tmp_path))
    int8 = ModelArtifact(name="int8", path=write_mlp(run.artifacts_dir / "model.int8.onnx", seed=5), format="onnx",
                         producer="onnx-quant")
    state = run.read_state()
    state.phases["compress"] = {"artifacts": [run.artifact_to_json(int8)]}
    run.write_state(state)
    assert spec_from_run_dir(run.path).path == run.artifacts_dir / "model.int8.onnx"


def test_a_run_without_an_onnx_model_is_refused_with_the_fix(tmp_path: Path) -> None:
    run = RunDirectory(make_run_dir(tmp_path))
    state = run.read_state()
    state.phases.pop("export")
    run.write_state(state)
    with pytest.raises(RepositoryError, match=r"has no ONNX model.*export_formats: \[onnx\]"):
        spec_from_run_dir(run.path)


def test_a_missing_model_file_is_named(tmp_path: Path) -> None:
    run = RunDirectory(make_run_dir(tmp_path))
    (run.artifacts_dir / "model.onnx").unlink()
    with pytest.raises(RepositoryError, match="the final model .*model.onnx is missing"):
        spec_from_run_dir(run.path)


def test_a_directory_that_is_not_a_run_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RepositoryError, match="not a run directory"):
        spec_from_run_dir(tmp_path)
