"""Factories as a user would write them: ``function(dataset, **options)`` returning a Keras model."""

from __future__ import annotations

from typing import Any


def small(dataset: Any, units: int = 16) -> Any:
    import keras

    return keras.Sequential([keras.Input((dataset.num_features,)), keras.layers.Dense(units, activation="relu"),
                             keras.layers.Dense(dataset.num_classes, activation="softmax")])


def logits(dataset: Any) -> Any:
    import keras

    return keras.Sequential([keras.Input((dataset.num_features,)), keras.layers.Dense(dataset.num_classes)])


def wrong_classes(dataset: Any) -> Any:
    import keras

    return keras.Sequential([keras.Input((dataset.num_features,)), keras.layers.Dense(3, activation="softmax")])


def not_a_model(dataset: Any) -> Any:
    return {"layers": [128]}
