"""Model factories as a user would write them: ``function(dataset, **options) -> nn.Module``."""

from __future__ import annotations

import torch
from torch import nn

from aios_core import Dataset


def linear(dataset: Dataset, *, scale: float = 1.0) -> nn.Module:
    """Softmax regression; ``scale`` multiplies the initial weights (to prove options arrive)."""
    layer = nn.Linear(dataset.num_features, dataset.num_classes)
    with torch.no_grad():
        layer.weight.mul_(scale)
    return layer


def two_layer(dataset: Dataset, *, width: int = 32) -> nn.Module:
    return nn.Sequential(nn.Linear(dataset.num_features, width), nn.ReLU(), nn.Linear(width, dataset.num_classes))


def not_a_module(dataset: Dataset) -> object:
    return {"features": dataset.num_features}
