"""Fixtures: scikit-learn's bundled digits as a Dataset, and the keras components in a real plugin manager."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aios_core import Dataset, ModelParams, RunContext, hash_arrays, hookimpl
from aios_core.plugins import new_plugin_manager
from aios_tf import KerasFramework, KerasTrainer, KerasTrainerParams

TESTS_DIR = Path(__file__).parent


def digits_dataset(split_seed: int = 0) -> Dataset:
    """Digits 8x8, split 70/15/15 (stratified), standardized with the train split's mean and std."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    raw = load_digits()
    x = raw.data.astype(np.float32)
    y = raw.target.astype(np.int64)
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=0.15, stratify=y, random_state=split_seed)
    x_train, x_val, y_train, y_val = train_test_split(x_rest, y_rest, test_size=0.15 / 0.85, stratify=y_rest,
                                                      random_state=split_seed)
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[std == 0] = 1.0

    def scale(part: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray((part - mean) / std, dtype=np.float32)

    return Dataset(name="digits", x_train=scale(x_train), y_train=y_train, x_val=scale(x_val), y_val=y_val,
                   x_test=scale(x_test), y_test=y_test, class_names=[str(i) for i in range(10)],
                   content_hash=hash_arrays(x, y), image_shape=(1, 8, 8))


@pytest.fixture(scope="session")
def digits() -> Dataset:
    return digits_dataset()


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
    """The keras framework and trainer registered in a real plugin manager, with one run context."""

    def __init__(self, run_dir: Path, model: dict[str, Any], trainer: dict[str, Any], seed: int,
                 resume: bool, monitors: tuple[Any, ...]) -> None:
        self.framework = KerasFramework(ModelParams(**model))
        self.trainer = KerasTrainer(KerasTrainerParams(**trainer))
        self.pm = new_plugin_manager()
        self.pm.register(self.framework, name="keras-framework")
        self.pm.register(self.trainer, name="keras-trainer")
        for number, monitor in enumerate(monitors):
            self.pm.register(monitor, name=f"monitor-{number}")
        self.run = RunContext(name="t", seed=seed, threads=1, dir=run_dir, stack={}, hook=self.pm.hook,
                              resume=resume)
        self.run.phase = "train"

    def build(self, dataset: Dataset, **overrides: Any) -> Any:
        return self.pm.hook.aios_build_model(dataset=dataset, run=self.run, overrides=overrides)

    def train(self, model: Any, dataset: Dataset, **overrides: Any) -> Any:
        return self.pm.hook.aios_train(model=model, dataset=dataset, run=self.run, overrides=overrides)

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
