"""Fixtures: one local Ray for the in-process tests (trainers in this process use it), and the digits data set."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from aios_ray_train import _cluster

from aios_core import Dataset, hash_arrays

sys.path.insert(0, str(Path(__file__).parent))  # ray_train_helpers (pytest runs with --import-mode=importlib)


@pytest.fixture(scope="session")
def local_ray() -> Iterator[_cluster.Session]:
    """A local Ray started as the trainer starts one; trainers in this process use it instead of their own."""
    with _cluster.ray_session(None, timeout=60.0, env={"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.1"}) as session:
        yield session


def digits_dataset() -> Dataset:
    """Digits 8x8, split 70/15/15 (stratified), standardized with the train split's statistics."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    raw = load_digits()
    x, y = raw.data.astype(np.float32), raw.target.astype(np.int64)
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=0.15, stratify=y, random_state=0)
    x_train, x_val, y_train, y_val = train_test_split(x_rest, y_rest, test_size=0.15 / 0.85, stratify=y_rest,
                                                      random_state=0)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std[std == 0] = 1.0

    def scale(part: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray((part - mean) / std, dtype=np.float32)

    return Dataset(name="digits", x_train=scale(x_train), y_train=y_train, x_val=scale(x_val), y_val=y_val,
                   x_test=scale(x_test), y_test=y_test, class_names=[str(i) for i in range(10)],
                   content_hash=hash_arrays(x, y), image_shape=(1, 8, 8))


@pytest.fixture(scope="session")
def digits() -> Dataset:
    return digits_dataset()
