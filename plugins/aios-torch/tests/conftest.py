"""Fixtures: the torch framework and trainer in a real plugin manager and run context, and test monitors.

The data sets are the contract kit's (``aios_core.testing``): the ``digits_dataset``
session fixture (scikit-learn's digits as 8x8 images) and ``flat_digits`` below.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aios_torch import TorchFramework, TorchTrainer, TorchTrainerParams

from aios_core import Dataset, ModelArtifact, ModelParams, RunContext, hookimpl, testing, wait_for_checkpoints

TESTS_DIR = Path(__file__).parent


@pytest.fixture(scope="session")
def flat_digits() -> Dataset:
    """The kit's digits without an image shape, as a tabular datastore would give them."""
    return testing.digits_dataset(image=False)


class EpochRecorder:
    """A monitor that records epoch and step reports, and can interrupt the run like Ctrl-C."""

    def __init__(self, interrupt_at_epoch: int | None = None) -> None:
        self.epochs: list[tuple[int, dict[str, float]]] = []
        self.steps: list[tuple[int, int, int]] = []
        self.interrupt_at_epoch = interrupt_at_epoch

    @hookimpl
    def aios_on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self.epochs.append((epoch, metrics))
        if epoch == self.interrupt_at_epoch:
            raise KeyboardInterrupt

    @hookimpl
    def aios_on_step(self, epoch: int, step: int, total_steps: int) -> None:
        self.steps.append((epoch, step, total_steps))


class TorchStack:
    """The torch framework and trainer registered in a real plugin manager, with one run context."""

    def __init__(self, run_dir: Path, model: dict[str, Any], trainer: dict[str, Any], seed: int,
                 resume: bool, monitors: tuple[Any, ...], checkpoint_dir: Path | None) -> None:
        self.framework = TorchFramework(ModelParams(**model))
        self.trainer = TorchTrainer(TorchTrainerParams(**trainer))
        self.pm = testing.plugin_manager(self.framework, self.trainer, *monitors)
        self.run = RunContext(name="t", seed=seed, threads=1, dir=run_dir, stack={}, hook=self.pm.hook,
                              resume=resume, checkpoint_dir=checkpoint_dir)

    def build(self, dataset: Dataset, **overrides: Any) -> Any:
        return self.pm.hook.aios_build_model(dataset=dataset, run=self.run, overrides=overrides)

    def train(self, model: Any, dataset: Dataset, **overrides: Any) -> Any:
        """Train as the runner does: the final checkpoint is on disk when this returns."""
        result = self.pm.hook.aios_train(model=model, dataset=dataset, run=self.run, overrides=overrides)
        wait_for_checkpoints()
        return result

    def build_and_train(self, dataset: Dataset) -> Any:
        return self.train(self.build(dataset), dataset)


def _make_stack(run_dir: Path, model: dict[str, Any] | None = None, trainer: dict[str, Any] | None = None, *,
                seed: int = 0, resume: bool = False, monitors: tuple[Any, ...] = (),
                checkpoint_dir: Path | None = None) -> TorchStack:
    return TorchStack(run_dir, model or {}, trainer or {}, seed, resume, monitors, checkpoint_dir)


@pytest.fixture(scope="session")
def make_torch_stack() -> Callable[..., TorchStack]:
    """Make a TorchStack in a given run directory: ``make_torch_stack(run_dir, model={...}, trainer={...})``."""
    return _make_stack


@pytest.fixture
def torch_stack(tmp_path: Path) -> Callable[..., TorchStack]:
    """Make a TorchStack: ``torch_stack(model={...}, trainer={...}, seed=0, resume=False, monitors=())``.

    Its run directory is the test's ``tmp_path`` unless ``run_dir`` is given.
    """

    def make(*args: Any, run_dir: Path | None = None, **kwargs: Any) -> TorchStack:
        return _make_stack(run_dir or tmp_path, *args, **kwargs)

    return make


@pytest.fixture
def factories_importable(monkeypatch: pytest.MonkeyPatch) -> str:
    """Put tests/ on sys.path so ``aios_torch_test_factories.models:...`` imports; returns the module name."""
    monkeypatch.syspath_prepend(str(TESTS_DIR))
    return "aios_torch_test_factories.models"


@pytest.fixture
def epoch_recorder() -> type[EpochRecorder]:
    """The EpochRecorder monitor class: ``epoch_recorder(interrupt_at_epoch=None)``."""
    return EpochRecorder


# ---------------------------------------------------------------- trained models for the compressors' tests
COMPRESSOR_TRAINER = {"epochs": 12, "batch_size": 32, "checkpoint_interval_s": 0}
"""The trainer the compressors' tests train with and fine-tune through."""


def _trained(model: dict[str, Any], dataset: Dataset, run_dir: Path) -> ModelArtifact:
    stack = _make_stack(run_dir, model, COMPRESSOR_TRAINER)
    result = stack.build_and_train(dataset)
    return stack.pm.hook.aios_save_model(model=result.model, path=run_dir / "artifacts" / "model.torch")


@pytest.fixture(scope="session")
def trained_cnn(digits_dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> ModelArtifact:
    """A digits CNN (conv 16, 32; dense 64) trained 12 epochs, saved as the framework's native model."""
    return _trained({"architecture": "cnn", "conv_channels": [16, 32], "hidden_units": [64]}, digits_dataset,
                    tmp_path_factory.mktemp("cnn"))


@pytest.fixture(scope="session")
def trained_mlp(flat_digits: Dataset, tmp_path_factory: pytest.TempPathFactory) -> ModelArtifact:
    """A digits MLP (64, 32) trained 12 epochs, saved as the framework's native model."""
    return _trained({"architecture": "mlp", "hidden_units": [64, 32]}, flat_digits, tmp_path_factory.mktemp("mlp"))


@pytest.fixture(scope="session")
def compress_natively() -> Callable[..., ModelArtifact]:
    """``compress_natively(compressor, artifact, dataset, run_dir, monitors=(), resume=False)``: run
    ``aios_compress`` as the runner's compress-native phase does, framework and trainer registered beside it."""

    def compress(compressor: Any, artifact: ModelArtifact, dataset: Dataset, run_dir: Path, *,
                 monitors: tuple[Any, ...] = (), resume: bool = False) -> ModelArtifact:
        pm = testing.plugin_manager(TorchFramework(), TorchTrainer(TorchTrainerParams(**COMPRESSOR_TRAINER)),
                                    compressor, *monitors)
        run = RunContext(name="t", seed=0, threads=1, dir=run_dir, stack={}, hook=pm.hook, resume=resume)
        run.phase = "compress-native"
        result = pm.hook.aios_compress(artifact=artifact, dataset=dataset, run=run)
        wait_for_checkpoints()
        return result

    return compress
