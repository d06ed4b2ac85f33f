"""Fixtures: digits from the contract kit, the keras components in a plugin manager with one run context, and a
monitor that records reports."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aios_tf import KerasFramework, KerasTrainer, KerasTrainerParams

from aios_core import Dataset, ModelParams, RunContext, hookimpl, wait_for_checkpoints
from aios_core.testing import plugin_manager

TESTS_DIR = Path(__file__).parent


@pytest.fixture(scope="session")
def digits(digits_dataset: Dataset) -> Dataset:
    """The contract kit's digits: 8x8 images (1x8x8), split 60/20/20 stratified, standardized."""
    return digits_dataset


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


class KerasStack:
    """The keras framework and trainer registered in a plugin manager as a run registers them, with one run context."""

    def __init__(self, run_dir: Path, model: dict[str, Any], trainer: dict[str, Any], seed: int,
                 resume: bool, monitors: tuple[Any, ...]) -> None:
        self.framework = KerasFramework(ModelParams(**model))
        self.trainer = KerasTrainer(KerasTrainerParams(**trainer))
        self.pm = plugin_manager(self.framework, self.trainer, *monitors)
        self.run = RunContext(name="t", seed=seed, threads=1, dir=run_dir, stack={}, hook=self.pm.hook,
                              resume=resume)
        self.run.phase = "train"

    @property
    def checkpoint(self) -> Path:
        return self.run.checkpoint_dir / "last.npz"

    def build(self, dataset: Dataset, **overrides: Any) -> Any:
        return self.pm.hook.aios_build_model(dataset=dataset, run=self.run, overrides=overrides)

    def train(self, model: Any, dataset: Dataset, **overrides: Any) -> Any:
        """Train as the runner does: the final checkpoint is on disk when this returns."""
        result = self.pm.hook.aios_train(model=model, dataset=dataset, run=self.run, overrides=overrides)
        wait_for_checkpoints()
        return result

    def build_and_train(self, dataset: Dataset) -> Any:
        return self.train(self.build(dataset), dataset)


@pytest.fixture
def keras_stack(tmp_path: Path) -> Callable[..., KerasStack]:
    """Make a KerasStack: ``keras_stack(model={...}, trainer={...}, seed=0, resume=False, monitors=(), run_dir=...)``."""

    def make(model: dict[str, Any] | None = None, trainer: dict[str, Any] | None = None, *, seed: int = 0,
             resume: bool = False, monitors: tuple[Any, ...] = (), run_dir: Path | None = None) -> KerasStack:
        return KerasStack(run_dir or tmp_path, model or {}, trainer or {}, seed, resume, monitors)

    return make


@pytest.fixture
def factories_importable(monkeypatch: pytest.MonkeyPatch) -> str:
    """Put tests/ on sys.path so ``aios_tf_test_factories.models:...`` imports; returns the module name."""
    monkeypatch.syspath_prepend(str(TESTS_DIR))
    return "aios_tf_test_factories.models"


@pytest.fixture
def epoch_recorder() -> type[EpochRecorder]:
    return EpochRecorder


@pytest.fixture(scope="session")
def make_keras_stack() -> type[KerasStack]:
    """The KerasStack class, for module-scoped fixtures: ``make_keras_stack(run_dir, model, trainer, seed, resume, monitors)``."""
    return KerasStack
