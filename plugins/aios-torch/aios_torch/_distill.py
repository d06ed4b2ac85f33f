"""Knowledge distillation: a smaller student of the torch framework trained from the trained model's soft targets.

The student is built from the teacher's spec with the student's model parameters, and
trained by the stack's trainer (``run.train``: its epochs, optimizer, monitors,
checkpoints and resume). The torch trainer minimizes the model's ``aios_training_loss``
when it has one: here Hinton et al.'s ``alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha)
* cross-entropy(labels)``, the teacher's logits computed batch by batch with the teacher
frozen. Validation (best epoch, early stopping) stays the cross-entropy on the labels.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from aios_core import Dataset, ModelArtifact, RunContext
from aios_torch import _models, _pruning
from aios_torch._training import TRAINING_LOSS

if TYPE_CHECKING:
    from aios_torch import DistillParams


class DistillationLoss:
    """``(logits, targets, inputs) -> loss`` of a student learning from ``teacher``'s softened probabilities.

    A plain object, not a module: the teacher is no parameter of the student (the
    optimizer never sees it, checkpoints never hold it).
    """

    def __init__(self, teacher: nn.Module, temperature: float, alpha: float) -> None:
        self.teacher, self.temperature, self.alpha = teacher.eval(), temperature, alpha
        for parameter in teacher.parameters():
            parameter.requires_grad_(False)

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            soft = F.softmax(self.teacher(inputs) / self.temperature, dim=1)
        distilled = F.kl_div(F.log_softmax(logits / self.temperature, dim=1), soft, reduction="batchmean")
        hard = F.cross_entropy(logits, targets)
        return self.alpha * self.temperature ** 2 * distilled + (1 - self.alpha) * hard


def student_of(teacher: nn.Module, params: DistillParams, seed: int) -> nn.Module:
    """A fresh student for the teacher's data: the teacher's spec with the student's model parameters."""
    spec = _models.model_spec(teacher)
    torch.manual_seed(seed)
    return _models.build_module({**spec, "params": params.student.model_dump(mode="json")})


def compress(artifact: ModelArtifact, dataset: Dataset, run: RunContext, params: DistillParams) -> ModelArtifact:
    """Train the student from ``artifact`` (the teacher), check it, write ``<input>.student.torch``."""
    if len(dataset.y_val) == 0:
        raise ValueError(f"distill measures accuracy on the validation split, but data set {dataset.name!r} "
                         "has no validation rows; give the datastore a val fraction > 0")
    teacher = _models.load_model(Path(artifact.path))
    student = student_of(teacher, params, run.seed)
    setattr(student, TRAINING_LOSS, DistillationLoss(teacher, params.temperature, params.alpha))
    output = run.artifacts_dir / f"{Path(artifact.path).stem}.student.{artifact.format}"
    overrides: dict[str, Any] = {}
    if params.epochs is not None:
        overrides["epochs"] = params.epochs
    if params.learning_rate is not None:
        overrides["learning_rate"] = params.learning_rate
    started = time.perf_counter()
    result = run.train(student, dataset, checkpoint_dir=Path(run.checkpoint_dir) / output.stem, overrides=overrides)
    student = result.model
    delattr(student, TRAINING_LOSS)
    seconds = round(time.perf_counter() - started, 3)
    before, after = _val_accuracy(teacher, dataset), _val_accuracy(student, dataset)
    if before - after > params.max_accuracy_drop + 1e-9:
        raise ValueError(
            f"distill: the student's validation accuracy {after:.4f} is more than max_accuracy_drop "
            f"{params.max_accuracy_drop} below the teacher's {before:.4f}; give the student more units or channels "
            "(distill student.hidden_units / conv_channels), more epochs, or raise max_accuracy_drop")
    _models.save_model(student, output)
    spec, student_spec = _models.model_spec(teacher), _models.model_spec(student)
    parameters = {"teacher": _pruning.parameter_count(spec), "student": _pruning.parameter_count(student_spec)}
    return ModelArtifact(name="student", path=output, format=artifact.format, producer="distill", metrics={
        "temperature": params.temperature, "alpha": params.alpha,
        "student": params.student.model_dump(mode="json"),
        "parameters": parameters, "parameter_ratio": round(parameters["student"] / parameters["teacher"], 4),
        "size_bytes": {"teacher": Path(artifact.path).stat().st_size, "student": output.stat().st_size},
        "val_accuracy": {"teacher": before, "student": after},
        "epochs": len(result.history), "best_epoch": result.best_epoch, "seconds": seconds,
    })


def _val_accuracy(model: nn.Module, dataset: Dataset) -> float:
    probabilities = _models.torch_predictor(model)(dataset.x_val)
    return float(np.mean(probabilities.argmax(axis=1) == dataset.y_val))
