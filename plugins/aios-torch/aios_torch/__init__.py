"""AIOS PyTorch plugin: the ``torch`` framework (MLP, CNN, user factories, ONNX export) and trainer.

This module is what the entry points name, so it stays light: it defines the
components and their parameters, and imports torch, onnx and onnxruntime only
inside the hooks that need them (``aios plugins list`` must not pay for them).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from aios_core import Framework, ModelArtifact, ModelParams, Trainer, TrainingParams, TrainResult, hookimpl

if TYPE_CHECKING:
    from aios_core import Dataset, Predictor, RunContext, ValidationContext

__version__ = "0.1.0"
__all__ = ["TorchFramework", "TorchTrainer", "TorchTrainerParams", "__version__"]


class TorchFramework(Framework):
    """Builds PyTorch models that map flat float32 rows to class logits; saves, loads and exports them.

    ``architecture`` is ``mlp``, ``cnn`` (needs ``dataset.image_shape``) or a user
    factory ``package.module:function`` called as ``function(dataset, **options)``
    that returns an ``nn.Module``. Native files are loaded with ``weights_only=True``;
    ``onnx`` exports output probabilities.
    """

    Params = ModelParams
    native_format = "torch"
    export_formats = ("onnx",)

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
    """Trains a ``torch`` framework model with cross-entropy, deterministically and resumably.

    Every epoch it validates and reports; ``last.pt`` under ``run.checkpoint_dir`` is
    written every ``checkpoint_interval_s`` seconds, at the end and on an interrupt. With
    ``run.resume`` it continues from that file, and the result equals an uninterrupted
    run. A non-finite loss stops it with ``aios_core.TrainingDiverged``. The returned
    model holds the weights of the epoch with the lowest ``val_loss``.
    """

    Params = TorchTrainerParams
    frameworks = ("torch",)

    def __init__(self, params: TorchTrainerParams | None = None, name: str | None = None) -> None:
        super().__init__(params, name or "torch")

    @hookimpl
    def aios_train(self, model: Any, dataset: Dataset, run: RunContext, overrides: dict[str, Any]) -> TrainResult:
        from aios_torch import _training

        params = TorchTrainerParams.model_validate({**self.params.model_dump(), **(overrides or {})})
        return _training.train(model, dataset, run, params)
