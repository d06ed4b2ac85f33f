"""AIOS PyTorch plugin: the ``torch`` framework (MLP, CNN, user factories, ONNX export), trainer and compressors.

The compressors work on the framework's native model, before export: ``torch-prune``
(structured pruning with fine-tuning) and ``distill`` (a smaller student trained from the
model's soft targets).

This module is what the entry points name, so it stays light: it defines the
components and their parameters, and imports torch, onnx and onnxruntime only
inside the hooks that need them (``aios plugins list`` must not pay for them).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, PositiveInt, ValidationInfo, field_validator, model_validator

from aios_core import (
    Compressor,
    Framework,
    ModelArtifact,
    ModelParams,
    Params,
    Trainer,
    TrainingParams,
    TrainResult,
    hookimpl,
)

if TYPE_CHECKING:
    from aios_core import Dataset, Predictor, RunContext, ValidationContext

__version__ = "0.1.0"
__all__ = ["DistillCompressor", "DistillParams", "TorchFramework", "TorchPruneCompressor", "TorchPruneParams",
           "TorchTrainer", "TorchTrainerParams", "__version__"]


class TorchFramework(Framework):
    """Builds PyTorch models that map flat float32 rows to class logits (regression: to one value per target); saves,
    loads and exports them.

    ``architecture`` is ``mlp``, ``cnn`` (needs ``dataset.image_shape``) or a user
    factory ``package.module:function`` called as ``function(dataset, **options)``
    that returns an ``nn.Module``. Native files are loaded with ``weights_only=True``;
    ``onnx`` exports output probabilities.
    """

    Params = ModelParams
    native_format = "torch"
    export_formats = ("onnx",)
    tasks = ("classification", "regression")

    def __init__(self, params: ModelParams | None = None, name: str | None = None) -> None:
        super().__init__(params, name or "torch")

    @hookimpl
    def aios_validate(self, context: ValidationContext) -> list[tuple[str, str]]:
        """Before a run: the factory loads, and a ``cnn`` is not asked of rows without an image shape."""
        return self.params.environment_problems(context.data)

    @hookimpl
    def aios_build_model(self, dataset: Dataset, run: RunContext, overrides: dict[str, Any]) -> Any:
        from aios_torch import _models

        params = ModelParams.model_validate({**self.params.model_dump(), **(overrides or {})})
        return _models.build_model(params, dataset, seed=run.seed, threads=run.threads)

    @hookimpl
    def aios_save_model(self, model: Any, path: Path) -> ModelArtifact:
        from aios_torch import _models

        _models.save_model(model, Path(path))
        return ModelArtifact(name="native", path=Path(path), format=self.native_format, producer="torch")

    @hookimpl
    def aios_load_model(self, artifact: ModelArtifact) -> Any:
        if artifact.format != self.native_format:
            return None
        from aios_torch import _models

        return _models.load_model(Path(artifact.path))

    @hookimpl
    def aios_export_model(self, model: Any, fmt: str, path: Path, dataset: Dataset) -> ModelArtifact:
        if fmt not in self.export_formats:
            raise ValueError(f"the torch framework exports {list(self.export_formats)}, not {fmt!r}")
        from aios_torch import _onnx

        metrics = _onnx.export_onnx(model, Path(path), dataset)
        return ModelArtifact(name="onnx", path=Path(path), format="onnx", producer="torch", metrics=metrics)

    @hookimpl
    def aios_load_predictor(self, artifact: ModelArtifact, threads: int) -> Predictor | None:
        """The native format only: the kernel runs ``onnx`` files (``aios_core.inference``)."""
        if artifact.format != self.native_format:
            return None
        from aios_torch import _models

        return _models.torch_predictor(_models.load_model(Path(artifact.path)), threads=threads)


class TorchTrainerParams(TrainingParams):
    """Parameters of the ``torch`` trainer (a stack's ``trainer:`` section): AIOS's shared ``TrainingParams``."""


class TorchTrainer(Trainer):
    """Trains a ``torch`` framework model with cross-entropy (regression: MSE, MAE or Huber), deterministically and resumably.

    Every epoch it validates and reports; ``last.pt`` under ``run.checkpoint_dir`` is
    written every ``checkpoint_interval_s`` seconds, at the end and on an interrupt. With
    ``run.resume`` it continues from that file, and the result equals an uninterrupted
    run. A non-finite loss stops it with ``aios_core.TrainingDiverged``. The returned
    model holds the weights of the epoch with the lowest ``val_loss``.
    """

    Params = TorchTrainerParams
    frameworks = ("torch",)
    tasks = ("classification", "regression")
    streams = True  # reads train and validation through Dataset.batches, in memory or streamed

    def __init__(self, params: TorchTrainerParams | None = None, name: str | None = None) -> None:
        super().__init__(params, name or "torch")

    @hookimpl
    def aios_train(self, model: Any, dataset: Dataset, run: RunContext, overrides: dict[str, Any]) -> TrainResult:
        from aios_torch import _training

        params = TorchTrainerParams.model_validate({**self.params.model_dump(), **(overrides or {})})
        return _training.train(model, dataset, run, params)


def _native_model_problems(context: ValidationContext, who: str, trains: bool) -> list[tuple[str, str]]:
    """Before a run: the stack's model is a torch mlp or cnn, and a trainer is there when ``who`` trains."""
    model, problems = context.stack.get("model") or {}, []
    if model.get("framework") != "torch":
        problems.append(("plugin", (f"found '{who}' with framework {model.get('framework')!r}; it compresses "
                                    "models of the torch framework (model: {framework: torch})")))
    elif model.get("architecture") not in ("mlp", "cnn"):
        problems.append(("plugin", (f"found '{who}' for the factory architecture {model.get('architecture')!r}; "
                                    "it works on the torch framework's mlp and cnn models (model.architecture)")))
    if trains and not context.stack.get("trainer"):
        problems.append(("plugin", (f"found '{who}', which trains with the stack's trainer, but the stack has no "
                                    "trainer: section; add trainer: {plugin: torch}")))
    return problems


class TorchPruneParams(Params):
    """Parameters of the ``torch-prune`` compressor: the criterion, one target, and the fine-tuning schedule."""

    criterion: Literal["l1", "l2"] = Field(
        "l1", description="Norm of a unit's or channel's incoming weights; the smallest are removed.")
    sparsity: float | None = Field(
        None, gt=0.0, lt=1.0, description="Fraction of the units and channels of every hidden layer to remove "
                                          "(0.5 when no target is given).")
    target_size_ratio: float | None = Field(
        None, gt=0.0, le=1.0, description="Instead of sparsity: the smallest uniform sparsity whose model keeps at "
                                          "most this fraction of the parameters.")
    target_latency_ms: float | None = Field(
        None, gt=0.0, description="Instead of sparsity: the smallest sparsity (0, 0.05, ..., 0.95) whose ONNX export "
                                  "takes at most this many ms per row at batch 1 on this machine.")
    steps: PositiveInt = Field(2, description="Pruning steps to reach the target, each followed by fine-tuning.")
    finetune_epochs: int = Field(2, ge=0, description="Epochs of the stack's trainer after each step (0: none).")
    finetune_learning_rate: float | None = Field(
        None, gt=0.0, description="Learning rate while fine-tuning; null: the trainer's.")
    max_accuracy_drop: float = Field(
        0.02, ge=0.0, le=1.0, description="Largest validation-accuracy loss vs the input model (0.02 = 2 points); "
                                          "beyond it the compressor fails and says what to change.")

    @field_validator("target_size_ratio", "target_latency_ms")
    @classmethod
    def _one_target(cls, value: float | None, info: ValidationInfo) -> float | None:
        given = [name for name in ("sparsity", "target_size_ratio") if info.data.get(name) is not None]
        if value is not None and given:
            raise ValueError(f"give one target: {given[0]} or {info.field_name}, not both")
        return value

    @model_validator(mode="after")
    def _default_target(self) -> TorchPruneParams:
        if self.sparsity is None and self.target_size_ratio is None and self.target_latency_ms is None:
            self.sparsity = 0.5
        return self


class TorchPruneCompressor(Compressor):
    """Structured pruning of a torch mlp or cnn: removes whole units and channels, fine-tuning between steps.

    The output is a smaller dense model of the torch framework (``model.pruned.torch``); it
    runs before export, so the ONNX export and any ONNX compressor start from it.
    """

    Params: ClassVar[type[TorchPruneParams]] = TorchPruneParams
    input_formats: ClassVar[tuple[str, ...]] = ("torch",)
    output_format: ClassVar[str] = "torch"
    params: TorchPruneParams

    def __init__(self, params: TorchPruneParams | None = None, name: str | None = None) -> None:
        super().__init__(params, name or "torch-prune")

    @hookimpl
    def aios_validate(self, context: ValidationContext) -> list[tuple[str, str]]:
        return _native_model_problems(context, "torch-prune", self.params.finetune_epochs > 0)

    @hookimpl
    def aios_compress(self, artifact: ModelArtifact, dataset: Dataset, run: RunContext) -> ModelArtifact:
        """Write ``model.pruned.torch`` and report widths, parameters, accuracy and latency before and after."""
        if artifact.format not in self.input_formats:
            raise ValueError(f"torch-prune prunes native torch models, but artifact {artifact.name!r} "
                             f"({artifact.path}) has format {artifact.format!r}; list torch-prune first")
        from aios_torch import _pruning

        return _pruning.compress(artifact, dataset, run, self.params)

    @classmethod
    def capabilities(cls) -> dict[str, Any]:
        return {**super().capabilities(), "criteria": ["l1", "l2"], "output_name": "pruned"}


class StudentParams(ModelParams):
    """The student's model: the framework's ``mlp`` or ``cnn`` (no factories), smaller than the teacher."""

    architecture: Literal["mlp", "cnn"] = Field("mlp", description="mlp or cnn (image data).")
    hidden_units: list[PositiveInt] = Field(default_factory=lambda: [32], min_length=1,
                                            description="Units of each hidden dense layer of the student.")


class DistillParams(Params):
    """Parameters of the ``distill`` compressor: the student, the softening and the training budget."""

    student: StudentParams = Field(default_factory=StudentParams,
                                   description="The student's model parameters, as in a stack's model: section.")
    temperature: float = Field(4.0, gt=0.0, description="Softens teacher and student probabilities in the "
                                                        "distillation term.")
    alpha: float = Field(0.7, ge=0.0, le=1.0, description="Weight of the soft-target term; 1 - alpha weighs the "
                                                          "cross-entropy on the labels.")
    epochs: PositiveInt | None = Field(None, description="Training epochs of the student; null: the trainer's.")
    learning_rate: float | None = Field(None, gt=0.0, description="Learning rate; null: the trainer's.")
    max_accuracy_drop: float = Field(
        0.03, ge=0.0, le=1.0, description="Largest validation-accuracy loss of the student vs the teacher "
                                          "(0.03 = 3 points); beyond it the compressor fails and says what to change.")


class DistillCompressor(Compressor):
    """Knowledge distillation: trains a smaller torch student from the trained model's soft targets.

    The student (``model.student.torch``) replaces the model for the rest of the chain: it
    runs before export, so the ONNX export and any ONNX compressor start from it.
    """

    Params: ClassVar[type[DistillParams]] = DistillParams
    input_formats: ClassVar[tuple[str, ...]] = ("torch",)
    output_format: ClassVar[str] = "torch"
    params: DistillParams

    def __init__(self, params: DistillParams | None = None, name: str | None = None) -> None:
        super().__init__(params, name or "distill")

    @hookimpl
    def aios_validate(self, context: ValidationContext) -> list[tuple[str, str]]:
        problems = _native_model_problems(context, "distill", trains=True)
        trainer = (context.stack.get("trainer") or {}).get("plugin")
        if trainer not in (None, "torch"):
            problems.append(("plugin", (f"found 'distill' with trainer {trainer!r}; it trains the student with "
                                        "the torch trainer (trainer: {plugin: torch})")))
        return problems + [(f"student.{field}", message)
                           for field, message in self.params.student.environment_problems(context.data)]

    @hookimpl
    def aios_compress(self, artifact: ModelArtifact, dataset: Dataset, run: RunContext) -> ModelArtifact:
        """Write ``model.student.torch`` and report teacher and student parameters, size and accuracy."""
        if artifact.format not in self.input_formats:
            raise ValueError(f"distill trains a student from a native torch model, but artifact {artifact.name!r} "
                             f"({artifact.path}) has format {artifact.format!r}; list distill first")
        from aios_torch import _distill

        return _distill.compress(artifact, dataset, run, self.params)
