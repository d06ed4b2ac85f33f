"""AIOS plugin nearest-centroid: a framework whose models have no weights before they are fitted, and its trainer.

The entry points name this module, so it stays light: only ``aios_core`` and pydantic
at the top; NumPy and onnx are imported by the hooks, through the ``_*.py`` modules.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from aios_core import Framework, ModelArtifact, Params, Trainer, hookimpl
from pydantic import Field

if TYPE_CHECKING:
    from aios_core import Dataset, Predictor, RunContext, TrainResult

__version__ = "0.1.0"
__all__ = ["NearestCentroidFramework", "NearestCentroidTrainer", "__version__"]

NAME = "nearest-centroid"
NATIVE_FORMAT = "centroids-npz"
"""The framework's own file format: the running sums in an ``.npz`` file, read without pickle."""


# ---------------------------------------------------------------- framework
class NearestCentroidParams(Params):
    """Parameters of the ``nearest-centroid`` framework (a stack's ``model:`` section).

    Not ``aios_core.ModelParams``: those describe neural networks (``architecture``,
    ``hidden_units``, ...), which this model does not have; a stack that sets them here
    gets an error naming the field instead of a value silently ignored.
    """

    priors: Literal["uniform", "frequency"] = Field(
        "uniform", description="Class priors: uniform, or each class's share of the training rows.")
    min_variance: float = Field(1e-3, gt=0.0, description="Smallest shared variance, so a class of identical rows "
                                                          "does not make probabilities 0 or 1.")


class NearestCentroidFramework(Framework):
    """Nearest-centroid classifiers: built unfitted, saved as ``.npz`` (no pickle), exported to ONNX."""

    Params = NearestCentroidParams
    native_format = NATIVE_FORMAT
    export_formats = ("onnx",)
    params: NearestCentroidParams

    def __init__(self, params: NearestCentroidParams | None = None, name: str | None = None) -> None:
        super().__init__(params, name or NAME)

    @hookimpl
    def aios_build_model(self, dataset: Dataset, overrides: dict[str, Any]) -> Any:
        from aios_nearest_centroid._model import NearestCentroid

        params = NearestCentroidParams.model_validate({**self.params.model_dump(), **(overrides or {})})
        return NearestCentroid.unfitted(dataset.num_features, dataset.num_classes, params.priors,
                                        params.min_variance)

    @hookimpl
    def aios_save_model(self, model: Any, path: Path) -> ModelArtifact:
        from aios_nearest_centroid import _model

        _model.save(model, Path(path))
        return ModelArtifact(name="native", path=Path(path), format=self.native_format, producer=self.name)

    @hookimpl
    def aios_load_model(self, artifact: ModelArtifact) -> Any:
        if artifact.format != self.native_format:
            return None
        from aios_nearest_centroid import _model

        return _model.load(Path(artifact.path))

    @hookimpl
    def aios_export_model(self, model: Any, fmt: str, path: Path) -> ModelArtifact | None:
        if fmt != "onnx":
            return None
        from aios_nearest_centroid import _onnx

        _onnx.export(model, Path(path))
        return ModelArtifact(name="onnx", path=Path(path), format="onnx", producer=self.name)

    @hookimpl
    def aios_load_predictor(self, artifact: ModelArtifact) -> Predictor | None:
        if artifact.format != self.native_format:
            return None  # onnx: the kernel runs it (aios_core.inference)
        from aios_nearest_centroid import _model

        return _model.load(Path(artifact.path)).predict_proba


# ---------------------------------------------------------------- trainer
class NearestCentroidTrainerParams(Params):
    """Parameters of the ``nearest-centroid`` trainer (a stack's ``trainer:`` section).

    The names and meanings of ``aios_core.TrainingParams`` where they apply; no optimizer,
    learning rate or schedule, since fitting centroids has none.
    """

    epochs: int = Field(1, ge=1, description="Passes of partial_fit over the training split; one fits the "
                                             "centroids exactly, more repeat the same sums.")
    batch_size: int = Field(256, ge=1, description="Rows per partial_fit call.")
    progress_updates: int = Field(4, ge=0, description="run.report_step calls per epoch; 0: none.")
    checkpoint_interval_s: float = Field(
        10.0, ge=0.0, description="Write a checkpoint when this many seconds have passed since the last one (0: every "
                                  "epoch); the newest is always written at the end, on Ctrl-C and on SIGTERM.")


class NearestCentroidTrainer(Trainer):
    """Fits nearest-centroid models with ``partial_fit``, one pass over the training split per epoch."""

    Params = NearestCentroidTrainerParams
    frameworks = (NAME,)
    params: NearestCentroidTrainerParams

    def __init__(self, params: NearestCentroidTrainerParams | None = None, name: str | None = None) -> None:
        super().__init__(params, name or NAME)

    @hookimpl
    def aios_train(self, model: Any, dataset: Dataset, run: RunContext, overrides: dict[str, Any]) -> TrainResult:
        from aios_nearest_centroid import _training

        params = NearestCentroidTrainerParams.model_validate({**self.params.model_dump(), **(overrides or {})})
        return _training.train(model, dataset, run, params)
