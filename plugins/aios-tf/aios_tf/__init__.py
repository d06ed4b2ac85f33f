"""AIOS TensorFlow / Keras plugin: the ``keras`` framework (MLP, CNN, user factories, ONNX export) and trainer.

This module is what the entry points name, so it stays light: it defines the
components and their parameters, and imports TensorFlow, Keras, tf2onnx, onnx and
onnxruntime only inside the hooks that need them (``aios plugins list`` and stacks
that do not name this plugin never pay for them). The models, parameters, metrics and
ONNX contract mirror the ``torch`` plugin, so a stack swaps frameworks in one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from aios_core import Framework, ModelArtifact, ModelParams, Trainer, TrainingParams, TrainResult, hookimpl

if TYPE_CHECKING:
    from aios_core import Dataset, Predictor, RunContext, ValidationContext

__version__ = "0.1.0"
__all__ = ["KerasFramework", "KerasTrainer", "KerasTrainerParams", "__version__"]


class KerasFramework(Framework):
    """Builds Keras models (TensorFlow backend) that map flat float32 rows to class probabilities.

    ``architecture`` is ``mlp``, ``cnn`` (needs ``dataset.image_shape``) or a user
    factory ``package.module:function`` called as ``function(dataset, **options)`` that
    returns a ``keras.Model`` ending in softmax. Native files are ``.keras`` archives
    loaded with ``safe_mode=True``; ``onnx`` exports (tf2onnx) output probabilities and
    are run by the kernel's ONNX Runtime predictor, so this framework predicts ``keras`` only.
    """

    Params = ModelParams
    native_format = "keras"
    export_formats = ("onnx",)
    tasks = ("classification", "regression")

    def __init__(self, params: ModelParams | None = None, name: str | None = None) -> None:
        super().__init__(params, name or "keras")

    @hookimpl
    def aios_validate(self, context: ValidationContext) -> list[tuple[str, str]]:
        """Before a run: the factory loads, and a ``cnn`` is not asked of rows without an image shape."""
        return self.params.environment_problems(context.data)

    @hookimpl
    def aios_build_model(self, dataset: Dataset, run: RunContext, overrides: dict[str, Any]) -> Any:
        from aios_tf import _models

        params = ModelParams.model_validate({**self.params.model_dump(), **(overrides or {})})
        return _models.build_model(params, dataset, seed=run.seed, threads=run.threads)

    @hookimpl
    def aios_save_model(self, model: Any, path: Path) -> ModelArtifact:
        from aios_tf import _models

        _models.save_model(model, Path(path))
        return ModelArtifact(name="native", path=Path(path), format=self.native_format, producer="keras")

    @hookimpl
    def aios_load_model(self, artifact: ModelArtifact) -> Any:
        if artifact.format != self.native_format:
            return None
        from aios_tf import _models

        return _models.load_model(Path(artifact.path))

    @hookimpl
    def aios_export_model(self, model: Any, fmt: str, path: Path, dataset: Dataset) -> ModelArtifact:
        if fmt not in self.export_formats:
            raise ValueError(f"the keras framework exports {list(self.export_formats)}, not {fmt!r}")
        from aios_tf import _onnx

        metrics = _onnx.export_onnx(model, Path(path), dataset)
        return ModelArtifact(name="onnx", path=Path(path), format="onnx", producer="keras", metrics=metrics)

    @hookimpl
    def aios_load_predictor(self, artifact: ModelArtifact, threads: int) -> Predictor | None:
        if artifact.format != self.native_format:
            return None  # onnx artifacts, ours included, are run by the kernel's ONNX Runtime predictor
        from aios_tf import _models

        return _models.keras_predictor(_models.load_model(Path(artifact.path)), threads=threads)


class KerasTrainerParams(TrainingParams):
    """Parameters of the ``keras`` trainer: AIOS's shared ``TrainingParams``, as the ``torch`` trainer's.

    ``weight_decay`` is Keras' decoupled form.
    """

class KerasTrainer(Trainer):
    """Trains a ``keras`` framework model with ``model.fit``, deterministically and resumably.

    A callback reports every epoch to the run's monitors, applies early stopping and
    hands a snapshot of ``last.npz`` (under ``run.checkpoint_dir``) to the kernel's
    checkpoint writer, which writes it every ``checkpoint_interval_s`` seconds, at the end
    and on an interrupt; with ``run.resume`` training continues from that file and the
    result equals an uninterrupted run. The returned model holds the weights of the epoch
    with the lowest ``val_loss``; a non-finite loss raises ``aios_core.TrainingDiverged``.
    """

    Params = KerasTrainerParams
    frameworks = ("keras",)
    tasks = ("classification", "regression")

    def __init__(self, params: KerasTrainerParams | None = None, name: str | None = None) -> None:
        super().__init__(params, name or "keras")

    @hookimpl
    def aios_train(self, model: Any, dataset: Dataset, run: RunContext, overrides: dict[str, Any]) -> TrainResult:
        from aios_tf import _training

        params = KerasTrainerParams.model_validate({**self.params.model_dump(), **(overrides or {})})
        return _training.train(model, dataset, run, params)
