"""``distill``: a smaller student of the torch framework, trained from the teacher's soft targets by the stack's
trainer, replaces the model (its own native file, exported like any model)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from aios_torch import DistillCompressor, DistillParams, _distill, _models, _onnx
from torch.nn import functional as F

from aios_core import Dataset, ModelArtifact


def distill_with(compress: Callable[..., ModelArtifact], artifact: ModelArtifact, dataset: Dataset, run_dir: Path,
                 **params: Any) -> ModelArtifact:
    return compress(DistillCompressor(DistillParams(**params)), artifact, dataset, run_dir)


@pytest.fixture(scope="module")
def student(trained_mlp: ModelArtifact, flat_digits: Dataset, compress_natively: Callable[..., ModelArtifact],
            tmp_path_factory: pytest.TempPathFactory) -> ModelArtifact:
    return distill_with(compress_natively, trained_mlp, flat_digits, tmp_path_factory.mktemp("student"),
                        student={"hidden_units": [16]}, epochs=15, learning_rate=0.01)


def test_the_student_is_the_smaller_architecture_the_stack_names(student: ModelArtifact,
                                                                 trained_mlp: ModelArtifact) -> None:
    assert (student.name, student.format, student.producer) == ("student", "torch", "distill")
    assert student.path.name == "model.student.torch" and student.path.parent.name == "artifacts"
    model = _models.load_model(student.path)  # the framework loads it like any of its models
    assert [m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear)] == [16, 10]
    teacher = _models.load_model(trained_mlp.path)
    counted = sum(p.numel() for p in model.parameters())
    assert student.metrics["parameters"] == {"teacher": sum(p.numel() for p in teacher.parameters()),
                                             "student": counted}
    assert student.metrics["parameter_ratio"] < 0.4 and student.size_bytes < trained_mlp.size_bytes


def test_the_student_learns_the_task_within_the_budget(student: ModelArtifact, flat_digits: Dataset) -> None:
    accuracy = student.metrics["val_accuracy"]
    assert accuracy["teacher"] - accuracy["student"] <= 0.03  # max_accuracy_drop default
    predicted = _models.torch_predictor(_models.load_model(student.path))(flat_digits.x_test).argmax(axis=1)
    assert np.mean(predicted == flat_digits.y_test) > 0.9
    assert student.metrics["epochs"] == 15


def test_the_student_file_holds_no_teacher_and_exports_with_parity(student: ModelArtifact, flat_digits: Dataset,
                                                                   tmp_path: Path) -> None:
    payload = torch.load(student.path, weights_only=True)
    assert sorted(payload["state_dict"]) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    report = _onnx.export_onnx(_models.load_model(student.path), tmp_path / "student.onnx", flat_digits)
    assert report["max_abs_diff"] <= _onnx.MAX_ABS_DIFF


def test_the_loss_mixes_softened_teacher_targets_and_labels(trained_mlp: ModelArtifact, flat_digits: Dataset) -> None:
    """alpha 0: plain cross-entropy; alpha 1: T^2 times the KL divergence to the teacher's softened probabilities."""
    teacher = _models.load_model(trained_mlp.path)
    inputs, targets = torch.from_numpy(flat_digits.x_val[:32]), torch.from_numpy(flat_digits.y_val[:32])
    logits = torch.randn(32, 10, generator=torch.Generator().manual_seed(0))
    hard = _distill.DistillationLoss(teacher, temperature=4.0, alpha=0.0)(logits, targets, inputs)
    torch.testing.assert_close(hard, F.cross_entropy(logits, targets))
    soft = _distill.DistillationLoss(teacher, temperature=4.0, alpha=1.0)(logits, targets, inputs)
    with torch.no_grad():
        expected = 16 * F.kl_div(F.log_softmax(logits / 4, dim=1), F.softmax(teacher(inputs) / 4, dim=1),
                                 reduction="batchmean")
    torch.testing.assert_close(soft, expected)
    assert not any(p.requires_grad for p in teacher.parameters())  # the teacher is frozen


def test_a_student_that_misses_the_budget_fails_and_says_what_to_change(
        trained_mlp: ModelArtifact, flat_digits: Dataset, compress_natively: Callable[..., ModelArtifact],
        tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"more than max_accuracy_drop 0.0 below the teacher's .*give the student "
                                         r"more units"):
        distill_with(compress_natively, trained_mlp, flat_digits, tmp_path, student={"hidden_units": [1]}, epochs=1,
                     max_accuracy_drop=0.0)
    assert not (tmp_path / "artifacts" / "model.student.torch").exists()


def test_validation_refuses_a_trainer_other_than_torch() -> None:
    from aios_core import ValidationContext

    stack = {"model": {"framework": "torch", "architecture": "mlp"}, "trainer": {"plugin": "ray-train"}}
    problems = DistillCompressor().aios_validate(ValidationContext(stack=stack, seed=0, threads=1, source="s.yaml"))
    assert any("trains the student with the torch trainer" in message for _, message in problems), problems
